"""``hangar docs add|ls|rm|search``: collections of your documents for chat (``hangar chat MODEL --docs NAME``).

Files are read as text, Markdown, source code, HTML or PDF; re-indexing reads changed files only. With an embedding
model (``--embed-model`` a GGUF embedding model, e.g. from Discover) search ranks by meaning and words together;
without one, by words (full text)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import UsageError
from ui.cli import emit_json

if TYPE_CHECKING:
    from core.app import AppContext


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    add = actions.add_parser("add", help="add files or folders to a collection and index them")
    add.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    add.add_argument("--collection", required=True, metavar="NAME")
    add.add_argument("--embed-model", type=Path, metavar="GGUF", help="an embedding model, to search by meaning too")
    ls = actions.add_parser("ls", help="the collections with their files and chunks")
    rm = actions.add_parser("rm", help="forget a collection (your files stay where they are)")
    rm.add_argument("name", metavar="NAME")
    search = actions.add_parser("search", help="the passages that best match a query")
    search.add_argument("query", metavar="QUERY")
    search.add_argument("--collection", required=True, metavar="NAME")
    search.add_argument("--limit", type=int, default=5)
    for sub in (add, ls, rm, search):
        sub.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")


def run(app: AppContext, args: argparse.Namespace) -> int:
    docs = app.docs
    if args.action == "add":
        if args.embed_model is not None and not args.embed_model.is_file():
            raise UsageError(f"No embedding model at {args.embed_model}.")
        progress = None
        if not args.json and sys.stderr.isatty():

            def progress(done: int, total: int, label: str) -> None:
                print(f"\r  {done}/{total} {label[:50]:<50}", end="", file=sys.stderr, flush=True)

        report = docs.add(args.collection, args.paths, embed_model=args.embed_model, progress=progress)
        if args.json:
            emit_json(report.to_json())
            return 0
        print(
            f"\r{report.collection}: {report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
            f"{report.removed} removed; {report.chunks} passages in {report.seconds:.1f} s"
        )
        for path, reason in report.skipped:
            print(f"  skipped {path}: {reason}", file=sys.stderr)
        return 0
    if args.action == "rm":
        docs.index.remove(args.name)
        if args.json:
            emit_json({"removed": args.name})
        else:
            print(f"Removed the collection {args.name} (your files are untouched).")
        return 0
    if args.action == "search":
        result = docs.search(args.collection, args.query, limit=args.limit)
        if args.json:
            emit_json(
                {
                    "collection": args.collection,
                    "query": args.query,
                    "retrieval": result.retrieval,
                    "note": result.note,
                    "results": [h.to_json() for h in result.hits],
                }
            )
            return 0
        if result.note:
            print(f"({result.note})", file=sys.stderr)
        for n, hit in enumerate(result.hits, start=1):
            snippet = " ".join(hit.text.split())[:160]
            print(f"[{n}] {hit.path} ({hit.place})\n    {snippet}")
        if not result.hits:
            print("No passage matches.")
        return 0
    if args.action in (None, "ls"):
        infos = docs.index.collections()
        if args.json:
            emit_json([c.to_json() for c in infos])
        elif not infos:
            print("No collections yet. Add one with `hangar docs add PATH --collection NAME`.")
        for c in infos if not args.json else ():
            model = Path(c.embed_model).name if c.embed_model else "full text only"
            print(f"{c.name:<20} {c.files:>5} files {c.chunks:>6} passages  {model}  ({', '.join(c.roots)})")
        return 0
    raise UsageError(f"Unknown action {args.action!r}; use add, ls, rm or search.")
