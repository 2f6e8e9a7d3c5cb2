"""A mixed-language index against single-language ones: ViQuAD (Vietnamese Wikipedia) and SciFact
(English science abstracts) in one index, each set's questions asked of it and of its own index,
every mode, at document level (`index.evaluate.quality.evaluate`).

    python bench/mixed_index.py

The single-language indexes are those of `make eval` and bench/baselines.py (var/eval/viquad,
var/eval/scifact, built first if absent); the mixed one (var/eval/mixed) is written from their
passages and vectors, so nothing is embedded twice, and rebuilt when either changes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from index.build import build_index, is_current, new_manifest
from index.encode.embed import load_encoder
from index.evaluate.quality import evaluate, format_table, load_eval_set
from index.prepare import prepare_chunked
from index.retrieve.search import MODES, Searcher
from index.store.embedded.live import vector_arrays
from index.store.embedded.passages import PassageStore
from index.store.location import building_at, manifest_at

ROOT = Path(__file__).resolve().parent.parent
SHARED_EVAL = ROOT.parent / "shared" / "eval"
SETS = {"ViQuAD": "viquad", "SciFact": "scifact"}
MIXED = ROOT / "var" / "eval" / "mixed"
GROUP = 500


def main() -> int:
    encoder = load_encoder()
    evalsets = {label: load_eval_set(SHARED_EVAL / name) for label, name in SETS.items()}
    own = {label: ROOT / "var" / "eval" / name for label, name in SETS.items()}
    for label, evalset in evalsets.items():
        if not is_current(evalset.corpus, own[label], encoder.model_id, encoder.precision):
            build_index(evalset.corpus, own[label], encoder)
    sources = sorted(manifest.corpus_fingerprint for manifest in map(manifest_at, own.values()) if manifest)
    fingerprint = "mixed:" + ",".join(sources)
    mixed_manifest = manifest_at(MIXED)
    if mixed_manifest is None or mixed_manifest.corpus_fingerprint != fingerprint:
        with building_at(MIXED, new_manifest(encoder, fingerprint), progress=True) as build:
            for index in own.values():
                store = PassageStore(index.resolve())
                for chunked, vectors in store.written_documents(GROUP, every=True):
                    build.write(
                        prepare_chunked(chunked, encoder, lambda _p, v=vectors: vector_arrays(v)), compact=False
                    )
                store.close()
            build.finish(set(), False, encoder)
    mixed = Searcher.open(MIXED, encoder=encoder)
    report = {}
    for label, evalset in evalsets.items():
        alone = Searcher.open(own[label], encoder=encoder)
        report[f"{label}, own index ({alone.size} passages)"] = evaluate(alone, evalset, MODES)
        report[f"{label}, mixed index ({mixed.size} passages)"] = evaluate(mixed, evalset, MODES)
    print(format_table(report))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
