"""The `semsearch` command, run in-process with the real model."""

import json
import os
import shutil

import pytest

from service.cli import main
from tests.conftest import CORPUS

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def small_index(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("corpus")
    shutil.copy(CORPUS / "004_c56b2237f7a02537.txt", corpus)
    out = corpus.parent / "cli-index"
    assert main(["index", str(corpus), "--out", str(out), "--quiet"]) == 0
    return corpus, out


def test_index_then_skip_when_current(small_index, capsys):
    corpus, out = small_index
    generation = os.path.realpath(out)
    assert main(["index", str(corpus), "--out", str(out), "--if-stale", "--quiet"]) == 0
    assert "is up to date" in capsys.readouterr().err
    assert os.path.realpath(out) == generation


def test_search_json_and_similar(small_index, capsys):
    _, out = small_index
    assert (
        main(
            [
                "search",
                "Bác Hồ về thăm Đảng bộ và nhân dân tỉnh Nam Định năm nào?",
                "--index",
                str(out),
                "--k",
                "2",
                "--json",
            ]
        )
        == 0
    )
    body = json.loads(capsys.readouterr().out)
    assert len(body["results"]) == 2 and "21-5-1963" in body["results"][0]["text"]
    assert main(["similar", body["results"][0]["id"], "--index", str(out), "--k", "3"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("\n\n") == 3 and body["results"][0]["id"] not in printed


def test_errors_exit_2_and_keep_the_index(small_index, tmp_path, capsys):
    _, out = small_index
    before = os.path.realpath(out)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "x", "text": "ok"}\n{oops\n')
    assert main(["index", str(broken), "--out", str(out), "--quiet", "--strict"]) == 2
    err = capsys.readouterr().err
    assert "skipped broken.jsonl:2: invalid JSON" in err and "1 skipped and --strict: nothing was written" in err
    assert os.path.realpath(out) == before
    unreadable = tmp_path / "scan.xlsx"
    unreadable.write_bytes(b"\xd0\xcf\x11")
    assert main(["index", str(unreadable), "--out", str(out), "--quiet"]) == 2
    assert "nothing could be read" in capsys.readouterr().err
    assert os.path.realpath(out) == before
    assert main(["search", "  ", "--index", str(out)]) == 2
    assert "query is empty" in capsys.readouterr().err
    assert main(["similar", "nope", "--index", str(out)]) == 2
    assert "no passage with id 'nope'" in capsys.readouterr().err
    assert main(["search", "x", "--index", str(tmp_path / "none")]) == 2
    assert "no index at" in capsys.readouterr().err


def test_eval_answer_strings_json(tmp_path, capsys):
    from tests.conftest import SEED_QUERIES

    assert main(["eval", str(SEED_QUERIES), "--index", str(tmp_path / "idx"), "--json", "--unaccented"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["unaccented"] and report["queries"] == 15
    assert set(report["modes"]) == {"hybrid", "dense", "lexical"}
    # every query stripped of its diacritics; the accented run (test_eval_quality) must reach 15/15
    assert report["modes"]["hybrid"]["Hit@5"] >= 14 / 15


def test_search_modes_on_the_command_line(small_index, capsys):
    _, out = small_index
    assert main(["search", "ket nap dang vien", "--index", str(out), "--mode", "lexical", "--k", "1", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["mode"] == "lexical" and "kết nạp" in body["results"][0]["text"]
