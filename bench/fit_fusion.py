"""Fits hybrid search's fusion on the dev sets, by 5-fold cross-validation.

The settings (`FusionSettings` in index/retrieve/search.py): what each leg's scores are divided
by before they are summed (`scale`: their standard deviation or their range, min-max), how much
of a passage's dense score its whole gives against its best sentence (`passage_share`), and the
dense leg's weight against the lexical leg's (`dense_weight`; the lexical weight stays 1, scaled
by the query's coverage). Every dev question of ViQuAD and ViNewsQA, accented and typed without
diacritics, is searched once; its candidates' scores are kept, and each grid point re-ranks them
exactly as search does (index/retrieve/fusion.py) for `make eval`, which asks for the best 300
passages (`DEPTH`; a search for ten fuses each leg's top 100, which moves MRR@10 by ±.002).
Folds split questions, so a question's two spellings share a fold. The project's own small sets
(the seed questions, the English questions) are too small to fit on; they guard the pick
instead: a setting may not lower their MRR@10 by more than .005 against the service's setting
before (min-max, share .2, dense weight 1.0), in hybrid mode and in dense mode (which the
passage share moves too). Prints the grid's MRR@10, each fold's pick, the cross-validated
MRR@10 and the guarded pick.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from quality import SETS

from index.build import build_index, is_current
from index.encode.embed import load_encoder
from index.evaluate.metrics import reciprocal_rank_at, unique_in_order
from index.evaluate.quality import DEPTH, load_eval_set
from index.retrieve.fusion import Cosines, normalized_score_fusion
from index.retrieve.search import FUSION, Searcher
from index.text import fold, normalize

ROOT = Path(__file__).resolve().parent.parent

PASSAGE_SHARES = (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)
DENSE_WEIGHTS = (0.4, 0.6, 0.8, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8, 2.0)
SCALES = ("range", "sd")
FOLDS = 5
FITTED_ON = ("ViQuAD", "ViNewsQA")
GUARDS = ("seed dev", "English seed", "English ViQuAD")
BEFORE = ("range", 0.2, 1.0)  # the service's setting before this grid had a scale
ALLOWED_DROP = 0.005


@dataclass
class Candidates:
    """One search's candidates: what each grid point needs to rank them again."""

    question: str  # id: both spellings of a question share it
    group: str  # "ViQuAD", "ViQuAD unaccented", "seed dev dense", ...
    mode: str  # "hybrid", or "dense", which only the passage share moves
    ids: np.ndarray
    passage: np.ndarray  # cosine of the query and the whole passage
    sentence: np.ndarray  # of the query and its best sentence
    lexical: tuple[np.ndarray, np.ndarray]
    coverage: float
    unit_of: dict[int, str]  # what is ranked: a passage's document, or the passage itself
    relevant: set[str]

    def reciprocal_rank(self, scale: str, passage_share: float, dense_weight: float) -> float:
        scores = passage_share * self.passage + (1 - passage_share) * self.sentence
        order = np.lexsort((self.ids, -scores))[:DEPTH]
        ranked = self.ids[order]
        if self.mode == "hybrid":
            _, ranked = normalized_score_fusion(
                [(scores[order], ranked), self.lexical], (dense_weight, FUSION.lexical_weight * self.coverage), scale
            )
        return reciprocal_rank_at(unique_in_order([self.unit_of[int(i)] for i in ranked[:100]]), self.relevant, 10)


def candidates(searcher: Searcher, label: str, mode: str) -> list[Candidates]:
    """Each question's candidates as `mode` search finds them (as Searcher._rank does)."""
    index = searcher.index
    evalset = load_eval_set(SETS[label][0], SETS[label][1])
    found = []
    for unaccented in (False,) if label.startswith("English") else (False, True):
        for query in evalset.queries:
            text = normalize(fold(normalize(query.text)) if unaccented else query.text)
            if mode == "hybrid":
                coverage = index.accents.coverage(text)
                lexical = index.lexical_search(text, DEPTH)
                vector = searcher._query_vector(searcher.restored(index, text, coverage, lexical))
            else:  # no lexical leg to weigh, and restore reads the coverage when it needs it
                coverage, lexical = 0.0, (np.zeros(0, np.float32), np.zeros(0, np.int64))
                vector = searcher._query_vector(searcher.restored(index, text))
            dense = index.dense(vector, DEPTH)
            evidence = index.evidence(list(dict.fromkeys(np.concatenate([dense[1], lexical[1]]).tolist())))
            best = Cosines.of(vector, evidence).best
            ids = evidence.ids.tolist()
            if evalset.kind == "qrels":
                unit_of, relevant = index.passages.doc_ids_of(ids), query.relevant
            else:  # answer strings: a passage that holds one is relevant
                texts = {i: normalize(p.text) for i, p in index.passages.by_int_ids(ids).items()}
                unit_of = {i: str(i) for i in ids}
                relevant = {str(i) for i, t in texts.items() if any(normalize(a) in t for a in query.answers)}
            group = f"{label}{' unaccented' if unaccented else ''}{' dense' if mode == 'dense' else ''}"
            found.append(
                Candidates(
                    f"{label}:{query.id}",
                    group,
                    mode,
                    evidence.ids,
                    evidence.passages @ vector,
                    best,
                    lexical,
                    coverage,
                    unit_of,
                    relevant,
                )
            )
    return found


