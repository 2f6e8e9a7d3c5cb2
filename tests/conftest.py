from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from index.build import build_index
from index.retrieve.search import Searcher
from index.text import fold

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "corpus"
SHARED = ROOT.parent / "shared"
SEED_QUERIES = SHARED / "eval" / "seed_queries_dev.jsonl"


class FakeEncoder:
    """Hashed bag of folded words: fast, deterministic, and similar texts get similar vectors.
    For plumbing tests only; quality tests use the real model."""

    model_id = "test/fake-hash-encoder"
    dim = 512
    max_tokens = 40
    prompts = {"query": "", "document": ""}

    def __init__(self, fail_after: int | None = None):
        self.fail_after = fail_after
        self.encoded = 0

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def truncate(self, text: str, max_tokens: int) -> str:
        return " ".join(text.split()[:max_tokens])

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", fold(text)):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        out[:, 0] += 1e-3  # no zero vectors
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def encode_passages(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        self.encoded += len(texts)
        if self.fail_after is not None and self.encoded > self.fail_after:
            raise RuntimeError("simulated crash while embedding")
        return self._embed(texts)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture
def fake_index(tmp_path: Path, fake_encoder: FakeEncoder) -> Path:
    out = tmp_path / "index"
    build_index([CORPUS], out, fake_encoder, progress=False)
    return out


@pytest.fixture
def backend() -> str:
    """Where the fake index lives; a test module whose tests must hold on both backends
    overrides this with `both_backends`."""
    return "embedded"


both_backends = pytest.fixture(params=["embedded", "milvus"])(lambda request: request.param)


def milvus_lite(path: Path):
    """A MilvusTarget on a milvus-lite file, and the call that stops its in-process server."""
    from milvus_lite.server_manager import server_manager_instance

    from index.store.milvus.store import MilvusTarget

    return MilvusTarget(str(path)), lambda: server_manager_instance.release_server(str(path))


@pytest.fixture(scope="session")
def milvus_corpus(tmp_path_factory) -> Path:
    """A milvus-lite file holding the corpus, built once; tests work on copies of it."""
    path = tmp_path_factory.mktemp("milvus") / "corpus.db"
    target, stop = milvus_lite(path)
    build_index([CORPUS], target, FakeEncoder(), progress=False)
    stop()
    return path


@pytest.fixture
def fake_searcher(request, backend: str, tmp_path: Path, fake_encoder: FakeEncoder) -> Searcher:
    if backend == "embedded":
        return Searcher.open(request.getfixturevalue("fake_index"), encoder=fake_encoder)
    copy = tmp_path / "milvus.db"
    shutil.copytree(request.getfixturevalue("milvus_corpus"), copy)
    target, stop = milvus_lite(copy)
    searcher = Searcher.open(target, encoder=fake_encoder)
    request.addfinalizer(stop)
    request.addfinalizer(lambda: searcher.index.close())
    return searcher


@pytest.fixture
def app(fake_searcher: Searcher):
    from service import create_app

    return create_app({"TESTING": True, "SEARCHER": fake_searcher, "RATE_LIMIT": "off", "RELOAD_SECONDS": 0})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def real_encoder():
    from index.encode.embed import load_encoder

    return load_encoder()


@pytest.fixture(scope="session")
def fp32_encoder():
    """The rebuilt model exactly as converted, whatever path this CPU would choose."""
    from index.encode.embed import SentenceTransformerEncoder

    return SentenceTransformerEncoder(precision="fp32")


@pytest.fixture(scope="session")
def real_index(tmp_path_factory, real_encoder) -> Path:
    out = tmp_path_factory.mktemp("real") / "index"
    build_index([CORPUS], out, real_encoder, progress=False)
    return out


@pytest.fixture(scope="session")
def real_searcher(real_index: Path, real_encoder) -> Searcher:
    return Searcher.open(real_index, encoder=real_encoder)


@pytest.fixture(scope="session")
def real_milvus(tmp_path_factory, real_encoder) -> Path:
    """The corpus in a milvus-lite file with the real model; tests that write work on copies."""
    path = tmp_path_factory.mktemp("real-milvus") / "corpus.db"
    target, stop = milvus_lite(path)
    build_index([CORPUS], target, real_encoder, progress=False)
    stop()
    return path


def copy_index(index: Path, where: Path) -> Path:
    """A private copy of a published index (its link and generations), for tests that write."""
    import shutil

    shutil.copytree(index.parent, where, symlinks=True)
    return where / index.name


def seed_queries() -> list[dict]:
    return [json.loads(line) for line in SEED_QUERIES.read_text(encoding="utf-8").splitlines() if line.strip()]


def start_server(index: Path, *options: str, env: dict | None = None):
    """`semsearch serve` on a free port of this machine; (process, base URL) once it answers."""
    import os
    import socket
    import subprocess
    import sys
    import tempfile
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # a file, not a pipe: nobody reads a running server's output, and a full pipe would block it
    output = tempfile.TemporaryFile("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--index", str(index), "--port", str(port), *options],
        cwd=ROOT,
        stdout=output,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(base + "/api/health", timeout=2)
            return process, base
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                output.seek(0)
                raise RuntimeError("server did not start:\n" + output.read()) from None
            time.sleep(0.5)


@pytest.fixture(scope="session")
def live_server(real_index: Path):
    """The production server (two gunicorn workers) serving the real seed index."""
    process, base = start_server(real_index, "--workers", "2")
    yield base
    process.terminate()
    process.wait(timeout=30)
