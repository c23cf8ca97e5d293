"""Document index: index 1,000 files / ~50 MB of generated text (time, size of the index), then query latency p50/p95
over 200 queries, and recall@5 on the labelled set that ships with the tests (tests/support/docs_corpus).

    python bench/docs_index.py [--files 1000] [--mb 50] [--embed-model GGUF]

With ``--embed-model``, passages are embedded by llama.cpp and queries ranked by words and meaning together.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VOCABULARY: tuple[list[str], list[float]] = ([], [])
sys.path.insert(0, str(ROOT))


def vocabulary(rng: random.Random, size: int = 30_000) -> tuple[list[str], list[float]]:
    """Pseudo-words with Zipf frequencies (rank ** -1.07), as word counts in real text follow."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = {"".join(rng.choice(letters) for _ in range(rng.randint(3, 10))) for _ in range(size * 2)}
    ordered = sorted(words)[:size]
    rng.shuffle(ordered)
    cumulative, total = [], 0.0
    for rank in range(1, len(ordered) + 1):
        total += 1.0 / (rank**1.07)
        cumulative.append(total)
    return ordered, cumulative


def generate(folder: Path, files: int, total_mb: float, rng: random.Random) -> int:
    words, weights = VOCABULARY
    per_file = int(total_mb * 1024 * 1024 / files)
    size = 0
    for i in range(files):
        lines = []
        length = 0
        while length < per_file:
            line = " ".join(rng.choices(words, cum_weights=weights, k=rng.randint(8, 16))) + "."
            lines.append(line)
            length += len(line) + 1
        text = f"# Note {i}\n" + "\n".join(lines)
        path = folder / f"{i // 100:02d}" / f"note-{i:04d}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        size += len(text)
    return size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--mb", type=float, default=50)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--embed-model", type=Path)
    args = parser.parse_args()

    from core.docs.index import DocumentIndex
    from core.store import Store

    rng = random.Random(7)
    global VOCABULARY
    VOCABULARY = vocabulary(rng)
    words = VOCABULARY[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        size = generate(folder, args.files, args.mb, rng)
        store = Store(Path(tmp) / "index.sqlite")
        index = DocumentIndex(store)
        embedder = None
        if args.embed_model:
            from backends.worker import serve
            from core.docs.embedding import EngineEmbedder
            from core.engine.host import EngineHost

            embedder = EngineEmbedder(lambda name: EngineHost(serve, name=name), args.embed_model)
        started = time.perf_counter()
        report = index.add("bench", [folder], embedder=embedder)
        index_seconds = time.perf_counter() - started
        store.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db_size = (Path(tmp) / "index.sqlite").stat().st_size
        latencies = []
        for _ in range(args.queries):
            # a question's content words: mostly of middling frequency, as real queries are
            query = " ".join(words[rng.randint(50, 5000)] for _ in range(rng.randint(2, 5)))
            t0 = time.perf_counter()
            index.search("bench", query, limit=5, embedder=embedder)
            latencies.append((time.perf_counter() - t0) * 1000)
        latencies.sort()
        p50 = statistics.median(latencies)
        p95 = latencies[int(len(latencies) * 0.95) - 1]

        corpus = ROOT / "tests" / "support" / "docs_corpus"
        labelled = Path(tmp) / "labelled"
        labelled.mkdir()
        for file in corpus.iterdir():
            if file.name != "queries.json":
                (labelled / file.name).write_bytes(file.read_bytes())
        index.add("labelled", [labelled], embedder=embedder)
        queries = json.loads((corpus / "queries.json").read_text())
        hits = sum(
            any(Path(h.path).name == expected for h in index.search("labelled", q, limit=5, embedder=embedder).hits)
            for q, expected in queries
        )
        retrieval = "full text + vectors" if embedder else "full text"
        print(
            f"indexed {report.added} files, {size / 2**20:.1f} MB, {report.chunks} passages in {index_seconds:.1f} s "
            f"({size / 2**20 / index_seconds:.1f} MB/s); index {db_size / 2**20:.1f} MB ({retrieval})"
        )
        print(f"query latency over {args.queries} queries: p50 {p50:.1f} ms, p95 {p95:.1f} ms (target p95 < 100 ms)")
        print(f"recall@5 on the labelled set: {hits}/{len(queries)} = {hits / len(queries):.2f}")
        if embedder:
            embedder.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
