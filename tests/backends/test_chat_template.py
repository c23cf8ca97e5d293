"""Chat templates in the sandbox: hostile templates (endless loops, gigabyte strings, huge sources) are refused with
a clear message, quickly and without the memory, and the engine serving them goes on; real templates render as
llama-cpp-python renders them."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.chat_template import ChatTemplate, TemplateLimits
from backends.worker import serve
from core.devkit.modelgen import CHATML_TEMPLATE, TinyModelConfig, write_tiny_gguf
from core.engine.host import EngineHost
from core.engine.protocol import ChatMessage, GenerationParams, LoadOptions, ModelSpec
from core.errors import EngineError, ModelFileError

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
QUICK = TemplateLimits(seconds=1.0, memory_bytes=64 * 2**20)

NESTED_LOOPS = "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
NESTED_OVER_MESSAGES = (
    "{% set s = 'ab' * 50000 %}{% for a in s %}{% for b in s %}{{ '' }}{% endfor %}{% endfor %}{{ messages|length }}"
)
HOSTILE = {
    "huge repeat": "{{ 'x' * 3000000000 }}",
    "huge repeat, reversed": "{{ 3000000000 * 'x' }}",
    "huge list": "{{ ([0] * 3000000000)|length }}",
    "huge filter width": "{{ 'x'|center(3000000000) }}",
    "huge method width": "{{ 'x'.ljust(3000000000) }}",
    "doubling": "{% set ns = namespace(s='x' * 1000) %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s|length }}",
    "long output": "{% for i in range(20000) %}{{ 'y' * 1000 }}{% endfor %}",
    "huge power": "{{ 10 ** 100000000 }}",
}


@pytest.mark.parametrize("source", [NESTED_LOOPS, NESTED_OVER_MESSAGES], ids=["ranges", "strings"])
def test_an_endless_template_is_stopped_in_time(source: str) -> None:
    started = time.monotonic()
    # Whichever limit it reaches first stops it: the clock, or (a template that builds strings, in a process whose
    # memory other work moves) the memory limit.
    with pytest.raises(ModelFileError, match=r"chat template (took longer than 1 s|used more than 64 MiB)"):
        ChatTemplate(source, limits=QUICK).render(MESSAGES)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("source", [NESTED_LOOPS, NESTED_OVER_MESSAGES], ids=["ranges", "strings"])
def test_an_endless_template_is_stopped_off_the_main_thread_too(source: str) -> None:
    # (no interval timer there: a trace function watches the template's lines instead)
    failures: list[BaseException] = []

    def render() -> None:
        try:
            ChatTemplate(source, limits=QUICK).render(MESSAGES)
        except BaseException as exc:
            failures.append(exc)

    worker = threading.Thread(target=render)
    worker.start()
    worker.join(10)
    assert not worker.is_alive()
    assert len(failures) == 1 and "took longer than 1 s" in str(failures[0])


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_template_that_would_take_gigabytes_is_refused(name: str) -> None:
    limits = TemplateLimits(output_chars=4 * 2**20, seconds=10.0, memory_bytes=64 * 2**20)
    started = time.monotonic()
    with pytest.raises(ModelFileError, match=r"^The model's chat template"):
        ChatTemplate(HOSTILE[name], limits=limits).render(MESSAGES)
    assert time.monotonic() - started < 5


def test_a_huge_template_source_is_refused() -> None:
    with pytest.raises(ModelFileError, match="chat template is 300 KB long"):
        ChatTemplate("x" * 300 * 1024)


def test_the_template_may_refuse_a_conversation_in_its_own_words() -> None:
    source = "{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    with pytest.raises(EngineError, match="chat template refused the conversation: System role not supported"):
        ChatTemplate(source).render(MESSAGES)
    with pytest.raises(ModelFileError, match="chat template tried something the sandbox forbids"):
        ChatTemplate("{{ messages[0].__class__.__mro__ }}{{ ''.__class__.__subclasses__() }}").render(MESSAGES)


def test_real_templates_render_as_llama_cpp_python_renders_them() -> None:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    gemma_like = (
        "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}<start_of_turn>user\n"
        "{{ m['content'] | trim }}<end_of_turn>\n{% else %}<start_of_turn>model\n{{ m['content'] | trim }}"
        "<end_of_turn>\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
    )
    tools_like = "{% for m in messages %}{{ m | tojson }}{% endfor %}{{ strftime_now('%Y') | length }}"
    for source in (CHATML_TEMPLATE, gemma_like, tools_like):
        ours = ChatTemplate(source, bos_token="<s>", eos_token="</s>").render(MESSAGES)
        theirs = Jinja2ChatFormatter(template=source, eos_token="</s>", bos_token="<s>")(messages=MESSAGES).prompt
        assert ours == theirs and ours


def test_mlx_models_render_as_transformers_renders_them(tiny_hf_model: Path) -> None:
    from transformers import AutoTokenizer

    from backends.mlx import _sandboxed_template

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_hf_model))
    template = _sandboxed_template(tokenizer)
    assert template is not None
    expected = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert template.render(MESSAGES) == expected


def test_rendering_leaves_the_tracer_timer_and_signal_handler_as_they_were() -> None:
    import sys

    calls: list[str] = []

    def outer(frame, event, arg):  # type: ignore[no-untyped-def]
        calls.append(event)

    handler = signal.getsignal(signal.SIGALRM) if hasattr(signal, "SIGALRM") else None
    sys.settrace(outer)
    try:
        ChatTemplate(CHATML_TEMPLATE).render(MESSAGES)
        assert sys.gettrace() is outer
    finally:
        sys.settrace(None)
    if hasattr(signal, "SIGALRM"):
        assert signal.getsignal(signal.SIGALRM) == handler
        # an alarm set by someone else (pytest-timeout uses one) is still pending afterwards
        previous = signal.signal(signal.SIGALRM, lambda *_: None)
        signal.setitimer(signal.ITIMER_REAL, 100.0)
        try:
            ChatTemplate(CHATML_TEMPLATE).render(MESSAGES)
            assert 90 < signal.getitimer(signal.ITIMER_REAL)[0] <= 100
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


# -- in the engine: a hostile template in a real GGUF ---------------------------------------------------------------
@pytest.fixture
def host() -> Iterator[EngineHost]:
    engine = EngineHost(serve, name="test-template")
    yield engine
    engine.shutdown()


@pytest.mark.parametrize(
    ("name", "message"),
    [("huge repeat", "builds a value of 3,000,000,000"), ("huge filter width", "asks for a size of 3,000,000,000")],
)
def test_a_hostile_template_in_a_model_fails_the_request_and_the_engine_goes_on(
    host: EngineHost, tiny_gguf: Path, tmp_path: Path, name: str, message: str
) -> None:
    # (llama-cpp-python alone would fold these constants while loading and allocate 3 GB there)
    hostile = write_tiny_gguf(tmp_path / "hostile.gguf", TinyModelConfig(chat_template=HOSTILE[name]))
    host.load_blocking(ModelSpec("llama", str(hostile), LoadOptions(context_length=256)))
    pid = host.pid
    with pytest.raises(ModelFileError, match=f"chat template {message}"):
        host.generate_blocking([ChatMessage("user", "hi")], GenerationParams(max_tokens=2), timeout=60)
    assert host.pid == pid  # the same engine process answers the next request
    host.load_blocking(ModelSpec("llama", str(tiny_gguf), LoadOptions(context_length=256)))
    stats = host.generate_blocking([ChatMessage("user", "hi")], GenerationParams(max_tokens=2, ignore_eos=True))
    assert stats.completion_tokens == 2


def test_a_template_that_loops_forever_is_stopped_in_the_engine(host: EngineHost, tmp_path: Path) -> None:
    looping = write_tiny_gguf(tmp_path / "loop.gguf", TinyModelConfig(chat_template=NESTED_LOOPS))
    host.load_blocking(ModelSpec("llama", str(looping), LoadOptions(context_length=256)))
    started = time.monotonic()
    with pytest.raises(ModelFileError, match="took longer than"):
        host.count_tokens([ChatMessage("user", "hi")])
    assert time.monotonic() - started < 30


def test_a_model_with_a_huge_template_is_refused_at_load(host: EngineHost, tmp_path: Path) -> None:
    huge = write_tiny_gguf(tmp_path / "huge.gguf", TinyModelConfig(chat_template="{# " + "x" * 400_000 + " #}"))
    with pytest.raises(ModelFileError, match="chat template is 390 KB long"):
        host.load_blocking(ModelSpec("llama", str(huge), LoadOptions(context_length=256)))
    assert host.model is None and host.pid is not None
