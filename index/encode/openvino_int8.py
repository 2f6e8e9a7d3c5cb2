"""Build the int8 encoder that `index.encode.int8_encoder` runs, once per model, into a cache.

On this project's CPUs the transformer is nearly all of the embedding cost. Converted to OpenVINO
and quantised to int8 with NNCF (weights and activations, calibrated on a small multilingual set of
queries and passages), it embeds ~6x faster than torch fp32 at cosine .998 to it; see bench/embed.py.
sentence-transformers' own `backend="openvino"` goes through optimum-intel, which pins an older
transformers and a CUDA build of torch, so the conversion is done here with openvino and nncf.

The network starts after the word-embedding lookup (it takes `inputs_embeds`): the table is
stored as int8 rows with a scale each and looked up in numpy, so no process ever holds its f32
copy. Building needs torch and sentence-transformers; running the result needs neither.
The cache key is a fingerprint of the model's files, the calibration set and FORMAT_VERSION.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from index.encode.int8_encoder import (
    NETWORK_FILE,
    SCALES_FILE,
    SPEC_FILE,
    TABLE_FILE,
    TOKENIZER_FILE,
    EncoderTokenizer,
    document_prompt,
    network_inputs,
    quantize_rows,
)

FORMAT_VERSION = 2
CALIBRATION_FILE = Path(__file__).with_name("calibration.jsonl")
_SAMPLE_BYTES = 1 << 20

log = logging.getLogger(__name__)


class UnsupportedModel(ValueError):
    """The model has modules the int8 encoder does not reproduce."""


def model_fingerprint(model_dir: Path) -> str:
    """Names, sizes and the first and last MB of every file: tells two models apart without
    reading 100s of MB at every start."""
    digest = hashlib.sha256(f"v{FORMAT_VERSION}".encode())
    digest.update(CALIBRATION_FILE.read_bytes())
    for path in sorted(p for p in Path(model_dir).rglob("*") if p.is_file() and not p.name.startswith(".")):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(model_dir)}:{size}".encode())
        with open(path, "rb") as f:
            digest.update(f.read(_SAMPLE_BYTES))
            f.seek(max(0, size - _SAMPLE_BYTES))
            digest.update(f.read())
    return digest.hexdigest()[:16]


def encoder_directory(cache_root: Path, model_dir: Path) -> Path:
    return cache_root / f"int8-{model_fingerprint(model_dir)}"


def encoder_spec(st_model) -> dict:
    """What the int8 encoder must know to reproduce `st_model`: a Transformer, mean pooling over
    every token (prompt included), optionally normalisation; anything else is refused."""
    from sentence_transformers.models import Normalize, Pooling, Transformer

    modules = list(st_model)
    pooling = modules[1] if len(modules) > 1 else None
    if (
        not isinstance(modules[0], Transformer)
        or not isinstance(pooling, Pooling)
        or pooling.get_config_dict().get("pooling_mode", "mean") != "mean"
        or not pooling.include_prompt
        or not all(isinstance(m, Normalize) for m in modules[2:])
    ):
        raise UnsupportedModel(f"int8 encoder reproduces Transformer + mean Pooling (+ Normalize), not {modules}")
    tokenizer = st_model.tokenizer
    return {
        "dim": int(st_model.get_embedding_dimension()),
        "prompts": dict(st_model.prompts),
        "max_seq_length": int(st_model.max_seq_length),
        "lower_case": bool(getattr(modules[0], "do_lower_case", False)),
        "pad_id": int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0),
    }


def _calibration_inputs(tokenizer: EncoderTokenizer, spec: dict, table: np.ndarray, scales: np.ndarray) -> list[dict]:
    """The calibration texts as the encoder will feed them: prompt, tokens, int8 table rows."""
    prompts = spec["prompts"]
    inputs = []
    for line in CALIBRATION_FILE.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        prompt = prompts.get("query", "") if record["kind"] == "query" else document_prompt(prompts)
        inputs.append(
            network_inputs(tokenizer.model_inputs(prompt, [record["text"]]), table, scales, tokenizer.pad_id, 1)
        )
    return inputs


def build_int8_encoder(model_dir: Path, out_dir: Path) -> Path:
    """Convert, quantise and write the encoder directory; it appears complete or not at all."""
    import nncf
    import openvino as ov
    import torch
    from sentence_transformers import SentenceTransformer

    st_model = SentenceTransformer(str(model_dir), device="cpu")
    spec = encoder_spec(st_model)
    transformer = st_model[0].auto_model.eval()
    table, scales = quantize_rows(transformer.get_input_embeddings().weight.detach().float().numpy())

    class FromRows(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = transformer

        def forward(self, inputs_embeds, attention_mask):
            return self.transformer(inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=out_dir.parent))
    try:
        st_model.tokenizer.backend_tokenizer.save(str(staging / TOKENIZER_FILE))
        tokenizer = EncoderTokenizer(
            staging / TOKENIZER_FILE, spec["max_seq_length"], spec["lower_case"], spec["pad_id"]
        )
        calibration = _calibration_inputs(tokenizer, spec, table, scales)
        example = {name: torch.from_numpy(array) for name, array in calibration[0].items()}
        # tracing warns about every Python branch on a shape; the conversion is checked by the tests
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            network = ov.convert_model(FromRows(), example_input=example)
        quantized = nncf.quantize(
            network, nncf.Dataset(calibration), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calibration)
        )
        ov.save_model(quantized, staging / NETWORK_FILE)
        np.save(staging / TABLE_FILE, table)
        np.save(staging / SCALES_FILE, scales)
        (staging / SPEC_FILE).write_text(json.dumps(spec, indent=2, ensure_ascii=False))
        staging.chmod(0o755)
        try:
            os.replace(staging, out_dir)
        except OSError:
            if not (out_dir / SPEC_FILE).exists():  # else another process built it first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def ensure_int8_encoder(cache_root: Path, model_dir: Path) -> Path:
    """The cached encoder directory for `model_dir`, built first if missing."""
    out_dir = encoder_directory(cache_root, model_dir)
    if not (out_dir / SPEC_FILE).exists():
        log.warning("building the int8 OpenVINO encoder once for this model (about half a minute)")
        build_int8_encoder(model_dir, out_dir)
    return out_dir
