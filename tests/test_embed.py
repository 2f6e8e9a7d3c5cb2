import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from index.encode.embed import choose_precision, network_precision, unit_rows
from index.encode.int8_encoder import lookup_rows, mean_pool, padded_batch, quantize_rows
from index.encode.openvino_int8 import model_fingerprint
from index.ingest.files import find_files, read_documents
from tests.conftest import CORPUS, ROOT


def test_precision_follows_the_cpu():
    assert choose_precision("auto", {"avx2", "avx512_vnni", "avx512_bf16"}) == "int8"
    assert choose_precision("auto", {"avx2", "avx_vnni"}) == "int8"
    assert choose_precision("auto", {"amx_bf16", "amx_tile"}) == "bf16"
    assert choose_precision("auto", {"avx2", "avx512_bf16"}) == "bf16"
    assert choose_precision("auto", {"avx2", "avx512f"}) == "fp32"
    assert choose_precision("fp32", {"avx512_vnni", "avx512_bf16"}) == "fp32"


def test_the_int8_network_keeps_its_other_operations_f32_on_amx():
    """AMX's bf16 cost the ViNewsQA subset .04 dense MRR@10 (test_eval_quality's floors failed)."""
    assert network_precision({"avx512_vnni", "avx512_bf16"}) == "bf16"
    assert network_precision({"avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"}) == "f32"
    assert network_precision({"avx2", "avx_vnni"}) == "f32"


def test_unit_rows_renormalise_in_float32():
    rows = unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float16))
    assert rows.dtype == np.float32
    np.testing.assert_allclose(rows[0], [0.6, 0.8])
    assert np.all(np.isfinite(rows))


def test_int8_cache_key_follows_the_model_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(bytes(3 << 20))
    before = model_fingerprint(tmp_path)
    assert model_fingerprint(tmp_path) == before
    with open(tmp_path / "model.safetensors", "r+b") as f:  # the last bytes: where the last layers are
        f.seek((3 << 20) - 1)
        f.write(b"\1")
    assert model_fingerprint(tmp_path) != before


def test_int8_table_rows_are_within_half_a_step_of_the_f32_rows():
    table = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    quantized, scales = quantize_rows(table)
    assert quantized.dtype == np.int8 and scales.shape == (50,)
    ids = np.array([[3, 7, 7], [49, 0, 1]])
    rows = lookup_rows(quantized, scales, ids)
    assert rows.shape == (2, 3, 8)
    assert np.all(np.abs(rows - table[ids]) <= scales[ids][..., None] / 2 + 1e-7)


def test_mean_pool_and_padding_against_a_loop():
    sequences = [[5, 6, 7], [8]]
    ids, mask = padded_batch(sequences, pad_id=1, step=16)
    assert ids.shape == (2, 16) and ids[1, 1] == 1 and mask.sum() == 4
    hidden = np.random.default_rng(1).normal(size=(2, 16, 4)).astype(np.float32)
    pooled = mean_pool(hidden, mask)
    for row, sequence in enumerate(sequences):
        expected = hidden[row, : len(sequence)].mean(axis=0)
        np.testing.assert_allclose(pooled[row], expected / np.linalg.norm(expected), rtol=1e-5)


@pytest.fixture(scope="module")
def int8_encoder():
    from index.encode.embed import load_encoder

    return load_encoder(precision="int8")


TEXTS = [
    "Đảng bộ Khối có bao nhiêu đảng viên?",
    "dang bo khoi co bao nhieu dang vien",
    "How many party members does the committee have?",
    "Die Forscher untersuchten die Wasserqualität von zwanzig Flüssen.",
]


def _passages() -> list[str]:
    return [block.text for doc in read_documents(find_files([CORPUS])) for block in doc.blocks]


@pytest.mark.model
def test_int8_encoder_stays_close_to_fp32(fp32_encoder, int8_encoder):
    passages = _passages()
    passage_cosines = (int8_encoder.encode_passages(passages) * fp32_encoder.encode_passages(passages)).sum(axis=1)
    query_cosines = (int8_encoder.encode_queries(TEXTS) * fp32_encoder.encode_queries(TEXTS)).sum(axis=1)
    assert passage_cosines.mean() >= 0.995 and passage_cosines.min() >= 0.99
    assert query_cosines.min() >= 0.99
    assert int8_encoder.dim == fp32_encoder.dim and int8_encoder.max_tokens == fp32_encoder.max_tokens


