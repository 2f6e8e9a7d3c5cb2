import json
import os

import numpy as np
import pytest

from index.build import build_index, is_current
from index.retrieve.search import MAX_K, MAX_QUERY_CHARS, InvalidRequest, Searcher, UnknownPassage
from index.store.base import IndexCorrupt, IndexNotFound, ModelMismatch
from index.store.embedded.live import read_manifest
from index.store.embedded.publish import open_index, verify_index
from index.store.location import FollowedIndex
from index.text import fold
from tests.conftest import CORPUS, FakeEncoder


def documents(out) -> int:
    index = open_index(out)
    try:
        return index.passages.counts()[1]
    finally:
        index.close()


def test_manifest_records_the_build(fake_index, fake_encoder):
    manifest = read_manifest(fake_index)
    assert manifest.model == fake_encoder.model_id
    assert manifest.dimension == fake_encoder.dim
    index = open_index(fake_index)
    assert index.passages.counts() == (len(index.view.checkpoint), 5)
    assert len(index.view.checkpoint) > 5 and index.view.delta.count == 0
    assert index.view.checkpoint.describe()["engine"] == "faiss"
    assert manifest.chunking["max_tokens"] == fake_encoder.max_tokens
    assert is_current([CORPUS], fake_index, fake_encoder.model_id)
    assert not is_current([CORPUS], fake_index, "another/model")


def test_faiss_search_matches_brute_force(fake_searcher, fake_encoder):
    """The FAISS path returns what an exhaustive numpy scan over every stored vector returns."""
    index = fake_searcher.index
    ids = np.array(index.passages.all_int_ids())
    matrix = np.stack([index.vector(i) for i in ids])
    for query in ["đảng viên sinh hoạt chi bộ", "Fanpage Zalo mạng xã hội", "Hồ Chí Minh"]:
        q = fake_encoder.encode_queries([query])[0]
        scores, found = index.dense(q, 5)
        assert scores.tolist() == pytest.approx(np.sort(matrix @ q)[::-1][:5].tolist(), abs=1e-5)
        assert set(found[:3].tolist()) <= set(_ties(matrix @ q, ids, scores[2]))


def test_dense_search_scores_each_passage_by_its_whole_and_its_best_sentence(fake_searcher, fake_encoder):
    """Dense results against an oracle that scans every passage and embeds the sentences of the
    nearest `depth` afresh: score = share · q·passage + (1 − share) · max q·sentence. Stored
    sentence vectors are 8-bit, hence the tolerance."""
    from index.retrieve.search import FUSION

    index = fake_searcher.index
    stored = list(index.passages.by_int_ids(index.passages.all_int_ids()).values())
    passages = np.stack([index.vector(p.int_id) for p in stored])
    share = FUSION.passage_share
    several = next(p for p in stored if len(_sentences_of(p)) > 2)
    for query in ["đảng viên sinh hoạt chi bộ", "Hồ Chí Minh", _sentences_of(several)[1]]:
        q = fake_encoder.encode_queries([query])[0]
        nearest = np.argsort(-(passages @ q))[: FUSION.depth]
        sentences = [fake_encoder.encode_passages(_sentences_of(stored[i])) for i in nearest]
        oracle = share * (passages[nearest] @ q) + (1 - share) * np.array([(s @ q).max() for s in sentences])
        results = fake_searcher.search(query, 5, mode="dense")
        top = np.sort(oracle)[::-1]
        assert [r.score for r in results] == pytest.approx(top[:5].tolist(), abs=0.01)
        assert {r.id for r in results[:3]} <= {
            stored[i].id for i, score in zip(nearest, oracle) if score >= top[2] - 0.02
        }
    assert results[0].id == several.id  # its own sentence is its best


def _sentences_of(passage):
    """Each sentence alone, and under the passage's context."""
    from index.ingest.chunk import evidence_sentences

    alone = evidence_sentences(passage.text)
    return alone + [f"{passage.context}\n{sentence}" for sentence in alone] if passage.context else alone


def _ties(scores, ids, threshold):
    return ids[scores >= threshold - 1e-6].tolist()


