"""Writes to a published index (add, replace, delete, compact), readers following them, filters
and paging, all checked against oracles; with the fake encoder (the real model: test_writes_real.py)."""

from __future__ import annotations

import datetime
import itertools
import json
import sqlite3

import numpy as np
import pytest

from index.build import build_index, write_documents
from index.ingest.document import document_from_record
from index.retrieve.search import Searcher
from index.store.base import IndexBusy
from index.store.embedded import lexical as lexical_module
from index.store.embedded.catalog import Catalog
from index.store.embedded.publish import open_index, verify_index, writing
from index.store.filters import Filters
from tests.conftest import CORPUS, FakeEncoder

NEW_TEXT = "Chi bộ Zyxwv tổ chức hội thao truyền thống.\n\nGiải bóng chuyền Zyxwv có mười hai đội tham gia."


def new_document(doc_id="new-1", text=NEW_TEXT, **meta):
    return document_from_record(doc_id, {"text": text, "title": "Tin mới", **meta}, "test")


def write(out, documents=(), delete=(), encoder=None):
    with writing(out) as writer:
        return write_documents(writer, documents, encoder or FakeEncoder(), delete)


def ids_of(results):
    return [r.id for r in results]


def test_add_replace_delete_are_seen_by_a_reader_that_refreshes(fake_index, fake_searcher):
    before = fake_searcher.index.view.version
    assert not fake_searcher.search("Zyxwv", 3, mode="lexical")

    added = write(fake_index, [new_document()])
    assert added.commit.version == before + 1 and added.commit.added == 2 and added.commit.removed == 0
    assert fake_searcher.followed.reload_if_changed()
    hits = fake_searcher.search("Zyxwv bóng chuyền", 3)
    assert hits[0].doc_id == "new-1" and "bóng chuyền" in hits[0].text
    assert fake_searcher.search("Zyxwv", 5, mode="dense")[0].doc_id == "new-1"
    assert fake_searcher.index.accents.frequency("zyxwv") == 2  # the accent vocabulary followed

    # replaced: the unchanged paragraph keeps its vectors (its sentences' too), the changed one is embedded
    store = fake_searcher.index.passages
    before = {p.text: fake_searcher.index.evidence([p.int_id]) for p in store.in_document("new-1", 0, 9)}
    replaced = write(fake_index, [new_document(text=NEW_TEXT.replace("mười hai", "mười bốn"))])
    assert (replaced.commit.added, replaced.commit.removed, replaced.embedded) == (2, 2, 1)
    fake_searcher.followed.reload_if_changed()
    after = {p.text: fake_searcher.index.evidence([p.int_id]) for p in store.in_document("new-1", 0, 9)}
    kept = "Chi bộ Zyxwv tổ chức hội thao truyền thống."
    assert np.array_equal(after[kept].sentences, before[kept].sentences) and np.array_equal(
        after[kept].passages, before[kept].passages
    )
    changed = next(text for text in after if "mười bốn" in text)
    assert (after[changed].sentences @ FakeEncoder().encode_passages([changed])[0]).max() == pytest.approx(1, abs=0.01)
    texts = [r.text for r in fake_searcher.search("Zyxwv bóng chuyền", 5) if r.doc_id == "new-1"]
    assert any("mười bốn" in t for t in texts) and not any("mười hai" in t for t in texts)

    gone = [p.int_id for p in store.in_document("new-1", 0, 9)]
    deleted = write(fake_index, delete=["new-1"])
    assert deleted.commit.removed == 2
    fake_searcher.followed.reload_if_changed()
    assert len(fake_searcher.index.evidence(gone)) == 0
    for mode in ("hybrid", "dense", "lexical"):
        assert "new-1" not in {r.doc_id for r in fake_searcher.search("Zyxwv bóng chuyền", 20, mode=mode)}
    assert fake_searcher.index.accents.frequency("zyxwv") == 0
    assert fake_searcher.index.passages.document("new-1") is None
    assert fake_searcher.index.documents() == fake_searcher.index.passages.counts()[1] == 5
    assert verify_index(fake_index)