def describe(point: tuple[str, float, float]) -> str:
    return f"scale {point[0]}, passage share {point[1]}, dense weight {point[2]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args()
    encoder = load_encoder()
    searches: list[Candidates] = []
    for label in FITTED_ON + GUARDS:
        queries, corpus, name = SETS[label]
        evalset = load_eval_set(queries, corpus)
        out = ROOT / "var" / "eval" / name
        if not is_current(evalset.corpus, out, encoder.model_id, encoder.precision):
            build_index(evalset.corpus, out, encoder)
        started = time.perf_counter()
        searcher = Searcher.open(out, encoder=encoder)
        # the passage share moves dense mode too, so the guards check it there as well
        for mode in ("hybrid", "dense") if label in GUARDS else ("hybrid",):
            searches += candidates(searcher, label, mode)
        print(f"{label}: searched in {time.perf_counter() - started:.0f} s", file=sys.stderr)

    grid = list(itertools.product(SCALES, PASSAGE_SHARES, DENSE_WEIGHTS))
    # reciprocal ranks: one row per search, one column per grid point
    ranks = np.array([[c.reciprocal_rank(*point) for point in grid] for c in searches])
    groups = list(dict.fromkeys(c.group for c in searches))
    member = {g: np.array([c.group == g for c in searches]) for g in groups}
    guards = [g for g in groups if g.startswith(GUARDS)]
    groups = [g for g in groups if g not in guards]
    fitted = np.array([not c.group.startswith(GUARDS) for c in searches])

    print("| scale | passage share | dense weight | " + " | ".join(groups) + " | mean | " + " | ".join(guards) + " |")
    print("|---|---|---|" + "---|" * (len(groups) + 1 + len(guards)))
    for column, (scale, share, weight) in enumerate(grid):
        means = [ranks[member[g], column].mean() for g in groups]
        print(
            f"| {scale} | {share} | {weight} | "
            + " | ".join(f"{m:.3f}" for m in means)
            + f" | {np.mean(means):.3f} | "
            + " | ".join(f"{ranks[member[g], column].mean():.3f}" for g in guards)
            + " |"
        )

    # the objective weighs every group alike, so the larger set does not decide alone
    def objective(rows: np.ndarray) -> np.ndarray:
        return np.mean([ranks[rows & member[g]].mean(axis=0) for g in groups], axis=0)

    questions = sorted({c.question for c in searches if not c.group.startswith(GUARDS)})
    random.Random(0).shuffle(questions)
    fold_of = {q: n % FOLDS for n, q in enumerate(questions)}
    held_out = np.zeros(len(searches))
    for fold_number in range(FOLDS):
        test = np.array([fold_of.get(c.question) == fold_number for c in searches])
        pick = int(np.argmax(objective(fitted & ~test)))
        held_out[test] = ranks[test, pick]
        print(f"fold {fold_number}: {describe(grid[pick])}")
    print("cross-validated MRR@10: " + ", ".join(f"{g} {held_out[member[g]].mean():.3f}" for g in groups))
    fit = objective(fitted)
    best = int(np.argmax(fit))
    print(f"on all questions: {describe(grid[best])} (mean {fit[best]:.3f})")
    before = grid.index(BEFORE)
    guarded = [
        column
        for column in range(len(grid))
        if all(ranks[member[g], column].mean() >= ranks[member[g], before].mean() - ALLOWED_DROP for g in guards)
    ]
    pick = max(guarded, key=lambda column: fit[column])
    print(f"guarded pick: {describe(grid[pick])} (mean {fit[pick]:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
