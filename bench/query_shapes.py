"""A query through the int8 network: the served network (dynamic shapes, inputs padded to a
multiple of 8 tokens) against copies compiled for fixed lengths (each query padded to the
shortest that holds it), and what each fixed-length copy costs in memory.

ViQuAD's dev questions, one at a time on one calling thread, the process's CPU per query;
min / median / max over passes, the two interleaved in each pass. Memory is the resident set a
compiled copy adds, each measured in a fresh process.

    python bench/query_shapes.py [--lengths 16,24,32,48,64] [--queries 400] [--passes 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from figures import resident_bytes, spread

from index.encode.e5_build import DEFAULT_MODEL_ID
from index.encode.embed import load_encoder, model_directory, semsearch_home, unit_rows
from index.encode.int8_encoder import NETWORK_FILE, QUERY_SHAPE_STEP, mean_pool, network_inputs
from index.encode.openvino_int8 import ensure_int8_encoder

ROOT = Path(__file__).resolve().parent.parent
VIQUAD = ROOT.parent / "shared" / "eval" / "viquad"
# the served network's settings, given to each fixed-length copy
SERVED_PROPERTIES = ("PERFORMANCE_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT")


def compiled_for(core, directory: Path, length: int, width: int, config: dict):
    model = core.read_model(str(directory / NETWORK_FILE))
    # inputs_embeds is (batch, tokens, width), attention_mask (batch, tokens)
    model.reshape(
        {i.get_any_name(): [1, length, width][: i.get_partial_shape().rank.get_length()] for i in model.inputs}
    )
    return core.compile_model(model, "CPU", config)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="16,24,32,48,64")
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--memory-of", type=int, help=argparse.SUPPRESS)  # a child measuring one length
    args = parser.parse_args()

    import openvino as ov

    encoder = load_encoder(precision="int8")
    network = encoder._network
    directory = ensure_int8_encoder(semsearch_home() / "openvino", model_directory(DEFAULT_MODEL_ID))
    config = {key: network.compiled.get_property(key) for key in SERVED_PROPERTIES}
    core = ov.Core()
    if args.memory_of:
        before = resident_bytes()
        request = compiled_for(core, directory, args.memory_of, encoder.table.shape[1], config).create_infer_request()
        request.infer(network_inputs([[0] * args.memory_of], encoder.table, encoder.scales, 0, args.memory_of))
        print((resident_bytes() - before) / 2**20)
        return 0

    lengths = sorted(int(n) for n in args.lengths.split(","))
    lines = (VIQUAD / "queries_dev.jsonl").read_text(encoding="utf-8").splitlines()
    sequences = encoder.tokenizer.model_inputs(
        encoder.prompts.get("query", ""), [json.loads(line)["text"] for line in lines[: args.queries]]
    )
    fixed = {
        n: compiled_for(core, directory, n, encoder.table.shape[1], config).create_infer_request() for n in lengths
    }
    served = network.compiled.create_infer_request()

    def encoded(sequence: list[int], fixed_lengths: bool) -> np.ndarray:
        length = next((n for n in lengths if n >= len(sequence)), None) if fixed_lengths else None
        request, step = (fixed[length], length) if length else (served, QUERY_SHAPE_STEP)
        inputs = network_inputs([sequence], encoder.table, encoder.scales, encoder.tokenizer.pad_id, step)
        request.infer(inputs)
        return unit_rows(mean_pool(request.get_output_tensor(0).data, inputs["attention_mask"]))[0]

    cpu: dict[str, list[float]] = {"served (dynamic shapes)": [], "fixed lengths": []}
    vectors = {}
    for _ in range(args.passes):
        for label, fixed_lengths in zip(cpu, (False, True)):
            started = time.process_time()
            vectors[label] = np.array([encoded(s, fixed_lengths) for s in sequences])
            cpu[label].append((time.process_time() - started) * 1000 / len(sequences))
    cosine = np.prod(list(vectors.values()), axis=0).sum(axis=1)
    tokens = np.array([len(s) for s in sequences])
    print(f"{len(sequences)} questions, tokens p50 {np.median(tokens):.0f}, max {tokens.max()}; lengths {lengths}")
    print("| network | CPU ms per query min / median / max |")
    print("|---|---|")
    for label, values in cpu.items():
        print(f"| {label} | {spread(values, digits=2)} |")
    print(f"cosine of the two paths' vectors: min {cosine.min():.5f}, mean {cosine.mean():.5f}")
    print("| fixed length | resident MB added by its compiled copy |")
    print("|---|---|")
    for length in lengths:
        added = subprocess.run(
            [sys.executable, __file__, "--memory-of", str(length)], check=True, capture_output=True, text=True
        ).stdout.split()[-1]
        print(f"| {length} | {float(added):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
