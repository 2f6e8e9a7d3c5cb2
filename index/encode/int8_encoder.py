"""Passages and queries -> unit vectors through a built int8 encoder, without torch.

A built encoder (see `index.encode.openvino_int8`) is a directory holding the model's tokenizer, its
word-embedding table quantised to int8 with one scale per row, an int8 OpenVINO network that takes
those rows (`inputs_embeds`) and returns the last hidden state, and `encoder.json` (prompts,
pooling, sequence length). Tokenising runs in `tokenizers`, the table lookup and mean pooling in
numpy: a serving process carries no torch, no sentence-transformers and no f32 copy of the table
(250k x 384 rows, memory-mapped, so only the rows queries touch are ever read).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from index.text import normalize

SPEC_FILE = "encoder.json"
NETWORK_FILE = "network.xml"
TOKENIZER_FILE = "tokenizer.json"
TABLE_FILE = "word_embeddings.npy"
SCALES_FILE = "word_embedding_scales.npy"
# Inputs are padded to a multiple of this many tokens: queries (~20 tokens) to a few short
# lengths, batches of passages (sorted by length) to a few dozen. OpenVINO prepares its kernels
# for each input shape it meets (~25 ms the first time) and again whenever the shape changes
# between calls (~1-2 ms for a query), so a network fed many lengths pads them to a few.
QUERY_SHAPE_STEP = 8
PASSAGE_SHAPE_STEP = 16


def quantize_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per row: the scale is the row's largest magnitude / 127."""
    scales = np.maximum(np.abs(table).max(axis=1), 1e-12).astype(np.float32) / 127.0
    return np.round(table / scales[:, None]).astype(np.int8), scales


