"""Sentence vectors pooled from the passage's own forward pass ("late chunking") against sentences
embedded on their own, as an index stores them: what each costs and what the dense leg loses.

Reads an evaluation index `make eval` built (var/eval/<set>), runs every passage through the
network once more and pools each evidence sentence's token states (the tokens whose characters
fall in the sentence; with "under the title", the title's tokens too), and ranks the set's dev
questions exhaustively by the dense leg's own score (passage_share · passage + the rest · best
sentence), at document level as `make eval` does. Also prints what the network reads per passage
for each way: tokens, and CPU seconds of a sample encoded through the encoder.

    python bench/late_chunking.py [--set viquad] [--sample 300]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from index.encode.embed import load_encoder
from index.encode.int8_encoder import Int8Encoder, network_inputs
from index.evaluate.metrics import reciprocal_rank_at, unique_in_order
from index.evaluate.quality import load_eval_set
from index.ingest.chunk import embedding_text_of, evidence_sentences, evidence_spans
from index.retrieve.fusion import Cosines, sentence_cosines
from index.retrieve.search import FUSION
from index.store.base import StoredPassage
from index.store.embedded.publish import open_index
from index.text import normalize

ROOT = Path(__file__).resolve().parent.parent
SHARED_EVAL = ROOT.parent / "shared" / "eval"
BATCH = 16


def token_states(encoder: Int8Encoder, texts: Sequence[str]) -> list[tuple[np.ndarray, list[tuple[int, int]]]]:
    """Each passage text's last hidden state (CLS first) and its tokens' character offsets in the
    text, through the encoder's network on all cores."""
    from openvino import AsyncInferQueue

    tokenizer = encoder.tokenizer.tokenizer
    prompt = encoder.document_prompt
    encodings = tokenizer.encode_batch([prompt + text for text in texts], add_special_tokens=False)
    for encoding in encodings:
        encoding.truncate(encoder.tokenizer.max_content)
    sequences = [tokenizer.post_process(encoding).ids for encoding in encodings]
    states: list = [None] * len(texts)

    def kept(request, rows) -> None:
        hidden = request.get_output_tensor(0).data
        for slot, row in enumerate(rows):
            states[row] = hidden[slot, : len(sequences[row])].copy()

    queue = AsyncInferQueue(encoder._network.compiled, encoder._network.streams)  # the bench needs token states
    queue.set_callback(kept)
    order = sorted(range(len(texts)), key=lambda i: -len(sequences[i]))
    for start in range(0, len(order), BATCH):
        rows = order[start : start + BATCH]
        pad = encoder.tokenizer.pad_id
        queue.start_async(network_inputs([sequences[i] for i in rows], encoder.table, encoder.scales, pad, 16), rows)
    queue.wait_all()
    shift = len(prompt)
    return [
        (state, [(a - shift, b - shift) for a, b in encoding.offsets]) for state, encoding in zip(states, encodings)
    ]


