"""Scanning a folder of 500 GGUF files whose headers carry a realistic 256k-token vocabulary.

    python bench/library_scan.py [--files 500] [--vocab 256000] [--keep DIR]

Each file is a real GGUF (llama architecture, a SentencePiece-style vocabulary of ``--vocab`` tokens with scores
and token types, a chat template) followed by ``--tensor-mb`` of tensor data, left as a sparse hole so 500 files
fit on any disk. The benchmark times a cold ``Library.rescan`` over the folder (every header read), then a warm
one (nothing changed, nothing read). It counts the bytes read (``read()`` calls from ``/proc/self/io`` plus the
header windows the reader maps) against the files' sizes, to show only headers are read. The baseline, measured
in the same run, is the least any scanner must do: reading each file's header bytes once, without parsing.

Target: the cold scan finishes in under 5 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_STRING, _ARRAY, _U32, _I32, _F32 = 8, 9, 4, 5, 6


def _str(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _kv(key: str, vtype: int, payload: bytes) -> bytes:
    return _str(key) + struct.pack("<I", vtype) + payload


def _vocabulary_kvs(n_vocab: int) -> bytes:
    """tokens / scores / token_type arrays shaped like a 256k SentencePiece vocabulary (Gemma-sized)."""
    pieces = [b"<pad>", b"<eos>", b"<bos>", b"<unk>"] + [f"<0x{i:02X}>".encode() for i in range(256)]
    stems = ["\u2581the", "ing", "\u2581model", "tion", "\u2581local", "er", "\u2581\u4e2d\u6587", "\u00e9s"]
    i = 0
    while len(pieces) < n_vocab:
        pieces.append(f"{stems[i % len(stems)]}{i}".encode())
        i += 1
    tokens = b"".join(struct.pack("<Q", len(p)) + p for p in pieces)
    scores = struct.pack(f"<{n_vocab}f", *(-float(k) for k in range(n_vocab)))
    types = struct.pack(f"<{n_vocab}i", *([3] * 4 + [6] * 256 + [1] * (n_vocab - 260)))
    return (
        _kv("tokenizer.ggml.model", _STRING, _str("llama"))
        + _kv("tokenizer.ggml.tokens", _ARRAY, struct.pack("<IQ", _STRING, n_vocab) + tokens)
        + _kv("tokenizer.ggml.scores", _ARRAY, struct.pack("<IQ", _F32, n_vocab) + scores)
        + _kv("tokenizer.ggml.token_type", _ARRAY, struct.pack("<IQ", _I32, n_vocab) + types)
    )


def write_zoo(folder: Path, count: int, n_vocab: int, tensor_mb: int) -> tuple[int, int]:
    """Write ``count`` distinct GGUF files; returns (their total size, the size of one header)."""
    vocab = _vocabulary_kvs(n_vocab)
    n_embd = 8
    tail_kvs = _kv("tokenizer.chat_template", _STRING, _str("{% for m in messages %}{{ m.content }}{% endfor %}"))
    big = max(1, tensor_mb * 1024 * 1024 // (4 * n_embd))
    tensors = [("token_embd.weight", (n_embd, 16)), ("output_norm.weight", (n_embd,)), ("output.weight", (n_embd, big))]
    tensor_info = b""
    offset = 0
    for name, shape in tensors:
        tensor_info += _str(name) + struct.pack("<I", len(shape)) + struct.pack(f"<{len(shape)}Q", *shape)
        tensor_info += struct.pack("<IQ", 0, offset)  # F32
        size = 4
        for d in shape:
            size *= d
        offset += -(-size // 32) * 32
    data_size = offset
    total = 0
    header_size = 0
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        head_kvs = (
            _kv("general.architecture", _STRING, _str("llama"))
            + _kv("general.name", _STRING, _str(f"zoo-model-{index:04d}"))
            + _kv("general.license", _STRING, _str("apache-2.0"))
            + _kv("general.file_type", _U32, struct.pack("<I", 0))
            + _kv("llama.context_length", _U32, struct.pack("<I", 131072))
            + _kv("llama.embedding_length", _U32, struct.pack("<I", n_embd))
            + _kv("llama.block_count", _U32, struct.pack("<I", 1))
            + _kv("llama.attention.head_count", _U32, struct.pack("<I", 1))
        )
        header = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), 13) + head_kvs + vocab + tail_kvs + tensor_info
        header += b"\0" * (-len(header) % 32)
        path = folder / f"zoo-model-{index:04d}-F32.gguf"
        with path.open("wb") as handle:
            handle.write(header + struct.pack("<f", float(index)))  # distinct content per file
            handle.truncate(len(header) + data_size)  # the tensor data: a hole, read back as zeros
        total += path.stat().st_size
        header_size = len(header)
    return total, header_size


def _rchar() -> int:
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--vocab", type=int, default=256_000)
    parser.add_argument("--tensor-mb", type=int, default=64, help="tensor data per file (sparse), default 64")
    parser.add_argument("--keep", type=Path, help="write the zoo here and keep it (default: a temporary folder)")
    args = parser.parse_args()

    from core.gguf import fastskip
    from core.library.scan import ScanRoots
    from core.library.service import Library
    from core.paths import AppPaths
    from core.settings import SettingsService
    from core.store import Store

    root = args.keep or Path(tempfile.mkdtemp(prefix="hangar-bench-scan-"))
    try:
        zoo = root / "zoo"
        started = time.perf_counter()
        total_bytes, header_size = write_zoo(zoo, args.files, args.vocab, args.tensor_mb)
        print(
            f"wrote {args.files} GGUF files in {time.perf_counter() - started:.1f} s: "
            f"{header_size / 1e6:.2f} MB of header each, {total_bytes / 1e9:.1f} GB in all (tensor data sparse)"
        )

        # Baseline: reading each header's bytes once, no parsing (the least any scanner must do).
        started = time.perf_counter()
        for path in sorted(zoo.iterdir()):
            with path.open("rb") as handle:
                handle.read(header_size)
        baseline = time.perf_counter() - started

        mapped_bytes = 0
        plain_skip = fastskip.skip_strings

        def counting_skip(data, count, max_len):  # type: ignore[no-untyped-def]
            nonlocal mapped_bytes
            if isinstance(data, memoryview):
                mapped_bytes += len(data)
            return plain_skip(data, count, max_len)

        fastskip.skip_strings = counting_skip

        paths = AppPaths.under(root / "data").ensure()
        store = Store(paths.database_file)
        library = Library(store, paths, SettingsService.open(paths.settings_file))
        roots = ScanRoots(home=root / "empty-home", hf_cache=None, extra=(zoo,))

        read_before = _rchar()
        started, cpu_started = time.perf_counter(), time.process_time()
        cold = library.rescan(roots)
        cold_s, cold_cpu = time.perf_counter() - started, time.process_time() - cpu_started
        read_bytes = _rchar() - read_before + mapped_bytes

        started = time.perf_counter()
        warm = library.rescan(roots)
        warm_s = time.perf_counter() - started

        entries = library.list()
        sample = entries[0].metadata
        store.close()
        print(f"baseline: reading every header once (no parsing) took {baseline:.2f} s")
        print(
            f"cold scan: {cold_s:.2f} s ({cold_cpu:.2f} s of CPU) for {cold.found} models "
            f"({cold.headers_read} headers read), "
            f"{cold_s / max(baseline, 1e-9):.2f}x the baseline; {cold_s / max(cold.found, 1) * 1000:.1f} ms per file"
        )
        if read_bytes >= 0:
            print(
                f"bytes read during the cold scan: {read_bytes / 1e6:.1f} MB of {total_bytes / 1e6:.1f} MB on disk "
                f"({read_bytes / total_bytes:.1%}); the headers are {args.files * header_size / 1e6:.1f} MB"
            )
        print(f"warm rescan (nothing changed): {warm_s:.2f} s, {warm.headers_read} headers read")
        print(
            f"sample entry: {entries[0].name} arch={sample.architecture} ctx={sample.context_length} "
            f"chat_template={sample.has_chat_template} params={sample.parameter_count}"
        )
        ok = cold.found == args.files and cold_s < 5.0 and warm.headers_read == 0
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"machine: {os.cpu_count()} CPUs, load average {load:.1f} during the run")
        print("PASS" if ok else "FAIL", f"(target: {args.files} models in under 5 s)")
        return 0 if ok else 1
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
