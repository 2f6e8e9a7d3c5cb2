"""A writer killed (SIGKILL) at every step of a write, a compaction, a repair and a build: every
time, the index opens, `verify` passes, the write is wholly there or wholly absent, and the next
writer leaves nothing of the dead one behind. Derived files that are damaged are rebuilt from the
database; damage to the database itself is reported with steps that lose nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from index.build import build_index
from index.retrieve.search import Searcher
from index.store.base import IndexCorrupt
from index.store.embedded.publish import open_index, verify_index
from tests.conftest import CORPUS, ROOT, FakeEncoder, copy_index
from tests.test_living_index import new_document, write

BATCH = 300

# The child dies at `point`: each point patches the call the named step makes, dying just before
# or just after it.
_DYING_WRITER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from tests.conftest import CORPUS, FakeEncoder
    from tests.test_living_index import new_document
    import index.store.embedded.live as live
    import index.store.embedded.lexical as lexical
    import index.store.embedded.publish as publish
    from index.build import build_index, write_documents

    out, point = sys.argv[1], sys.argv[2]
    die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)

    def after(owner, name, when=lambda *a, **k: True):
        real = getattr(owner, name)
        def dying(*a, **k):
            result = real(*a, **k)
            if when(*a, **k):
                die()
            return result
        setattr(owner, name, dying)

    class Dying(FakeEncoder):
        def encode_passages(self, texts, batch_size=32):
            if point == "embedding" and self.encoded > 100 or point == "build-embedding" and self.encoded > 10:
                die()
            return super().encode_passages(texts, batch_size)

    class DyingTantivy:
        '''tantivy's writer, dying just before or just after its commit.'''
        def __init__(self, index):
            self.index = index
        def writer(self, *a, **k):
            real = self.index.writer(*a, **k)
            class Writer:
                def __getattr__(self, name):
                    return getattr(real, name)
                def commit(self):
                    if point == "before-tantivy-commit":
                        die()
                    real.commit()
                    if point == "after-tantivy-commit":
                        die()
            return Writer()

    if point == "after-commit":  # the database committed; tantivy not yet touched
        lexical.LexicalIndex.apply = classmethod(die)
    elif point in ("before-tantivy-commit", "after-tantivy-commit"):
        opened = lexical.LexicalIndex._open.__func__
        # the passages' index is committed first: "after" leaves the documents' behind it
        lexical.LexicalIndex._open = classmethod(lambda cls, *a, **k: DyingTantivy(opened(cls, *a, **k)))
    elif point == "before-checksums":  # tantivy committed and merged, its files not yet recorded
        live.inventory = die
    elif point == "checkpoint-staged":  # the new checkpoint written, not yet renamed into place
        live.fsync_tree = die
    elif point == "checkpoint-renamed":  # in place, not yet recorded
        live.fsync_directory = die
    elif point == "checkpoint-recorded":  # recorded, the one before the previous not yet removed
        after(live.PassageStore, "set_state", lambda self, **values: "checkpoint" in values)
    elif point == "publish-renamed":  # a build's generation renamed, the link not yet replaced
        after(publish.os, "rename", lambda source, target: ".gen-" in str(target))

    documents = [new_document(f"batch-{{n}}", f"Đoạn số {{n}} nói về Zyxwv.\\n\\nĐoạn thứ hai {{n}}.")
                 for n in range({batch})]
    if point.startswith(("build", "publish")):
        build_index([CORPUS / "000_3c2f5f3f6056e9aa.txt"], out, Dying(), progress=False)
    elif point.startswith("checkpoint"):
        with publish.writing(out) as writer:
            write_documents(writer, documents, Dying(), compact=False)
            writer.compact()  # twice, so the second has a previous checkpoint to retire
            writer.compact()
    else:
        with publish.writing(out) as writer:
            write_documents(writer, documents, Dying())
    sys.exit(3)  # the point was never reached
""")

WRITE_POINTS = ["embedding", "after-commit", "before-tantivy-commit", "after-tantivy-commit", "before-checksums"]
COMPACTION_POINTS = ["checkpoint-staged", "checkpoint-renamed", "checkpoint-recorded"]
BUILD_POINTS = ["build-embedding", "publish-renamed"]


def run_dying_writer(out, point: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _DYING_WRITER.format(root=str(ROOT), batch=BATCH), str(out), point],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr


def batch_documents(out) -> int:
    index = open_index(out)
    try:
        return sum(index.passages.document(f"batch-{n}") is not None for n in range(BATCH))
    finally:
        index.close()


def leftovers(out) -> list[str]:
    """What a dead or failed writer could leave: names in the generation no recorded state
    accounts for, ledger names whose directory is gone, staging directories beside the link."""
    index = open_index(out)
    state = index.passages.state()
    index.close()
    recorded = {record["name"] for record in (state["checkpoint"], state.get("previous_checkpoint")) if record}
    inside = [p.name for p in out.resolve().iterdir() if p.is_dir() and p.name not in recorded | {"lexical"}]
    ledger = json.loads((out.parent / f".{out.name}.ledger.json").read_text())
    missing = [name for name in ledger["staging"] + ledger["generations"] if not (out.parent / name).exists()]
    beside = [p.name for p in out.parent.iterdir() if ".staging-" in p.name]
    return inside + missing + beside


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("crash") / "index"
    build_index([CORPUS], out, FakeEncoder(), progress=False)
    return out