def test_a_build_in_groups_equals_a_build_in_one(tmp_path, fake_encoder):
    """Builds read, embed and commit a few documents at a time; the result is the one-commit build's."""
    whole = tmp_path / "whole"
    build_index([CORPUS], whole, fake_encoder, progress=False)
    grouped = tmp_path / "grouped"
    commit = build_index([CORPUS], grouped, fake_encoder, progress=False, group=2).commit
    assert commit.version == 3 and len(commit.documents) == 5  # 5 documents in groups of 2
    built = [open_index(whole), open_index(grouped)]
    try:
        rows = [list(b.passages.by_int_ids(b.passages.all_int_ids()).values()) for b in built]
        assert [(p.int_id, p.id, p.text) for p in rows[0]] == [(p.int_id, p.id, p.text) for p in rows[1]]
        assert commit.added == len(rows[1])
        for b in built:
            assert b.view.delta.count == 0 and len(b.view.checkpoint) == len(rows[0])
        for query in ["đảng viên sinh hoạt chi bộ", "Hồ Chí Minh"]:
            found = [
                [
                    (r.id, round(r.score, 5))
                    for r in Searcher(FollowedIndex(b.directory, reader=b), fake_encoder).search(query, 10)
                ]
                for b in built
            ]
            assert found[0] == found[1]
    finally:
        for b in built:
            b.close()


def test_crash_while_indexing_keeps_the_previous_index(tmp_path, fake_index):
    before = (fake_index / "manifest.json").read_text()
    target_before = os.path.realpath(fake_index)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_index([CORPUS], fake_index, FakeEncoder(fail_after=10), progress=False)
    assert os.path.realpath(fake_index) == target_before
    assert (fake_index / "manifest.json").read_text() == before
    assert Searcher.open(fake_index, encoder=FakeEncoder()).search("đảng viên", 3)
    assert not list(fake_index.parent.glob(".index.staging-*"))


def test_rebuild_replaces_the_index_and_keeps_one_previous_generation(tmp_path, fake_index, fake_encoder):
    first = os.path.realpath(fake_index)
    build_index([CORPUS / "000_3c2f5f3f6056e9aa.txt"], fake_index, fake_encoder, progress=False)
    second = os.path.realpath(fake_index)
    build_index([CORPUS], fake_index, fake_encoder, progress=False)
    assert documents(fake_index) == 5
    generations = sorted(p.name for p in fake_index.parent.glob(".index.gen-*"))
    assert os.path.basename(second) in generations and os.path.basename(first) not in generations
    assert len(generations) == 2


def test_missing_broken_and_foreign_indexes_are_clear_errors(tmp_path, fake_index):
    with pytest.raises(IndexNotFound, match="no index at"):
        open_index(tmp_path / "nothing")
    with pytest.raises(ModelMismatch, match="built with model 'test/fake-hash-encoder'"):
        open_index(fake_index, model="intfloat/multilingual-e5-small")

    manifest_path = fake_index / "manifest.json"
    data = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**data, "format_version": 99}))
    with pytest.raises(IndexCorrupt, match="index format 99"):
        open_index(fake_index)
    manifest_path.write_text(json.dumps(data))
    vectors = fake_index / open_index(fake_index).view.checkpoint_name / "vectors.faiss"
    vectors.write_bytes(b"garbage")
    open_index(fake_index).close()  # derived from the database: rebuilt (test_crash_safety.py)
    assert verify_index(fake_index)
    manifest_path.write_text("{broken")
    with pytest.raises(IndexCorrupt, match="not valid JSON"):
        open_index(fake_index)