def test_incremental_build_ranks_like_a_one_shot_build(tmp_path, fake_encoder):
    """Five batches rank exactly as one build of the same files, in every mode, before and after
    compaction. A document deleted and added again leaves dense rankings exact; BM25 moves a
    little, since tantivy, like Lucene, counts deleted documents in its statistics until their
    segment is merged (bench/living.py measures the effect on MRR@10)."""
    from index.ingest.files import find_files, read_documents

    files = sorted(CORPUS.glob("*.txt"))
    one_shot = tmp_path / "one-shot"
    build_index(files, one_shot, fake_encoder, progress=False)
    grown = tmp_path / "grown"
    build_index(files[:1], grown, fake_encoder, progress=False)
    for path in files[1:]:
        write(grown, list(read_documents(find_files([path]))))
    queries = ["đảng viên sinh hoạt chi bộ", "Fanpage Zalo", "dang vien moi", "Hồ Chí Minh", "thi đua khen thưởng"]

    def rankings(out):
        """Scores in order, and which passages beat the tenth (ties may come in any order)."""
        searcher = Searcher.open(out, encoder=fake_encoder)
        ranked = {(q, m): searcher.search(q, 10, mode=m) for q in queries for m in ("hybrid", "dense", "lexical")}
        return {
            key: ([round(r.score, 3) for r in results], {r.id for r in results if r.score > results[-1].score + 1e-3})
            for key, results in ranked.items()
        }

    expected = rankings(one_shot)
    assert rankings(grown) == expected
    with writing(grown) as writer:
        assert writer.compact()
    assert rankings(grown) == expected
    assert open_index(grown).view.delta.count == 0 and verify_index(grown)

    write(grown, delete=["002_0538a5d340dbff31.txt"])
    write(grown, list(read_documents(find_files([files[2]]))))
    again = rankings(grown)
    for key, ranking in expected.items():
        if key[1] == "dense":
            assert again[key] == ranking
        else:
            assert len(again[key][1] ^ ranking[1]) <= 2, key


def test_compaction_while_a_reader_holds_the_old_checkpoint(fake_index, fake_searcher):
    write(fake_index, [new_document()])
    old_view = fake_searcher.index.view
    with writing(fake_index) as writer:
        writer.compact()
    # the old view still answers, the reader moves to the new checkpoint on refresh
    assert fake_searcher.index.dense(FakeEncoder().encode_queries(["Zyxwv"])[0], 3, view=old_view)[1].size
    assert fake_searcher.followed.reload_if_changed()
    assert fake_searcher.index.view.checkpoint_name != old_view.checkpoint_name
    assert fake_searcher.index.view.delta.count == 0
    assert fake_searcher.search("Zyxwv bóng chuyền", 1)[0].doc_id == "new-1"

    # a write, then two compactions before the reader looks: the log no longer reaches its view,
    # so it opens the newest checkpoint afresh
    write(fake_index, [new_document("new-2", "Hội thao Qwvut khai mạc.")])
    with writing(fake_index) as writer:
        writer.compact()
        writer.compact()
    assert fake_searcher.followed.reload_if_changed()
    assert (
        fake_searcher.index.view.delta.count == 0
        and fake_searcher.index.view.passages == open_index(fake_index).view.passages
    )
    assert fake_searcher.search("Qwvut", 1)[0].doc_id == "new-2"


@pytest.fixture
def dated_index(tmp_path, fake_encoder):
    """The seed corpus plus 60 short documents from three sources over three months."""
    out = tmp_path / "index"
    build_index([CORPUS], out, fake_encoder, progress=False)
    rng = np.random.default_rng(0)
    words = "đảng viên chi bộ sinh hoạt thi đua hội nghị tuyên truyền kinh tế nông nghiệp thanh niên phụ nữ".split()
    documents = []
    for n in range(60):
        text = "\n\n".join(" ".join(rng.choice(words, 12)) for _ in range(3))
        day = datetime.date(2024, 1, 1) + datetime.timedelta(days=int(rng.integers(0, 90)))
        documents.append(
            new_document(f"doc-{n}", text, source=["Báo A", "Báo B", "Đài C"][n % 3], date=day.isoformat())
        )
    write(out, documents)
    return out


