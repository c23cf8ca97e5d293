"""Bad input gets an OpenAI-style JSON error and the server stays up; keys, limits and CORS."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time

import pytest

from tests.serve.support import request

pytestmark = pytest.mark.slow


def _chat(model: str, **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "temperature": 0, **extra}


def test_bad_input_is_a_json_error_and_the_server_stays_up(base_url: str, served_models: list[str]) -> None:
    status, body, _ = request(base_url, "POST", "/chat/completions", "{not json")
    assert status == 400 and "not valid JSON" in body["error"]["message"]
    status, body, _ = request(base_url, "POST", "/chat/completions", _chat(served_models[0], temperature="hot"))
    assert status == 400 and body["error"]["param"] == "temperature"
    status, body, _ = request(base_url, "POST", "/chat/completions", {"model": served_models[0]})
    assert status == 400 and "messages" in body["error"]["message"]
    status, body, _ = request(base_url, "POST", "/chat/completions", _chat(served_models[0], max_tokens=-3))
    assert status == 400
    status, body, _ = request(base_url, "POST", "/chat/completions", _chat("gpt-4o"))
    assert status == 404
    assert all(name in body["error"]["message"] for name in served_models)
    # the API serves the library only: a path is a name that does not exist, never a file to open
    status, _, _ = request(base_url, "POST", "/chat/completions", _chat("/etc/passwd"))
    assert status == 404
    status, body, _ = request(base_url, "POST", "/embeddings", {"model": served_models[0], "input": [[1, 2]]})
    assert status == 400
    status, body, _ = request(base_url, "GET", "/models")
    assert status == 200 and len(body["data"]) == 2


def test_prompt_longer_than_context_says_by_how_much(app, serve_service, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    from core.serve.defaults import ModelDefaults, ModelDefaultsStore

    # per-model defaults set in the window apply to API loads: a 256-token context for this model
    entry = app.library.get(served_models[0])
    ModelDefaultsStore(app.store).set(entry.id, ModelDefaults(context_length=256))
    base_url = serve_service.start(port=0).base_url
    status, body, _ = request(base_url, "POST", "/chat/completions", _chat(served_models[0]))
    assert status == 200
    assert serve_service.loaded()[0].context_length == 256
    long = {"model": served_models[0], "messages": [{"role": "user", "content": "hello " * 400}]}
    status, body, _ = request(base_url, "POST", "/chat/completions", long)
    assert status == 400
    assert body["error"]["code"] == "context_length_exceeded"
    assert "tokens too long" in body["error"]["message"]
    status, body, _ = request(base_url, "POST", "/chat/completions", _chat(served_models[0]))
    assert status == 200


def test_oversize_body_is_413_and_max_tokens_is_capped(serve_service, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    serve_service.update_config(max_body_bytes=64 * 1024, max_tokens_cap=5)
    base_url = serve_service.start(port=0).base_url
    status, body, _ = request(base_url, "POST", "/chat/completions", _chat(served_models[0], max_tokens=500,
                                                                          ignore_eos=True))  # fmt: skip
    assert status == 200 and body["usage"]["completion_tokens"] == 5
    big = _chat(served_models[0], messages=[{"role": "user", "content": "x" * 100_000}])
    status, body, _ = request(base_url, "POST", "/chat/completions", big)
    assert status == 413 and "limit" in body["error"]["message"]
    status, _, _ = request(base_url, "GET", "/models")
    assert status == 200


def test_api_key(serve_service, served_models: list[str], caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    import anthropic
    import openai

    key = "hk-test-secret-0123456789"
    caplog.set_level(logging.DEBUG)
    base_url = serve_service.start(port=0, api_key=key).base_url
    assert serve_service.endpoint.auth
    status, body, _ = request(base_url, "GET", "/models")
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    with (
        openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0) as wrong,
        pytest.raises(openai.AuthenticationError),
    ):
        wrong.models.list()
    with openai.OpenAI(base_url=base_url, api_key=key, max_retries=0) as right:
        right.chat.completions.create(**_chat(served_models[0]))
    with anthropic.Anthropic(base_url=base_url.removesuffix("/v1"), api_key=key, max_retries=0) as claude:
        claude.messages.create(model=served_models[0], max_tokens=4, messages=[{"role": "user", "content": "x"}])
    assert key not in caplog.text
    assert all(key not in json.dumps(r.__dict__) for r in serve_service.log)
    assert (
        key not in serve_service.app.paths.settings_file.read_text()
        if serve_service.app.paths.settings_file.exists()
        else True
    )


def test_other_hosts_need_a_key(serve_service) -> None:  # type: ignore[no-untyped-def]
    from core.errors import UsageError

    serve_service.keys.clear()
    with pytest.raises(UsageError, match="needs an API key"):
        serve_service.start(host="0.0.0.0", port=0)
    assert not serve_service.running


def test_cors_is_closed_unless_enabled(serve_service) -> None:  # type: ignore[no-untyped-def]
    preflight = {"origin": "https://evil.example", "access-control-request-method": "POST"}
    base_url = serve_service.start(port=0).base_url
    _, _, headers = request(base_url, "OPTIONS", "/chat/completions", headers=preflight)
    assert "access-control-allow-origin" not in headers
    serve_service.stop()
    serve_service.update_config(cors_origins=("https://app.example",))
    base_url = serve_service.start(port=0).base_url
    _, _, headers = request(
        base_url, "OPTIONS", "/chat/completions", headers={**preflight, "origin": "https://app.example"}
    )
    assert headers.get("access-control-allow-origin") == "https://app.example"


def test_engine_crash_fails_that_request_and_the_next_one_works(server, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    base_url = server.endpoint.base_url
    assert request(base_url, "POST", "/chat/completions", _chat(served_models[0]))[0] == 200
    result: list[object] = []
    long = _chat(served_models[0], max_tokens=4000, ignore_eos=True)
    worker = threading.Thread(target=lambda: result.append(request(base_url, "POST", "/chat/completions", long)))
    worker.start()
    deadline = time.monotonic() + 30
    while not (server.loaded() and server.loaded()[0].busy) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(server.loaded()[0].pid, signal.SIGKILL)
    worker.join(60)
    status, body, _ = result[0]  # type: ignore[misc]
    assert status == 500 and "engine" in body["error"]["message"].lower()
    status, body, _ = request(base_url, "POST", "/chat/completions", _chat(served_models[0]))
    assert status == 200 and body["usage"]["completion_tokens"] > 0
