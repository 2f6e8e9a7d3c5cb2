"""Fits the confidence model (index/retrieve/confidence.py) on the dev sets, by 5-fold cross-validation.

Every dev question is asked of the index holding its answer (ViQuAD, ViNewsQA and the seed
questions, accented and typed without diacritics; the project's English questions) and of one
that does not hold it (ViNewsQA's questions of the ViQuAD index and the other way round; the seed
questions, Vietnamese and English, of the ViNewsQA index). Each search's first ten results give a
row: their features and whether the result answers (a relevant document, or a passage holding an
answer string; never, on the index without the answer). A logistic regression (Newton's method,
a little L2) is fitted on four folds and predicts the fifth; folds split questions, so a
question's spellings and its two indexes share one. Prints, on the held-out predictions: AUC and
expected calibration error by group, the reliability table, and how often "no answer" is said of
questions the index cannot answer and of those whose first result is right, by threshold, with
the threshold that tells the two apart best (the largest difference; ANSWERED_AT); then the
weights fitted on every row, for the code. The searches are kept in var/confidence/searches.jsonl, so a
second run only fits (--again searches anew).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from quality import SETS

from index.build import build_index, is_current
from index.encode.embed import load_encoder
from index.evaluate.quality import EvalSet, load_eval_set
from index.retrieve.confidence import ANSWERED_AT, FEATURES
from index.retrieve.search import Searcher
from index.text import fold, normalize

ROOT = Path(__file__).resolve().parent.parent
KEPT = ROOT / "var" / "confidence" / "searches.jsonl"
FOLDS = 5
RESULTS = 10
L2 = 1e-3
BINS = 10
# (label of the questions, label of the set whose index is asked, whether that index holds the answers)
ASKED = (
    ("ViQuAD", "ViQuAD", True),
    ("ViNewsQA", "ViNewsQA", True),
    ("seed dev", "seed dev", True),
    ("English seed", "seed dev", True),
    ("English ViQuAD", "ViQuAD", True),
    ("ViNewsQA", "ViQuAD", False),
    ("ViQuAD", "ViNewsQA", False),
    ("seed dev", "ViNewsQA", False),
    ("English seed", "ViNewsQA", False),
)
THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.05), 2)


def searcher_of(label: str, encoder, opened: dict[str, Searcher]) -> Searcher:
    queries, corpus, name = SETS[label]
    if name not in opened:
        evalset = load_eval_set(queries, corpus)
        out = ROOT / "var" / "eval" / name
        if not is_current(evalset.corpus, out, encoder.model_id, encoder.precision):
            build_index(evalset.corpus, out, encoder)
        opened[name] = Searcher.open(out, encoder=encoder)
    return opened[name]


def rows_of(searcher: Searcher, evalset: EvalSet, label: str, answerable: bool) -> list[dict]:
    rows = []
    for unaccented in (False,) if label.startswith("English") else (False, True):
        for query in evalset.queries:
            text = normalize(fold(normalize(query.text)) if unaccented else query.text)
            for result in searcher.search(text, RESULTS)[:RESULTS]:
                if evalset.kind == "qrels":
                    right = result.doc_id in query.relevant
                else:
                    right = any(normalize(a) in normalize(result.text) for a in query.answers)
                rows.append(
                    {
                        "question": f"{label}:{query.id}",
                        "group": "English"
                        if label.startswith("English")
                        else "unaccented"
                        if unaccented
                        else "accented",
                        "answerable": answerable,
                        "rank": result.features.rank if result.features else 0.0,
                        "features": asdict(result.features) if result.features else None,
                        "right": bool(right and answerable),
                    }
                )
    return rows


def search_all() -> list[dict]:
    encoder = load_encoder()
    opened: dict[str, Searcher] = {}
    rows: list[dict] = []
    for asked, index_of, answerable in ASKED:
        started = time.perf_counter()
        searcher = searcher_of(index_of, encoder, opened)
        queries, corpus, _ = SETS[asked]
        evalset = load_eval_set(queries, corpus)
        rows += rows_of(searcher, evalset, asked, answerable)
        print(f"{asked} of the {index_of} index: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return rows


def fit(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Logistic regression by Newton's method on standardised features: (bias, weights) on the raw scale."""
    mean, spread = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = np.hstack([np.ones((len(x), 1)), (x - mean) / spread])
    beta = np.zeros(z.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-z @ beta))
        penalty = L2 * np.r_[0, beta[1:]]
        gradient = z.T @ (p - y) / len(y) + penalty
        hessian = (z * (p * (1 - p))[:, None]).T @ z / len(y) + L2 * np.diag(np.r_[0, np.ones(len(beta) - 1)])
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    weights = beta[1:] / spread
    return float(beta[0] - weights @ mean), weights


