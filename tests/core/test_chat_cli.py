"""``hangar chat``: one-shot answers with stats (JSON and text) on both engines, the REPL saving a conversation,
and clear errors for bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

import main
from core.chat.store import ChatStore, MessageState
from core.paths import AppPaths
from core.store import Store


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("engine", ["llama", "mlx"])
def test_one_shot_json(
    engine: str, tiny_gguf: Path, tiny_hf_model: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tiny_gguf if engine == "llama" else tiny_hf_model
    code, out, _ = run(
        capsys,
        "chat",
        str(model),
        "--prompt",
        "hello",
        "--max-tokens",
        "12",
        "--seed",
        "3",
        "--temperature",
        "0.9",
        "--json",
    )
    assert code == 0
    result = json.loads(out)
    assert {"text", "prompt_tokens", "completion_tokens", "tokens_per_second", "time_to_first_token_ms"} <= set(result)
    assert result["engine"] == engine
    assert 0 < result["completion_tokens"] <= 12
    assert result["prompt_tokens"] > 5 and result["time_to_first_token_ms"] > 0
    assert isinstance(result["text"], str)


def test_one_shot_text_streams_the_answer(tiny_gguf: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "chat",
        str(tiny_gguf),
        "--prompt",
        "hi",
        "--system",
        "Be brief.",
        "--max-tokens",
        "6",
        "--temperature",
        "0",
        "--context-length",
        "512",
    )
    assert code == 0
    assert out.strip()
    assert "tokens/s" in err and "Loaded" in err
    # greedy: the same answer again
    _, again, _ = run(
        capsys,
        "chat",
        str(tiny_gguf),
        "--prompt",
        "hi",
        "--system",
        "Be brief.",
        "--max-tokens",
        "6",
        "--temperature",
        "0",
        "--context-length",
        "512",
    )
    assert again == out


def test_repl_saves_the_conversation(
    tiny_gguf: Path, data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("hello there\n/regen\n/continue\n/bogus\nsecond\n/exit\n"))
    code, _, err = run(capsys, "chat", str(tiny_gguf), "--max-tokens", "8", "--seed", "1", "--system", "Hi.")
    assert code == 0
    assert "Saved as conversation" in err
    chats = ChatStore(Store(AppPaths.under(data_dir).database_file))
    (conversation,) = chats.conversations()
    assert conversation.title == "hello there" and conversation.system_prompt == "Hi."
    messages = chats.messages(conversation.id)
    assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
    assert all(m.state == MessageState.DONE for m in messages)


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["chat", "/no/such/model.gguf", "--prompt", "x"], 1, "No model at"),
        (["chat", "{model}", "--prompt", "x", "--max-tokens", "0"], 2, "--max-tokens"),
        (["chat", "{model}", "--prompt", "x", "--temperature", "9"], 2, "Temperature"),
        (["chat", "{model}", "--prompt", "x", "--gpu-layers", "lots"], 2, "GPU layers"),
    ],
)
def test_bad_input_is_one_clear_line(
    argv: list[str], code: int, message: str, tiny_gguf: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [a.replace("{model}", str(tiny_gguf)) for a in argv]
    result, out, err = run(capsys, *argv, "--json")
    assert result == code
    assert message in json.loads(out)["error"]["message"]
    assert err.count("\n") == 1 and message in err


def test_corrupt_model_file(
    tiny_gguf: Path, tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(tiny_gguf.read_bytes()[:3000])
    code, _, err = run(capsys, "chat", str(bad), "--prompt", "x")
    assert code == 1 and "bad.gguf" in err and err.count("\n") == 1


def test_library_names_resolve(
    tiny_gguf: Path, tiny_hf_model: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "import", "--link", str(tiny_gguf), str(tiny_hf_model))
    assert code == 0, err
    code, out, _ = run(capsys, "ls", "--json")
    names = {entry["name"]: entry for entry in json.loads(out)}
    gguf_name = next(n for n, e in names.items() if e["format"] == "gguf")
    mlx_name = next(n for n, e in names.items() if e["format"] == "mlx")
    for name, engine in ((gguf_name, "llama"), (mlx_name, "mlx")):
        code, out, err = run(capsys, "chat", name, "--prompt", "hi", "--max-tokens", "3", "--json")
        assert code == 0, err
        assert json.loads(out)["engine"] == engine
    code, out, _ = run(capsys, "chat", "no-such-model", "--prompt", "hi", "--json")
    assert code == 1 and "library" in json.loads(out)["error"]["message"]
