"""Remote engines: a real mlx-lm server added, listed and chatted with from the command line and through the engine
host (streaming, stop), and servers that are down, silent, answer garbage or refuse the key — each failing in one
line that names the server, within the connection's timeout."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.engine.protocol import ChatMessage, GenerationParams, LoadOptions, ModelSpec, RemoteTarget, TokenChunk
from core.errors import AuthError, NetworkError
from core.remote.probe import probe
from tests.support.servers import free_port, http_peer, mlx_lm_server, send

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def hangar(data_dir: Path, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    environment = dict(os.environ, HANGAR_DATA_DIR=str(data_dir), **(env or {}))
    return subprocess.run(
        [sys.executable, "main.py", *argv], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def mlx_server(tiny_hf_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with mlx_lm_server(tiny_hf_model, tmp_path_factory.mktemp("hf-cache")) as url:
        yield url


def test_add_list_and_chat_with_an_mlx_lm_server(mlx_server: str, tiny_hf_model: Path, tmp_path: Path) -> None:
    added = hangar(tmp_path, "remote", "add", "box", mlx_server + "/v1/", "--json")
    assert added.returncode == 0, added.stderr
    info = json.loads(added.stdout)
    assert info["answered"] and info["kind"] == "mlx-lm" and info["url"] == mlx_server
    # mlx-lm lists the model it serves, or (older releases, or with no Hugging Face cache) nothing at all and
    # answers to "default_model": either way a chat with "box" alone reaches the one model.
    assert info["models"] in ([], [str(tiny_hf_model)])
    assert info["default_model"] in ("default_model", str(tiny_hf_model))

    listed = hangar(tmp_path, "remote", "ls", "--json")
    assert [r["name"] for r in json.loads(listed.stdout)] == ["box"]

    chat = hangar(tmp_path, "chat", "box", "--prompt", "Hello", "--max-tokens", "6", "--temperature", "0", "--json")
    assert chat.returncode == 0, chat.stderr
    lines = chat.stdout.splitlines()
    assert len(lines) == 1  # --json stdout is one JSON object, nothing else
    reply = json.loads(lines[0])
    assert reply["engine"] == "remote" and reply["completion_tokens"] == 6 and reply["text"]
    assert reply["stop_reason"] == "length" and reply["time_to_first_token_ms"] > 0

    named = hangar(tmp_path, "chat", "box:default_model", "--prompt", "Hi", "--max-tokens", "3", "--json")
    assert named.returncode == 0, named.stderr

    removed = hangar(tmp_path, "remote", "rm", "box")
    assert removed.returncode == 0 and "Removed box" in removed.stdout
    gone = hangar(tmp_path, "chat", "box", "--prompt", "Hi", "--json")
    assert gone.returncode == 1


def test_remote_chat_streams_and_stops_through_the_engine_host(app, mlx_server: str) -> None:
    host = app.new_engine_host("remote-test")
    target = RemoteTarget("box", mlx_server, "default_model", timeout=20)
    info = host.load_blocking(ModelSpec("remote", "box:default_model", LoadOptions(), remote=target), timeout=60)
    assert info.engine == "remote" and info.device.startswith("remote: box")

    chunks: list[str] = []
    stats = host.generate_blocking(
        [ChatMessage("user", "Tell me a story")],
        GenerationParams(max_tokens=12, temperature=0, ignore_eos=True),
        on_chunk=chunks.append,
        timeout=60,
    )
    assert "".join(chunks) == stats.text and stats.completion_tokens == 12

    # Stop mid-stream: a long reply ends early, as "cancelled", and the engine answers the next request.
    seen = threading.Event()
    host.events.connect(lambda e: seen.set() if isinstance(e, TokenChunk) else None)
    request = host.generate([ChatMessage("user", "Go on")], GenerationParams(max_tokens=2000, ignore_eos=True))
    assert seen.wait(30)
    host.cancel()
    with pytest.raises(Exception):  # noqa: B017 - either a cancelled error or a "cancelled" finish
        event = host.wait(request, timeout=30)
        assert event.stats.stop_reason == "cancelled"  # type: ignore[union-attr]
        raise RuntimeError("stopped")
    again = host.generate_blocking(
        [ChatMessage("user", "Hi")], GenerationParams(max_tokens=2, ignore_eos=True), timeout=60
    )
    assert again.completion_tokens == 2


def test_a_server_that_is_down_fails_in_one_line_naming_it(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    added = hangar(tmp_path, "remote", "add", "gone", url)
    assert added.returncode == 1
    assert added.stderr.count("\n") == 1 and "gone" in added.stderr and "cannot be reached" in added.stderr
    forced = hangar(tmp_path, "remote", "add", "gone", url, "--no-check", "--json")
    assert forced.returncode == 0 and json.loads(forced.stdout)["answered"] is False
    chat = hangar(tmp_path, "chat", "gone:some-model", "--prompt", "Hi", "--json")
    assert chat.returncode == 1 and "gone" in chat.stderr and chat.stderr.count("\n") == 1
    assert json.loads(chat.stdout)["error"]["code"] == "network"


def test_garbage_silence_and_a_refused_key_are_explained() -> None:
    def garbage(handler) -> None:  # type: ignore[no-untyped-def]
        send(handler, 200, b"<html>Welcome to the hotel wifi</html>", "text/html")

    with http_peer(garbage) as url:
        result = probe(url, label="wifi")
        assert not result.answered and "not JSON" in (result.error or "") and "wifi" in (result.error or "")

    def silent(handler) -> None:  # type: ignore[no-untyped-def]
        time.sleep(3)
        send(handler, 200, b"{}")

    with http_peer(silent) as url:
        started = time.monotonic()
        result = probe(url, timeout=1, label="slow")
        assert time.monotonic() - started < 2.5
        assert not result.answered and "did not answer within 1 s" in (result.error or "")

    def locked(handler) -> None:  # type: ignore[no-untyped-def]
        if handler.headers.get("Authorization") != "Bearer right-key":
            send(handler, 401, json.dumps({"error": {"message": "invalid api key"}}).encode())
        else:
            send(handler, 200, json.dumps({"object": "list", "data": [{"id": "m1", "owned_by": "vllm"}]}).encode())

    with http_peer(locked) as url:
        refused = probe(url, api_key="wrong", label="locked")
        assert not refused.answered and "refused the API key" in (refused.error or "")
        assert "wrong" not in (refused.error or "")  # the key never appears in a message
        accepted = probe(url, api_key="right-key", label="locked")
        assert accepted.answered and accepted.kind == "vllm" and accepted.models == ("m1",)


def test_api_key_comes_from_the_named_environment_variable(tmp_path: Path) -> None:
    def locked(handler) -> None:  # type: ignore[no-untyped-def]
        if handler.headers.get("Authorization") != "Bearer s3cret":
            send(handler, 401, b'{"error": {"message": "no"}}')
        else:
            send(handler, 200, b'{"object": "list", "data": [{"id": "m1"}, {"id": "m2"}]}')

    with http_peer(locked) as url:
        refused = hangar(tmp_path, "remote", "add", "team", url, "--api-key-env", "TEAM_KEY")
        assert refused.returncode == 1 and "refused the API key" in refused.stderr
        added = hangar(tmp_path, "remote", "add", "team", url, "--api-key-env", "TEAM_KEY", env={"TEAM_KEY": "s3cret"})
        assert added.returncode == 0, added.stderr
        listed = hangar(tmp_path, "remote", "ls", "--json", env={"TEAM_KEY": "s3cret"})
        assert json.loads(listed.stdout)[0]["models"] == ["m1", "m2"]
        settings = (tmp_path / "settings.json").read_text() if (tmp_path / "settings.json").exists() else ""
        assert "s3cret" not in settings
        several = hangar(tmp_path, "chat", "team", "--prompt", "Hi", env={"TEAM_KEY": "s3cret"})
        assert several.returncode == 2 and "team:MODEL" in several.stderr


def test_bad_names_and_addresses_are_refused(tmp_path: Path) -> None:
    bad_name = hangar(tmp_path, "remote", "add", "has space", "http://127.0.0.1:1")
    assert bad_name.returncode == 2 and "not a usable name" in bad_name.stderr
    bad_url = hangar(tmp_path, "remote", "add", "x", "ftp://host")
    assert bad_url.returncode == 1 and "not an http(s) address" in bad_url.stderr
    with pytest.raises(NetworkError):
        from core.remote.http import normalise_url

        normalise_url("   ")
    assert issubclass(AuthError, NetworkError)