FILTERS = [
    Filters(sources=("Báo A",)),
    Filters(sources=("Báo B", "Đài C")),
    Filters(doc_ids=("doc-3", "doc-7", "000_3c2f5f3f6056e9aa.txt")),
    Filters(date_from=datetime.date(2024, 2, 1)),
    Filters(date_to=datetime.date(2024, 1, 15)),
    Filters(sources=("Báo A",), date_from=datetime.date(2024, 1, 10), date_to=datetime.date(2024, 2, 20)),
    Filters(sources=("nowhere",)),
]


def passes(passage, filters: Filters) -> bool:
    day = datetime.date.fromisoformat(passage.date[:10]) if passage.date else None
    return (
        (not filters.sources or passage.source in filters.sources)
        and (not filters.doc_ids or passage.doc_id in filters.doc_ids)
        and (not filters.date_from or (day is not None and day >= filters.date_from))
        and (not filters.date_to or (day is not None and day <= filters.date_to))
    )


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: str(f.describe()))
def test_filters_against_a_brute_force_oracle(dated_index, fake_encoder, filters):
    searcher = Searcher.open(dated_index, encoder=fake_encoder)
    store = searcher.index.passages
    every = list(store.by_int_ids(store.all_int_ids()).values())
    allowed = [p for p in every if passes(p, filters)]
    matrix = (
        np.stack([searcher.index.vector(p.int_id) for p in allowed]) if allowed else np.zeros((0, fake_encoder.dim))
    )
    for query in ("đảng viên chi bộ", "kinh tế nông nghiệp", "Zalo"):
        k = 10
        nearest, _ = searcher.index.dense(fake_encoder.encode_queries([query])[0], k, filters)
        assert nearest.tolist() == pytest.approx(
            np.sort(matrix @ fake_encoder.encode_queries([query])[0])[::-1][:k].tolist(), abs=1e-5
        )
        by_id = {p.id: p for p in every}
        dense = searcher.search(query, k, mode="dense", filters=filters)
        assert len(dense) == min(k, len(allowed)) and all(passes(by_id[r.id], filters) for r in dense)
        lexical = searcher.search(query, k, mode="lexical", filters=filters)
        assert all(passes(by_id[r.id], filters) for r in lexical)
        # the oracle: every passage ranked unfiltered (a passage's and its document's BM25), then the filter
        scores, ids = searcher.index.lexical_search(query, len(every))
        by_int_id = {p.int_id: p for p in every}
        kept = [score for score, i in zip(scores.tolist(), ids.tolist()) if passes(by_int_id[i], filters)]
        shown = min(k, len(kept))
        assert [r.score for r in lexical[:shown]] == pytest.approx(kept[:shown], rel=1e-5)
        assert len(lexical) == shown
        assert all(passes(by_id[r.id], filters) for r in searcher.search(query, k, filters=filters))
    if allowed:
        similar = searcher.similar_to_passage(every[0].id, 5, filters=filters)
        assert all(passes(by_id[r.id], filters) for r in similar)


