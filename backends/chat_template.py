"""Chat templates rendered in a sandbox with limits: a model file's Jinja template is code from a stranger.

Jinja's ``ImmutableSandboxedEnvironment`` stops a template from reaching Python's internals, but not from looping
``range(99999)`` inside ``range(99999)`` (hours) or writing ``'x' * 3000000000`` (3 GB). ``ChatTemplate`` adds limits:
the template's size, a time limit that interrupts any loop (an interval timer, or a trace function off the main
thread), a cap on the size of strings and lists it builds and of numbers it passes
to functions and filters, a cap on how much the render may grow the process's peak memory, and on the output's
length. Past any of them the template is refused with a message naming the model's chat template, and the engine
goes on serving.
"""

from __future__ import annotations

import contextlib
import functools
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import FrameType
from typing import Any

from core.errors import EngineError, ModelFileError

HINT = "The model file's chat template is faulty or hostile: use another build of this model."


@dataclass(frozen=True)
class TemplateLimits:
    #: Longest template source, in characters (real ones are a few KB; the largest seen are about 30 KB).
    source_chars: int = 256 * 1024
    #: Longest rendered prompt, and largest string or list the template may build, in characters or items.
    output_chars: int = 16 * 1024 * 1024
    #: Time one render may take, in seconds.
    seconds: float = 5.0
    #: How much one render may raise the process's peak memory, in bytes.
    memory_bytes: int = 256 * 1024 * 1024


class ChatTemplate:
    """A model's chat template, compiled once in the sandbox, rendered with limits."""

    def __init__(
        self,
        source: str,
        *,
        bos_token: str = "",
        eos_token: str = "",
        extra: Mapping[str, Any] | None = None,
        limits: TemplateLimits = TemplateLimits(),
    ) -> None:
        import jinja2

        self.limits = limits
        if len(source) > limits.source_chars:
            raise ModelFileError(
                f"The model's chat template is {len(source) // 1024:,} KB long; Hangar renders templates of up to "
                f"{limits.source_chars // 1024:,} KB.",
                hint=HINT,
            )
        self._globals: dict[str, Any] = {**(extra or {}), "bos_token": bos_token, "eos_token": eos_token}
        environment = _limited_environment(limits)
        try:
            self._template = environment.from_string(source)
        except jinja2.TemplateError as exc:
            raise EngineError(f"The model's chat template cannot be read: {exc}", hint=HINT) from exc

    def render(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool = True) -> str:
        import jinja2

        variables = {
            **self._globals,
            "messages": messages,
            "add_generation_prompt": add_generation_prompt,
            "raise_exception": _raise_exception,
            "strftime_now": lambda fmt: datetime.now().strftime(str(fmt)),
            "tools": None,
        }
        watch = _Watch(self.limits)
        pieces: list[str] = []
        size = 0
        try:
            with watch.watching():
                for piece in self._template.generate(**variables):
                    size += len(piece)
                    if size > self.limits.output_chars:
                        raise _refuse(f"writes a prompt over {self.limits.output_chars:,} characters long")
                    pieces.append(piece)
        except (ModelFileError, _TemplateRefused):
            raise
        except MemoryError:
            raise _refuse("needs more memory than a prompt can") from None
        except jinja2.exceptions.SecurityError as exc:
            raise _refuse(f"tried something the sandbox forbids ({exc})") from exc
        except (jinja2.TemplateError, TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
            raise EngineError(f"The model's chat template failed: {exc}", hint=HINT) from exc
        return "".join(pieces)


class _TemplateRefused(EngineError):
    """The template itself called ``raise_exception`` (roles must alternate, say)."""


def _raise_exception(message: str) -> None:
    raise _TemplateRefused(f"The model's chat template refused the conversation: {message}")


def _refuse(what: str) -> ModelFileError:
    return ModelFileError(f"The model's chat template {what}; Hangar stopped it.", hint=HINT)


class _Watch:
    """The time and memory limits of one render. On the main thread of a POSIX process (the engine child serves
    requests there) a 20 ms interval timer checks them: its signal interrupts any Python loop, at no cost to a
    normal render. Elsewhere a trace function checks them on the template's own lines."""

    TICK = 0.02

    def __init__(self, limits: TemplateLimits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.seconds
        self.steps = 0
        self.start_memory = _peak_memory()

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
            # Someone else's alarm (a test runner's time limit, say) is put back afterwards, less the time spent.
            previous_handler = signal.signal(signal.SIGALRM, self._on_alarm)
            previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, self.TICK, self.TICK)
            started = time.monotonic()
            try:
                yield
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous_handler)
                if previous_delay > 0:
                    left = max(previous_delay - (time.monotonic() - started), 0.001)
                    signal.setitimer(signal.ITIMER_REAL, left, previous_interval)
            return
        previous_trace = sys.gettrace()
        sys.settrace(self._trace)
        try:
            yield
        finally:
            sys.settrace(previous_trace)

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise _refuse(f"took longer than {self.limits.seconds:g} s to render")
        if self.start_memory is not None:
            now = _peak_memory()
            if now is not None and now - self.start_memory > self.limits.memory_bytes:
                raise _refuse(f"used more than {self.limits.memory_bytes // 2**20:,} MiB of memory")

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        self.check()

    def _trace(self, frame: FrameType, event: str, arg: object) -> Callable[..., Any] | None:
        # Only the template's own compiled code is watched line by line (its loops are where time goes).
        return self._step if frame.f_code.co_filename == "<template>" else None

    def _step(self, frame: FrameType, event: str, arg: object) -> Callable[..., Any] | None:
        self.steps += 1
        if self.steps & 255 == 0:
            self.check()
        return self._step