def predict(x: np.ndarray, bias: float, weights: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-(bias + x @ weights)))


def auc(p: np.ndarray, y: np.ndarray) -> float:
    """The probability that a right result scores above a wrong one (ties count half)."""
    wrong = np.sort(p[y == 0])
    right = p[y == 1]
    below = np.searchsorted(wrong, right, "left")
    tied = np.searchsorted(wrong, right, "right") - below
    return float((below + tied / 2).sum() / max(len(right) * len(wrong), 1))


def reliability(p: np.ndarray, y: np.ndarray) -> list[tuple[float, float, float, int]]:
    """(bin's lower edge, mean confidence, share right, results) for each of BINS equal bins."""
    table = []
    for b in range(BINS):
        inside = (p >= b / BINS) & ((p < (b + 1) / BINS) if b < BINS - 1 else (p <= 1))
        if inside.any():
            table.append((b / BINS, float(p[inside].mean()), float(y[inside].mean()), int(inside.sum())))
    return table


def ece(p: np.ndarray, y: np.ndarray) -> float:
    return sum(n * abs(mean - share) for _, mean, share, n in reliability(p, y)) / max(len(p), 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--again", action="store_true", help="search anew, not from var/confidence")
    args = parser.parse_args()
    if args.again or not KEPT.exists():
        rows = search_all()
        KEPT.parent.mkdir(parents=True, exist_ok=True)
        KEPT.write_text("".join(json.dumps(row) + "\n" for row in rows))
    rows = [json.loads(line) for line in KEPT.read_text().splitlines()]
    rows = [row for row in rows if row["features"]]
    x = np.array([[row["features"][name] for name in FEATURES] for row in rows])
    y = np.array([row["right"] for row in rows], float)
    questions = sorted({row["question"] for row in rows})
    random.Random(0).shuffle(questions)
    fold_of = {q: n % FOLDS for n, q in enumerate(questions)}
    folds = np.array([fold_of[row["question"]] for row in rows])
    held_out = np.zeros(len(rows))
    for f in range(FOLDS):
        bias, weights = fit(x[folds != f], y[folds != f])
        held_out[folds == f] = predict(x[folds == f], bias, weights)

    groups = np.array([row["group"] for row in rows])
    by_group = [("all", groups == groups)] + [(g, groups == g) for g in ("accented", "unaccented", "English")]
    answerable = np.array([row["answerable"] for row in rows])
    print(f"{len(rows)} results of {len(questions)} questions; held-out predictions of {FOLDS} folds\n")
    print("| questions | results | right | AUC | ECE |\n|---|---|---|---|---|")
    for name, rows_in in by_group:
        p, t = held_out[rows_in], y[rows_in]
        print(f"| {name} | {rows_in.sum()} | {int(t.sum())} | {auc(p, t):.3f} | {ece(p, t):.3f} |")
    print("\nReliability (all held-out results):\n\n| confidence | mean confidence | share right | results |")
    print("|---|---|---|---|")
    for low, mean, share, n in reliability(held_out, y):
        print(f"| {low:.1f}–{low + 1 / BINS:.1f} | {mean:.3f} | {share:.3f} | {n} |")

    # a search's first result: the one "answered" is read from
    first = np.array([row["rank"] == 0 for row in rows])
    unanswerable = first & ~answerable
    right_first = first & answerable & (y == 1)
    print("\nNo answer said (first result's confidence under the threshold), held out:\n")
    print("| threshold | unanswerable: said | answerable, first right: said |\n|---|---|---|")
    balance = {}
    for threshold in THRESHOLDS:
        cut = held_out < threshold
        print(f"| {threshold:.2f} | {cut[unanswerable].mean():.3f} | {cut[right_first].mean():.3f} |")
        balance[threshold] = cut[unanswerable].mean() - cut[right_first].mean()
    best = max(balance, key=lambda threshold: balance[threshold])
    print(f"\nThe threshold telling them apart best (said of the first less said of the second): {best:.2f}")
    print(f"\nAt ANSWERED_AT = {ANSWERED_AT}:\n")
    print("| questions | unanswerable: said | answerable, first right: said |\n|---|---|---|")
    cut = held_out < ANSWERED_AT
    for name, rows_in in by_group:
        said = cut[unanswerable & rows_in]
        wrong = cut[right_first & rows_in]
        print(f"| {name} | {said.mean():.3f} of {len(said)} | {wrong.mean():.3f} of {len(wrong)} |")
    bias, weights = fit(x, y)
    print("\nOn every row: BIAS = " + f"{bias:.4g}" + "\nWEIGHTS = (" + ", ".join(f"{w:.4g}" for w in weights) + ")")
    print("features: " + ", ".join(FEATURES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
