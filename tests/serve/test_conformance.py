"""An independent conformance check: ``llm-comply`` (PyPI) runs its OpenAI chat, Anthropic and Open Responses
suites against the server on a real tiny GGUF.

What a random-weights model cannot do is left out of the expected set and listed here: choosing on its own to
call a tool (``*tool-calling``: the check asks with ``auto``/``any`` and a 2-layer random model never writes a
complete call), images (Hangar's engines here take text only: a clear 400), and reasoning/thinking (skipped by
the tool for non-reasoning models).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

EXPECTED = {
    "openai-chat": {
        "chat-basic-response",
        "chat-system-prompt",
        "chat-multi-turn",
        "chat-streaming-response",
        "chat-streaming-usage",
        "chat-error-handling",
    },
    "anthropic": {
        "anth-basic-response",
        "anth-system-prompt",
        "anth-multi-turn",
        "anth-streaming-response",
        "anth-streaming-usage",
        "anth-error-handling",
    },
    "open-responses": {
        "basic-response",
        "system-prompt",
        "multi-turn",
        "streaming-response",
        "streaming-usage",
        "assistant-phase",
        "response-output-phase-schema",
        "error-handling",
    },
}


def _llm_comply() -> str:
    found = shutil.which("llm-comply") or str(Path(sys.executable).with_name("llm-comply"))
    if not Path(found).exists():
        pytest.skip("llm-comply is not installed (dev extra)")
    return found


def _sampling():  # type: ignore[no-untyped-def]
    from core.chat.store import ChatSettings

    return ChatSettings(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0, seed=3, max_tokens=3000)


SAMPLING = _sampling()


@pytest.fixture
def seeded_model(app, served_models: list[str]) -> str:  # type: ignore[no-untyped-def]
    """The tiny model with seeded sampling as its default, so each check sees the same answer every run. The
    checks want answers that end by themselves; a random-weights model ends one only by sampling its end token,
    so sampling is wide and answers may be long (greedy, it would never stop; unseeded, now and then it would stop
    at once or run out of tokens, and the suite would be flaky)."""
    from core.serve.defaults import ModelDefaults, ModelDefaultsStore

    entry = app.library.get(served_models[0])
    ModelDefaultsStore(app.store).set(entry.id, ModelDefaults(sampling=SAMPLING))
    return served_models[0]


@pytest.mark.parametrize("suite", sorted(EXPECTED))
def test_llm_comply(suite: str, base_url: str, seeded_model: str) -> None:
    command = [_llm_comply(), "-u", base_url, "-k", "unused", "-m", seeded_model, "--format", suite, "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    report = json.loads(result.stdout)
    passed = {t["id"] for t in report["results"] if t["status"] == "passed"}
    failures = {t["id"]: t.get("errors") for t in report["results"] if t["id"] in EXPECTED[suite] - passed}
    assert not failures, failures
