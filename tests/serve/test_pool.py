"""The model pool through the server: just-in-time loads, idle unload, two models evicting each other by the
estimator's figures, clients at once, and a client that leaves mid-stream."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

pytestmark = pytest.mark.slow


def _wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _ask(client, model: str, max_tokens: int = 4, **extra: object) -> object:  # type: ignore[no-untyped-def]
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=max_tokens, temperature=0, **extra
    )


def test_jit_load_and_idle_unload(serve_service, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    import openai

    serve_service.update_config(idle_unload_seconds=1.0)
    base_url = serve_service.start(port=0).base_url
    assert serve_service.loaded() == []
    with openai.OpenAI(base_url=base_url, api_key="x", max_retries=0) as client:
        _ask(client, served_models[0])
        assert [m.name for m in serve_service.loaded()] == [served_models[0]]
        assert serve_service.loaded()[0].memory_bytes > 0
        assert _wait_for(lambda: serve_service.loaded() == [], timeout=20)
        _ask(client, served_models[0])  # loads again on demand
        assert [m.name for m in serve_service.loaded()] == [served_models[0]]


def test_two_models_evict_each_other(app, serve_service, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    import openai

    from core.chat.models import estimate_load, load_options

    library = app.library
    options = load_options(app.settings.current)
    needs = [
        estimate_load(library.get(n).load_path, options, app.hardware(), gpu_layers=None).total_bytes
        for n in served_models
    ]
    budget = max(needs) + min(needs) // 2  # room for either model, never both
    base_url = serve_service.start(port=0, memory_budget_bytes=budget).base_url
    with openai.OpenAI(base_url=base_url, api_key="x", max_retries=0) as client:
        first, second = served_models
        _ask(client, first)
        assert [m.name for m in serve_service.loaded()] == [first]
        _ask(client, second)
        assert [m.name for m in serve_service.loaded()] == [second]
        _ask(client, first)
        assert [m.name for m in serve_service.loaded()] == [first]
    serve_service.stop()
    serve_service.start(port=0, memory_budget_bytes=sum(needs) * 2)
    with openai.OpenAI(base_url=serve_service.endpoint.base_url, api_key="x", max_retries=0) as client:
        _ask(client, served_models[0])
        _ask(client, served_models[1])
        assert sorted(m.name for m in serve_service.loaded()) == served_models


def test_concurrent_clients_all_get_answers(client, server, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    results: list[object] = []
    errors: list[BaseException] = []

    def one(index: int) -> None:
        try:
            model = served_models[index % 2]
            if index % 3 == 0:
                chunks = list(_ask(client, model, stream=True, max_tokens=16))
                results.append("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))
            else:
                results.append(_ask(client, model, max_tokens=16).choices[0].message.content)
        except BaseException as exc:  # collected and reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == [] and len(results) == 8
    assert sum(1 for r in server.log if r.status == 200) == 8


def test_client_leaving_mid_stream_cancels_the_generation(client, server, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    stream = _ask(client, served_models[0], stream=True, max_tokens=4000, extra_body={"ignore_eos": True})
    for received, _chunk in enumerate(stream):
        if received == 2:
            break
    stream.close()
    assert _wait_for(lambda: server.loaded()[0].cancelled == 1 and not server.loaded()[0].busy, timeout=20)
    assert _wait_for(lambda: any(r.status == 499 for r in server.log), timeout=5)
    # the engine is free again: the next request is answered
    assert _ask(client, served_models[0]).usage.completion_tokens > 0


def test_client_leaving_before_a_whole_answer_cancels_it(server, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    import json
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(server.endpoint.base_url)
    body = json.dumps(
        {"model": served_models[0], "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4000,
         "ignore_eos": True}
    ).encode()  # fmt: skip
    head = (
        f"POST {parts.path}/chat/completions HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(head + body)
        assert _wait_for(lambda: bool(server.loaded()) and server.loaded()[0].busy)
    assert _wait_for(lambda: server.loaded()[0].cancelled == 1 and not server.loaded()[0].busy, timeout=20)
    assert _wait_for(lambda: any(r.status == 499 for r in server.log), timeout=5)