def test_similar_leaves_out_the_passage_and_its_exact_copies(tmp_path, fake_encoder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shared = "Chi bộ tổ chức sinh hoạt chuyên đề về học tập và làm theo tư tưởng Hồ Chí Minh."
    (corpus / "a.txt").write_text(f"Bài A\n\n{shared}\n\nĐoạn khác về kinh tế nông nghiệp.\n")
    (corpus / "b.txt").write_text(f"Bài B\n\n{shared}\n\nChi bộ sinh hoạt chuyên đề tư tưởng Hồ Chí Minh hằng tháng.\n")
    build_index([corpus], tmp_path / "index", fake_encoder, progress=False)
    searcher = Searcher.open(tmp_path / "index", encoder=fake_encoder)
    source = searcher.search(shared, 1)[0]
    assert source.text == shared
    similar = searcher.similar_to_passage(source.id, 3)
    assert similar and all(r.id != source.id and r.text != shared for r in similar)
    assert similar[0].text.startswith("Chi bộ sinh hoạt chuyên đề")
    # pasted text is searched as it is: its copies are what it is most similar to
    assert searcher.similar_to_text(shared, 2)[0].text == shared


def test_similar_passages_are_scored_from_the_stored_vectors_not_the_rounded_codes(tmp_path, fake_encoder, monkeypatch):
    """Past the size step the vector index keeps 8-bit codes; the similar passages it finds are
    scored and ordered by their exact cosine, from the stored vectors."""
    import index.store.embedded.vectors as vectors

    monkeypatch.setattr(vectors, "EXACT_BELOW", 100)
    build_index([CORPUS], tmp_path / "index", fake_encoder, progress=False)
    searcher = Searcher.open(tmp_path / "index", encoder=fake_encoder)
    assert "SQ8" in searcher.index.view.checkpoint.describe()["factory"]
    text = "Đảng bộ Khối tổ chức hội nghị học tập nghị quyết"
    similar = searcher.similar_to_text(text, 5)
    query = fake_encoder.encode_passages([text])[0]
    exact = [float(searcher.index.vector(searcher.passage(r.id).int_id) @ query) for r in similar]
    assert len(similar) == 5 and [r.score for r in similar] == pytest.approx(exact, abs=1e-6)
    assert exact == sorted(exact, reverse=True)


def test_neighbours_are_in_reading_order(fake_searcher):
    hit = fake_searcher.search("Fanpage Zalo", 1)[0]
    passage = fake_searcher.passage(hit.id)
    around = fake_searcher.neighbours(passage)
    assert [p.position for p in around] == [passage.position - 1, passage.position, passage.position + 1]
    assert {p.doc_id for p in around} == {passage.doc_id}


@pytest.mark.parametrize(
    "query, k, message",
    [
        ("", 5, "query is empty"),
        ("   \n ", 5, "query is empty"),
        ("x" * (MAX_QUERY_CHARS + 1), 5, "the limit is"),
        (42, 5, "query must be a string"),
        ("đảng viên", 0, "k must be"),
        ("đảng viên", MAX_K + 1, "k must be"),
        ("đảng viên", "5", "k must be"),
        ("đảng viên", True, "k must be"),
    ],
)
def test_bad_requests(fake_searcher, query, k, message):
    with pytest.raises(InvalidRequest, match=message):
        fake_searcher.search(query, k)


def test_unknown_passage(fake_searcher):
    with pytest.raises(UnknownPassage, match="no passage with id 'ffff'"):
        fake_searcher.passage("ffff")
    with pytest.raises(UnknownPassage):
        fake_searcher.similar_to_passage("0000000000000000", 3)


def test_k_larger_than_the_index_returns_everything(fake_searcher):
    assert len(fake_searcher.search("đảng", MAX_K)) == min(MAX_K, fake_searcher.size)


def test_abandoned_staging_is_cleaned_but_look_alikes_are_not(tmp_path, fake_encoder):
    """A crashed build's staging directory is recorded in the ledger and removed by the next build;
    a directory that merely looks like one was not created by a build and stays."""
    out = tmp_path / "index"
    with pytest.raises(RuntimeError):
        build_index([CORPUS], out, FakeEncoder(fail_after=10), progress=False)
    look_alike = tmp_path / ".index.staging-dead"
    look_alike.mkdir()
    (look_alike / "notes.txt").write_text("mine")
    build_index([CORPUS / "000_3c2f5f3f6056e9aa.txt"], out, fake_encoder, progress=False)
    assert (look_alike / "notes.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.glob(".index.staging-*")] == [look_alike.name]
    assert documents(out) == 1


def test_reload_follows_a_rebuild_and_refuses_another_model(fake_index, fake_encoder):
    searcher = Searcher.open(fake_index, encoder=fake_encoder)
    assert not searcher.followed.reload_if_changed()
    build_index([CORPUS / "000_3c2f5f3f6056e9aa.txt"], fake_index, fake_encoder, progress=False)
    assert searcher.followed.reload_if_changed() and searcher.index.passages.counts()[1] == 1

    class OtherModel(FakeEncoder):
        model_id = "test/another-model"

    serving = searcher.index.directory
    build_index([CORPUS], fake_index, OtherModel(), progress=False)
    with pytest.raises(ModelMismatch, match="another-model"):
        searcher.followed.reload_if_changed()
    assert searcher.index.directory == serving and searcher.search("đảng viên", 1)


def test_packed_sentence_vectors_keep_their_cosines():
    """8-bit sentence vectors with one scale each: cosines to a query move by well under .01,
    exact zeros survive, and bytes that are not packed vectors are refused."""
    from index.encode.evidence import Evidence, pack_vectors

    def unpacked(packed: bytes) -> np.ndarray:
        return Evidence.of([(0, np.zeros(384, np.float32), packed)], 384).sentences

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(7, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[3] = 0.0
    packed = pack_vectors(vectors)
    assert len(packed) == 7 * (384 + 4)
    restored = unpacked(packed)
    query = rng.normal(size=384).astype(np.float32)
    query /= np.linalg.norm(query)
    assert np.abs(restored @ query - vectors @ query).max() < 0.003
    assert not restored[3].any()
    for broken in (b"", packed[:-1]):
        with pytest.raises(ValueError, match="not packed"):
            unpacked(broken)


@pytest.mark.parametrize("backend", ["embedded", "milvus"])
def test_hybrid_search_embeds_the_query_as_its_lexical_matches_write_it(fake_searcher, monkeypatch):
    """Typed without diacritics or capitals, a question is embedded with the diacritics the
    corpus gives it and the capitals of the passages it matches ("Khối", as the seed articles
    write the bloc's name), keeping its question mark; dense mode has no lexical matches to
    follow, so only diacritics come back."""
    embedded = []
    encode = fake_searcher._query_vector
    monkeypatch.setattr(fake_searcher, "_query_vector", lambda query: embedded.append(query) or encode(query))
    query = "dang bo khoi co bao nhieu dang vien?"
    fake_searcher.search(query, 5)
    fake_searcher.search(query, 5, mode="dense")
    hybrid, dense = embedded
    assert fold(hybrid) == fold(dense) == query
    assert "Khối" in hybrid and hybrid.endswith("?") and "đảng viên" in hybrid
    assert dense == dense.lower() and "đảng viên" in dense


def test_a_hybrid_search_reads_the_query_coverage_once(fake_searcher, monkeypatch):
    """Restoring an unaccented query and weighing its lexical leg both need the coverage; it is
    one read of the accent counts (a round trip on Milvus), not two."""
    accents = fake_searcher.index.accents
    calls = []
    measure = accents.coverage
    monkeypatch.setattr(accents, "coverage", lambda query: calls.append(query) or measure(query))
    assert fake_searcher.search("dang vien sinh hoat chi bo", 5)
    assert calls == ["dang vien sinh hoat chi bo"]
    # dense mode has no passages to take capitals from: an accented query needs nothing restored,
    # and the coverage is read once, for the results' confidence
    assert fake_searcher.search("đảng viên sinh hoạt chi bộ", 5, mode="dense")
    assert calls == ["dang vien sinh hoat chi bo", "đảng viên sinh hoạt chi bộ"]


def test_sentence_cosines_agree_with_scoring_each_candidate_alone():
    from index.retrieve.fusion import sentence_cosines

    rng = np.random.default_rng(0)
    counts = np.array([1, 3, 2, 5, 1])
    passages, sentences, query = rng.normal(size=(5, 8)), rng.normal(size=(counts.sum(), 8)), rng.normal(size=8)
    sentences[4] = sentences[5]  # candidate 3's first two sentences tie: the first is taken
    whole, best, which = sentence_cosines(query, passages, sentences, counts)
    start = 0
    for n, count in enumerate(counts):
        own = [float(sentences[start + i] @ query) for i in range(count)]
        assert np.isclose(whole[n], passages[n] @ query) and np.isclose(best[n], max(own))
        assert which[n] == own.index(max(own))
        start += count