@pytest.mark.parametrize("chained_df", [0, lexical_module.CHAINED_DF], ids=["every term alone", "as served"])
def test_documents_bm25_looked_up_term_by_term_against_one_disjunction(dated_index, monkeypatch, chained_df):
    """A common term's document BM25 is read at the candidates' documents alone (a query level
    per term); the oracle is one disjunction of every term (repeats included) beside them."""
    import tantivy

    monkeypatch.setattr(lexical_module, "CHAINED_DF", chained_df)
    index = open_index(dated_index)
    try:
        lexical = index.lexical
        part = lexical.parts["vi"]
        schema, searcher = part.documents.schema, part.documents_searcher
        keys = set(
            searcher.fast_field_values(
                lexical.ID, [a for _, a in searcher.search(tantivy.Query.all_query(), 1000).hits]
            )
        )
        for question in ("đảng viên chi bộ", "đảng viên đảng viên thi đua", "kinh tế nông nghiệp thanh niên", "qwxzv"):
            terms = lexical.query_terms(question, "vi")
            matching = tantivy.Query.boolean_query(
                [(tantivy.Occur.Should, tantivy.Query.term_query(schema, lexical.TERMS, t)) for t in terms]
            )
            these = tantivy.Query.const_score_query(tantivy.Query.term_set_query(schema, lexical.ID, sorted(keys)), 0.0)
            query = tantivy.Query.boolean_query([(tantivy.Occur.Must, matching), (tantivy.Occur.Must, these)])
            hits = searcher.search(query, len(keys)).hits
            expected = dict(zip(searcher.fast_field_values(lexical.ID, [a for _, a in hits]), (s for s, _ in hits)))
            found = lexical._document_scores(part, terms, keys)
            assert found.keys() == expected.keys() and (expected or question == "qwxzv")
            assert [found[k] for k in expected] == pytest.approx(list(expected.values()), rel=1e-5)
    finally:
        index.close()


def test_the_catalogue_kept_with_a_checkpoint_and_the_changes_since_open_as_a_full_read_would(dated_index):
    with writing(dated_index) as writer:
        assert writer.compact(force=True)  # the 60 dated documents into the checkpoint's catalogue
    write(dated_index, [new_document("late-1", source="Đài D", date="2024-03-30")], delete=["doc-1", "doc-2"])
    kinds = [*FILTERS, Filters(sources=("Đài D",)), Filters(doc_ids=("late-1", "doc-1"))]

    def catalogue_and_full_read():
        index = open_index(dated_index)
        try:
            full = Catalog.of(index.passages.catalog())
            of_documents = {f: index.passages.int_ids_of_documents(f.doc_ids) for f in kinds if f.doc_ids}
            return index.view.catalog, full, of_documents
        finally:
            index.close()

    def assert_same(opened, full, of_documents):
        assert opened.size == full.size and np.array_equal(opened.live, full.live)
        for filters in kinds:
            assert np.array_equal(
                opened.allowed(filters, of_documents.get(filters, ())),
                full.allowed(filters, of_documents.get(filters, ())),
            ), filters
            assert opened.allowed(filters, of_documents.get(filters, ())).any() == (filters.sources != ("nowhere",))

    assert_same(*catalogue_and_full_read())
    # a checkpoint written before catalogues were kept with it: the whole catalogue is read instead
    directory = dated_index.resolve()
    with sqlite3.connect(directory / "passages.sqlite") as db:
        checkpoint = json.loads(db.execute("SELECT value FROM state WHERE key = 'checkpoint'").fetchone()[0])
        del checkpoint["files"][Catalog.FILE]
        db.execute("UPDATE state SET value = ? WHERE key = 'checkpoint'", (json.dumps(checkpoint),))
    (directory / checkpoint["name"] / Catalog.FILE).unlink()
    assert_same(*catalogue_and_full_read())


def test_a_filter_keeping_few_passages_still_returns_all_of_them(dated_index, fake_encoder):
    searcher = Searcher.open(dated_index, encoder=fake_encoder)
    only = Filters(doc_ids=("doc-5",))
    assert len(searcher.search("Zalo Fanpage", 10, mode="dense", filters=only)) == 3  # unrelated, yet all 3


def test_pages_follow_on(dated_index, fake_encoder):
    searcher = Searcher.open(dated_index, encoder=fake_encoder)
    for mode in ("hybrid", "dense", "lexical"):
        whole = ids_of(searcher.search("đảng viên chi bộ", 30, mode=mode))
        pages = [ids_of(searcher.search("đảng viên chi bộ", 10, mode=mode, offset=o)) for o in (0, 10, 20)]
        assert list(itertools.chain(*pages)) == whole


