"""Passages -> a BM25 index with a Vietnamese analyser; queries -> lexical matches.

The analyser turns text into three kinds of terms:
- syllables as written (lower-cased NFC): "đảng", "viên";
- the same syllables without diacritics, marked "~": "~dang", "~vien", so a query typed without
  accents finds accented text, while a query with accents matches both and prefers exact accents;
- unaccented syllable bigrams, "~dang_vien": Vietnamese words are mostly two syllables, and the
  pairs carry the compound words a bag of syllables loses.
On ViQuAD dev (title + text, k1 1.2, b 0.75) this moved BM25 MRR@10 from .732 to .778 for accented
queries and from .262 to .768 for unaccented ones; accented bigrams on top lowered it (.757).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .text import fold, syllables

DIRECTORY = "lexical"
K1, B = 1.2, 0.75
# Restore accents only when this share of a query's words are corpus syllables.
RESTORE_MIN_KNOWN = 0.6
_BIGRAM_WEIGHT = 0.7
# Questions ask with words that statements seldom use; counted once each as if seen in the corpus
# so "bao nhieu" becomes "bao nhiêu" even where no passage says it.
_QUESTION_PHRASES = (
    "bao nhiêu", "bao giờ", "khi nào", "ở đâu", "như thế nào", "thế nào", "tại sao", "vì sao", "là gì",
    "là ai", "những gì", "cái gì", "có phải", "mấy", "nào", "gì", "ai", "đâu",
)


def analyze(text: str) -> list[str]:
    written = syllables(text)
    folded = [fold(s) for s in written]
    return written + ["~" + f for f in folded] + [f"~{a}_{b}" for a, b in zip(folded, folded[1:])]


class AccentVocabulary:
    """How often each written form of an unaccented syllable and syllable pair occurs in the corpus:
    what restoring diacritics to a query typed without them draws on."""

    FILE = "accents.json"

    def __init__(self, unigrams: dict[str, dict[str, int]], bigrams: dict[str, dict[str, int]]):
        self.unigrams = unigrams
        self.bigrams = bigrams
        self.total = sum(sum(forms.values()) for forms in unigrams.values())

    def frequency(self, folded_word: str) -> int:
        return sum(self.unigrams.get(folded_word, {}).values())

    @classmethod
    def count(cls, texts: Sequence[str], progress: bool = False) -> AccentVocabulary:
        from tqdm import tqdm

        unigrams: dict[str, Counter] = {}
        bigrams: dict[str, Counter] = {}
        for text in tqdm([*_QUESTION_PHRASES, *texts], desc="accent vocabulary", unit="passage", disable=not progress):
            written = syllables(text)
            for word in written:
                unigrams.setdefault(fold(word), Counter())[word] += 1
            for a, b in zip(written, written[1:]):
                bigrams.setdefault(f"{fold(a)} {fold(b)}", Counter())[f"{a} {b}"] += 1

        def keep(table: dict[str, Counter]) -> dict[str, dict[str, int]]:
            return {k: dict(c.most_common(8)) for k, c in table.items()}

        return cls(keep(unigrams), keep(bigrams))

    def coverage(self, query: str) -> float:
        """Share of the query's syllables that occur in the corpus: near 1 for a Vietnamese question
        about it, near 0 for an English one, whose few lexical matches are accidents."""
        words = syllables(query)
        return sum(fold(w) in self.unigrams for w in words) / len(words) if words else 0.0

    def restore(self, query: str) -> str:
        """`query` with diacritics put back where it was typed without any, choosing for each
        syllable the written form that best fits the corpus (unigram and bigram counts, Viterbi).
        A query with diacritics, or mostly of words the corpus does not have (English, say),
        comes back as it was."""
        words = syllables(query)
        if not words or any(fold(w) != w for w in words):
            return query
        if self.coverage(query) < RESTORE_MIN_KNOWN:
            return query
        options = [self._forms(w) for w in words]
        # best[i][form] = (log score of the best restoration ending in form, previous form)
        best: list[dict[str, tuple[float, str | None]]] = [
            {form: (math.log(p), None) for form, p in options[0].items()}
        ]
        for i in range(1, len(words)):
            step: dict[str, tuple[float, str | None]] = {}
            for form, p_unigram in options[i].items():
                step[form] = max(
                    (score + math.log(_BIGRAM_WEIGHT * self._pair(prev, form) + (1 - _BIGRAM_WEIGHT) * p_unigram), prev)
                    for prev, (score, _) in best[-1].items()
                )
            best.append(step)
        form = max(best[-1], key=lambda f: best[-1][f][0])
        restored = [form]
        for i in range(len(words) - 1, 0, -1):
            form = best[i][form][1]
            restored.append(form)
        return " ".join(reversed(restored))

    def _forms(self, word: str) -> dict[str, float]:
        counts = self.unigrams.get(word)
        if not counts:
            return {word: 1.0}
        total = sum(counts.values())
        return {form: n / total for form, n in counts.items()}

    def _pair(self, first: str, second: str) -> float:
        counts = self.bigrams.get(f"{fold(first)} {fold(second)}")
        if not counts:
            return 0.0
        return counts.get(f"{first} {second}", 0) / sum(counts.values())

    def save(self, directory: Path) -> None:
        target = Path(directory) / DIRECTORY
        target.mkdir(exist_ok=True)
        (target / self.FILE).write_text(json.dumps({"unigrams": self.unigrams, "bigrams": self.bigrams}, ensure_ascii=False))

    @classmethod
    def load(cls, directory: Path) -> AccentVocabulary:
        data = json.loads((Path(directory) / DIRECTORY / cls.FILE).read_text())
        return cls(data["unigrams"], data["bigrams"])


class LexicalIndex:
    """BM25 over analysed passages in tantivy (the Rust engine behind Quickwit), answering with the
    passages' int64 ids. tantivy receives this module's own terms, joined by spaces and split by a
    whitespace tokenizer, so the Vietnamese analysis is unchanged; it brings segments, deletes,
    atomic commits and block-max WAND top-k. Its BM25 is Lucene's (k1 1.2, b 0.75, the values used
    here before): on ViQuAD dev it ranked within .002 MRR@10 of bm25s, with 97% of the top ten alike
    (its scores are bm25s's times k1 + 1, which min-max fusion does not see)."""

    TERMS, ID, TOKENIZER = "terms", "int_id", "semsearch_terms"
    WRITER_HEAP = 256 * 1024 * 1024

    def __init__(self, index):
        # a published generation never changes: no file watcher thread reloading it on commits
        index.config_reader(reload_policy="Manual")
        self.index = index
        self.schema = index.schema
        self.searcher = index.searcher()

    @classmethod
    def _schema(cls):
        import tantivy

        builder = tantivy.SchemaBuilder()
        # term frequencies are all BM25 needs; positions would double the postings
        builder.add_text_field(cls.TERMS, stored=False, tokenizer_name=cls.TOKENIZER, index_option="freq")
        builder.add_integer_field(cls.ID, stored=False, indexed=True, fast=True)
        return builder.build()

    @classmethod
    def _with_analyzer(cls, index):
        import tantivy

        index.register_tokenizer(cls.TOKENIZER, tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).build())
        return index

    @classmethod
    def build(cls, texts: Sequence[str], ids: np.ndarray, directory: Path, progress: bool = False) -> LexicalIndex:
        import tantivy
        from tqdm import tqdm

        target = Path(directory) / DIRECTORY
        target.mkdir(exist_ok=True)
        index = cls._with_analyzer(tantivy.Index(cls._schema(), path=str(target)))
        writer = index.writer(heap_size=cls.WRITER_HEAP)
        for text, id_ in tqdm(zip(texts, ids), total=len(texts), desc="lexical index", unit="passage", disable=not progress):
            writer.add_document(tantivy.Document(**{cls.TERMS: " ".join(analyze(text)), cls.ID: int(id_)}))
        writer.commit()
        writer.wait_merging_threads()
        index.reload()
        return cls(index)

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of up to k passages sharing terms with `query`, best first."""
        import tantivy

        terms = analyze(query)
        if not terms:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        should = [(tantivy.Occur.Should, tantivy.Query.term_query(self.schema, self.TERMS, term)) for term in terms]
        hits = self.searcher.search(tantivy.Query.boolean_query(should), k, count=False).hits
        ids = self.searcher.fast_field_values(self.ID, [address for _, address in hits])
        return np.array([score for score, _ in hits], np.float32), np.array(ids, np.int64)

    def ids(self) -> np.ndarray:
        """Every passage id in the index."""
        import tantivy

        hits = self.searcher.search(tantivy.Query.all_query(), max(len(self), 1), count=False).hits
        return np.array(self.searcher.fast_field_values(self.ID, [address for _, address in hits]), np.int64)

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        import tantivy

        return cls(cls._with_analyzer(tantivy.Index.open(str(Path(directory) / DIRECTORY))))

    def describe(self) -> dict:
        return {"engine": "tantivy", "k1": K1, "b": B, "analyzer": "syllables + unaccented + unaccented bigrams"}

    def __len__(self) -> int:
        return int(self.searcher.num_docs)