@pytest.mark.parametrize("point", WRITE_POINTS + COMPACTION_POINTS + BUILD_POINTS)
def test_a_writer_killed_at_any_step_leaves_an_index_that_opens_whole(built, tmp_path, point):
    out = copy_index(built, tmp_path / "copy")
    before = open_index(out)
    version, generation = before.view.version, out.resolve()
    before.close()
    run_dying_writer(out, point)

    searcher = Searcher.open(out, encoder=FakeEncoder())  # opens, and finishes what was committed
    view = searcher.index.view
    assert view.lexical_version == view.version
    assert verify_index(out)
    present = batch_documents(out)
    assert present in (0, BATCH), f"{present} of {BATCH} documents of one commit"
    if point in ("embedding",) or point.startswith(("build", "publish")):
        assert present == 0 and view.version == version
    else:
        assert present == BATCH and view.version == version + 1
        # the write is served by both legs
        assert len({r.doc_id for r in searcher.search("Zyxwv đoạn", 50, mode="lexical")}) == 50
        assert searcher.search("Zyxwv đoạn", 3, mode="dense")[0].doc_id.startswith("batch-")
    if point.startswith(("build", "publish")):
        assert out.resolve() == generation  # the published index is the one before the build
    searcher.index.close()

    write(out, [new_document()])  # the next writer, or build, removes what the dead one left
    if point.startswith(("build", "publish")):
        build_index([CORPUS], out, FakeEncoder(), progress=False)
    assert leftovers(out) == []
    assert verify_index(out)


@pytest.mark.parametrize("damage", ["garble-postings", "drop-lexical-meta", "drop-lexical", "garble-vectors"])
def test_damaged_derived_files_are_rebuilt_from_the_database(built, tmp_path, damage):
    out = copy_index(built, tmp_path / "copy")
    generation = out.resolve()
    expected = Searcher.open(out, encoder=FakeEncoder())
    wanted = {mode: [r.id for r in expected.search("đảng viên chi bộ", 10, mode=mode)] for mode in ("lexical", "dense")}
    checkpoint = expected.index.view.checkpoint_name
    expected.index.close()
    if damage == "garble-postings":
        garble(next((generation / "lexical" / "vi").glob("*.idx")), at=16)
    elif damage == "drop-lexical-meta":
        (generation / "lexical" / "vi" / "meta.json").unlink()
    elif damage == "drop-lexical":
        import shutil

        shutil.rmtree(generation / "lexical")
    else:
        garble(generation / checkpoint / "vectors.faiss")

    searcher = Searcher.open(out, encoder=FakeEncoder())
    assert {
        mode: [r.id for r in searcher.search("đảng viên chi bộ", 10, mode=mode)] for mode in ("lexical", "dense")
    } == wanted
    searcher.index.close()
    assert verify_index(out)
    assert leftovers(out) == []


def test_a_lexical_index_behind_the_log_and_damaged_is_rebuilt(built, tmp_path):
    out = copy_index(built, tmp_path / "copy")
    run_dying_writer(out, "after-commit")
    (out.resolve() / "lexical" / "vi" / "meta.json").unlink()
    searcher = Searcher.open(out, encoder=FakeEncoder())
    assert searcher.index.view.lexical_version == searcher.index.view.version
    assert len({r.doc_id for r in searcher.search("Zyxwv đoạn", 50, mode="lexical")}) == 50
    searcher.index.close()
    assert verify_index(out)


def garble(path, at=None, length=64):
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if at is None else at
    data[at : at + length] = bytes((b ^ 0x5A) for b in data[at : at + length])
    path.write_bytes(bytes(data))


def test_a_damaged_database_is_refused_with_steps_that_lose_nothing(built, tmp_path):
    out = copy_index(built, tmp_path / "copy")
    garble(out.resolve() / "passages.sqlite", at=4096 + 8)
    with pytest.raises(IndexCorrupt) as refused:
        open_index(out)
    message = str(refused.value)
    assert "passages.sqlite" in message and "semsearch verify" in message and "backup" in message
    assert "semsearch index" not in message  # a rebuild from the files would drop written documents


def test_a_reader_that_may_not_write_still_opens_an_index_behind_its_log(built, tmp_path):
    out = copy_index(built, tmp_path / "copy")
    run_dying_writer(out, "after-commit")
    lock = out.parent / f".{out.name}.lock"
    with open(lock, "a+") as held:  # as if another writer were at work: this open cannot repair
        import fcntl

        fcntl.flock(held, fcntl.LOCK_EX)
        index = open_index(out)
        assert index.view.lexical_version == index.view.version - 1
        index.close()
    assert os.path.exists(lock)


def test_a_backup_taken_while_writes_go_on_restores_to_a_sound_index(built, tmp_path, capsys):
    """`semsearch backup` while another process writes, then `semsearch restore`: the backup is
    one moment of the index (every write wholly in or wholly out), and both are verified."""
    import threading

    from service.cli import main

    out = copy_index(built, tmp_path / "copy")
    writes = threading.Thread(target=lambda: [write(out, [new_document(f"during-{n}")]) for n in range(15)])
    writes.start()
    try:
        assert main(["backup", str(tmp_path / "backup"), "--index", str(out)]) == 0
    finally:
        writes.join()
    said = capsys.readouterr().out
    assert "passes SQLite's integrity check" in said and "backed up" in said
    backup = open_index(tmp_path / "backup")
    version, kept = backup.view.version, [n for n in range(15) if backup.passages.document(f"during-{n}")]
    backup.close()
    assert kept == list(range(len(kept)))  # the writes up to one version, none after

    write(out, [new_document("after-backup")])
    assert main(["restore", str(tmp_path / "backup"), "--index", str(out)]) == 0
    restored = open_index(out)
    assert restored.view.version == version and restored.passages.document("after-backup") is None
    restored.close()
    assert verify_index(out)
    # the backup itself is left as it was, and can be restored again
    assert verify_index(tmp_path / "backup")
    assert main(["backup", str(tmp_path / "backup"), "--index", str(out)]) == 2  # never into a backup
    assert "not an empty directory" in capsys.readouterr().err
