"""Retrieval quality of the real model on the seed articles' dev questions."""

import pytest

from index.text import normalize
from tests.conftest import seed_queries

pytestmark = pytest.mark.model


def first_hit_rank(results, answers) -> int | None:
    answers = [normalize(a) for a in answers]
    for rank, result in enumerate(results, 1):
        if any(a in normalize(result.text) for a in answers):
            return rank
    return None


@pytest.fixture(scope="module")
def ranks(real_searcher) -> dict[str, int | None]:
    return {q["id"]: first_hit_rank(real_searcher.search(q["query"], 10), q["answers"]) for q in seed_queries()}


def test_dev_questions_hit_in_top_5(ranks):
    hits_at_5 = sum(1 for r in ranks.values() if r is not None and r <= 5)
    assert len(ranks) == 15
    assert hits_at_5 >= 13, ranks


def test_dev_questions_hit_at_1(ranks):
    assert sum(1 for r in ranks.values() if r == 1) >= 10, ranks


def test_party_membership_question_finds_the_152_organisations_passage(real_searcher):
    results = real_searcher.search("Đảng bộ Khối có bao nhiêu đảng viên", 3)
    assert any("152 đảng bộ" in r.text and "8.400 đảng viên" in r.text for r in results)


def test_english_question_reaches_vietnamese_text(ranks):
    assert ranks["d14"] is not None and ranks["d14"] <= 5


def test_similar_passages_are_about_the_same_thing(real_searcher):
    source = real_searcher.search("Đường cách mệnh trong sinh hoạt chi bộ", 1)[0]
    similar = real_searcher.similar_to_passage(source.id, 5)
    assert len(similar) == 5 and source.id not in {r.id for r in similar}
    assert all(0 < r.score < 1.0 for r in similar)
    assert sum(r.doc_id == source.doc_id for r in similar) >= 3


def test_concurrent_searches_agree_with_sequential_ones(real_searcher):
    from concurrent.futures import ThreadPoolExecutor

    queries = [q["query"] for q in seed_queries()] * 3
    sequential = {q: [r.id for r in real_searcher.search(q, 5)] for q in queries}
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(lambda q: (q, [r.id for r in real_searcher.search(q, 5)]), queries))
    assert all(sequential[q] == ids for q, ids in concurrent)