def lookup_rows(table: np.ndarray, scales: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The f32 embedding of every id in `ids` (any shape), from the int8 table."""
    return table[ids].astype(np.float32) * scales[ids][..., None]


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of each row's unmasked token states, scaled to unit length."""
    summed = np.einsum("btd,bt->bd", hidden, mask.astype(np.float32))
    pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def document_prompt(prompts: dict[str, str]) -> str:
    """The prompt put before passages (sentence-transformers looks up "document" first)."""
    return prompts.get("document", prompts.get("passage", ""))


def network_inputs(
    sequences: Sequence[Sequence[int]], table: np.ndarray, scales: np.ndarray, pad_id: int, step: int
) -> dict[str, np.ndarray]:
    """What the network takes for token id sequences: their table rows in f32 and the attention
    mask, padded to a multiple of `step`."""
    ids, mask = padded_batch(sequences, pad_id, step)
    return {"inputs_embeds": lookup_rows(table, scales, ids), "attention_mask": mask}


def padded_batch(sequences: Sequence[Sequence[int]], pad_id: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and attention mask, right-padded to a multiple of `step`."""
    width = max(len(s) for s in sequences)
    width += -width % step
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = sequence
        mask[row, : len(sequence)] = 1
    return ids, mask


class EncoderTokenizer:
    """The model's tokenizer as sentence-transformers applies it: stripped text, the prompt in front,
    truncated to the model's sequence length with its special tokens. One `tokenizers` instance
    serves counting and model inputs alike (a 250k-piece vocabulary takes ~285 MB each)."""

    def __init__(self, tokenizer_file: Path, max_seq_length: int, lower_case: bool, pad_id: int):
        from tokenizers import Tokenizer

        self.lower_case = lower_case
        self.pad_id = pad_id
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.max_content = max_seq_length - self.tokenizer.num_special_tokens_to_add(False)

    def _text(self, text: str) -> str:
        return text.lower() if self.lower_case else text

    def model_inputs(self, prompt: str, texts: Sequence[str]) -> list[list[int]]:
        encodings = self.tokenizer.encode_batch(
            [self._text((prompt + normalize(t)).strip()) for t in texts], add_special_tokens=False
        )
        for encoding in encodings:
            encoding.truncate(self.max_content)
        return [self.tokenizer.post_process(encoding).ids for encoding in encodings]

    def count(self, text: str) -> int:
        return len(self.tokenizer.encode(self._text(normalize(text)), add_special_tokens=False).ids)

    def truncate(self, text: str, max_tokens: int) -> str:
        text = normalize(text)
        offsets = self.tokenizer.encode(self._text(text), add_special_tokens=False).offsets[:max_tokens]
        return text[: offsets[-1][1]] if offsets else ""


class _Network:
    """The compiled network: one inference stream of one thread per core. A query runs on one
    core and concurrent queries (a server's request threads) on the others; a batch of passages
    is split across all of them. (Queries once shared one single-stream run per process: a
    process then could not run two at once, and a 2-worker server left a quarter of its CPU idle,
    92 requests/s against 120 now.)"""

    def __init__(self, core, network_file: Path, inference_precision: str):
        self.streams = os.cpu_count() or 1
        self.compiled = core.compile_model(
            str(network_file),
            "CPU",
            {
                "PERFORMANCE_HINT": "THROUGHPUT",
                "NUM_STREAMS": self.streams,
                "INFERENCE_NUM_THREADS": self.streams,
                "INFERENCE_PRECISION_HINT": inference_precision,
            },
        )
        self._queues = threading.local()  # a writer's passages and the queries may run at once

    def run(self, sequences: list[list[int]], encoder: Int8Encoder, batch_size: int, shape_step: int) -> np.ndarray:
        """Pooled unit vectors of token id sequences, in batches of `batch_size` of similar
        length padded to a multiple of `shape_step`. Each stream takes the next batch as soon as
        it is free, while this thread prepares the one after: no stream waits for another's
        batch or for Python."""
        from openvino import AsyncInferQueue

        vectors = np.empty((len(sequences), encoder.dim), np.float32)
        if len(sequences) <= batch_size:  # a query: a callback on another thread would cost more than it saves
            request = getattr(self._queues, "request", None)
            if request is None:
                request = self._queues.request = self.compiled.create_infer_request()
            inputs = network_inputs(sequences, encoder.table, encoder.scales, encoder.tokenizer.pad_id, shape_step)
            request.infer(inputs)
            vectors[:] = mean_pool(request.get_output_tensor(0).data, inputs["attention_mask"])
            return vectors
        jobs = min(self.streams, getattr(self._queues, "cores", None) or self.streams)
        queues = self._queues.__dict__.setdefault("by_jobs", {})
        queue = queues.get(jobs)
        if queue is None:
            queue = queues[jobs] = AsyncInferQueue(self.compiled, jobs)

        def pooled(request, batch) -> None:
            rows, mask = batch
            vectors[rows] = mean_pool(request.get_output_tensor(0).data, mask)

        queue.set_callback(pooled)
        order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            inputs = network_inputs(
                [sequences[i] for i in rows], encoder.table, encoder.scales, encoder.tokenizer.pad_id, shape_step
            )
            queue.start_async(inputs, (rows, inputs["attention_mask"]))
        queue.wait_all()
        return vectors


class Int8Encoder:
    """A TextEncoder over a built int8 encoder directory."""

    precision = "int8"

    def __init__(self, directory: Path, model_id: str, inference_precision: str = "f32"):
        import openvino as ov

        spec = json.loads((directory / SPEC_FILE).read_text())
        self.model_id = model_id
        self.dim = int(spec["dim"])
        self.prompts = dict(spec["prompts"])
        self.tokenizer = EncoderTokenizer(
            directory / TOKENIZER_FILE, spec["max_seq_length"], spec["lower_case"], spec["pad_id"]
        )
        self.table = np.load(directory / TABLE_FILE, mmap_mode="r")
        self.scales = np.load(directory / SCALES_FILE)
        self.document_prompt = document_prompt(self.prompts)
        self.max_tokens = self.tokenizer.max_content - self.tokenizer.count(self.document_prompt)
        self._network = _Network(ov.Core(), directory / NETWORK_FILE, inference_precision)
        # The first use of OpenVINO's Python tensors initialises C++ statics that call back into
        # Python; two threads making that first call at once deadlock (a server's first concurrent
        # queries did), so the first call is made here, on one thread.
        self.encode_queries(["."])

    def count_tokens(self, text: str) -> int:
        return self.tokenizer.count(text)

    def truncate(self, text: str, max_tokens: int) -> str:
        return self.tokenizer.truncate(text, max_tokens)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        sequences = self.tokenizer.model_inputs(self.prompts.get("query", ""), texts)
        return self._network.run(sequences, self, len(sequences), QUERY_SHAPE_STEP)

    @contextmanager
    def limited(self, cores: int) -> Iterator[None]:
        """Passages encoded on this thread inside the block use at most `cores` of the streams (a
        write beside a served index leaves the other cores to the searches)."""
        queues = self._network._queues
        before = getattr(queues, "cores", None)
        queues.cores = cores
        try:
            yield
        finally:
            queues.cores = before

    def encode_passages(self, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
        if not len(texts):
            return np.empty((0, self.dim), np.float32)
        return self._network.run(
            self.tokenizer.model_inputs(self.document_prompt, texts), self, batch_size, PASSAGE_SHAPE_STEP
        )
