"""Images for the llama.cpp engine: a vision model's projector (``mmproj``) loaded through llama.cpp's multimodal
library (``mtmd``, llama-cpp-python's ``mtmd_cpp`` bindings), and prompts with images evaluated into the context.

The chat template renders the prompt as usual with one media marker per image; ``mtmd`` cuts it into text and
image chunks, encodes each image with the projector and writes its embeddings into the context. The engine's own
token loop then samples from there, as for a text prompt. Image positions are marked ``-1`` among the context's
tokens, so a later text prompt never mistakes them for cached text.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.engine.protocol import ChatImage, ChatMessage
from core.errors import ContextLengthError, EngineError, ModelFileError, UsageError
from core.models.check import check_gguf_file

_MIB = 1024 * 1024
_SIZE_LINE = re.compile(r"(model size|compute buffer size)\s*[:=]\s*([\d.]+)\s*MiB")


def open_projector(llm: Any, projector: Path, opts: Any, gpu_layers: int, allocated: dict[str, int]) -> VisionContext:
    """Load ``projector`` for the loaded ``llm`` (on the GPU when the model's layers are there) and add what it
    allocated to ``allocated`` (``projector:<device>``)."""
    import llama_cpp

    use_gpu = gpu_layers != 0 and bool(llama_cpp.llama_supports_gpu_offload())
    threads = opts.threads or llm.n_threads
    vision = VisionContext(llm, projector, use_gpu=use_gpu, flash_attention=opts.flash_attention, threads=threads)
    allocated[f"projector:{'GPU' if use_gpu else 'CPU'}"] = vision.allocated
    return vision


class VisionContext:
    """A loaded projector, bound to one loaded model (freed before it)."""

    def __init__(self, llm: Any, projector: Path, *, use_gpu: bool, flash_attention: bool, threads: int) -> None:
        import llama_cpp
        import llama_cpp.mtmd_cpp as mtmd

        self._mtmd = mtmd
        self._llm = llm
        self._lines = _mtmd_log()
        self._lines.clear()
        info = check_gguf_file(projector)  # a broken file gets a sentence, not a native crash
        if info.architecture != "clip":
            raise ModelFileError(
                f"{projector.name} is not a vision projector (its architecture is {info.architecture!r}, not 'clip').",
                hint="Choose the model's mmproj file.",
            )
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = use_gpu
        params.print_timings = False
        params.n_threads = threads
        params.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attention else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        self.ctx = mtmd.mtmd_init_from_file(str(projector).encode(), llm.model, params)
        if not self.ctx:
            reason = next((ln.strip() for ln in reversed(self._lines) if "error" in ln.lower()), "")
            raise ModelFileError(
                f"llama.cpp could not load the projector {projector.name}"
                + (f": {reason.split(':', 1)[-1].strip()}" if reason else "."),
                hint="Use the mmproj file made for this model (same repository).",
            )
        if not mtmd.mtmd_support_vision(self.ctx):
            self.close()
            raise ModelFileError(f"{projector.name} is an audio projector; Hangar takes images only.")
        self.marker = mtmd.mtmd_default_marker().decode("utf-8")
        self.allocated = self._allocated()

    def _allocated(self) -> int:
        """Bytes the projector took: its weights and its compute buffer, as its loader reported them."""
        total = 0.0
        for line in self._lines:
            match = _SIZE_LINE.search(line)
            if match and "metadata" not in line:
                total += float(match.group(2))
        return round(total * _MIB)

    def close(self) -> None:
        if self.ctx:
            self._mtmd.mtmd_free(self.ctx)
            self.ctx = None

    # -- prompts -----------------------------------------------------------------------------------------------
    def count(self, prompt: str, messages: Sequence[ChatMessage], add_special: bool) -> tuple[int, int]:
        """``(positions, image positions)`` the prompt takes, without evaluating it."""
        with self._chunks(prompt, messages, add_special) as chunks:
            total = image = 0
            for chunk in self._each(chunks):
                n = int(self._mtmd.mtmd_input_chunk_get_n_pos(chunk))
                total += n
                if self._mtmd.mtmd_input_chunk_get_type(chunk) != self._mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                    image += n
            return total, image

    def evaluate(self, prompt: str, messages: Sequence[ChatMessage], add_special: bool) -> tuple[list[int], int]:
        """Evaluate the prompt into a fresh context; returns its token list (``-1`` at image positions) and the
        number of image positions. The model's next token can be sampled right after."""
        import llama_cpp

        mtmd, llm = self._mtmd, self._llm
        total, image_tokens = self.count(prompt, messages, add_special)
        if total >= llm.n_ctx():
            raise ContextLengthError(
                f"The prompt with its images ({total} tokens, {image_tokens} of them for images) does not fit in "
                f"the context ({llm.n_ctx()} tokens).",
                hint="Send fewer images, shorten the conversation, or load the model with a longer context.",
            )
        with self._chunks(prompt, messages, add_special) as chunks:
            llm.reset()
            llm._ctx.kv_cache_clear()
            last_was_text = False
            for chunk in self._each(chunks):
                if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                    count = ctypes.c_size_t()
                    tokens = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
                    llm.eval([tokens[i] for i in range(count.value)])
                    last_was_text = count.value > 0
                    continue
                start = llm.n_tokens
                new_past = llama_cpp.llama_pos(0)
                failed = mtmd.mtmd_helper_eval_chunk_single(
                    self.ctx,
                    llm._ctx.ctx,
                    chunk,
                    llama_cpp.llama_pos(start),
                    llama_cpp.llama_seq_id(0),
                    llm.n_batch,
                    False,
                    ctypes.byref(new_past),
                )
                if failed:
                    raise EngineError(f"llama.cpp could not encode an image (error {failed}).")
                llm.n_tokens = new_past.value
                llm.input_ids[start : new_past.value] = -1
                last_was_text = False
            if not last_was_text:  # the model's next-token logits come from a text chunk's last token
                raise EngineError("The prompt must end with text after its images.")
        return llm.input_ids[: llm.n_tokens].tolist(), image_tokens

    def _chunks(self, prompt: str, messages: Sequence[ChatMessage], add_special: bool) -> _Chunks:
        return _Chunks(self, prompt, [image for m in messages for image in m.images], add_special)

    def _each(self, chunks: Any) -> Any:
        for i in range(self._mtmd.mtmd_input_chunks_size(chunks)):
            chunk = self._mtmd.mtmd_input_chunks_get(chunks, i)
            if chunk:
                yield chunk

    def bitmap(self, image: ChatImage) -> Any:
        mtmd = self._mtmd
        options = mtmd.mtmd_helper_init_opt_default()
        # Images only: never let the helper try the bytes as a video (it would start ffprobe on them).
        options.video_params.ffmpeg_bin_dir = b"/nonexistent/hangar-no-video"
        data = (ctypes.c_uint8 * len(image.data)).from_buffer_copy(image.data)
        bitmap = mtmd.mtmd_helper_bitmap_init_from_buf(self.ctx, data, len(image.data), False, options)
        if not bitmap:
            raise UsageError(f"{image.name} could not be decoded as an image; it may be damaged.")
        return bitmap


_LOG: list[str] = []
_LOG_CALLBACK: list[Any] = []  # the one callback, alive for the whole process: mtmd keeps only its pointer


def _mtmd_log() -> list[str]:
    """mtmd logs to stderr by default; its lines are kept here instead (its errors explain a refused projector,
    its sizes what the projector allocated). Installed once per process."""
    if not _LOG_CALLBACK:
        import llama_cpp
        import llama_cpp.mtmd_cpp as mtmd

        @llama_cpp.llama_log_callback
        def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            _LOG.extend(text.decode("utf-8", errors="replace").splitlines())
            del _LOG[:-200]

        _LOG_CALLBACK.append(callback)
        mtmd.mtmd_log_set(callback, ctypes.c_void_p(0))
        mtmd.mtmd_helper_log_set(callback, ctypes.c_void_p(0))
    return _LOG


class _Chunks:
    """The prompt cut into text and image chunks (``mtmd_tokenize``); frees its bitmaps and chunks on exit."""

    def __init__(self, vision: VisionContext, prompt: str, images: Sequence[ChatImage], add_special: bool) -> None:
        self._vision, self._prompt, self._images, self._add_special = vision, prompt, images, add_special
        self._bitmaps: list[Any] = []
        self._chunks: Any = None

    def __enter__(self) -> Any:
        mtmd = self._vision._mtmd
        try:
            for image in self._images:
                self._bitmaps.append(self._vision.bitmap(image))
            text = self._prompt.encode("utf-8")
            source = mtmd.mtmd_input_text()
            source.text, source.text_len = text, len(text)
            source.add_special, source.parse_special = self._add_special, True
            self._chunks = mtmd.mtmd_input_chunks_init()
            array = (mtmd.mtmd_bitmap_p_ctypes * max(len(self._bitmaps), 1))(*self._bitmaps)
            failed = mtmd.mtmd_tokenize(self._vision.ctx, self._chunks, ctypes.byref(source), array, len(self._bitmaps))
            if failed:
                raise EngineError(f"llama.cpp could not prepare the images for this model (error {failed}).")
        except BaseException:
            self.__exit__()
            raise
        return self._chunks

    def __exit__(self, *_exc: object) -> None:
        mtmd = self._vision._mtmd
        if self._chunks:
            mtmd.mtmd_input_chunks_free(self._chunks)
            self._chunks = None
        for bitmap in self._bitmaps:
            mtmd.mtmd_bitmap_free(bitmap)
        self._bitmaps.clear()


def with_markers(items: list[dict[str, Any]], messages: Sequence[ChatMessage], marker: str) -> list[dict[str, Any]]:
    """Template items with one media marker per image, before the message's text."""
    out = []
    for item, message in zip(items, messages, strict=True):
        item = {**item, "content": item["content"].replace(marker, "<media>")}  # typed text is never a marker
        if message.images:
            markers = marker * len(message.images)
            item = {**item, "content": f"{markers}\n{item['content']}" if item["content"] else markers}
        out.append(item)
    return out