def test_a_second_writer_waits_then_gets_a_clear_error(fake_index):
    with writing(fake_index):
        with pytest.raises(IndexBusy, match="is writing"):
            with writing(fake_index, wait_seconds=0.2):
                pass


def test_unaccented_queries_restore_words_added_later(fake_index, fake_searcher):
    assert fake_searcher.index.accents.restore("xuan quynh zyxwv") == "xuan quynh zyxwv"
    write(fake_index, [new_document("poet", "Thơ Xuân Quỳnh Zyxwv được ngâm tại lễ hội.")])
    fake_searcher.followed.reload_if_changed()
    assert fake_searcher.index.accents.restore("xuan quynh zyxwv") == "xuân quỳnh zyxwv"
    write(fake_index, delete=["poet"])
    fake_searcher.followed.reload_if_changed()
    assert fake_searcher.index.accents.restore("xuan quynh zyxwv") == "xuan quynh zyxwv"


def test_compaction_of_an_ivf_index_reuses_its_training(tmp_path, fake_encoder, monkeypatch):
    """The size step is lowered so the seed corpus gets an IVF checkpoint; compacting it again
    (memory-mapped lists cannot be cloned) keeps the trained quantiser and serves every passage."""
    import index.store.embedded.vectors as vectors

    monkeypatch.setattr(vectors, "EXACT_BELOW", 100)
    out = tmp_path / "index"
    build_index([CORPUS], out, fake_encoder, progress=False)
    assert "IVF" in open_index(out).view.checkpoint.describe()["factory"]
    write(out, [new_document()])
    with writing(out) as writer:
        assert writer.compact() and writer.compact()
    searcher = Searcher.open(out, encoder=fake_encoder)
    assert searcher.index.view.delta.count == 0
    checkpoint = searcher.index.view.checkpoint
    assert sorted(checkpoint.ids().tolist()) == sorted(searcher.index.passages.all_int_ids())
    new_passages = searcher.index.passages.int_ids_of_documents(["new-1"])
    assert new_passages and set(new_passages) <= set(checkpoint.ids().tolist())
    assert verify_index(out)


def test_the_accent_vocabulary_stays_a_count_of_the_live_passages(fake_index, fake_searcher):
    """Kept by each commit through adds, replacements, deletes and compactions, the counts equal
    a recount over the passages that exist."""
    from index.store.accents import QUESTION_PHRASES, form_counts

    write(fake_index, [new_document(), new_document("poet", "Thơ Xuân Quỳnh được ngâm tại lễ hội.")])
    write(fake_index, delete=["000_3c2f5f3f6056e9aa.txt"])
    with writing(fake_index) as writer:
        writer.compact()
    write(fake_index, [new_document(text="Giải bóng chuyền Zyxwv hoãn.")], delete=["poet"])
    fake_searcher.followed.reload_if_changed()
    store = fake_searcher.index.passages
    texts = [text for rows in store.all_rows(fake_searcher.index.dim, texts=True) for text in rows.texts]
    expected = +form_counts([*QUESTION_PHRASES, *texts])
    with sqlite3.connect(fake_index / "passages.sqlite") as database:
        stored = {
            (key, written): n for key, written, n in database.execute("SELECT key, written, count FROM accent_forms")
        }
    assert stored == dict(expected)
    assert fake_searcher.index.accents.total == sum(n for (key, _), n in expected.items() if " " not in key)
    assert fake_searcher.index.accents.frequency("quynh") == 0


def _origins(out) -> dict[str, str]:
    index = open_index(out)
    try:
        return {
            doc_id: index.passages.document(doc_id)["origin"]
            for doc_id in {p.doc_id for p in index.passages.by_int_ids(index.passages.all_int_ids()).values()}
        }
    finally:
        index.close()


