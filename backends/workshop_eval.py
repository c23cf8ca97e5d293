"""Perplexity and KL divergence exactly as llama.cpp's ``llama-perplexity`` computes them, and a speed test as
``llama-bench`` runs it, through llama-cpp-python's low-level batch API. Runs in the workshop child process.

Perplexity: the whole text is tokenized with BOS; it is cut into chunks of ``ctx`` tokens; each chunk is decoded
from an empty cache with its first token replaced by BOS; only the second half of every chunk is scored (the
model always has at least ``ctx/2`` tokens of context); ``ppl = exp(mean NLL)``. With a reference model the same
positions give KL(reference || model), the share of positions where both pick the same top token, and the RMS of
the change in the probability of the right token, as ``llama-perplexity --kl-divergence`` reports them.
"""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import DiskFullError, EngineError, UsageError
from core.workshop.types import BenchRequest, BenchResult, EvalRequest, EvalResult, SpeedPoint

logger = logging.getLogger(__name__)

#: ``progress(done, total, message)``; returns True when the parent asked to stop.
Progress = Callable[[int, int, str], bool]


class Stopped(Exception):
    """The parent asked the child to stop between two chunks."""


def _threads(requested: int | None) -> int:
    return requested or max(1, (os.cpu_count() or 2))


def load(path: str, n_ctx: int, n_batch: int, n_ubatch: int, threads: int | None, extra_buffers: bool = True) -> Any:
    import llama_cpp

    from backends.llama import plain_load

    if extra_buffers and os.environ.get("HANGAR_TEST_ENGINE_CRASH") == "workshop":  # the test-only fault switch
        from backends.worker import _TestFault

        _TestFault.crash()
    try:
        with plain_load(use_extra_bufts=extra_buffers):
            return llama_cpp.Llama(
                path,
                n_ctx=n_ctx,
                n_batch=n_batch,
                n_ubatch=n_ubatch,
                n_threads=_threads(threads),
                n_threads_batch=_threads(threads),
                n_gpu_layers=-1,
                verbose=False,
            )
    except ValueError as exc:
        raise EngineError(f"llama.cpp could not load {Path(path).name}: {exc}") from exc


class _Batch:
    """A reusable ``llama_batch`` for one sequence."""

    def __init__(self, capacity: int) -> None:
        import llama_cpp

        self.capacity = capacity
        self.batch = llama_cpp.llama_batch_init(capacity, 0, 1)

    def fill(self, tokens: list[int], first_pos: int, outputs_from: int) -> int:
        """Put ``tokens`` at positions ``first_pos``...; logits for positions >= ``outputs_from``. Returns outputs."""
        b = self.batch
        n_out = 0
        for k, token in enumerate(tokens):
            pos = first_pos + k
            b.token[k] = token
            b.pos[k] = pos
            b.n_seq_id[k] = 1
            b.seq_id[k][0] = 0
            want = pos >= outputs_from
            b.logits[k] = want
            n_out += want
        b.n_tokens = len(tokens)
        return n_out

    def free(self) -> None:
        import llama_cpp

        llama_cpp.llama_batch_free(self.batch)


def _decode(llm: Any, batch: _Batch) -> None:
    import llama_cpp

    rc = llama_cpp.llama_decode(llm._ctx.ctx, batch.batch)
    if rc != 0:
        raise EngineError(f"llama.cpp failed to decode a batch (code {rc}).")


def _clear(llm: Any) -> None:
    import llama_cpp

    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm._ctx.ctx), True)


def _chunk_logits(llm: Any, batch: _Batch, tokens: list[int], ctx: int, bos: int | None) -> Any:
    """Logits (float32, ``ctx - ctx//2`` rows) of one chunk decoded from an empty cache, its first token BOS."""
    import llama_cpp
    import numpy as np

    first = ctx // 2
    chunk = list(tokens)
    if bos is not None:
        chunk[0] = bos
    _clear(llm)
    n_out = batch.fill(chunk, 0, first)
    _decode(llm, batch)
    pointer = llama_cpp.llama_get_logits(llm._ctx.ctx)
    return np.ctypeslib.as_array(pointer, shape=(n_out, llm.n_vocab())).astype(np.float64)


def _log_softmax(logits: Any) -> Any:
    import numpy as np

    top = logits.max(axis=1, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))


def _tokens(llm: Any, text: str) -> list[int]:
    # common_tokenize(ctx, text, add_special=true, parse_special=false), as llama-perplexity does
    return list(llm.tokenize(text.encode("utf-8"), add_bos=True, special=False))


def _bos(llm: Any) -> int | None:
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    return int(llama_cpp.llama_vocab_bos(vocab)) if llama_cpp.llama_vocab_get_add_bos(vocab) else None