def pooled(state: np.ndarray, offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> np.ndarray:
    """Unit mean of the token states whose characters overlap any of `spans` (+1: CLS comes first)."""
    rows = [k + 1 for k, (a, b) in enumerate(offsets) if any(a < end and b > start for start, end in spans)]
    vector = state[rows or slice(None)].mean(axis=0)
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def late_sentences(encoder: Int8Encoder, passages: list[StoredPassage]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each passage's late-chunked sentence vectors: each sentence's tokens, and each sentence's
    tokens with the title's (context's)."""
    texts = [normalize(embedding_text_of(p.context, p.text)) for p in passages]
    alone, titled = [], []
    for passage, (state, offsets) in zip(passages, token_states(encoder, texts)):
        shift = len(passage.context) + 1 if passage.context else 0
        title = [(0, len(passage.context))] if passage.context else []
        spans = [(a + shift, b + shift) for a, b in evidence_spans(passage.text)]
        alone.append(np.stack([pooled(state, offsets, [span]) for span in spans]))
        titled.append(np.stack([pooled(state, offsets, [span, *title]) for span in spans]))
    return alone, titled


def dense_mrr(questions, passages: np.ndarray, sentences: list[np.ndarray], docs: list[str], queries) -> float:
    """MRR@10 over documents of the dense leg's score, every passage scored."""
    counts = np.array([len(s) for s in sentences])
    stacked = np.concatenate(sentences)
    total = 0.0
    ids = np.arange(len(passages))
    for query, question in zip(queries, questions):
        score = Cosines(ids, *sentence_cosines(question, passages, stacked, counts), counts).dense(FUSION.passage_share)
        top = np.argpartition(-score, 100)[:100]
        top = top[np.argsort(-score[top])]
        total += reciprocal_rank_at(unique_in_order([docs[i] for i in top]), query.relevant, 10)
    return total / len(queries)


def cpu_seconds(encoder, texts: list[str]) -> float:
    started = time.process_time()
    encoder.encode_passages(texts)
    return time.process_time() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="viquad", help="an evaluation set under ../shared/eval with its index")
    parser.add_argument("--sample", type=int, default=300, help="passages whose encoding CPU is timed")
    args = parser.parse_args()

    encoder = load_encoder()
    if not isinstance(encoder, Int8Encoder):
        raise SystemExit("token states are read from the int8 encoder's network; this CPU runs another")
    index = open_index(ROOT / "var" / "eval" / args.set)
    try:
        stored = index.passages.by_int_ids(index.passages.all_int_ids())
        int_ids = sorted(stored)
        evidence = index.passages.evidence(int_ids, index.dim)
    finally:
        index.close()
    order = {int(i): n for n, i in enumerate(evidence.ids)}
    passages = [stored[i] for i in int_ids]
    vectors = evidence.passages[[order[i] for i in int_ids]]
    starts = np.concatenate(([0], np.cumsum(evidence.counts)))
    kept = [evidence.sentences[starts[order[i]] : starts[order[i] + 1]] for i in int_ids]
    counts = [len(evidence_spans(p.text)) for p in passages]
    # stored: each sentence alone, then each under the title, when the passage has one
    kept_alone = [s[:n] for s, n in zip(kept, counts)]

    started = time.process_time()
    late_alone, late_titled = late_sentences(encoder, passages)
    late_cpu = time.process_time() - started

    evalset = load_eval_set(SHARED_EVAL / args.set)
    questions = encoder.encode_queries([normalize(q.text) for q in evalset.queries])
    docs = [p.doc_id for p in passages]
    ways = {
        "stored: each sentence alone and under the title (as indexed)": kept,
        "stored: each sentence alone": kept_alone,
        "the passage alone (no sentences)": [v[None] for v in vectors],
        "late: each sentence's tokens": late_alone,
        "late: each sentence's tokens with the title's": late_titled,
        "stored alone + late with the title's": [np.concatenate(pair) for pair in zip(kept_alone, late_titled)],
    }
    print(f"{args.set}: {len(passages):,} passages, {len(evalset.queries):,} dev questions")
    print(f"the late pass over every passage: {late_cpu:.0f} s CPU")
    print("\n| sentence vectors | dense MRR@10 (exhaustive) |\n|---|---|")
    for label, sentences in ways.items():
        print(f"| {label} | {dense_mrr(questions, vectors, sentences, docs, evalset.queries):.4f} |", flush=True)

    sample = passages[: args.sample]
    texts = {
        "passages": [p.embedding_text for p in sample],
        "sentences alone": [s for p in sample for s in evidence_sentences(p.text)],
        "sentences under the title": [
            embedding_text_of(p.context, s) for p in sample if p.context for s in evidence_sentences(p.text)
        ],
    }
    print(f"\nwhat the network reads for {len(sample)} passages (CPU s, min / median / max of 3)")
    print("| texts | count | tokens | CPU s |\n|---|---|---|---|")
    for label, group in texts.items():
        tokens = sum(encoder.count_tokens(t) for t in group)
        runs = sorted(cpu_seconds(encoder, group) for _ in range(3))
        print(f"| {label} | {len(group):,} | {tokens:,} | {runs[0]:.1f} / {runs[1]:.1f} / {runs[2]:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