def test_a_rebuild_keeps_documents_written_since_and_reuses_their_vectors(fake_index, tmp_path):
    from index.build import build_index

    api = document_from_record("api-1", {"text": NEW_TEXT, "title": "Qua API"}, None, origin="api")
    added = new_document("added-1", "Đoàn viên Qwerty tham gia hiến máu.")
    added.origin = "add"
    write(fake_index, [api, added])
    before = {d: open_index(fake_index).passages.document(d) for d in ("api-1", "added-1")}

    class Recording(FakeEncoder):
        texts: list[str] = []

        def encode_passages(self, texts, batch_size=32):
            self.texts += texts
            return super().encode_passages(texts, batch_size)

    encoder = Recording()
    built = build_index([CORPUS], fake_index, encoder, progress=False)
    assert built.kept == ("added-1", "api-1") and not built.dropped and not built.replaced
    assert encoder.texts and not any("Qwerty" in text or "Zyxwv" in text for text in encoder.texts)  # vectors reused
    origins = _origins(fake_index)
    assert origins["api-1"] == "api" and origins["added-1"] == "add"
    assert {origin for doc_id, origin in origins.items() if doc_id not in before} == {"build"}
    index = open_index(fake_index)
    assert {d: index.passages.document(d) for d in before} == before  # same passages, same ids
    index.close()
    searcher = Searcher.open(fake_index, encoder=FakeEncoder())
    assert searcher.search("Zyxwv hội thao", 1, mode="lexical")[0].doc_id == "api-1"
    assert searcher.search("Qwerty hiến máu", 1, mode="dense")[0].doc_id == "added-1"


def test_a_rebuild_with_another_model_embeds_written_documents_again(fake_index):
    from index.build import build_index

    class OtherModel(FakeEncoder):
        model_id = "test/another-fake-encoder"

    api = document_from_record("api-1", {"text": NEW_TEXT, "title": "Qua API"}, None, origin="api")
    write(fake_index, [api])
    encoder = OtherModel()
    built = build_index([CORPUS], fake_index, encoder, progress=False)
    assert built.kept == ("api-1",)
    searcher = Searcher.open(fake_index, encoder=OtherModel())
    assert searcher.index.manifest.model == OtherModel.model_id
    assert searcher.search("Zyxwv hội thao", 1, mode="dense")[0].doc_id == "api-1"
    assert verify_index(fake_index)


def test_a_rebuild_drops_written_documents_only_when_asked_and_the_input_replaces_its_own(fake_index, tmp_path):
    from index.build import build_index

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "same-id.txt").write_text("Tiêu đề\n\nChi bộ Asdfg sinh hoạt chuyên đề.\n", encoding="utf-8")
    written = [
        document_from_record(doc_id, {"text": NEW_TEXT}, None, origin="api") for doc_id in ("same-id.txt", "api-2")
    ]
    write(fake_index, written)
    built = build_index([corpus], fake_index, FakeEncoder(), progress=False, keep_written=False)
    assert built.replaced == ("same-id.txt",) and built.dropped == ("api-2",) and not built.kept
    index = open_index(fake_index)
    assert index.passages.document("api-2") is None
    assert index.passages.document("same-id.txt")["origin"] == "build"
    index.close()


def test_an_emptied_document_is_empty_through_the_cli_as_over_http(fake_index, tmp_path, capsys):
    from service.cli import main

    article = tmp_path / "emptied.txt"
    article.write_text("Tiêu đề\n\nChi bộ Zyxwv tổ chức hội thao.\n", encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("service.cli._writer_encoder", lambda location: FakeEncoder())
        assert main(["add", str(article), "--index", str(fake_index), "--quiet"]) == 0
        article.write_text("", encoding="utf-8")
        assert main(["add", str(article), "--index", str(fake_index), "--quiet"]) == 0
    assert "0 passages added (0 embedded), 1 removed" in capsys.readouterr().err
    index = open_index(fake_index)
    assert index.passages.document("emptied.txt")["passages"] == []
    index.close()
    searcher = Searcher.open(fake_index, encoder=FakeEncoder())
    assert "emptied.txt" not in {r.doc_id for r in searcher.search("Zyxwv hội thao", 10, mode="lexical")}
