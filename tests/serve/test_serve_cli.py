"""``hangar serve`` as a real subprocess: JSON lines only on stdout, Ctrl-C stops it cleanly, refusals are one line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _serve(data_dir: Path, *args: str) -> subprocess.Popen[str]:
    code = "import sys, main; sys.exit(main.main(sys.argv[1:]))"
    argv = [sys.executable, "-c", code, "serve", "--data-dir", str(data_dir), *args]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_other_hosts_without_a_key_are_refused(tmp_path: Path) -> None:
    process = _serve(tmp_path / "data", "--host", "0.0.0.0", "--json")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert json.loads(out)["error"]["code"] == "usage"
    assert "needs an API key" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_serve_answers_and_stops_on_ctrl_c(tmp_path: Path, tiny_gguf: Path) -> None:
    import openai

    from backends.worker import serve
    from core.app import AppContext
    from core.models.types import ImportMode
    from core.paths import AppPaths

    data = tmp_path / "data"
    app = AppContext.create(AppPaths.under(data), worker_entry=serve)
    name = app.library.import_paths([tiny_gguf], ImportMode.LINK).imported[0].name
    app.close()
    process = _serve(data, "--port", "0", "--json", "--api-key", "k-123")
    try:
        assert process.stdout is not None
        started = json.loads(process.stdout.readline())
        assert started["event"] == "started" and started["auth"] is True
        assert started["base_url"].startswith("http://127.0.0.1:")
        with openai.OpenAI(base_url=started["base_url"], api_key="k-123", max_retries=0) as client:
            reply = client.chat.completions.create(
                model=name, messages=[{"role": "user", "content": "Hi"}], max_tokens=3, temperature=0
            )
        assert reply.usage.completion_tokens > 0
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["event"] for line in lines] == ["request", "stopped"]
    assert lines[0]["status"] == 200 and lines[0]["model"] == name
    assert "k-123" not in out + err
