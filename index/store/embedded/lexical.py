"""Passages -> a BM25 index in tantivy over the analyser's terms (index/store/analysis.py); queries
-> lexical matches."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.store.analysis import analyze
from index.store.filters import Filters

DIRECTORY = "lexical"


@dataclass(frozen=True)
class LexicalEntry:
    """What the lexical index holds of a passage: its analysed text and the fields filters use."""

    int_id: int
    text: str
    doc_id: str
    source: str | None
    day: int | None


class LexicalIndex:
    """BM25 over analysed passages in tantivy (the Rust engine behind Quickwit), answering with the
    passages' int64 ids. tantivy receives this module's own terms, joined by spaces and split by a
    whitespace tokenizer, so the Vietnamese analysis is unchanged; it brings segments, deletes,
    atomic commits and keyword and integer fields for filters (not block-max WAND: the binding's
    search wraps the top-k collector in a MultiCollector, which tantivy never prunes). Its BM25 is
    Lucene's (k1 1.2, b 0.75, the values used here before): on ViQuAD dev it ranked within .002
    MRR@10 of bm25s, with 97% of the top ten alike (its scores are bm25s's times k1 + 1, a
    scale the fusion does not see: it divides each leg by its own spread).

    One process writes (`apply`, under the index's writer lock); readers `reload` to see its
    commits."""

    TERMS, ID, DOC, SOURCE, DAY = "terms", "int_id", "doc_id", "source", "day"
    TOKENIZER = "semsearch_terms"
    WRITER_HEAP = 256 * 1024 * 1024

    def __init__(self, index):
        # readers reload when the change log says so, not from a file watcher thread of their own
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
        builder.add_text_field(cls.DOC, stored=False, tokenizer_name="raw", index_option="basic")
        builder.add_text_field(cls.SOURCE, stored=False, tokenizer_name="raw", index_option="basic")
        builder.add_integer_field(cls.DAY, stored=False, indexed=True, fast=True)
        return builder.build()

    @classmethod
    def _open(cls, directory: Path, create: bool = False, name: str = DIRECTORY):
        import tantivy

        target = Path(directory) / name
        if create:
            target.mkdir(exist_ok=True)
            index = tantivy.Index(cls._schema(), path=str(target))
        else:
            index = tantivy.Index.open(str(target))
        index.register_tokenizer(cls.TOKENIZER, tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).build())
        return index

    @classmethod
    def create(cls, directory: Path, name: str = DIRECTORY) -> None:
        cls._open(directory, create=True, name=name)

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        return cls(cls._open(directory))

    @classmethod
    def apply(
        cls,
        directory: Path,
        removed: Iterable[int],
        added: Iterable[LexicalEntry],
        progress: bool = False,
        threads: int | None = None,
        name: str = DIRECTORY,
    ) -> None:
        """Delete `removed` and (re-)add `added`, as one tantivy commit on `threads` indexing
        threads (tantivy's choice when None). Deleting by id first makes replaying the same
        changes harmless. Returns once merges are done, so every file the commit leaves is final."""
        import tantivy
        from tqdm import tqdm

        added = list(added)
        documents = []
        # analysed before tantivy's indexing threads start: with one thread asked for, the
        # writer then takes one core, not this loop's plus tantivy's
        for entry in tqdm(added, desc="lexical index", unit="passage", disable=not progress):
            fields = {cls.TERMS: " ".join(analyze(entry.text)), cls.ID: entry.int_id, cls.DOC: entry.doc_id}
            if entry.source is not None:
                fields[cls.SOURCE] = entry.source
            if entry.day is not None:
                fields[cls.DAY] = entry.day
            documents.append(tantivy.Document(**fields))
        index = cls._open(directory, name=name)
        writer = index.writer(heap_size=cls.WRITER_HEAP, num_threads=threads or 0)
        try:
            for int_id in [*removed, *(entry.int_id for entry in added)]:
                writer.delete_documents_by_term(cls.ID, int(int_id))
            for document in documents:
                writer.add_document(document)
            writer.commit()
        except BaseException:
            writer.rollback()
            raise
        finally:
            writer.wait_merging_threads()

    def reload(self) -> None:
        self.index.reload()
        self.searcher = self.index.searcher()

    def search(self, query: str, k: int, filters: Filters | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of up to k passages sharing terms with `query` and passing `filters`, best first."""
        import tantivy

        terms = self.query_terms(query)
        if not terms:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        should = [(tantivy.Occur.Should, tantivy.Query.term_query(self.schema, self.TERMS, term)) for term in terms]
        text = tantivy.Query.boolean_query(should)
        if filters:
            # filters only narrow: they add nothing to the score
            must = [(tantivy.Occur.Must, text)] + [
                (tantivy.Occur.Must, tantivy.Query.const_score_query(clause, 0.0))
                for clause in self._filter_clauses(filters)
            ]
            text = tantivy.Query.boolean_query(must)
        searcher = self.searcher
        hits = searcher.search(text, k, count=False).hits
        ids = searcher.fast_field_values(self.ID, [address for _, address in hits])
        return np.array([score for score, _ in hits], np.float32), np.array(ids, np.int64)

    def query_terms(self, query: str) -> list[str]:
        """Every term of the query: dropping common ones would make tantivy several times faster
        at a million passages and cost .006-.06 MRR@10 (bench/lexical_pruning.py)."""
        return analyze(query)

    def _filter_clauses(self, filters: Filters) -> list:
        import tantivy

        clauses = []
        if filters.sources:
            clauses.append(tantivy.Query.term_set_query(self.schema, self.SOURCE, list(filters.sources)))
        if filters.doc_ids:
            clauses.append(tantivy.Query.term_set_query(self.schema, self.DOC, list(filters.doc_ids)))
        if (days := filters.day_range()) is not None:
            clauses.append(
                tantivy.Query.range_query(self.schema, self.DAY, tantivy.FieldType.Integer, days[0], days[1])
            )
        return clauses

    def ids(self) -> np.ndarray:
        """Every passage id in the index."""
        import tantivy

        searcher = self.searcher
        hits = searcher.search(tantivy.Query.all_query(), max(int(searcher.num_docs), 1), count=False).hits
        return np.array(searcher.fast_field_values(self.ID, [address for _, address in hits]), np.int64)

    def __len__(self) -> int:
        return int(self.searcher.num_docs)
