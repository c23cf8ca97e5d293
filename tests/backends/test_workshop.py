"""The Workshop on real llama.cpp with tiny generated models: perplexity by llama-perplexity's method, KL divergence
against a reference, speed runs, quantize and convert through the command line, and every refusal of bad input."""

from __future__ import annotations

import json
import math
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import main
from core.devkit.modelgen import _WORDS, TinyModelConfig, write_tiny_gguf
from core.gguf import read_gguf

pytest.importorskip("llama_cpp")

#: Rows of 256: wide enough for llama.cpp's K-quants (blocks of 256) to apply instead of falling back.
WIDE = TinyModelConfig(n_embd=256, n_head=4, n_head_kv=2, n_ff=512, n_layer=2, n_vocab=512, name="wide-llama")


@pytest.fixture(scope="module")
def wide_f16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("ws-models") / "wide-llama-F16.gguf", WIDE)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rnd = random.Random(7)
    path = tmp_path_factory.mktemp("ws-text") / "words.txt"
    path.write_text(" ".join(rnd.choice(_WORDS) for _ in range(300)), encoding="utf-8")
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = main.main([*argv, "--json"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1, f"--json must print one JSON object on stdout, got {lines}"
    return code, json.loads(lines[0])


def reference_perplexity(model: Path, text: str, ctx: int) -> tuple[float, int]:
    """The method written out with llama-cpp-python's high-level API (``Llama.eval`` + ``scores``), chunk by chunk."""
    import llama_cpp
    import numpy as np

    llm = llama_cpp.Llama(str(model), n_ctx=ctx, n_batch=ctx, logits_all=True, verbose=False)
    try:
        tokens = llm.tokenize(text.encode(), add_bos=True, special=False)
        first, nll, count = ctx // 2, 0.0, 0
        for i in range(len(tokens) // ctx):
            chunk = tokens[i * ctx : (i + 1) * ctx]
            chunk[0] = llm.token_bos()
            llm.reset()
            llm.eval(chunk)
            logits = np.asarray(llm.scores[:ctx], dtype=np.float64)
            for pos in range(first, ctx - 1):
                row = logits[pos]
                top = row.max()
                nll += top + math.log(np.exp(row - top).sum()) - row[chunk[pos + 1]]
                count += 1
        return math.exp(nll / count), count
    finally:
        llm.close()


def test_eval_matches_the_method_written_out(data_dir: Path, wide_f16: Path, text_file: Path, capsys) -> None:
    code, result = cli(capsys, "eval", str(wide_f16), "--text", str(text_file), "--ctx", "128")
    assert code == 0, result
    expected, scored = reference_perplexity(wide_f16, text_file.read_text(), 128)
    assert result["tokens_scored"] == scored == result["chunks"] * 63
    assert result["perplexity"] == pytest.approx(expected, rel=1e-3)
    assert result["kl_divergence"] is None
    # kept per model, in the database a later run of the app opens
    from core.paths import AppPaths
    from core.store import Store
    from core.workshop.records import WorkshopRecords

    store = Store(AppPaths.under(data_dir).database_file)
    stored = WorkshopRecords(store).evals(wide_f16)
    assert stored and stored[0].result.perplexity == pytest.approx(result["perplexity"])
    store.close()


def test_quantize_then_kl_divergence_orders_the_quants(data_dir: Path, wide_f16: Path, text_file: Path, capsys) -> None:
    folder = wide_f16.parent
    sizes = {}
    for qtype in ("Q8_0", "Q4_K_M"):
        out = folder / f"wide-llama-{qtype}.gguf"
        out.unlink(missing_ok=True)
        code, result = cli(capsys, "quantize", str(wide_f16), "--type", qtype, "--out", str(out))
        assert code == 0, result
        assert result["path"] == str(out) and result["made_from"] == wide_f16.name and result["library_id"]
        info = read_gguf(out)
        assert info.quant_type == qtype
        sizes[qtype] = out.stat().st_size
        assert not list(folder.glob(".*.part")), "no temporary file may remain"
    assert sizes["Q4_K_M"] < sizes["Q8_0"] < wide_f16.stat().st_size
    # Q4_K_M puts most weights in Q4_K (a wrong ftype would not)
    q4 = read_gguf(folder / "wide-llama-Q4_K_M.gguf")
    assert sum(t.n_bytes for t in q4.tensors if t.type_name == "Q4_K") > q4.weights_bytes / 3

    kld = {}
    for qtype in ("Q8_0", "Q4_K_M"):
        model = folder / f"wide-llama-{qtype}.gguf"
        args = ("eval", str(model), "--text", str(text_file), "--ctx", "128", "--reference", str(wide_f16))
        code, result = cli(capsys, *args)
        assert code == 0, result
        kld[qtype] = result
        assert result["kl_divergence"] > 0 and 0 < result["same_top_p"] <= 1
    assert kld["Q8_0"]["kl_divergence"] < kld["Q4_K_M"]["kl_divergence"]
    assert kld["Q8_0"]["same_top_p"] >= kld["Q4_K_M"]["same_top_p"]
    assert kld["Q8_0"]["reference_perplexity"] == pytest.approx(
        reference_perplexity(wide_f16, text_file.read_text(), 128)[0], rel=1e-3
    )


def test_kl_divergence_of_a_model_against_itself_is_zero(
    data_dir: Path, tiny_gguf: Path, text_file: Path, capsys
) -> None:
    args = (
        "eval",
        str(tiny_gguf),
        "--text",
        str(text_file),
        "--ctx",
        "64",
        "--chunks",
        "2",
        "--reference",
        str(tiny_gguf),
    )
    code, result = cli(capsys, *args)
    assert code == 0, result
    assert result["chunks"] == 2
    assert result["kl_divergence"] == pytest.approx(0.0, abs=1e-9)
    assert result["same_top_p"] == 1.0
    assert result["perplexity"] == pytest.approx(result["reference_perplexity"])


def test_bench_reports_speeds_per_depth_with_the_machine(data_dir: Path, tiny_gguf: Path, capsys) -> None:
    code, result = cli(capsys, "bench", str(tiny_gguf), "-p", "32", "-n", "8", "-d", "0,128", "-r", "1")
    assert code == 0, result
    assert [p["depth"] for p in result["points"]] == [0, 128]
    assert all(p["pp_tokens_per_second"] > 0 and p["tg_tokens_per_second"] > 0 for p in result["points"])
    assert result["hardware_id"] and result["threads"] >= 1


def test_compare_fills_in_what_is_missing(
    data_dir: Path, tiny_gguf: Path, text_file: Path, tmp_path: Path, capsys
) -> None:
    q8 = tmp_path / "tiny-Q8_0.gguf"
    assert cli(capsys, "quantize", str(tiny_gguf), "--type", "Q8_0", "--out", str(q8))[0] == 0
    args = ("compare", str(tiny_gguf), str(q8), "--text", str(text_file), "--ctx", "64", "--chunks", "2")
    code, result = cli(capsys, *args, "--n-prompt", "16", "--n-gen", "4")
    assert code == 0, result
    rows = {Path(r["path"]).name: r for r in result["rows"]}
    assert result["reference"] == str(tiny_gguf)
    assert rows[q8.name]["kl_divergence"] > 0 and rows[tiny_gguf.name]["kl_divergence"] is None
    assert rows[q8.name]["made_from"] == tiny_gguf.name
    for row in rows.values():
        assert row["perplexity"] > 1 and row["tg_tokens_per_second"] > 0 and row["memory_bytes"] > row["file_size"] / 2
    assert rows[q8.name]["file_size"] < rows[tiny_gguf.name]["file_size"]


def test_convert_a_hugging_face_folder_and_evaluate_it(
    data_dir: Path, tiny_hf_model: Path, text_file: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "converted-F16.gguf"
    code, result = cli(capsys, "convert", str(tiny_hf_model), "--out", str(out))
    assert code == 0, result
    assert read_gguf(out).architecture == "llama" and result["made_from"] == tiny_hf_model.name
    code, result = cli(capsys, "eval", str(out), "--text", str(text_file), "--ctx", "64", "--chunks", "2")
    assert code == 0 and math.isfinite(result["perplexity"])


# -- bad input: one clear line, non-zero, nothing written --------------------------------------------------------
def refused(capsys, tmp_path: Path, *argv: str) -> tuple[int, dict]:
    def files() -> set[Path]:  # the app's own data folder (database, logs) aside
        return {p for p in tmp_path.rglob("*") if "hangar-data" not in p.parts}

    before = files()
    code, result = cli(capsys, *argv)
    assert code != 0 and "error" in result
    assert "\n" not in result["error"]["message"]
    assert files() == before, "a refusal must leave no file behind"
    return code, result["error"]


def test_unknown_type_is_refused(data_dir: Path, tiny_gguf: Path, tmp_path: Path, capsys) -> None:
    code, error = refused(
        capsys, tmp_path, "quantize", str(tiny_gguf), "--type", "Q4_K_Q", "--out", str(tmp_path / "x.gguf")
    )
    assert code == 2 and "Q4_K_Q" in error["message"] and "Q4_K_M" in error["message"]


def test_a_source_that_is_not_gguf_is_refused(data_dir: Path, text_file: Path, tmp_path: Path, capsys) -> None:
    _, error = refused(
        capsys, tmp_path, "quantize", str(text_file), "--type", "Q4_0", "--out", str(tmp_path / "x.gguf")
    )
    assert error["code"] == "model_file" and "not a GGUF" in error["message"]


def test_a_quantized_source_needs_requantize(data_dir: Path, tmp_path: Path, capsys) -> None:
    source = write_tiny_gguf(tmp_path / "src" / "tiny-Q8_0.gguf", TinyModelConfig(weight_type="Q8_0"))
    code, error = refused(
        capsys, tmp_path, "quantize", str(source), "--type", "Q4_0", "--out", str(tmp_path / "x.gguf")
    )
    assert code == 2 and "--requantize" in error["message"]
    out = tmp_path / "again-Q4_0.gguf"
    code, _ = cli(capsys, "quantize", str(source), "--type", "Q4_0", "--out", str(out), "--requantize")
    assert code == 0 and read_gguf(out).quant_type == "Q4_0"


def test_a_type_that_needs_an_importance_matrix_is_refused(
    data_dir: Path, tiny_gguf: Path, tmp_path: Path, capsys
) -> None:
    _, error = refused(
        capsys, tmp_path, "quantize", str(tiny_gguf), "--type", "IQ2_XXS", "--out", str(tmp_path / "x.gguf")
    )
    assert "importance matrix" in error["message"]


def test_text_shorter_than_two_chunks_is_refused(data_dir: Path, tiny_gguf: Path, tmp_path: Path, capsys) -> None:
    short = tmp_path / "short.txt"
    short.write_text("hello world " * 10, encoding="utf-8")
    code, error = refused(capsys, tmp_path, "eval", str(tiny_gguf), "--text", str(short), "--ctx", "512")
    assert code == 2 and "two chunks" in error["message"]
    # long enough in bytes, too short in tokens: the child refuses after tokenizing
    words = tmp_path / "words.txt"
    words.write_text("hello " * 60, encoding="utf-8")  # 360 bytes, ~ 60 word tokens
    code, error = refused(capsys, tmp_path, "eval", str(tiny_gguf), "--text", str(words), "--ctx", "128")
    assert code == 2 and "needs at least 256" in error["message"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB filesystem (tmpfs); skipped where this process may not mount one."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_is_refused_before_writing(data_dir: Path, tiny_gguf: Path, small_disk: Path, capsys) -> None:
    _, error = refused(
        capsys, small_disk, "quantize", str(tiny_gguf), "--type", "Q8_0", "--out", str(small_disk / "x.gguf")
    )
    assert error["code"] == "disk_full" and "free" in error["message"]


def test_a_disk_that_fills_while_writing_is_reported_as_full(tiny_gguf: Path, small_disk: Path) -> None:
    """Past the preflight (another program may fill the disk meanwhile): llama.cpp's write fails; the user reads
    that the disk is full, not a C++ stream error."""
    from backends.workshop_quantize import quantize
    from core.errors import DiskFullError
    from core.workshop.types import QuantizeRequest, quant_type

    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (1024 * 1024 - 64 * 1024))
    q8 = quant_type("Q8_0")
    assert q8 is not None
    with pytest.raises(DiskFullError, match="disk filled up"):
        quantize(QuantizeRequest(str(tiny_gguf), str(small_disk / "x.gguf"), q8.name, q8.ftype), lambda *a: None)


def test_kl_divergence_refuses_a_scratch_disk_too_small(tiny_gguf: Path, text_file: Path, small_disk: Path) -> None:
    from backends.workshop_eval import evaluate
    from core.errors import DiskFullError
    from core.workshop.types import EvalRequest

    request = EvalRequest(str(tiny_gguf), text_file.read_text(), 64, None, str(tiny_gguf), scratch_dir=str(small_disk))
    with pytest.raises(DiskFullError, match="--chunks"):
        evaluate(request, lambda *a: False)
    assert not list(small_disk.iterdir())


@pytest.mark.slow
def test_cancel_leaves_no_partial_file(tmp_path: Path) -> None:
    import threading

    from backends.workshop_worker import run
    from core.jobs import JobManager, JobState
    from core.store import Store
    from core.workshop.service import WorkshopService

    config = WIDE.with_(n_embd=1024, n_head=8, n_head_kv=4, n_ff=4096, n_layer=4, n_vocab=8192)
    big = write_tiny_gguf(tmp_path / "big-F16.gguf", config)
    store = Store(tmp_path / "db.sqlite")
    service = WorkshopService(store, JobManager(store), run, cancel_grace=0.2)
    out = tmp_path / "big-Q4_K_M.gguf"
    writing = threading.Event()
    service.jobs.changed.connect(lambda job: writing.set() if job.progress else None)
    job_id = service.start_quantize(big, out, "Q4_K_M")
    assert writing.wait(60), "quantize never reported progress"
    service.jobs.cancel(job_id)
    job = service.wait(job_id, timeout=60)
    assert job.state == JobState.CANCELLED
    assert not out.exists() and not list(tmp_path.glob(".*.part"))

    # an evaluation stops between two chunks and keeps no result
    text = tmp_path / "words.txt"
    text.write_text(" ".join(random.Random(1).choice(_WORDS) for _ in range(600)), encoding="utf-8")
    chunked = threading.Event()
    service.jobs.changed.connect(lambda job: chunked.set() if "Chunk" in job.message else None)
    job_id = service.start_eval(big, text, ctx=128)
    assert chunked.wait(120), "the evaluation never reported a chunk"
    service.jobs.cancel(job_id)
    job = service.wait(job_id, timeout=60)
    assert job.state == JobState.CANCELLED and service.records.evals(big) == []
    store.close()


def write_imatrix(path: Path, model: Path) -> Path:
    """A GGUF importance matrix as llama-imatrix writes it (``*.in_sum2`` and ``*.counts`` per weight), with flat
    importance: enough for llama.cpp to accept the lowest-bit types that refuse to run without one."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "imatrix")
    writer.add_type("imatrix")
    for tensor in read_gguf(model).tensors:
        if len(tensor.shape) == 2:
            writer.add_tensor(f"{tensor.name}.in_sum2", np.full(tensor.shape[0], 10.0, dtype=np.float32))
            writer.add_tensor(f"{tensor.name}.counts", np.array([10.0], dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_an_importance_matrix_unlocks_the_lowest_bit_types(
    data_dir: Path, wide_f16: Path, tmp_path: Path, capsys
) -> None:
    imatrix = write_imatrix(tmp_path / "imatrix.gguf", wide_f16)
    out = tmp_path / "wide-IQ2_XXS.gguf"
    code, result = cli(
        capsys, "quantize", str(wide_f16), "--type", "IQ2_XXS", "--out", str(out), "--imatrix", str(imatrix)
    )
    assert code == 0, result
    assert result["imatrix_entries"] == sum(1 for t in read_gguf(wide_f16).tensors if len(t.shape) == 2)
    assert read_gguf(out).quant_type == "IQ2_XXS"
    # a file that is not an importance matrix is refused, and nothing is left behind
    code, result = cli(
        capsys,
        "quantize",
        str(wide_f16),
        "--type",
        "IQ2_XXS",
        "--out",
        str(tmp_path / "bad.gguf"),
        "--imatrix",
        str(wide_f16),
    )
    assert code != 0 and "importance" in result["error"]["message"]
    assert not (tmp_path / "bad.gguf").exists() and not list(tmp_path.glob(".*.part"))


def test_a_machine_whose_extra_buffers_crash_runs_workshop_jobs_without_them(
    tmp_path: Path, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine probe saw llama.cpp's extra buffer types crash here (AMX on some Xeons; the fault switch makes
    any CPU crash so): a Workshop job starts with them off instead of crashing first; without that fact the crash
    is retried with them off."""
    from backends.workshop_worker import run
    from core.jobs import JobManager, JobState
    from core.store import Store
    from core.workshop.service import WorkshopService

    monkeypatch.setenv("HANGAR_TEST_ENGINE_CRASH", "workshop")
    store = Store(tmp_path / "db.sqlite")
    crash_here = {"engines": {"facts": {"extra_buffers_crash": True}}}
    for hardware, retried in ((lambda: crash_here, False), (lambda: {}, True)):
        service = WorkshopService(store, JobManager(store), run, hardware=hardware)
        messages: list[str] = []
        service.jobs.changed.connect(lambda job, seen=messages: seen.append(job.message))
        job = service.wait(service.start_bench(tiny_gguf, n_prompt=32, n_gen=8, depths=(0,), repetitions=1), 120)
        assert job.state == JobState.SUCCEEDED, job.error
        assert any("trying again" in m for m in messages) == retried
    store.close()
