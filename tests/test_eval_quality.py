"""Retrieval quality on subsets of the external evaluation sets (read from ../shared/eval, never
copied into the project), every mode, with and without diacritics, on both backends (the same
floors: the Milvus backend must rank as the embedded one does). The floors sit a little under
what these subsets measured (the comment on FLOORS); the full sets run with `make eval`."""

from __future__ import annotations

import numpy as np
import pytest

from index.build import build_index
from index.evaluate.baselines import BM25, FUSED, compared
from index.evaluate.quality import EvalSet, evaluate, load_eval_set, subset
from index.retrieve.search import Searcher
from index.text import fold
from tests.conftest import SEED_QUERIES, SHARED, milvus_lite

pytestmark = pytest.mark.model

SUBSETS = {
    # name: (queries, distractor documents)
    "viquad": (200, 1000),
    "vinewsqa": (150, 250),
    "scifact": (120, 600),
}
# (mode, unaccented) -> minimum MRR@10 / Recall@10 on the subset
# Measured on these subsets (MRR@10 / Recall@10, accented then unaccented):
#   viquad   hybrid .940/.990 .919/.990  dense .884/.980 .838/.960  lexical .863/.950 .858/.960
#   vinewsqa hybrid .870/.927 .854/.893  dense .802/.883 .770/.870  lexical .830/.920 .812/.900
FLOORS = {
    "viquad": {
        ("hybrid", False): (0.92, 0.97),
        ("hybrid", True): (0.90, 0.97),
        ("dense", False): (0.85, 0.95),
        ("dense", True): (0.82, 0.94),
        ("lexical", False): (0.83, 0.92),
        ("lexical", True): (0.83, 0.92),
    },
    "vinewsqa": {
        ("hybrid", False): (0.85, 0.90),
        ("hybrid", True): (0.83, 0.88),
        ("dense", False): (0.79, 0.85),
        ("dense", True): (0.74, 0.83),
        ("lexical", False): (0.80, 0.89),
        ("lexical", True): (0.78, 0.87),
    },
}


_BUILT: dict[tuple[str, str], tuple[EvalSet, Searcher]] = {}
_VECTORS: dict[str, np.ndarray] = {}


class RememberedVectors:
    """The encoder, remembering each passage's and sentence's vector across the module: a subset is
    embedded once for both backends (embedding twice cost about 3 of make test's 51 minutes), and
    the Milvus index holds exactly the vectors the embedded one does."""

    def __init__(self, encoder):
        self.encoder = encoder

    def __getattr__(self, name: str):
        return getattr(self.encoder, name)

    def encode_passages(self, texts, batch_size: int = 32) -> np.ndarray:
        new = [text for text in dict.fromkeys(texts) if text not in _VECTORS]
        if new:
            _VECTORS.update(zip(new, self.encoder.encode_passages(new, batch_size)))
        return np.stack([_VECTORS[text] for text in texts])


def subset_searcher(name: str, backend: str, request, tmp_path_factory, encoder) -> tuple[EvalSet, Searcher]:
    """The subset of `name` indexed on `backend`, built once for the whole module."""
    if (name, backend) not in _BUILT:
        source = SHARED / "eval" / name
        if not source.is_dir():
            pytest.skip(f"{source} is not here")
        queries, distractors = SUBSETS[name]
        work = tmp_path_factory.mktemp(name)
        evalset = subset(load_eval_set(source), queries, distractors, work / "corpus")
        if backend == "embedded":
            location = work / "index"
        else:
            location, stop = milvus_lite(work / "milvus.db")
            request.session.config.add_cleanup(stop)
        build_index(evalset.corpus, location, RememberedVectors(encoder), progress=False)
        _BUILT[name, backend] = evalset, Searcher.open(location, encoder=encoder)
    return _BUILT[name, backend]


@pytest.fixture(
    scope="module",
    params=[(name, backend) for name in sorted(FLOORS) for backend in ("embedded", "milvus")],
    ids=lambda param: "-".join(param),
)
def measured(request, tmp_path_factory, real_encoder):
    name, backend = request.param
    evalset, searcher = subset_searcher(name, backend, request, tmp_path_factory, real_encoder)
    return name, {unaccented: evaluate(searcher, evalset, unaccented=unaccented) for unaccented in (False, True)}


