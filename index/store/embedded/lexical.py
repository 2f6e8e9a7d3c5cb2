"""Passages -> BM25 indexes in tantivy over the analyser's terms, one per analysis of the
passages' languages (index/store/analysis.py); queries -> lexical matches."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.store.analysis import CANDIDATES, analyze, analyzer_of, query_analysis, with_documents
from index.store.filters import Filters

DIRECTORY = "lexical"
# the documents' index, inside each analysis's passages' index (so the lexical files are
# checked, rebuilt and backed up as one part)
DOCUMENTS = "documents"
# A term in more documents than this is looked up at the candidates' documents alone
# (LexicalIndex._document_scores). Below it, reading the term's postings whole costs about what
# building its query level does (~50 us); an index of ViQuAD's size keeps one disjunction.
CHAINED_DF = 10_000


@dataclass(frozen=True)
class LexicalEntry:
    """What the lexical index holds of a passage, or of a whole document: its analysed text and
    the fields filters use. `int_id` is the passage's, or the document's first passage's, which
    is also every passage's `document_key`."""

    int_id: int
    document_key: int
    text: str
    language: str
    doc_id: str
    source: str | None
    day: int | None


class LexicalIndex:
    """BM25 over analysed passages in tantivy (the Rust engine behind Quickwit), answering with the
    passages' int64 ids. tantivy receives this module's own terms, joined by spaces and split by a
    whitespace tokenizer, so the analysis is the project's own; it brings segments, deletes,
    atomic commits and keyword and integer fields for filters (not block-max WAND: the binding's
    search wraps the top-k collector in a MultiCollector, which tantivy never prunes). Its BM25 is
    Lucene's (k1 1.2, b 0.75, the values used here before): on ViQuAD dev it ranked within .002
    MRR@10 of bm25s, with 97% of the top ten alike (its scores are bm25s's times k1 + 1, a
    scale the fusion does not see: it divides each leg by its own spread).

    Each analysis (Vietnamese, English, ...) has an index of its own, `lexical/<analysis>/`, so
    its BM25 counts only its own passages: in one index, ViQuAD's questions lost .018 lexical
    MRR@10 when SciFact's English abstracts were added beside ViQuAD's passages (their lengths
    and numbers moved every term's weight). A query is read in one analysis and searched there.

    A passage scores its own BM25 plus its whole document's (an index of documents beside each,
    `documents/`): a document split into passages keeps the evidence spread over them
    (docs/quality.md).

    One process writes (`apply`, under the index's writer lock); readers `reload` to see its
    commits."""

    TERMS, ID, DOC, SOURCE, DAY, LANGUAGE = "terms", "int_id", "doc_id", "source", "day", "language"
    DOCUMENT_KEY = "document_key"
    TOKENIZER = "semsearch_terms"
    WRITER_HEAP = 256 * 1024 * 1024

    def __init__(self, root: Path):
        self.root = Path(root)
        self.parts: dict[str, _Analysis] = {}
        self.reload()

    def reload(self) -> None:
        """See the writer's latest commits, and the analyses it has added since."""
        for part in self.parts.values():
            part.reload()
        for directory in sorted(self.root.iterdir()):
            if directory.name not in self.parts and (directory / DOCUMENTS / "meta.json").is_file():
                self.parts[directory.name] = _Analysis(self._open(directory), self._open(directory / DOCUMENTS))
        # the languages queries are read in (a language whose passages were all deleted stays
        # until tantivy merges them away: a question may then be read in it and match nothing)
        self.languages = frozenset(language for part in self.parts.values() for language in part.languages())

    @classmethod
    def _schema(cls):
        import tantivy

        builder = tantivy.SchemaBuilder()
        # term frequencies are all BM25 needs; positions would double the postings
        builder.add_text_field(cls.TERMS, stored=False, tokenizer_name=cls.TOKENIZER, index_option="freq")
        builder.add_integer_field(cls.ID, stored=False, indexed=True, fast=True)
        builder.add_integer_field(cls.DOCUMENT_KEY, stored=False, indexed=False, fast=True)
        builder.add_text_field(cls.DOC, stored=False, tokenizer_name="raw", index_option="basic")
        builder.add_text_field(cls.SOURCE, stored=False, tokenizer_name="raw", index_option="basic")
        builder.add_integer_field(cls.DAY, stored=False, indexed=True, fast=True)
        builder.add_text_field(cls.LANGUAGE, stored=False, tokenizer_name="raw", index_option="basic")
        return builder.build()

    @classmethod
    def _open(cls, target: Path, create: bool = False):
        import tantivy

        if create:
            target.mkdir()
            index = tantivy.Index(cls._schema(), path=str(target))
        else:
            index = tantivy.Index.open(str(target))
        index.register_tokenizer(cls.TOKENIZER, tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).build())
        # readers reload when the change log says so, not from a file watcher thread of their own
        index.config_reader(reload_policy="Manual")
        return index

    @classmethod
    def create(cls, directory: Path, name: str = DIRECTORY) -> None:
        (Path(directory) / name).mkdir(exist_ok=True)

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        return cls(Path(directory) / DIRECTORY)

    @classmethod
    def apply(
        cls,
        directory: Path,
        removed: Iterable[int],
        passages: Iterable[LexicalEntry],
        documents: Iterable[LexicalEntry] = (),
        progress: bool = False,
        threads: int | None = None,
        name: str = DIRECTORY,
    ) -> None:
        """Delete `removed` and (re-)add `passages` and `documents`, each to the index of its
        language's analysis (made when first needed), as one tantivy commit of each index
        changed, on `threads` indexing threads (tantivy's choice when None). Deleting by id first
        makes replaying the same changes harmless (a document's entry goes with its first
        passage). Returns once merges are done, so every file the commits leave is final."""
        root = Path(directory) / name
        removed = list(removed)
        by_analysis: dict[str, tuple[list[LexicalEntry], list[LexicalEntry]]] = {
            path.name: ([], []) for path in root.iterdir() if path.is_dir()
        }
        for kind, entries in enumerate((passages, documents)):
            for entry in entries:
                by_analysis.setdefault(analyzer_of(entry.language), ([], []))[kind].append(entry)
        for analysis, (its_passages, its_documents) in sorted(by_analysis.items()):
            if not (removed or its_passages or its_documents):
                continue
            for target, entries, unit in (
                (root / analysis, its_passages, "passage"),
                (root / analysis / DOCUMENTS, its_documents, "document"),
            ):
                # made when first needed; one there without its files is damage, for the open to rebuild
                index = cls._open(target, create=not target.exists())
                cls._commit(index, removed, entries, progress, threads, unit)

    @classmethod
    def _commit(cls, index, removed: list[int], added: list[LexicalEntry], progress: bool, threads, unit: str) -> None:
        import tantivy
        from tqdm import tqdm

        documents = []
        # analysed before tantivy's indexing threads start: with one thread asked for, the
        # writer then takes one core, not this loop's plus tantivy's
        for entry in tqdm(added, desc=f"lexical index ({unit}s)", unit=unit, disable=not progress or not added):
            fields = {
                cls.TERMS: " ".join(analyze(entry.text, entry.language)),
                cls.ID: entry.int_id,
                cls.DOCUMENT_KEY: entry.document_key,
                cls.DOC: entry.doc_id,
                cls.LANGUAGE: entry.language,
            }
            if entry.source is not None:
                fields[cls.SOURCE] = entry.source
            if entry.day is not None:
                fields[cls.DAY] = entry.day
            documents.append(tantivy.Document(**fields))
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

    def search(self, query: str, k: int, filters: Filters | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of up to k passages sharing terms with `query` and passing `filters`,
        best first: each passage's BM25 plus its document's, over the CANDIDATES (or k) passages
        whose own BM25 is best, in the analysis the query is read in."""
        import tantivy

        analysis = query_analysis(query, self.languages)
        part = self.parts.get(analysis)
        terms = self.query_terms(query, analysis)
        if part is None or not terms:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        schema = part.passages.schema
        should = [(tantivy.Occur.Should, tantivy.Query.term_query(schema, self.TERMS, term)) for term in terms]
        text = tantivy.Query.boolean_query(should)
        if filters:
            # filters only narrow: they add nothing to the score
            must = [(tantivy.Occur.Must, text)] + [
                (tantivy.Occur.Must, tantivy.Query.const_score_query(clause, 0.0))
                for clause in self._filter_clauses(schema, filters)
            ]
            text = tantivy.Query.boolean_query(must)
        searcher = part.searcher
        hits = _best(searcher, text, max(k, CANDIDATES))
        addresses = [address for _, address in hits]
        ids = searcher.fast_field_values(self.ID, addresses)
        keys = searcher.fast_field_values(self.DOCUMENT_KEY, addresses)
        of_document = self._document_scores(part, terms, set(keys))
        return with_documents([score for score, _ in hits], ids, keys, of_document, k)

    def _document_scores(self, part: _Analysis, terms: list[str], keys: set[int]) -> dict[int, float]:
        """The BM25 of each of the documents with `keys` (their first passages' ids) that match.

        A common term's postings are read only at those documents. tantivy merges the postings
        of a disjunction window by window (4,096 documents each), so beside a hundred documents
        spread over a million it read every common term's postings almost whole: 15 ms at a
        million documents. Each term in more than CHAINED_DF documents gets a query level of its
        own instead (must: the levels so far; should: the term), and tantivy seeks a lone
        optional term through its skip lists to the required documents: 5 ms. The rarer terms
        stay one disjunction, whose windows hold few postings (a level costs ~50 us to build, as
        the binding copies the levels below it)."""
        import tantivy

        if not keys:
            return {}
        schema = part.documents.schema
        searcher = part.documents_searcher

        def weighted(term: str, count: int):
            query = tantivy.Query.term_query(schema, self.TERMS, term)
            # a term the question holds twice counts twice, as in the passages' disjunction
            return tantivy.Query.boost_query(query, float(count)) if count > 1 else query

        counts = Counter(terms)
        common = {term for term in counts if searcher.doc_freq(self.TERMS, term) > CHAINED_DF}
        # one term query per key: term_set_query walks the id field's whole dictionary (2 ms at a million)
        ids = [(tantivy.Occur.Should, tantivy.Query.term_query(schema, self.ID, key)) for key in sorted(keys)]
        these = tantivy.Query.const_score_query(tantivy.Query.boolean_query(ids), 0.0)
        query = tantivy.Query.boolean_query(
            [(tantivy.Occur.Must, these)]
            + [(tantivy.Occur.Should, weighted(term, n)) for term, n in counts.items() if term not in common]
        )
        for term in common:
            query = tantivy.Query.boolean_query(
                [(tantivy.Occur.Must, query), (tantivy.Occur.Should, weighted(term, counts[term]))]
            )
        hits = searcher.search(query, len(keys), count=False).hits
        found = searcher.fast_field_values(self.ID, [address for _, address in hits])
        return {key: score for key, (score, _) in zip(found, hits) if score > 0}

    def query_terms(self, query: str, analysis: str) -> list[str]:
        """Every term of the query in `analysis`: dropping common ones would make tantivy several
        times faster at a million passages and cost .006-.06 MRR@10 (bench/lexical_pruning.py)."""
        return analyze(query, analysis)

    def _filter_clauses(self, schema, filters: Filters) -> list:
        import tantivy

        clauses = []
        if filters.sources:
            clauses.append(tantivy.Query.term_set_query(schema, self.SOURCE, list(filters.sources)))
        if filters.doc_ids:
            clauses.append(tantivy.Query.term_set_query(schema, self.DOC, list(filters.doc_ids)))
        if (days := filters.day_range()) is not None:
            clauses.append(tantivy.Query.range_query(schema, self.DAY, tantivy.FieldType.Integer, days[0], days[1]))
        return clauses

    def ids(self) -> np.ndarray:
        """Every passage id in the index."""
        import tantivy

        found = []
        for part in self.parts.values():
            searcher = part.searcher
            hits = searcher.search(tantivy.Query.all_query(), max(int(searcher.num_docs), 1), count=False).hits
            found += searcher.fast_field_values(self.ID, [address for _, address in hits])
        return np.array(found, np.int64)

    def __len__(self) -> int:
        return sum(int(part.searcher.num_docs) for part in self.parts.values())


class _Analysis:
    """The passages' and the documents' tantivy indexes of one analysis, and their searchers."""

    def __init__(self, passages, documents):
        self.passages, self.documents = passages, documents
        self.searcher, self.documents_searcher = passages.searcher(), documents.searcher()

    def reload(self) -> None:
        for index in (self.passages, self.documents):
            index.reload()
        self.searcher, self.documents_searcher = self.passages.searcher(), self.documents.searcher()

    def languages(self) -> list[str]:
        return [language for language, _ in self.searcher.terms_with_prefix(LexicalIndex.LANGUAGE, "")]


def _best(searcher, query, k: int) -> list[tuple[float, object]]:
    """The k best hits and every hit tied with the k-th: which of those tied tantivy cuts off
    depends on how its segments happen to lie, and their documents' scores tell them apart."""
    limit = k + 1
    while True:
        hits = searcher.search(query, limit, count=False).hits
        if len(hits) < limit:  # every match
            return hits
        if hits[-1][0] < hits[k - 1][0]:
            return [hit for hit in hits if hit[0] >= hits[k - 1][0]]
        limit *= 2
