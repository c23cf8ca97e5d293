"""Screenshot states of the Machines page: two saved servers (one answering with its models, one down) and the
worker section set to listen on every network, with its warning."""

from __future__ import annotations

import json
from contextlib import ExitStack

from tests.support.servers import free_port, http_peer, send

_peers = ExitStack()


def _listing(handler) -> None:  # type: ignore[no-untyped-def]
    models = ["qwen2.5-7b-instruct", "llama-3.1-8b-instruct", "mistral-small-24b"]
    send(handler, 200, json.dumps({"object": "list", "data": [{"id": m, "owned_by": "vllm"} for m in models]}).encode())


def scene_machines(window) -> None:  # type: ignore[no-untyped-def]
    window.show_page("machines")
    page = window.pages["machines"]
    app = window.app
    url = _peers.enter_context(http_peer(_listing))
    if app.remotes.find("gpu-box") is None:
        app.remotes.add("gpu-box", url)
        app.remotes.add("laptop", f"http://127.0.0.1:{free_port()}", check=False, timeout=2)
    import time

    from PySide6.QtWidgets import QApplication

    page.refresh()
    deadline = time.monotonic() + 15
    while not page.refresh_button.isEnabled() and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.05)
    page.host.setCurrentIndex(1)


SCENES = [("machines", scene_machines)]
