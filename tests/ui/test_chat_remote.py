"""Chat in the window with a remote server's model (a real mlx-lm server on 127.0.0.1): it is offered next to the
local models, marked as remote with the server's name, loads, and answers; the load options take RPC workers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.chat.models import AUTO_GPU_LAYERS
from core.chat.store import MessageState
from core.engine.protocol import LoadOptions
from tests.support.servers import mlx_lm_server
from ui.bridge import Bridge
from ui.pages.chat import ChatPage
from ui.pages.chat_load import LoadOptionsDialog

WAIT = 60_000
pytestmark = pytest.mark.slow


@pytest.fixture
def page(qtbot, app) -> Iterator[ChatPage]:  # type: ignore[no-untyped-def]
    widget = ChatPage(app, Bridge())
    qtbot.addWidget(widget)
    widget.resize(1100, 700)
    widget.show()
    yield widget
    widget.shutdown()


def test_a_remote_model_is_offered_loaded_and_answers(
    qtbot, page: ChatPage, tiny_hf_model: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    with mlx_lm_server(tiny_hf_model, tmp_path / "hf-cache") as url:
        page.app.remotes.add("box", url)
        page.refresh_models()
        qtbot.waitUntil(lambda: page.model_picker.findText("· box", flags=_contains()) >= 0, timeout=WAIT)
        index = page.model_picker.findText("· box", flags=_contains())
        assert "remote, mlx-lm" in page.model_picker.itemText(index)
        page.model_picker.setCurrentIndex(index)
        with qtbot.waitSignal(page.model_state_changed, timeout=WAIT, check_params_cb=lambda s: s != "loading"):
            page.load_selected()
        assert page.service.loaded is not None, page.banner.text()
        assert page.service.loaded.info.engine == "remote"
        page.composer.setPlainText("hello")
        with qtbot.waitSignal(page.reply_finished, timeout=WAIT) as blocker:
            page.send_button.click()
        reply = blocker.args[0]
        assert reply.state == MessageState.DONE and reply.completion_tokens


def test_load_options_take_rpc_workers(qtbot) -> None:  # type: ignore[no-untyped-def]
    dialog = LoadOptionsDialog(LoadOptions(gpu_layers=AUTO_GPU_LAYERS))
    qtbot.addWidget(dialog)
    dialog.rpc.setText("10.0.0.2:50052, gpu-box")
    assert dialog.read().rpc_servers == ("10.0.0.2:50052", "gpu-box:50052")
    dialog.rpc.setText("gpu-box:notaport")
    with pytest.raises(ValueError, match="HOST:PORT"):
        dialog.read()


def _contains():  # type: ignore[no-untyped-def]
    from PySide6.QtCore import Qt

    return Qt.MatchFlag.MatchContains
