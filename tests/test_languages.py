"""The lexical leg by language: each passage's language identified and recorded, analysed with its
own analyser (Vietnamese syllables; Snowball stems and stop words; plain words), queries analysed
for the index's languages they could be written in, documents' BM25 added to their passages', and
indexes analysed by an earlier version rebuilt from their passages when opened."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from index.build import build_index, write_documents
from index.retrieve.search import Searcher
from index.store.analysis import analyze, in_stemmed_language, query_terms
from index.store.embedded.publish import open_index, verify_index
from index.store.location import writing_at
from index.store.milvus.store import milvus_term
from index.text import language_of
from tests.conftest import CORPUS, milvus_lite
from tests.test_living_index import new_document

ENGLISH = (
    "Vitamin D deficiency increased the risk of hip fractures in elderly women. "
    "Supplementation reduced falls among the participants of the trial."
)


def test_languages_are_told_apart():
    assert language_of("Đảng bộ Khối có 8.400 đảng viên sinh hoạt tại 190 chi bộ.") == "vi"
    assert language_of(ENGLISH) == "en"
    assert language_of("La carence en vitamine D augmente le risque de fractures de la hanche.") == "fr"


def test_each_language_has_its_analyser():
    # Vietnamese as before: syllables, unaccented, unaccented pairs
    assert analyze("Đảng viên", "vi") == ["đảng", "viên", "~dang", "~vien", "~dang_vien"]
    # English: stems, no stop words, marked with the language
    assert analyze("The fractures increased", "en") == ["en:fractur", "en:increas"]
    assert analyze("les fractures", "fr") == ["fr:fractur"]
    # no stemmer: the written words, which the Vietnamese analysis of a query also gives
    assert analyze("北京 首都", "zh") == ["北京", "首都"]
    assert set(analyze("北京 首都", "zh")) <= set(query_terms("北京 首都", {"zh"}))


def test_a_query_is_analysed_for_the_languages_it_could_be_written_in():
    both = {"vi", "en"}
    # a Vietnamese question, typed with or without diacritics: Vietnamese terms alone, as before
    assert query_terms("Đảng viên mới", both) == analyze("Đảng viên mới", "vi")
    assert query_terms("dang vien moi", both) == analyze("dang vien moi", "vi")
    # any other: in the index's language it likeliest is, alone, so it matches passages of its own
    assert query_terms("new party members", both) == analyze("new party members", "en")
    assert query_terms("les nouveaux membres du parti", {"vi", "en", "fr"}) == analyze(
        "les nouveaux membres du parti", "fr"
    )
    assert query_terms("北京 首都", {"vi", "en", "zh"}) == analyze("北京 首都", "vi")
    # an index of one language reads every question in it: an English question of Vietnamese
    # passages still matches their names and numbers
    assert query_terms("new party members", {"vi"}) == analyze("new party members", "vi")
    assert in_stemmed_language("new party members", both)
    assert not in_stemmed_language("new party members", {"vi"})  # a Vietnamese corpus: as before
    assert not in_stemmed_language("dang vien moi", both)


def test_language_marked_terms_survive_milvus_standard_tokenizer():
    spelled = [milvus_term(t) for t in analyze(ENGLISH, "en")]
    assert [re.findall(r"\w+", s.lower()) for s in spelled] == [[s] for s in spelled]
    assert milvus_term("en:protein") != milvus_term("protein")


def written(location, documents, encoder) -> None:
    with writing_at(location) as writer:
        write_documents(writer, documents, encoder)


@pytest.fixture
def mixed_index(tmp_path, fake_encoder):
    out = tmp_path / "index"
    build_index([CORPUS], out, fake_encoder, progress=False)
    written(out, [new_document("english-1", ENGLISH)], fake_encoder)
    return out


@pytest.fixture(params=["embedded", "milvus"])
def location(request, tmp_path):
    if request.param == "embedded":
        return tmp_path / "index"
    target, stop = milvus_lite(tmp_path / "index.db")
    request.addfinalizer(stop)
    return target


def test_passages_are_matched_by_their_languages_stems_on_both_backends(location, fake_encoder):
    build_index([CORPUS], location, fake_encoder, progress=False)
    written(location, [new_document("english-1", ENGLISH)], fake_encoder)
    searcher = Searcher.open(location, encoder=fake_encoder)
    assert searcher.index.languages == {"vi", "en"}
    # other forms of the same words: only stemming finds them
    results = searcher.search("deficiencies increase fracture risks", 3, mode="lexical")
    assert results[0].doc_id == "english-1"
    if isinstance(location, Path):  # Milvus's passages do not record their language
        assert results[0].language == "en"
        assert searcher.search("Đảng viên", 1, mode="lexical")[0].language == "vi"


def test_a_passage_scores_its_own_and_its_documents_bm25_on_both_backends(location, fake_encoder):
    build_index([CORPUS], location, fake_encoder, progress=False)
    # "alpha" in both documents, once each; "omega" only in the second paragraph of the first
    documents = [
        new_document("split", "Zyxwv alpha sinh hoạt.\n\nOmega thi đua khen thưởng."),
        new_document("whole", "Zyxwv alpha hội nghị."),
    ]
    written(location, documents, fake_encoder)
    results = Searcher.open(location, encoder=fake_encoder).search("zyxwv alpha omega", 3, mode="lexical")
    # the first paragraph of "split" matches no more of the question than "whole" does, but its
    # document holds the rest of it
    split_first = next(r for r in results if r.doc_id == "split" and "alpha" in r.text)
    whole = next(r for r in results if r.doc_id == "whole")
    assert split_first.score > whole.score


def test_an_index_analysed_by_an_earlier_version_is_rebuilt_from_its_passages(mixed_index, fake_encoder):
    searcher = Searcher.open(mixed_index, encoder=fake_encoder)
    expected = [(r.id, round(r.score, 4)) for r in searcher.search("fracture risk", 5, mode="lexical")]
    searcher.index.close()
    database = sqlite3.connect(mixed_index.resolve() / "passages.sqlite")
    with database:  # as an earlier version left it: no languages, no analyser recorded
        database.execute("UPDATE passages SET language = NULL")
        database.execute("DELETE FROM state WHERE key = 'lexical_analyzer'")
    database.close()
    reopened = Searcher.open(mixed_index, encoder=fake_encoder)
    assert [(r.id, round(r.score, 4)) for r in reopened.search("fracture risk", 5, mode="lexical")] == expected
    languages = {p.language for p in reopened.index.passages.by_int_ids(reopened.index.passages.all_int_ids()).values()}
    assert languages == {"vi", "en"}
    reopened.index.close()
    assert open_index(mixed_index) and verify_index(mixed_index)
