"""Screenshot states of the Chat page (``ui/screenshots.py``): a conversation with code and stats on a really
loaded model, and a load that ran out of memory with the estimator's advice. Models are generated on the fly."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from core.chat.store import ChatSettings, MessageState
from core.engine.protocol import GenerationStats

QUESTION = "How do I read a file line by line in Python, skipping blank lines?"
ANSWER = """Open the file with a `with` block so it is closed for you, and skip lines that are only whitespace:

```python
from pathlib import Path

def read_lines(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as handle:
        return [line.rstrip("\\n") for line in handle if line.strip()]
```

- `line.strip()` is empty for blank lines, so they are skipped.
- For huge files, use a generator (`yield line`) instead of building a list.
"""
_MODELS = Path(tempfile.mkdtemp(prefix="hangar-shot-models-"))


def _spin(condition: Any, timeout_ms: int = 60_000) -> None:
    from PySide6.QtCore import QDeadlineTimer, QEventLoop, QTimer

    deadline = QDeadlineTimer(timeout_ms)
    loop = QEventLoop()
    poll = QTimer()
    poll.setInterval(20)

    def check() -> None:
        if condition() or deadline.hasExpired():
            loop.quit()

    poll.timeout.connect(check)
    poll.start()
    if not condition():
        loop.exec()
    poll.stop()


def _load(page: Any, path: Path) -> None:
    states: list[str] = []
    page.model_state_changed.connect(states.append)
    page.add_model_path(str(path))
    page.load_selected()
    _spin(lambda: bool(states) and states[-1] != "loading")


def conversation(window: Any) -> None:
    """A finished exchange with a highlighted code block, per-message stats and the context meter."""
    from core.devkit.modelgen import write_tiny_gguf

    window.show_page("chat")
    page = window.pages["chat"]
    _load(page, write_tiny_gguf(_MODELS / "Llama-3.2-1B-Instruct-Q4_K_M.gguf"))
    chats = page.service.chats
    conv = chats.create(
        title="Read a file line by line",
        model=str(page.model_picker.currentData()),
        engine="llama",
        system_prompt="You are a concise Python tutor.",
        settings=ChatSettings(temperature=0.2, top_p=0.9, top_k=20, min_p=0.05, repeat_penalty=1.05),
    )
    chats.add_message(conv.id, "user", QUESTION)
    reply = chats.add_message(conv.id, "assistant", "", MessageState.STREAMING)
    stats = GenerationStats(41, 112, 86.0, 38.4, "stop", ANSWER)
    chats.finish_message(reply.id, ANSWER, MessageState.DONE, stats=stats)
    page.conversations.refresh(select=conv.id)
    page.open_conversation(conv.id)
    _spin(lambda: "tokens" in page.meter_label.text(), 10_000)


def out_of_memory(window: Any) -> None:
    """A model whose KV cache cannot be allocated: the failure and the estimator's advice, in place."""
    from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf

    window.show_page("chat")
    page = window.pages["chat"]
    wide = write_tiny_gguf(_MODELS / "wide-2048.gguf", TinyModelConfig(n_embd=2048, n_ff=64, n_head=16, n_head_kv=16))
    page.app.settings.update(default_context_length=10_000_000)
    try:
        _load(page, wide)
    finally:
        page.app.settings.update(default_context_length=4096)


SCENES = [("chat-conversation", conversation), ("chat-out-of-memory", out_of_memory)]