def test_subset_floors(measured):
    name, report = measured
    for (mode, unaccented), (mrr, recall) in FLOORS[name].items():
        assert report[unaccented][mode]["MRR@10"] >= mrr, (name, mode, unaccented, report[unaccented][mode])
        assert report[unaccented][mode]["Recall@10"] >= recall, (name, mode, unaccented, report[unaccented][mode])


def test_hybrid_beats_each_leg(measured):
    name, report = measured
    for unaccented in (False, True):
        by_mode = report[unaccented]
        assert by_mode["hybrid"]["MRR@10"] > max(by_mode["dense"]["MRR@10"], by_mode["lexical"]["MRR@10"]), (
            name,
            by_mode,
        )


def test_unaccented_queries_stay_close(measured):
    name, report = measured
    assert report[True]["hybrid"]["MRR@10"] >= report[False]["hybrid"]["MRR@10"] - 0.06


def test_seed_answers_through_eval(real_searcher):
    report = evaluate(real_searcher, load_eval_set(SEED_QUERIES), ["hybrid"])["hybrid"]
    assert report["Hit@5"] == 1.0 and report["Hit@1"] >= 12 / 15


# "No answer" (the best result's confidence under ANSWERED_AT) on the subsets, with and without
# diacritics: said of questions whose answer is in the other set's index (ViNewsQA's asked of
# ViQuAD's and the other way round), and wrongly said of questions whose first result is right.
# Measured (2026-12-02): unanswerable said .963 / .980, answerable-and-right said .072 / .081
# (accented / unaccented); the floors are the goals of the issue that asked for it.
NO_ANSWER_FLOOR = 0.80
WRONG_NO_ANSWER_CEILING = 0.10


def test_no_answer_is_said_of_questions_the_index_cannot_answer(request, tmp_path_factory, real_encoder):
    built = {name: subset_searcher(name, "embedded", request, tmp_path_factory, real_encoder) for name in FLOORS}
    for unaccented in (False, True):
        unanswerable, right_first = [], []
        for name, (evalset, searcher) in built.items():
            _, other = built[next(other for other in FLOORS if other != name)]
            for query in evalset.queries:
                text = fold(query.text) if unaccented else query.text
                unanswerable.append(not other.search(text, 1).answered)
                results = searcher.search(text, 1)
                if results and results[0].doc_id in query.relevant:
                    right_first.append(not results.answered)
        said, wrongly = sum(unanswerable) / len(unanswerable), sum(right_first) / len(right_first)
        print(f"unaccented={unaccented}: no answer said of {said:.3f} unanswerable, {wrongly:.3f} answerable")
        assert said >= NO_ANSWER_FLOOR, (unaccented, said)
        assert wrongly <= WRONG_NO_ANSWER_CEILING, (unaccented, wrongly)


# SciFact (English science abstracts, claims as questions) against the stock baselines on the same
# claims: BM25 with English stemming and stop words, and its reciprocal-rank fusion with our own
# dense ranking. Measured on this subset (2026-12-02, MRR@10 / nDCG@10), embedded and Milvus:
# hybrid .943/.959 .947/.960, dense .918/.934 (both), lexical .900/.919 .903/.920; stemmed BM25
# .901/.917, the fusion .938/.950. The floors sit under them.
SCIFACT_FLOORS = {"semsearch hybrid": (0.92, 0.94), "semsearch dense": (0.89, 0.91), "semsearch lexical": (0.87, 0.89)}


@pytest.mark.parametrize("backend", ["embedded", "milvus"])
def test_scifact_beats_stemmed_bm25_and_its_fusion_with_our_dense_ranking(
    backend, request, tmp_path_factory, real_encoder
):
    evalset, searcher = subset_searcher("scifact", backend, request, tmp_path_factory, real_encoder)
    report = compared(searcher, evalset)
    print(backend, report)
    for system, (mrr, ndcg) in SCIFACT_FLOORS.items():
        assert report[system]["MRR@10"] >= mrr and report[system]["nDCG@10"] >= ndcg, (system, report[system])
    for metric in ("MRR@10", "nDCG@10"):
        assert report["semsearch hybrid"][metric] >= report[FUSED][metric], (metric, report)
        # level with it: a question or two either way on 120
        assert report["semsearch lexical"][metric] >= report[BM25][metric] - 0.01, (metric, report)
