"""``hangar search QUERY``: find GGUF and MLX models on the Hugging Face Hub."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from core.errors import UsageError
from core.hub.client import FormatFilter, HubClient, ModelSummary, SearchQuery, SearchSort
from ui.cli import emit_json

if TYPE_CHECKING:
    from core.app import AppContext


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", nargs="?", default="", help="words in the model's name")
    parser.add_argument(
        "--format",
        choices=[f.value for f in FormatFilter if f != FormatFilter.ANY],
        help="only models in this format (safetensors: full weights to fine-tune)",
    )
    parser.add_argument("--sort", choices=[s.value for s in SearchSort], default="downloads")
    parser.add_argument("--limit", type=int, default=20, help="at most this many results (default 20)")
    parser.add_argument("--task", default="text-generation", help="pipeline tag ('any' for every task)")
    parser.add_argument("--min-params", type=float, metavar="B", help="at least this many billion parameters")
    parser.add_argument("--max-params", type=float, metavar="B", help="at most this many billion parameters")


def run(app: AppContext, args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= 1000:
        raise UsageError("--limit must be between 1 and 1000.")
    query = SearchQuery(
        text=args.query,
        format=FormatFilter(args.format) if args.format else FormatFilter.ANY,
        sort=SearchSort(args.sort),
        task=None if args.task == "any" else args.task,
        min_params_b=args.min_params,
        max_params_b=args.max_params,
        limit=min(args.limit, 100),
    )
    client = HubClient(app.secrets.get_token)
    results: list[ModelSummary] = []
    page = client.search(query)
    results.extend(page.results)
    while page.next_url and len(results) < args.limit:
        page = client.search(query, page.next_url)
        results.extend(page.results)
    results = results[: args.limit]
    if args.json:
        emit_json([_as_json(r) for r in results])
        return 0
    if not results:
        print("No models found.")
        return 0
    for r in results:
        updated = r.updated.strftime("%Y-%m-%d") if r.updated else "          "
        size = f"{r.parameters / 1e9:6.1f}B" if r.parameters else "      ?"
        gated = "  gated" if r.gated else ""
        formats = ",".join(r.formats) or "-"
        print(f"{r.repo_id:<50} {r.downloads:>10,} ↓ {r.likes:>6,} ♥  {updated}  {size}  {formats}{gated}")
    return 0


def _as_json(r: ModelSummary) -> dict[str, object]:
    return {
        "repo_id": r.repo_id,
        "author": r.author,
        "downloads": r.downloads,
        "likes": r.likes,
        "updated": r.updated.isoformat() if r.updated else None,
        "tags": list(r.tags),
        "gated": r.gated,
        "parameters": r.parameters,
        "formats": list(r.formats),
    }
