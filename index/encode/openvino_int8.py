"""Run a sentence-transformers model's transformer as an int8 OpenVINO network.

On this project's CPUs the transformer is nearly all of the embedding cost. Converted to OpenVINO
and quantised to int8 with NNCF (weights and activations, calibrated on a small multilingual set of
queries and passages), it embeds ~6x faster than torch fp32 at cosine .998 to it; see bench/embed.py.
sentence-transformers' own `backend="openvino"` goes through optimum-intel, which pins an older
transformers and a CUDA build of torch, so the conversion is done here with openvino and nncf
directly and the compiled network replaces the torch module inside the model's Transformer module:
tokenisation, prompts, batching, pooling and normalisation stay sentence-transformers'.

The quantised network is built once per model and cached on disk, keyed by a fingerprint of the
model's weights, the calibration set and this file's QUANTIZATION_VERSION.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import torch

QUANTIZATION_VERSION = 1
CALIBRATION_FILE = Path(__file__).with_name("calibration.jsonl")
MODEL_FILE = "model.xml"
# OpenVINO prepares its kernels for each new input shape, which costs more than a short query's
# inference: sequence lengths are padded up to a multiple of this so few shapes ever occur.
SHAPE_STEP = 32

log = logging.getLogger(__name__)


def weights_fingerprint(module: torch.nn.Module) -> str:
    """Names, shapes and a sample of every tensor: tells two checkpoints apart without hashing 100s of MB."""
    digest = hashlib.sha256(f"v{QUANTIZATION_VERSION}".encode())
    digest.update(CALIBRATION_FILE.read_bytes())
    for name, tensor in module.state_dict().items():
        flat = tensor.detach().reshape(-1)
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(flat[:256].float().numpy().tobytes())
        digest.update(flat[-256:].float().numpy().tobytes())
    return digest.hexdigest()[:16]


def calibration_inputs(st_model, input_names: list[str]) -> list[dict[str, np.ndarray]]:
    """The calibration texts tokenised exactly as encode_query / encode_document would."""
    prompts = st_model.prompts
    inputs = []
    for line in CALIBRATION_FILE.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        prompt = prompts.get("query", "") if record["kind"] == "query" else prompts.get("document", prompts.get("passage", ""))
        features = st_model.tokenizer(
            prompt + record["text"], truncation=True, max_length=st_model.max_seq_length, return_tensors="np"
        )
        inputs.append({name: features[name] for name in input_names})
    return inputs


def build_int8_network(st_model, out_dir: Path) -> Path:
    """Convert and quantise; the directory appears complete or not at all."""
    import nncf
    import openvino as ov

    transformer = st_model[0].auto_model
    example = st_model.tokenizer(["passage: example", "query: a longer example text"], padding=True, return_tensors="pt")
    # tracing warns about every Python branch on a shape; the conversion is checked by the tests
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        network = ov.convert_model(transformer, example_input=dict(example))
    input_names = [port.get_any_name() for port in network.inputs]
    calibration = calibration_inputs(st_model, input_names)
    quantized = nncf.quantize(
        network, nncf.Dataset(calibration), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calibration)
    )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=out_dir.parent))
    try:
        ov.save_model(quantized, staging / MODEL_FILE)
        try:
            os.replace(staging, out_dir)
        except OSError:
            if not (out_dir / MODEL_FILE).exists():  # else another process built it first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir / MODEL_FILE


class OpenVINOTransformer(torch.nn.Module):
    """Stands in for the Hugging Face module: same inputs, `last_hidden_state` out.

    Compiled for throughput, OpenVINO runs several inference streams side by side (one per core
    here). A server's threads each get their own requests, so concurrent queries use every
    stream; a batch from a single caller (indexing) is split across the streams, so it does too.
    """

    def __init__(self, network_file: Path, config, inference_precision: str):
        import openvino as ov

        super().__init__()
        self.config = config
        self.network = ov.Core().compile_model(
            str(network_file), "CPU", {"INFERENCE_PRECISION_HINT": inference_precision, "PERFORMANCE_HINT": "THROUGHPUT"}
        )
        self.streams = int(self.network.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self.input_names = [port.get_any_name() for port in self.network.inputs]
        self.output = next(
            (i for i, port in enumerate(self.network.outputs) if "last_hidden_state" in port.get_names()), 0
        )
        self._requests = threading.local()
        # The first use of OpenVINO's Python tensors initialises C++ statics that call back into
        # Python. Two threads making that first call at once deadlock: one waits on the static's
        # guard holding the GIL, the other runs the initialiser and waits for the GIL. A server's
        # first concurrent queries did exactly that, so make the first call here, on one thread.
        ones = torch.ones((1, 1), dtype=torch.long)
        self.forward(ones, ones)

    def _thread_requests(self) -> list:
        requests = getattr(self._requests, "requests", None)
        if requests is None:
            requests = self._requests.requests = [self.network.create_infer_request() for _ in range(self.streams)]
        return requests

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids=None, **_) -> dict:
        features = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        length = input_ids.shape[1]
        padding = -length % SHAPE_STEP
        inputs = {
            # masked-out padding changes nothing but the shape
            name: np.pad((features[name] if features[name] is not None else torch.zeros_like(input_ids)).numpy(), ((0, 0), (0, padding)))
            for name in self.input_names
        }
        parts = [rows for rows in np.array_split(np.arange(len(input_ids)), self.streams) if len(rows)]
        requests = self._thread_requests()[: len(parts)]
        for request, rows in zip(requests, parts):
            request.start_async({name: array[rows] for name, array in inputs.items()})
        hidden = []
        for request in requests:
            request.wait()
            hidden.append(np.array(request.get_output_tensor(self.output).data[:, :length], dtype=np.float32))
        return {"last_hidden_state": torch.from_numpy(np.concatenate(hidden))}


def use_int8_network(st_model, cache_root: Path, inference_precision: str) -> None:
    """Swap the model's transformer for its cached (or freshly built) int8 network."""
    transformer = st_model[0].auto_model
    out_dir = cache_root / f"int8-{weights_fingerprint(transformer)}"
    network_file = out_dir / MODEL_FILE
    if not network_file.exists():
        log.warning("building the int8 OpenVINO encoder once for this model (about half a minute)")
        build_int8_network(st_model, out_dir)
    st_model[0].model = OpenVINOTransformer(network_file, transformer.config, inference_precision)