@pytest.mark.model
def test_int8_encoder_tokenises_as_sentence_transformers_does(fp32_encoder, int8_encoder):
    passages = _passages()
    long_text = " ".join(passages)  # far past 512 tokens: truncated with the special tokens kept
    prompt = fp32_encoder.prompts["document"]
    texts = [*passages[:20], long_text, *TEXTS]
    expected = fp32_encoder.model.tokenize([prompt + t for t in texts])
    ours = int8_encoder.tokenizer.model_inputs(prompt, texts)
    for row, ids in enumerate(ours):
        assert ids == [i for i, m in zip(expected["input_ids"][row].tolist(), expected["attention_mask"][row]) if m]
    assert len(ours[20]) == 512
    for text in passages[:20]:
        assert int8_encoder.count_tokens(text) == fp32_encoder.count_tokens(text)
        assert int8_encoder.truncate(text, 17) == fp32_encoder.truncate(text, 17)


@pytest.mark.model
def test_int8_encoder_keeps_the_word_table_int8_and_on_disk(int8_encoder):
    assert isinstance(int8_encoder.table, np.memmap) and int8_encoder.table.dtype == np.int8


@pytest.mark.model
def test_int8_encoder_is_safe_to_share_between_threads(int8_encoder):
    alone = int8_encoder.encode_queries(TEXTS)
    passages = _passages()[:8]
    with ThreadPoolExecutor(max_workers=6) as pool:
        together = list(pool.map(lambda i: int8_encoder.encode_queries([TEXTS[i % len(TEXTS)]])[0], range(48)))
        written = pool.submit(int8_encoder.encode_passages, passages)  # a writer beside the queries
        more = list(pool.map(lambda i: int8_encoder.encode_queries([TEXTS[i % len(TEXTS)]])[0], range(16)))
    for i, vector in enumerate([*together, *more]):
        assert float(vector @ alone[i % len(TEXTS)]) > 0.9999
    assert written.result().shape == (8, int8_encoder.dim)


FIRST_CALLS_AT_ONCE = """
import sys, threading
from pathlib import Path
from index.encode.int8_encoder import Int8Encoder

encoder = Int8Encoder(Path(sys.argv[1]), "model")
sys.setswitchinterval(1e-6)  # hand the GIL over as often as possible, so the first calls interleave
barrier = threading.Barrier(16)

def first_call():
    barrier.wait()
    encoder.encode_queries(["một câu hỏi"])

threads = [threading.Thread(target=first_call) for _ in range(16)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print("done", "torch" in sys.modules)
"""


@pytest.mark.model
def test_int8_encoder_survives_many_threads_calling_it_first(int8_encoder):
    """A fresh server worker's first concurrent queries once hung forever inside OpenVINO; each
    attempt is a new process, because the hang needs the very first calls (it struck ~half of them)."""
    from index.encode.embed import semsearch_home

    directory = next((semsearch_home() / "openvino").glob("int8-*/encoder.json")).parent
    for _ in range(5):
        result = subprocess.run(
            [sys.executable, "-c", FIRST_CALLS_AT_ONCE, str(directory)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.stdout.strip() == "done False", result.stderr


SERVE_AND_SEARCH = """
import sys
from service import create_app

app = create_app({"INDEX_DIR": sys.argv[1], "RATE_LIMIT": "off", "RELOAD_SECONDS": 0})
response = app.test_client().get("/api/search", query_string={"q": "Đảng bộ Khối có bao nhiêu đảng viên?"})
assert response.status_code == 200 and response.get_json()["results"], response.data
# neither the model-building libraries nor, on a directory, the Milvus client (pandas, pyarrow, grpc: 120 MB)
heavy = ("torch", "transformers", "sentence_transformers", "nncf", "pymilvus", "pandas")
print(sorted(m for m in heavy if m in sys.modules))
"""


@pytest.mark.model
def test_serving_never_imports_torch_or_the_milvus_client(real_index, int8_encoder):
    result = subprocess.run(
        [sys.executable, "-c", SERVE_AND_SEARCH, str(real_index)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.model
def test_auto_falls_back_to_torch_when_int8_cannot_be_built(monkeypatch):
    import index.encode.embed
    import index.encode.openvino_int8
    from index.encode.embed import SentenceTransformerEncoder, load_encoder

    def cannot_convert(*args, **kwargs):
        raise RuntimeError("unsupported operation")

    monkeypatch.delenv("SEMSEARCH_PRECISION", raising=False)
    monkeypatch.setattr(index.encode.embed, "cpu_flags", lambda: {"avx2", "avx512_vnni"})
    monkeypatch.setattr(index.encode.openvino_int8, "ensure_int8_encoder", cannot_convert)
    encoder = load_encoder()
    assert isinstance(encoder, SentenceTransformerEncoder) and encoder.precision == "fp32"
    assert encoder.encode_queries(["Chi bộ"]).shape == (1, encoder.dim)
    with pytest.raises(RuntimeError, match="unsupported operation"):
        load_encoder(precision="int8")