def _peak_memory() -> int | None:
    """The process's resident memory now (Linux), else its peak so far; None where neither can be read."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * _page_size()
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows: the size limits still hold
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


@functools.cache
def _page_size() -> int:
    import os

    return int(os.sysconf("SC_PAGE_SIZE"))


def _limited_environment(limits: TemplateLimits) -> Any:
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationTag(jinja2.ext.Extension):
        """Hugging Face's ``{% generation %}`` tag: its body is rendered as is."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            parser.stream.skip(1)
            return parser.parse_statements(("name:endgeneration",), drop_needle=True)

    class LimitedEnvironment(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**"})  # ("+" at most doubles; the memory limit covers loops)

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "*":
                _check_repeat(left, right, limits)
                _check_repeat(right, left, limits)
            elif operator == "**" and _number(right) and abs(right) > 256 and _number(left) and abs(left) > 1:
                raise _refuse(f"raises a number to the power {right}")
            elif operator == "+" and _sized(left) and _sized(right):
                _check_size(len(left) + len(right), limits)
            return super().call_binop(context, operator, left, right)

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
            _check_numbers((*args, *kwargs.values()), limits)
            return super().call(__context, __obj, *args, **kwargs)

    environment = LimitedEnvironment(
        loader=jinja2.BaseLoader(),
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[GenerationTag, jinja2.ext.loopcontrols],
    )
    environment.filters["tojson"] = _tojson
    # Filters are called directly by the compiled template, not through ``call``: guard their arguments too
    # (``'x'|center(3000000000)``).
    for name, function in list(environment.filters.items()):
        environment.filters[name] = _guarded(function, limits)
    return environment


def _guarded(function: Callable[..., Any], limits: TemplateLimits) -> Callable[..., Any]:
    @functools.wraps(function)  # keeps Jinja's pass_context/pass_environment marks
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _check_numbers((*args, *kwargs.values()), limits)
        return function(*args, **kwargs)

    return guarded


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, **kwargs: Any) -> str:
    # As Transformers renders it (no HTML escaping), so prompts match what the model was trained on.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, **kwargs)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _sized(value: Any) -> bool:
    return isinstance(value, str | list | tuple)


def _check_repeat(sequence: Any, count: Any, limits: TemplateLimits) -> None:
    if _sized(sequence) and isinstance(count, int) and not isinstance(count, bool):
        _check_size(len(sequence) * count, limits)


def _check_size(size: int, limits: TemplateLimits) -> None:
    if size > limits.output_chars:
        raise _refuse(f"builds a value of {size:,} characters or items")


def _check_numbers(values: Iterable[Any], limits: TemplateLimits) -> None:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > limits.output_chars:
            raise _refuse(f"asks for a size of {value:,}")
