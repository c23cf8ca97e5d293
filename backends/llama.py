"""The llama.cpp engine (llama-cpp-python): GGUF models on CUDA, Metal or CPU, whichever the build supports.

Generation runs its own token loop rather than ``create_chat_completion`` so that Hangar knows exact token
counts, time to first token and decode speed, can stop between any two tokens, and applies grammars for JSON.
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from backends.chat_template import ChatTemplate
from backends.llama_log import LlamaLog, parse_buffer_sizes
from backends.llama_vision import VisionContext, open_projector, with_markers
from backends.textstream import find_stop, role_text_prompt, safe_emit_length
from backends.utf8guard import Utf8Guard, Utf8Tables
from core.engine.images import count_images, refuse_images
from core.engine.protocol import ChatMessage, GenerationParams, GenerationStats, ModelInfo, ModelSpec
from core.errors import ContextLengthError, EngineError, InsufficientMemoryError, ModelFileError, UnsupportedModelError
from core.estimate.plan import AUTO_GPU_LAYERS, auto_gpu_layers
from core.models.check import check_gguf_file

logger = logging.getLogger(__name__)
_MIB = 1024 * 1024
#: ``(token text, log-probability, top alternatives)`` for each generated token.
LogprobSink = Callable[[str, float, tuple[tuple[str, float], ...]], None]

FALLBACK_TEMPLATE_NOTE = "This model has no chat template; Hangar uses a plain 'Role: text' format."


class LlamaEngine:
    def __init__(self) -> None:
        self._llm: Any = None
        self._log: LlamaLog | None = None
        self._template: ChatTemplate | None = None
        self._path: str | None = None
        self._embedder: Any = None  # a second, embedding-mode context, opened on the first embed request
        self._gpu_layers = 0
        self._utf8: Utf8Tables | None = None  # built on the first JSON request, per model
        self._eog: list[int] | None = None  # end-of-generation tokens, found once per model (a 256k vocabulary
        # takes ~80 ms of calls into llama.cpp: not a cost for every request's first token)
        self._vision: VisionContext | None = None  # the projector, when the model is loaded with one

    # -- load ------------------------------------------------------------------------------------------------
    def load(self, spec: ModelSpec, progress: Callable[[float | None], None]) -> ModelInfo:
        import llama_cpp

        path = Path(spec.path)
        check_gguf_file(path)  # refuse broken or hostile files before the native loader sees them
        if self._log is None:
            self._log = LlamaLog()
        self._log.take()
        opts = spec.options
        if opts.rpc_servers:
            from backends.rpc_worker import register_workers, worker_memory

            register_workers(tuple(opts.rpc_servers))  # the workers become devices, before the model is placed
            rpc_memory = worker_memory()  # what llama.cpp is about to split the layers by
            # With workers, "auto" (or 0, which would leave them idle) puts every layer on them, split by their free
            # memory; a number N puts the last N layers on them and keeps the first ones on this machine.
            gpu_layers = -1 if opts.gpu_layers in (AUTO_GPU_LAYERS, 0) else int(opts.gpu_layers)
        else:
            gpu_layers, rpc_memory = _resolve_gpu_layers(path, opts), {}
        self._gpu_layers = gpu_layers
        kwargs: dict[str, Any] = dict(
            model_path=str(path),
            n_ctx=opts.context_length,
            n_gpu_layers=gpu_layers,
            seed=opts.seed if opts.seed >= 0 else llama_cpp.LLAMA_DEFAULT_SEED,
            verbose=False,
            flash_attn=opts.flash_attention,
            use_mmap=opts.use_mmap,
        )
        if opts.threads:
            kwargs["n_threads"] = opts.threads
        if opts.kv_cache_type != "f16":
            ggml_type = _GGML_TYPES.get(opts.kv_cache_type)
            if ggml_type is None:
                raise EngineError(f"Unknown KV cache type {opts.kv_cache_type!r}; use f16, q8_0 or q4_0.")
            kwargs["type_k"] = kwargs["type_v"] = ggml_type
        if opts.lora_path:
            lora = Path(opts.lora_path)
            if not lora.is_file():
                raise ModelFileError(
                    f"The LoRA adapter {lora} is not a file.",
                    hint="llama.cpp needs a GGUF adapter; convert a PEFT adapter with convert_lora_to_gguf.",
                )
            check_gguf_file(lora)
            kwargs["lora_path"] = str(lora)
        started = time.perf_counter()
        try:
            with _load_progress(progress, use_extra_bufts=opts.use_extra_bufts):
                self._llm = llama_cpp.Llama(**kwargs)
        except ValueError as exc:
            raise self._explain_load_failure(path, exc) from exc
        except RuntimeError as exc:  # the LoRA adapter is refused (wrong base model, damaged file)
            raise ModelFileError(f"llama.cpp could not apply the LoRA adapter: {exc}") from exc
        lines = self._log.take()
        refused = next((ln for ln in lines if "failed to apply lora adapter" in ln), None)
        if refused is not None:
            # llama.cpp logs the refusal but the binding still hands back an adapter (which does nothing)
            self.unload()
            reason = refused.split("failed to apply lora adapter:", 1)[-1].strip()
            raise ModelFileError(
                f"The LoRA adapter {Path(opts.lora_path or '').name} does not fit {path.name}: {reason}",
                hint="Use an adapter trained for this base model.",
            )
        self._path = str(path)
        self._template = self._make_template()
        allocated = parse_buffer_sizes(lines)
        if spec.projector:
            try:
                self._vision = open_projector(self._llm, Path(spec.projector), opts, self._gpu_layers, allocated)
            except Exception:
                self.unload()
                raise
        return ModelInfo(
            path=str(path),
            engine="llama",
            context_length=self._llm.n_ctx(),
            vocab_size=self._llm.n_vocab(),
            has_chat_template=self._template is not None,
            allocated=allocated,
            load_seconds=time.perf_counter() - started,
            device="gpu" if gpu_layers != 0 and llama_cpp.llama_supports_gpu_offload() else "cpu",
            rpc_memory=rpc_memory,
            vision=self._vision is not None,
        )

    @property
    def accepts_images(self) -> bool:
        return self._vision is not None

    def _explain_load_failure(self, path: Path, exc: Exception) -> Exception:
        lines = self._log.take() if self._log else []
        text = "\n".join(lines)
        if "unknown model architecture" in text:
            arch = re.search(r"unknown model architecture: '([^']+)'", text)
            name = arch.group(1) if arch else "this"
            return UnsupportedModelError(
                f"{path.name}: the {name} architecture is not supported by this llama.cpp build.",
                hint="Update Hangar, or choose a model with a supported architecture.",
            )
        lowered = text.lower()
        if any(s in lowered for s in ("failed to allocate", "out of memory", "bad_alloc", "cudamalloc failed")):
            wanted = re.search(r"attempted to allocate ([\d.]+) MB", text)
            part = "the KV cache" if "kv cache" in lowered else "the model"
            need = f" ({part} needed {float(wanted.group(1)) / 1024:.1f} GiB more)" if wanted else ""
            return InsufficientMemoryError(
                f"Not enough memory to load {path.name}{need}.",
                hint="Try fewer GPU layers, a shorter context or a smaller quant.",
            )
        if "llama_context" in str(exc):
            # the weights loaded; the context (KV cache, flash attention, ...) could not be set up as asked
            reason = next(
                (ln.split(":", 1)[1].strip() for ln in reversed(lines) if ln.startswith("llama_init_from_model:")),
                "the context could not be created",
            )
            return EngineError(
                f"llama.cpp cannot run {path.name} with these load options: {reason}.",
                hint="Try an f16 KV cache, flash attention off, or a shorter context.",
            )
        detail = next((ln.strip() for ln in reversed(lines) if "error" in ln.lower()), str(exc))
        return ModelFileError(
            f"llama.cpp could not load {path.name}: {detail}",
            hint="If the file did not come from a verified download, download it again; if it did, this llama.cpp "
            "build may not support it.",
        )

    def _make_template(self) -> ChatTemplate | None:
        """The model's chat template, compiled in Hangar's sandbox (never llama-cpp-python's formatter, which has
        no time or size limits). A template too large is refused; one Jinja cannot parse falls back to the plain
        format rather than refusing the model."""
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        bos = self._token_text(self._llm.token_bos())
        eos = self._token_text(self._llm.token_eos())
        try:
            return ChatTemplate(template, bos_token=bos, eos_token=eos)
        except ModelFileError:
            self.unload()
            raise
        except EngineError as exc:
            logger.warning("%s; using the plain format", exc)
            return None

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self._llm.detokenize([token], special=True).decode("utf-8", errors="ignore")

    # -- prompts ---------------------------------------------------------------------------------------------
    def _prompt_tokens(self, messages: Sequence[ChatMessage], continue_last: bool) -> list[int]:
        prompt = self._prompt_text(messages, continue_last)
        return list(self._llm.tokenize(prompt.encode("utf-8"), add_bos=self._needs_bos(prompt), special=True))

    def _prompt_text(self, messages: Sequence[ChatMessage], continue_last: bool) -> str:
        items: list[dict[str, Any]] = [{"role": m.role, "content": m.content} for m in messages]
        if self._vision is not None and count_images(messages):
            items = with_markers(items, messages, self._vision.marker)
        if self._template is not None:
            if continue_last and items and items[-1]["role"] == "assistant":
                last = items.pop()
                prompt = self._template.render(items) + last["content"]
            else:
                prompt = self._template.render(items)
        else:
            prompt = role_text_prompt(items, continue_last)
        return prompt

    def _needs_bos(self, prompt: str) -> bool:
        """The template writes BOS itself when the model wants it; tokenizing adds it only if it is missing."""
        bos = self._token_text(self._llm.token_bos())
        return not (bos and prompt.startswith(bos))

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        self._require_model()
        refuse_images(messages, self.accepts_images)
        if self._vision is not None and count_images(messages):
            prompt = self._prompt_text(messages, continue_last=False)
            return self._vision.count(prompt, messages, self._needs_bos(prompt))[0]
        return len(self._prompt_tokens(messages, continue_last=False))

    def _require_model(self) -> None:
        if self._llm is None:
            raise EngineError("No model is loaded.")

    # -- generation ------------------------------------------------------------------------------------------
    def generate(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        emit: Callable[[str], None],
        should_stop: Callable[[], bool],
        on_logprob: LogprobSink | None = None,
    ) -> GenerationStats:
        self._require_model()
        started = time.perf_counter()
        refuse_images(messages, self.accepts_images)
        if self._vision is not None and count_images(messages):
            text = self._prompt_text(messages, params.continue_last)
            prompt, image_tokens = self._vision.evaluate(text, messages, self._needs_bos(text))
            stats = self._run(prompt, params, emit, should_stop, started, on_logprob)
            return dataclasses.replace(stats, image_tokens=image_tokens)
        prompt = self._prompt_tokens(messages, params.continue_last)
        return self._run(prompt, params, emit, should_stop, started, on_logprob)

    def complete(
        self,
        prompt_text: str,
        params: GenerationParams,
        emit: Callable[[str], None],
        should_stop: Callable[[], bool],
        on_logprob: LogprobSink | None = None,
    ) -> GenerationStats:
        """Continue ``prompt_text`` as it is (no chat template): the OpenAI completions endpoint."""
        self._require_model()
        started = time.perf_counter()
        prompt = list(self._llm.tokenize(prompt_text.encode("utf-8"), add_bos=True, special=False))
        return self._run(prompt, params, emit, should_stop, started, on_logprob)

    def embed(self, texts: Sequence[str]) -> tuple[tuple[tuple[float, ...], ...], int]:
        """Mean-pooled, L2-normalised embeddings and the number of tokens read. llama.cpp needs a context made
        for embeddings, so the first call opens a second one on the same file (its weights are shared through
        the OS page cache) and keeps it until the model is unloaded."""
        import llama_cpp

        self._require_model()
        if self._embedder is None:
            assert self._path is not None
            self._embedder = llama_cpp.Llama(
                model_path=self._path,
                embedding=True,
                n_ctx=self._llm.n_ctx(),
                n_batch=self._llm.n_ctx(),
                n_ubatch=self._llm.n_ctx(),
                n_gpu_layers=self._gpu_layers,
                pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                verbose=False,
            )
        tokens = 0
        for text in texts:
            count = len(self._embedder.tokenize(text.encode("utf-8"), add_bos=True))
            if count > self._embedder.n_ctx():
                raise ContextLengthError(
                    f"An input ({count} tokens) is longer than the context ({self._embedder.n_ctx()} tokens) "
                    f"by {count - self._embedder.n_ctx()} tokens."
                )
            tokens += count
        vectors = self._embedder.embed(list(texts), normalize=True)
        return tuple(tuple(float(x) for x in v) for v in vectors), tokens

    def _run(
        self,
        prompt: list[int],
        params: GenerationParams,
        emit: Callable[[str], None],
        should_stop: Callable[[], bool],
        started: float,
        on_logprob: LogprobSink | None,
    ) -> GenerationStats:
        import llama_cpp

        llm = self._llm
        budget = llm.n_ctx() - len(prompt)
        if budget <= 0:
            raise ContextLengthError(
                f"The prompt ({len(prompt)} tokens) does not fit in the context ({llm.n_ctx()} tokens): "
                f"it is {1 - budget} tokens too long.",
                hint="Shorten the conversation, or load the model with a longer context.",
            )
        max_tokens = min(params.max_tokens, budget)
        if params.seed is not None:
            llm.set_seed(params.seed)
        grammar = self._grammar(params)
        processors: list[Any] = []
        vocab = llm._model.vocab
        if params.ignore_eos:
            if self._eog is None:
                self._eog = [t for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)]
            eog = self._eog

            def suppress_eos(_ids: Any, logits: Any) -> Any:
                logits[eog] = -float("inf")
                return logits

            processors.append(suppress_eos)
        if grammar is not None:
            processors.append(Utf8Guard(self._utf8_tables(), len(prompt)))
        recorder = _LogitsRecorder() if on_logprob is not None else None
        if recorder is not None:
            processors.insert(0, recorder)  # first: the model's own distribution, before any constraint
        logits_processor = llama_cpp.LogitsProcessorList(processors) if processors else None
        stops = list(params.stop)
        text = ""
        emitted = 0  # characters of ``text`` already sent
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        completion = 0
        first_token_at: float | None = None
        stop_reason = "length"
        previous: list[int] = list(prompt)
        generator = llm.generate(
            prompt,
            top_k=params.top_k,
            top_p=params.top_p,
            min_p=params.min_p,
            temp=params.temperature,
            repeat_penalty=params.repeat_penalty,
            presence_penalty=params.presence_penalty,
            frequency_penalty=params.frequency_penalty,
            grammar=grammar,
            logits_processor=logits_processor,
            reset=True,
        )
        try:
            for token in generator:
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                if llama_cpp.llama_vocab_is_eog(vocab, token) and not params.ignore_eos:
                    stop_reason = "stop"
                    break
                completion += 1
                if recorder is not None and on_logprob is not None:
                    self._report_logprob(recorder, token, params.top_logprobs, on_logprob)
                # A token may end inside a multi-byte character; the incremental decoder holds it back.
                piece = decoder.decode(llm.detokenize([token], prev_tokens=previous))
                previous.append(token)
                if piece:
                    text += piece
                    hit = find_stop(text, stops, emitted)
                    if hit is not None:
                        text = text[:hit]
                        stop_reason = "stop"
                    safe = safe_emit_length(text, stops) if hit is None else len(text)
                    if safe > emitted:
                        emit(text[emitted:safe])
                        emitted = safe
                    if hit is not None:
                        break
                if completion >= max_tokens:
                    break
                if should_stop():
                    stop_reason = "cancelled"
                    break
        finally:
            generator.close()
        if stop_reason != "stop":
            text += decoder.decode(b"", final=True)
        if emitted < len(text):
            emit(text[emitted:])
        finished = time.perf_counter()
        first = first_token_at or finished
        decode_time = finished - first
        return GenerationStats(
            prompt_tokens=len(prompt),
            completion_tokens=completion,
            time_to_first_token_ms=(first - started) * 1000.0,
            tokens_per_second=(completion - 1) / decode_time if completion > 1 and decode_time > 0 else 0.0,
            stop_reason=stop_reason,
            text=text,
        )

    def _report_logprob(self, recorder: _LogitsRecorder, token: int, top: int, sink: LogprobSink) -> None:
        import numpy as np

        logits = recorder.last
        if logits is None:
            return
        shifted = logits - logits.max()
        logprobs = shifted - np.log(np.exp(shifted).sum())
        alternatives: tuple[tuple[str, float], ...] = ()
        if top > 0:
            best = np.argpartition(-logprobs, min(top, len(logprobs) - 1))[:top]
            best = best[np.argsort(-logprobs[best])]
            alternatives = tuple((self._piece(int(t)), float(logprobs[t])) for t in best)
        sink(self._piece(token), float(logprobs[token]), alternatives)

    def _piece(self, token: int) -> str:
        return self._llm.detokenize([token]).decode("utf-8", errors="replace")

    def _utf8_tables(self) -> Utf8Tables:
        if self._utf8 is None:
            llm = self._llm
            self._utf8 = Utf8Tables([llm.detokenize([t]) for t in range(llm.n_vocab())])
        return self._utf8

    def _grammar(self, params: GenerationParams) -> Any:
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

        if params.response_format == "json":
            return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
        if params.response_format == "json_schema":
            if not params.json_schema.strip():
                raise EngineError("JSON-schema mode needs a schema.")
            try:
                return LlamaGrammar.from_json_schema(json.dumps(params.schema()), verbose=False)
            except Exception as exc:
                raise EngineError(f"The JSON schema cannot be turned into a grammar: {exc}") from exc
        return None

    def unload(self) -> None:
        if self._vision is not None:  # it holds the model: freed first
            self._vision.close()
            self._vision = None
        if self._embedder is not None:
            self._embedder.close()
            self._embedder = None
        if self._llm is not None:
            self._llm.close()
            self._llm = None
            self._template = None
            self._utf8 = None
            self._eog = None


class _LogitsRecorder:
    """A logits processor that keeps the raw logits of the latest step (for log-probabilities)."""

    def __init__(self) -> None:
        self.last: Any = None

    def __call__(self, _ids: Any, logits: Any) -> Any:
        self.last = logits.copy()
        return logits


def _resolve_gpu_layers(path: Path, opts: Any) -> int:
    """GPU layers "auto": ask the estimator, here in the engine process that knows whether this llama.cpp
    build can offload at all (a CPU-only build gets 0 without looking at the hardware)."""
    import llama_cpp

    if opts.gpu_layers != AUTO_GPU_LAYERS:
        return int(opts.gpu_layers)
    offload = bool(llama_cpp.llama_supports_gpu_offload())
    hardware = None
    if offload:
        from backends.probe import probe_engines
        from core.hardware import detect_hardware

        hardware = detect_hardware(probe_engines)
    layers = auto_gpu_layers(path, opts, hardware, gpu_offload=offload)
    logger.info("GPU layers auto -> %d for %s", layers, path.name)
    return layers


@contextlib.contextmanager
def _load_progress(progress: Callable[[float | None], None], *, use_extra_bufts: bool = True) -> Iterator[None]:
    """Report llama.cpp's own load progress, and pass the model parameters ``Llama`` has no argument for
    (``use_extra_bufts``: safe mode turns the repacked AMX/CPU_REPACK/KleidiAI weight buffers off). The default
    model parameters it starts from get them for the duration of the load (this process loads one model at a
    time, so nothing else sees the change)."""
    import llama_cpp
    import llama_cpp.llama as llama_module

    native = llama_module.llama_cpp
    original = native.llama_model_default_params
    last = [-1.0]

    def on_progress(fraction: float, _user_data: Any) -> bool:
        # llama.cpp calls this very often; a message per whole percent is plenty.
        if fraction - last[0] >= 0.01 or fraction >= 1.0:
            last[0] = fraction
            progress(min(max(float(fraction), 0.0), 1.0))
        return True

    callback = llama_cpp.llama_progress_callback(on_progress)

    def with_progress() -> Any:
        params = original()
        params.progress_callback = callback
        if hasattr(params, "use_extra_bufts"):
            params.use_extra_bufts = use_extra_bufts
        return params

    # ``Llama()`` compiles every chat template in the file's metadata with Jinja's plain sandbox, which folds
    # constant expressions at compile time: ``{{ 'x' * 3000000000 }}`` would allocate 3 GB right here. Hangar
    # never uses those formatters (its own sandboxed ``ChatTemplate`` renders prompts), so none is built.
    formatters: Any = llama_module.llama_chat_format
    original_formatter = formatters.Jinja2ChatFormatter
    native.llama_model_default_params = with_progress
    formatters.Jinja2ChatFormatter = _UnusedFormatter
    try:
        yield
    finally:
        native.llama_model_default_params = original
        formatters.Jinja2ChatFormatter = original_formatter


def plain_load(*, use_extra_bufts: bool = True) -> contextlib.AbstractContextManager[None]:
    """A ``Llama()`` load with the model parameters it has no argument for (the probes use it)."""
    return _load_progress(lambda _fraction: None, use_extra_bufts=use_extra_bufts)


class _UnusedFormatter:
    """Stands in for llama-cpp-python's template formatter during a load: takes the template, compiles nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def to_chat_handler(self) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise EngineError("Hangar renders chat templates itself; llama-cpp-python's chat handler is off.")

        return refuse


_GGML_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "bf16": 30}
