"""The Milvus backend's own parts: term spelling, filter expressions, the manifest check, accent
counts against the embedded index's, resumable and sharded builds (issue 12). The API suite runs
on both backends in test_api.py."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from index.build import build_index, write_documents
from index.ingest.document import shard_of
from index.store.analysis import analyze
from index.store.base import ModelMismatch
from index.store.embedded.publish import open_index
from index.store.filters import Filters
from index.store.milvus.store import (
    MilvusIndexProblem,
    MilvusStore,
    MilvusTarget,
    MilvusWriter,
    expression,
    literal,
    milvus_term,
    open_milvus,
)
from tests.conftest import CORPUS, ROOT, milvus_lite


@pytest.fixture
def lite(tmp_path, request):
    target, stop = milvus_lite(tmp_path / "index.db")
    request.addfinalizer(stop)
    return target


def corpus_file(tmp_path, documents: dict[str, str], name="corpus.jsonl"):
    path = tmp_path / name
    path.write_text(
        "".join(
            json.dumps({"id": doc_id, "title": f"Tin {doc_id}", "text": text}, ensure_ascii=False) + "\n"
            for doc_id, text in documents.items()
        ),
        encoding="utf-8",
    )
    return path


def texts(n: int) -> dict[str, str]:
    words = "đảng viên chi bộ sinh hoạt thi đua hội nghị tuyên truyền kinh tế nông nghiệp thanh niên phụ nữ".split()
    return {
        f"doc-{i}": "\n\n".join(
            " ".join(words[(i + j + w) % len(words)] for w in range(9)) + f" số {i}." for j in range(3)
        )
        for i in range(n)
    }


def test_terms_survive_milvus_standard_tokenizer_and_stay_apart():
    terms = analyze("Đảng viên Dang vien")
    spelled = [milvus_term(t) for t in terms]
    # what Milvus's standard tokenizer does: \w+ runs, lower-cased; each term stays one token
    assert [re.findall(r"\w+", s.lower()) for s in spelled] == [[s] for s in spelled]
    # the written "dang" and the unaccented "~dang" must not meet, nor a pair a single syllable
    assert len(set(spelled)) == len(set(terms))
    assert milvus_term("dang") != milvus_term("~dang") != milvus_term("~dang_vien")


def build_milvus(paths, target, encoder, **options) -> tuple[int, int, int]:
    """Documents a build wrote, skipped (committed unchanged) and deleted (no longer in the input)."""
    built = build_index(paths, target, encoder, **options)
    return built.written, built.skipped, built.deleted


def test_filter_expressions_quote_what_users_type(lite, fake_encoder, tmp_path):
    awkward = 'Báo "A" \\ số 1'
    with MilvusWriter.create(lite, _manifest(fake_encoder)) as writer:
        from index.ingest.document import document_from_record

        write_documents(
            writer,
            [
                document_from_record(
                    "odd", {"text": "Chi bộ Zyxwv họp.", "title": "t", "source": awkward, "date": "2024-02-03"}, "test"
                )
            ],
            fake_encoder,
        )
    index = open_milvus(lite)
    try:
        assert literal(awkward) == '"Báo \\"A\\" \\\\ số 1"'
        vector = index.vector(index.passages.by_id(index.passages.document("odd")["passages"][0]).int_id)
        for filters, found in (
            (Filters(sources=(awkward,)), 1),
            (Filters(sources=("Báo",)), 0),
            (Filters(doc_ids=("odd",)), 1),
            (Filters(date_from=_date("2024-02-04")), 0),
            (Filters(date_from=_date("2024-02-03"), date_to=_date("2024-02-03")), 1),
        ):
            assert len(index.dense(vector, 5, filters)[1]) == found, expression(filters)
            assert len(index.lexical_search("Zyxwv", 5, filters)[1]) == found, expression(filters)
        assert index.passages.sources() == [awkward]
    finally:
        index.close()


def test_another_model_or_setting_is_refused(lite, fake_encoder):
    build_milvus([CORPUS], lite, fake_encoder, progress=False)
    with pytest.raises(ModelMismatch, match="built with model"):
        open_milvus(lite, model="intfloat/multilingual-e5-small")
    other = _manifest(fake_encoder, passage_tokens=100)
    with pytest.raises(MilvusIndexProblem, match="built otherwise.*chunking"):
        MilvusWriter.create(lite, other)
    with pytest.raises(MilvusIndexProblem, match="no semsearch index"):
        open_milvus(MilvusTarget(lite.uri, "elsewhere"))
    # a collection of an older format (no sentence vectors) is refused, by readers and writers
    store = MilvusStore(lite)
    store.set_meta("manifest", {**store.meta("manifest"), "format_version": 6})
    with pytest.raises(MilvusIndexProblem, match="format 6.*rebuild"):
        open_milvus(lite)
    with pytest.raises(MilvusIndexProblem, match="built otherwise.*format_version"):
        MilvusWriter.create(lite, _manifest(fake_encoder))


def test_accent_counts_and_sentence_vectors_equal_the_embedded_index_through_writes(lite, fake_encoder, tmp_path):
    embedded = tmp_path / "embedded"
    build_index([CORPUS], embedded, fake_encoder, progress=False)
    build_milvus([CORPUS], lite, fake_encoder, progress=False)
    from index.ingest.document import document_from_record
    from index.store.embedded.publish import writing

    added = document_from_record("late", {"text": "Đảng viên Zyxwv dự hội nghị.", "title": "Tin"}, "test")
    first = ["000_3c2f5f3f6056e9aa.txt"]
    with writing(embedded) as writer:
        write_documents(writer, [added], fake_encoder, delete=first)
    with MilvusWriter(lite, open_milvus(lite).manifest) as writer:
        write_documents(writer, [added], fake_encoder, delete=first)
    reference, store = open_index(embedded).passages, MilvusStore(lite)
    keys = ["dang", "vien", "dang vien", "zyxwv", "chi", "bo", "bao nhieu", "hoi nghi"]
    assert {k: store.accent_forms(k, 8) for k in keys} == {k: reference.accent_forms(k, 8) for k in keys}
    assert store.accent_total() == reference.accent_total()
    assert store.accent_known(set(keys) | {"qqq"}) == reference.accent_known(set(keys) | {"qqq"})
    # the same passages, keyed by the embedded index's counter and by Milvus's hash of the id
    stored = reference.by_int_ids(reference.all_int_ids())
    assert "late" in {p.doc_id for p in stored.values()}
    for passage in stored.values():
        ours = reference.evidence([passage.int_id], fake_encoder.dim)
        theirs = store.evidence([int(passage.id, 16)], fake_encoder.dim)
        assert np.array_equal(ours.passages, theirs.passages) and np.array_equal(ours.sentences, theirs.sentences)


def test_a_build_run_again_skips_what_it_committed_and_follows_the_input(lite, fake_encoder, tmp_path):
    documents = texts(6)
    assert build_milvus([corpus_file(tmp_path, documents)], lite, fake_encoder, progress=False) == (6, 0, 0)
    assert build_milvus([corpus_file(tmp_path, documents)], lite, fake_encoder, progress=False) == (0, 6, 0)
    documents["doc-1"] = "Chi bộ Zyxwv có văn bản mới."
    del documents["doc-2"]
    assert build_milvus([corpus_file(tmp_path, documents)], lite, fake_encoder, progress=False) == (1, 4, 1)
    index = open_milvus(lite)
    try:
        assert index.passages.document("doc-2") is None and index.documents() == 5
        assert index.lexical_search("Zyxwv", 3)[1].size == 1
    finally:
        index.close()


_SHARD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from pathlib import Path
    from index.build import build_index
    from index.store.milvus.store import MilvusTarget
    from tests.conftest import FakeEncoder

    class Slow(FakeEncoder):  # slow enough to be killed between two groups
        def encode_passages(self, texts):
            time.sleep(float(sys.argv[6]))
            return super().encode_passages(texts)

    k, n = map(int, sys.argv[5].split("/"))
    target = MilvusTarget(sys.argv[3], sys.argv[4])
    built = build_index([Path(sys.argv[2])], target, Slow(), shard=(k - 1, n), progress=False, group=2)
    print(built.written, built.skipped, built.deleted)
""")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_shards_one_killed_and_run_again_hold_exactly_a_one_process_build(tmp_path):
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "milvus_lite.cmdline",
            "server",
            "--data-dir",
            str(tmp_path / "server"),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uri = f"http://127.0.0.1:{port}"
    corpus = corpus_file(tmp_path, texts(24))
    try:
        _wait_for(uri)

        def shard(collection: str, k_of_n: str, pause: float) -> subprocess.Popen:
            return subprocess.Popen(
                [sys.executable, "-c", _SHARD, str(ROOT), str(corpus), uri, collection, k_of_n, str(pause)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )

        def finished(process: subprocess.Popen) -> list[int]:
            out, err = process.communicate(timeout=300)
            assert process.returncode == 0, err
            return [int(n) for n in out.split()]  # documents written, skipped, deleted

        assert finished(shard("single", "1/1", 0))[0] == 24
        mine = sum(shard_of(doc_id, 2) == 0 for doc_id in texts(24))
        first, second = shard("sharded", "1/2", 0.4), shard("sharded", "2/2", 0)
        store = MilvusStore(MilvusTarget(uri, "sharded"))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (store.exists() and _committed(store, shard=0) >= 2):
            time.sleep(0.05)
        first.kill()  # mid-build: some of its documents committed, the rest not yet
        first.wait()
        assert finished(second)[0] == 24 - mine
        done = _committed(store, shard=0)
        assert 2 <= done < mine
        # run again, it goes on where it stopped
        assert finished(shard("sharded", "1/2", 0)) == [mine - done, done, 0]
        single = MilvusStore(MilvusTarget(uri, "single"))
        assert _passages(store) == _passages(single) and len(_passages(single)) == 72
        assert _committed(store) == 24
        # a crash between a write's passages and its counts can leave those counts off; compact recounts
        with MilvusWriter(MilvusTarget(uri, "sharded"), open_milvus(MilvusTarget(uri, "sharded")).manifest) as writer:
            writer.compact()
        for key in ("dang", "dang vien", "chi", "so"):
            assert store.accent_forms(key, 8) == single.accent_forms(key, 8)
        assert store.accent_total() == single.accent_total()
    finally:
        server.kill()
        server.wait()


def _committed(store: MilvusStore, shard: int | None = None) -> int:
    """Documents committed (of the first of two shards, when `shard` is 0)."""
    if shard is None:
        return store.count(store.documents_name)
    rows = [row for batch in store.scan(store.documents_name, ["doc_id"]) for row in batch]
    return sum(shard_of(row["doc_id"], 2) == shard for row in rows)


def _passages(store: MilvusStore) -> dict[int, tuple]:
    rows = [
        row for batch in store.scan(store.passages_name, ["int_id", "id", "doc_id", "text", "vector"]) for row in batch
    ]
    return {
        row["int_id"]: (row["id"], row["doc_id"], row["text"], tuple(round(x, 5) for x in row["vector"]))
        for row in rows
    }


def _wait_for(uri: str) -> None:
    from pymilvus import MilvusClient

    deadline = time.monotonic() + 60
    while True:
        try:
            MilvusClient(uri=uri, timeout=2).close()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _manifest(encoder, passage_tokens: int = 256):
    from index.build import new_manifest

    return new_manifest(encoder, passage_tokens=passage_tokens)


def _date(text: str):
    import datetime

    return datetime.date.fromisoformat(text)


def test_one_setting_chooses_the_backend(tmp_path):
    from index.store.base import IndexProblem
    from index.store.location import location_of

    assert location_of("", tmp_path) == tmp_path
    chosen = location_of("", tmp_path, "http://milvus:19530", "news", "user:pw", '{"secure": true}')
    assert chosen == MilvusTarget("http://milvus:19530", "news", "user:pw") and chosen.options == {"secure": True}
    assert not chosen.is_lite_file and MilvusTarget("./x.db").is_lite_file
    assert location_of("embedded", tmp_path, "http://milvus:19530") == tmp_path
    with pytest.raises(IndexProblem, match="needs a URI"):
        location_of("milvus", tmp_path)
    with pytest.raises(IndexProblem, match="not JSON"):
        location_of("milvus", tmp_path, "./x.db", options="{secure")
    with pytest.raises(IndexProblem, match="unknown backend"):
        location_of("postgres", tmp_path)


def test_the_cli_names_a_milvus_lite_file_another_process_holds(tmp_path, fake_encoder):
    target, stop = milvus_lite(tmp_path / "held.db")
    try:
        build_milvus([CORPUS], target, fake_encoder, progress=False)  # this process holds the file now
        done = subprocess.run(
            [sys.executable, "-m", "service.cli", "search", "đảng", "--milvus-uri", target.uri],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (
            done.returncode == 2
            and "lets one process open a file" in done.stderr
            and "milvus-lite server" in done.stderr
        )
    finally:
        stop()


def test_a_build_keeps_documents_written_since_unless_asked_to_drop_them(lite, fake_encoder, tmp_path):
    from index.ingest.document import document_from_record

    documents = texts(4)
    build_milvus([corpus_file(tmp_path, documents)], lite, fake_encoder, progress=False)
    api = document_from_record(
        "api-1", {"text": "Chi bộ Zyxwv tổ chức hội thao.", "title": "Qua API"}, None, origin="api"
    )
    with MilvusWriter(lite, open_milvus(lite).manifest) as writer:
        write_documents(writer, [api], fake_encoder)
    del documents["doc-0"]
    assert build_milvus([corpus_file(tmp_path, documents)], lite, fake_encoder, progress=False) == (0, 3, 1)
    store = MilvusStore(lite)
    assert store.document("api-1")["origin"] == "api" and store.document("doc-0") is None
    assert store.document("doc-1")["origin"] == "build"
    assert build_milvus([corpus_file(tmp_path, documents)], lite, fake_encoder, progress=False, keep_written=False) == (
        0,
        3,
        1,
    )
    assert store.document("api-1") is None
    assert store.written() == set()
