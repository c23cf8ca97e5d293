"""qtmodeltester on the table and list models that lacked it: the conversation list (real SQLite chat store), the
fine-tune job list, and Discover's results and files, each filled, changed and emptied."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from core.chat.store import ChatStore
from core.finetune.runs import FinetuneRun, LossPoint
from core.finetune.types import FinetuneBackend, FinetuneConfig, TrainJobParams
from core.hub.client import ModelSummary
from core.hub.files import RemoteFile, group_files
from core.jobs import Job, JobState
from ui.pages.chat_list import ConversationListModel, ConversationRole
from ui.pages.discover_models import FilesModel, ResultsModel
from ui.pages.finetune_jobs import FinetuneJobsModel


def test_conversation_list_model(qtmodeltester, app) -> None:  # type: ignore[no-untyped-def]
    chats = ChatStore(app.store)
    model = ConversationListModel(chats)
    model.reload()
    qtmodeltester.check(model)
    first = chats.create(title="About cats", model="tiny.gguf")
    chats.create(title="About dogs")
    model.reload()
    qtmodeltester.check(model)
    assert model.rowCount() == 2
    assert model.index(model.row_of(first.id)).data(ConversationRole).id == first.id
    model.reload("cats")
    qtmodeltester.check(model)
    assert [model.index(r).data() for r in range(model.rowCount())] == ["About cats"]


def _run(job_id: str, state: JobState, curve: tuple[LossPoint, ...] = ()) -> FinetuneRun:
    job = Job(id=job_id, kind="finetune", title=f"Fine-tune {job_id}", state=state, progress=0.5, created_at=1.0)
    params = TrainJobParams(
        backend=FinetuneBackend.PEFT,
        base_model="tiny-hf",
        dataset="data.jsonl",
        run_dir=str(Path("/nonexistent") / job_id),
        config=FinetuneConfig(),
        total_steps=10,
    )
    return FinetuneRun(job=job, params=params, train_curve=curve)


def test_finetune_jobs_model(qtmodeltester) -> None:  # type: ignore[no-untyped-def]
    model = FinetuneJobsModel()
    qtmodeltester.check(model)
    model.set_runs([_run("a", JobState.RUNNING, (LossPoint(1, 2.5),)), _run("b", JobState.SUCCEEDED)])
    qtmodeltester.check(model)
    assert model.index(0, FinetuneJobsModel.COL_LOSS).data() == "2.500"
    model.set_last_loss("a", 1.25)
    assert model.index(0, FinetuneJobsModel.COL_LOSS).data() == "1.250"
    updated = _run("b", JobState.FAILED).job
    assert model.update_job(updated)
    assert model.index(1, FinetuneJobsModel.COL_STATE).data() == "Failed"
    qtmodeltester.check(model)


def test_discover_models(qtmodeltester) -> None:  # type: ignore[no-untyped-def]
    results = ResultsModel()
    qtmodeltester.check(results)
    results.reset([ModelSummary(repo_id="org/a-GGUF", author="org", downloads=5, updated=datetime(2026, 1, 1))])
    results.append([ModelSummary(repo_id="org/b-GGUF", author="org", parameters=7_000_000_000)])
    qtmodeltester.check(results)
    files = FilesModel()
    qtmodeltester.check(files)
    listing = [RemoteFile("m-Q4_K_M.gguf", 1_000), RemoteFile("m-Q8_0.gguf", 2_000), RemoteFile("README.md", 10)]
    files.reset(group_files(listing))
    qtmodeltester.check(files)