def plan_chunks(n_tokens: int, ctx: int, chunks: int | None) -> int:
    """How many chunks llama-perplexity evaluates; refuses a text shorter than two chunks."""
    if ctx < 16:
        raise UsageError(f"A context of {ctx} tokens is too small to measure perplexity; use 16 or more.")
    if n_tokens < 2 * ctx:
        raise UsageError(
            f"The text is {n_tokens} tokens long; perplexity with a context of {ctx} needs at least {2 * ctx}.",
            hint="Use a longer text or a smaller --ctx.",
        )
    available = n_tokens // ctx
    return available if chunks is None or chunks <= 0 else min(chunks, available)


def _check_scratch(folder: str | None, needed: int, n_chunk: int) -> None:
    """The reference's log-probabilities wait on disk for the second pass (as llama.cpp's --kl-divergence-base)."""
    where = Path(folder or tempfile.gettempdir())
    free = shutil.disk_usage(where).free
    if free < needed + 256 * 1024 * 1024:
        per_chunk = needed / n_chunk
        fits = max(0, int((free - 256 * 1024 * 1024) // per_chunk))
        raise DiskFullError(
            f"KL divergence over {n_chunk} chunks needs {needed / 1024**3:.1f} GiB of scratch space in {where}; "
            f"{free / 1024**3:.1f} GiB is free.",
            hint=f"Evaluate fewer chunks (--chunks {fits}) or free some space.",
        )


def evaluate(request: EvalRequest, progress: Progress) -> EvalResult:
    import numpy as np

    started = time.monotonic()
    ctx = request.ctx
    first = ctx // 2
    scored = ctx - 1 - first
    llm = load(request.model, ctx, ctx, min(ctx, 512), request.threads, request.extra_buffers)
    tokens = _tokens(llm, request.text)
    n_chunk = plan_chunks(len(tokens), ctx, request.chunks)
    passes = 2 if request.reference else 1
    scratch: Path | None = None
    reference_lp: Any = None
    ref_ppl: float | None = None
    try:
        if request.reference:
            ref = load(request.reference, ctx, ctx, min(ctx, 512), request.threads, request.extra_buffers)
            try:
                if _tokens(ref, request.text) != tokens or ref.n_vocab() != llm.n_vocab():
                    raise UsageError(
                        f"{Path(request.reference).name} tokenizes the text differently from "
                        f"{Path(request.model).name}; KL divergence needs the same model in another precision."
                    )
                _check_scratch(request.scratch_dir, n_chunk * scored * llm.n_vocab() * 4, n_chunk)
                fd, name = tempfile.mkstemp(suffix=".npy", prefix="hangar-kld-", dir=request.scratch_dir)
                os.close(fd)
                scratch = Path(name)
                reference_lp = np.lib.format.open_memmap(
                    scratch, mode="w+", dtype=np.float32, shape=(n_chunk, scored, llm.n_vocab())
                )
                ref_nll = 0.0
                batch = _Batch(ctx)
                try:
                    for i in range(n_chunk):
                        chunk = tokens[i * ctx : (i + 1) * ctx]
                        lp = _log_softmax(_chunk_logits(ref, batch, chunk, ctx, _bos(ref))[:scored])
                        reference_lp[i] = lp
                        targets = np.asarray(chunk[first + 1 :])
                        ref_nll -= float(lp[np.arange(scored), targets].sum())
                        if progress(i + 1, n_chunk * passes, f"Reference chunk {i + 1}/{n_chunk}"):
                            raise Stopped
                finally:
                    batch.free()
                ref_ppl = math.exp(ref_nll / (n_chunk * scored))
            finally:
                ref.close()
        return _score(llm, tokens, request, n_chunk, reference_lp, ref_ppl, progress, started)
    finally:
        llm.close()
        if reference_lp is not None:
            del reference_lp
        if scratch is not None:
            scratch.unlink(missing_ok=True)


def _score(
    llm: Any,
    tokens: list[int],
    request: EvalRequest,
    n_chunk: int,
    reference_lp: Any,
    ref_ppl: float | None,
    progress: Progress,
    started: float,
) -> EvalResult:
    import numpy as np

    ctx = request.ctx
    first = ctx // 2
    scored = ctx - 1 - first
    offset = n_chunk if reference_lp is not None else 0
    total = n_chunk + offset
    nll = nll2 = 0.0
    kld = kld2 = dp2 = 0.0
    same_top = 0
    count = 0
    bos = _bos(llm)
    batch = _Batch(ctx)
    rows = np.arange(scored)
    try:
        for i in range(n_chunk):
            chunk = tokens[i * ctx : (i + 1) * ctx]
            lp = _log_softmax(_chunk_logits(llm, batch, chunk, ctx, bos)[:scored])
            targets = np.asarray(chunk[first + 1 :])
            values = -lp[rows, targets]
            nll += float(values.sum())
            nll2 += float((values * values).sum())
            count += scored
            if reference_lp is not None:
                base = np.asarray(reference_lp[i], dtype=np.float64)
                keep = base > -16.0  # llama.cpp skips reference probabilities below e^-16
                per_token = np.where(keep, np.exp(base) * (base - lp), 0.0).sum(axis=1)
                kld += float(per_token.sum())
                kld2 += float((per_token * per_token).sum())
                same_top += int((lp.argmax(axis=1) == base.argmax(axis=1)).sum())
                delta = np.exp(-values) - np.exp(base[rows, targets])
                dp2 += float((delta * delta).sum())
            message = f"Chunk {i + 1}/{n_chunk} · perplexity {math.exp(nll / count):.4f}"
            if progress(offset + i + 1, total, message):
                raise Stopped
    finally:
        batch.free()
    mean = nll / count
    ppl = math.exp(mean)
    variance = nll2 / count - mean * mean
    error = math.sqrt(variance / (count - 1)) * ppl if variance > 0 else 0.0
    result = EvalResult(
        perplexity=ppl,
        perplexity_error=error,
        ctx=ctx,
        chunks=n_chunk,
        tokens_scored=count,
        text_tokens=len(tokens),
        seconds=time.monotonic() - started,
    )
    if reference_lp is None:
        return result
    kl_mean = kld / count
    kl_var = kld2 / count - kl_mean * kl_mean
    from dataclasses import replace

    return replace(
        result,
        reference=request.reference,
        reference_perplexity=ref_ppl,
        kl_divergence=kl_mean,
        kl_divergence_error=math.sqrt(kl_var / (count - 1)) if kl_var > 0 else 0.0,
        same_top_p=same_top / count,
        rms_delta_p=math.sqrt(dp2 / count),
    )


def bench(request: BenchRequest, progress: Progress) -> BenchResult:
    """pp (prompt processing) and tg (generation) tok/s at each depth, as llama-bench's ``-p -n -d`` measure them:
    random tokens, a warm-up run, the mean over repetitions, the cache filled to the depth before each timing."""
    import llama_cpp

    started = time.monotonic()
    threads = _threads(request.threads)
    n_ctx = max(request.depths) + request.n_prompt + request.n_gen + 16
    n_batch = 2048
    llm = load(request.model, n_ctx, n_batch, 512, threads, request.extra_buffers)
    rng = random.Random(0)
    n_vocab = llm.n_vocab()
    batch = _Batch(n_batch)
    ctx = llm._ctx.ctx

    def feed(count: int, start: int) -> None:
        done = 0
        while done < count:
            size = min(n_batch, count - done)
            batch.fill([rng.randrange(n_vocab) for _ in range(size)], start + done, 1 << 30)
            batch.batch.logits[size - 1] = True
            _decode(llm, batch)
            done += size
        llama_cpp.llama_synchronize(ctx)

    def timed_pp(depth: int) -> float:
        _clear(llm)
        feed(depth, 0)
        t0 = time.perf_counter()
        feed(request.n_prompt, depth)
        return request.n_prompt / (time.perf_counter() - t0)

    def timed_tg(depth: int) -> float:
        _clear(llm)
        feed(depth, 0)
        t0 = time.perf_counter()
        for k in range(request.n_gen):
            feed(1, depth + k)
        return request.n_gen / (time.perf_counter() - t0)

    points: list[SpeedPoint] = []
    steps = len(request.depths) * request.repetitions * 2
    step = 0
    try:
        _clear(llm)
        feed(min(request.n_prompt, 32), 0)  # warm-up of both kinds of batch, as llama-bench does
        feed(1, min(request.n_prompt, 32))
        for depth in request.depths:
            pp: list[float] = []
            tg: list[float] = []
            for _ in range(request.repetitions):
                pp.append(timed_pp(depth))
                step += 1
                if progress(step, steps, f"pp{request.n_prompt} @ d{depth}: {pp[-1]:.1f} tok/s"):
                    raise Stopped
                tg.append(timed_tg(depth))
                step += 1
                if progress(step, steps, f"tg{request.n_gen} @ d{depth}: {tg[-1]:.1f} tok/s"):
                    raise Stopped
            points.append(SpeedPoint(depth, sum(pp) / len(pp), sum(tg) / len(tg)))
    finally:
        batch.free()
        llm.close()
    return BenchResult(request.n_prompt, request.n_gen, threads, tuple(points), time.monotonic() - started)
