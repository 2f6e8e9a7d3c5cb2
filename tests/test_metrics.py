import math

import numpy as np
import pytest

from index.evaluate.metrics import first_relevant_rank, ndcg_at, recall_at, reciprocal_rank_at, unique_in_order
from index.retrieve.fusion import normalized_score_fusion, reciprocal_rank_fusion


def test_rank_metrics():
    ranked = ["a", "b", "c", "d"]
    assert first_relevant_rank(ranked, {"c"}) == 3
    assert reciprocal_rank_at(ranked, {"c"}, 10) == pytest.approx(1 / 3)
    assert reciprocal_rank_at(ranked, {"c"}, 2) == 0.0
    assert recall_at(ranked, {"b", "z"}, 2) == 0.5
    assert ndcg_at(ranked, {"a"}, 10) == 1.0
    assert ndcg_at(ranked, {"b", "d"}, 10) == pytest.approx(
        (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    )
    assert unique_in_order(["x", "y", "x", "z", "y"]) == ["x", "y", "z"]


def test_reciprocal_rank_fusion_matches_the_formula():
    dense = (np.array([0.9, 0.8, 0.7]), np.array([1, 2, 3]))
    lexical = (np.array([12.0, 3.0]), np.array([3, 4]))
    scores, ids = reciprocal_rank_fusion([dense, lexical], [1.0, 2.0], k=10)
    expected = {1: 1 / 11, 2: 1 / 12, 3: 1 / 13 + 2 / 11, 4: 2 / 12}
    assert ids.tolist() == sorted(expected, key=lambda i: -expected[i])
    assert scores.tolist() == pytest.approx(sorted(expected.values(), reverse=True))


def test_normalized_score_fusion_scales_each_leg():
    dense = (np.array([0.9, 0.5]), np.array([1, 2]))
    lexical = (np.array([20.0, 10.0, 0.0]), np.array([2, 3, 4]))
    scores, ids = normalized_score_fusion([dense, lexical], [0.5, 1.0], scale="range")
    assert dict(zip(ids.tolist(), scores.tolist())) == pytest.approx({1: 0.5, 2: 1.0, 3: 0.5, 4: 0.0})
    assert ids.tolist()[0] == 2
    # by the standard deviation: the dense leg's 0.2, the lexical leg's sqrt(200 / 3)
    scores, ids = normalized_score_fusion([dense, lexical], [0.5, 1.0], scale="sd")
    lexical_sd = math.sqrt(200 / 3)
    assert dict(zip(ids.tolist(), scores.tolist())) == pytest.approx(
        {1: 0.5 * 0.4 / 0.2, 2: 20 / lexical_sd, 3: 10 / lexical_sd, 4: 0.0}, rel=1e-6
    )
    assert ids.tolist() == [2, 3, 1, 4]
    empty = (np.zeros(0), np.zeros(0, np.int64))
    assert normalized_score_fusion([empty, empty], [1, 1])[1].size == 0
    flat = (np.array([3.0, 3.0]), np.array([5, 6]))
    assert dict(zip(*reversed([a.tolist() for a in normalized_score_fusion([flat, empty], [2, 1])]))) == {
        5: 2.0,
        6: 2.0,
    }


def test_standard_deviation_fusion_weighs_how_far_ahead_a_first_stands():
    """Min-max gives each leg's first 1 however far ahead of the rest it stands; divided by the
    standard deviation, a first far ahead of its leg (the dense leg's, 2.4 deviations above the
    lowest) outweighs one with a close rival (the lexical leg's, 2.2)."""
    dense = (np.array([0.90, 0.50, 0.49, 0.48]), np.array([1, 2, 3, 4]))
    lexical = (np.array([10.0, 9.0, 1.0, 0.0]), np.array([3, 2, 5, 6]))
    assert normalized_score_fusion([dense, lexical], [1.0, 1.0], scale="range")[1][0] == 3
    assert normalized_score_fusion([dense, lexical], [1.0, 1.0], scale="sd")[1][0] == 1


def test_eval_set_of_questions_naming_their_documents(tmp_path):
    """A .jsonl set may name relevant documents instead of answer strings (so questions about a
    third-party corpus carry none of its text); it is then scored by document, as BEIR sets are."""
    from index.evaluate.quality import load_eval_set

    named = tmp_path / "named.jsonl"
    named.write_text('{"id": "q1", "query": "Who?", "relevant": ["doc-7"]}\n', encoding="utf-8")
    evalset = load_eval_set(named, tmp_path / "corpus.jsonl")
    assert evalset.kind == "qrels" and evalset.queries[0].relevant == {"doc-7"}
    assert evalset.corpus == [tmp_path / "corpus.jsonl"]
    answers = tmp_path / "answers.jsonl"
    answers.write_text('{"query": "Who?", "answers": ["Ann"]}\n', encoding="utf-8")
    assert load_eval_set(answers).kind == "answers"
