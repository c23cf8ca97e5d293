"""The model library: one SQLite index of every local model, and the operations other features call.

    library = app.library                                         # built once, by core.app.AppContext
    library.import_paths([Path("model.gguf")], ImportMode.COPY)   # validate, dedupe, copy, index
    library.add_downloaded([path], repo_id="org/repo")            # the downloader's hand-over
    library.resolve("tiny-llama")                                 # what chat loads (a name, an id or a path)
    library.rescan()                                              # other apps' folders, without copying

Validation and metadata come from ``core.models.detect``, file work from ``core.library.importing``, other apps'
folders from ``core.library.scan``. ``changed`` fires after every change so views can refresh.
"""

from __future__ import annotations

import builtins
import json
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import CancelledError, HangarError, ModelFileError, NotFoundError, StoreError, UsageError
from core.events import EventHook
from core.jobs import CancelToken, JobKind
from core.library.importing import (
    ImportJobParams,
    Placed,
    Progress,
    clean_leftovers,
    delete_files,
    fingerprint,
    place,
)
from core.library.rows import (
    COLUMNS,
    LIBRARY_SCHEMA,
    candidate_of,
    entry_from,
    row_to_entry,
    safe_stat_key,
    unique_name,
)
from core.models.detect import recognise
from core.models.types import (
    Candidate,
    ImportMode,
    ImportPreview,
    ImportProblem,
    ImportReport,
    LibraryEntry,
    ModelFormat,
    Origin,
    RemoveResult,
    ScanReport,
)
from core.paths import AppPaths
from core.settings import SettingsService
from core.store import Store
from core.text import printable

if TYPE_CHECKING:
    from core.jobs import JobManager
    from core.library.scan import ScanDiff, ScanRoots

logger = logging.getLogger(__name__)

# Apps whose stores we must not delete files from: they share blobs between models or index them themselves.
_NO_DELETE = {"ollama": "ollama rm", "huggingface": "hf cache delete"}


class Library:
    def __init__(self, store: Store, paths: AppPaths, settings: SettingsService | None = None) -> None:
        self._store = store
        self._paths = paths
        self._settings = settings
        store.migrate("library", LIBRARY_SCHEMA)
        # One scan at a time: a scan at start and one the user asks for must not both add the same model.
        self._scan_lock = threading.Lock()
        #: Fired (with no arguments) after any change to the index, on the thread that made it.
        self.changed: EventHook[[]] = EventHook()
        #: Ids of rows the last ``list()`` could not read (skipped, not fatal; ``hangar ls`` reports them).
        self.unreadable: tuple[str, ...] = ()

    @property
    def models_dir(self) -> Path:
        if self._settings is None:
            return self._paths.models_dir
        return self._settings.models_dir(self._paths.models_dir)

    # -- queries --------------------------------------------------------------------------------------------
    def list(self, *, format: ModelFormat | None = None) -> list[LibraryEntry]:
        """Every entry (of ``format``), by name. A damaged row is skipped and logged, and its id kept in
        ``unreadable``: one bad row never hides the rest of the library."""
        rows = self._store.query(f"SELECT {COLUMNS} FROM library_models ORDER BY name COLLATE NOCASE")
        entries: list[LibraryEntry] = []
        bad: list[str] = []
        for row in rows:
            try:
                entries.append(row_to_entry(row))
            except (ValueError, TypeError, KeyError, OverflowError) as exc:
                logger.warning("library row %r cannot be read (%s); skipped", row["id"], exc)
                bad.append(str(row["id"]))
        self.unreadable = tuple(bad)
        return [e for e in entries if format is None or e.format == format]

    def get(self, name_or_id: str) -> LibraryEntry:
        """An entry by id, by name (any case), or by a unique name prefix."""
        row = self._store.query_one(f"SELECT {COLUMNS} FROM library_models WHERE id = ?", (name_or_id,))
        row = row or self._store.query_one(
            f"SELECT {COLUMNS} FROM library_models WHERE name = ? COLLATE NOCASE", (name_or_id,)
        )
        if row is not None:
            try:
                return row_to_entry(row)
            except (ValueError, TypeError, KeyError, OverflowError) as exc:
                raise StoreError(
                    f"The library entry {row['id']} is damaged ({exc}); its files are untouched.",
                    hint="`hangar ls --rescan` finds models in Hangar's folder again.",
                ) from exc
        matches = [e for e in self.list() if e.name.lower().startswith(name_or_id.lower())]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            names = ", ".join(e.name for e in matches[:5])
            raise UsageError(f"“{name_or_id}” matches several models ({names}); give the full name.")
        raise NotFoundError(
            f"There is no model “{name_or_id}” in your library.",
            hint="`hangar ls` lists the models; `hangar import PATH` adds one.",
        )

    def find_by_path(self, path: Path) -> LibraryEntry | None:
        wanted = path.expanduser().absolute()
        for entry in self.list():
            if wanted == entry.root or wanted in entry.files:
                return entry
        return None

    def resolve(self, name_or_path: str) -> LibraryEntry:
        """The model to load for ``MODEL`` on a command line or in chat: a library name or id, or a path.

        A path already in the library gives its entry; any other path is validated and described but not
        added (``id`` is empty, origin ``linked``), so ``hangar chat ./x.gguf`` works without importing.
        """
        try:
            return self.get(name_or_path)
        except NotFoundError:
            path = Path(name_or_path).expanduser()
            if not path.exists():
                raise
        entry = self.find_by_path(path)
        if entry is not None:
            return entry
        recognition = recognise([path])
        if recognition.problems:
            problem = recognition.problems[0]
            raise ModelFileError(problem.message)
        if len(recognition.candidates) != 1:
            raise UsageError(f"{path} holds {len(recognition.candidates)} models; name one of them.")
        return entry_from(recognition.candidates[0], "", Origin.LINKED, None, time.time())

    # -- adding ---------------------------------------------------------------------------------------------
    def import_paths(
        self,
        paths: Sequence[Path],
        mode: ImportMode = ImportMode.COPY,
        *,
        progress: Progress | None = None,
        token: CancelToken | None = None,
    ) -> ImportReport:
        """Recognise, validate, dedupe and import. Bad paths become problems; nothing half-imported remains."""
        recognition = recognise([Path(p) for p in paths])
        return self.import_candidates(
            recognition.candidates, mode, progress=progress, token=token, problems=recognition.problems
        )

    def preview_import(self, paths: Sequence[Path]) -> ImportPreview:
        """Recognise and validate ``paths`` and sort them into new models, duplicates and problems; copies
        nothing (header reads and, for same-size files only, a fingerprint)."""
        recognition = recognise([Path(p) for p in paths])
        new: list[Candidate] = []
        duplicates: list[tuple[Candidate, LibraryEntry]] = []
        for candidate in recognition.candidates:
            existing = self.find_duplicate(candidate)
            if existing is None:
                new.append(candidate)
            else:
                duplicates.append((candidate, existing))
        return ImportPreview(tuple(new), tuple(duplicates), recognition.problems)

    def import_candidates(
        self,
        candidates: Sequence[Candidate],
        mode: ImportMode = ImportMode.COPY,
        *,
        progress: Progress | None = None,
        token: CancelToken | None = None,
        problems: Sequence[ImportProblem] = (),
    ) -> ImportReport:
        imported: list[LibraryEntry] = []
        duplicates: list[tuple[Path, LibraryEntry]] = []
        trouble = list(problems)
        total = sum(c.size_bytes for c in candidates) or 1
        done_before = 0
        for candidate in candidates:
            existing = self.find_duplicate(candidate)
            if existing is not None:
                duplicates.append((candidate.root, existing))
                done_before += candidate.size_bytes
                continue

            def step(done: int, _total: int, message: str, base: int = done_before) -> None:
                if progress is not None:
                    progress(base + done, total, message)

            try:
                placed = place(candidate, mode, self.models_dir, progress=step, token=token)
            except CancelledError:
                raise
            except HangarError as exc:
                trouble.append(ImportProblem(candidate.root, str(exc), exc.code))
                continue
            origin = Origin.LINKED if mode == ImportMode.LINK else Origin.IMPORTED
            moved = Candidate(**{**candidate.__dict__, "root": placed.root, "files": placed.files})
            imported.append(self._insert(moved, origin, fingerprint=self._fingerprint_of(candidate, placed)))
            done_before += candidate.size_bytes
        if imported:
            self.changed.emit()
        return ImportReport(tuple(imported), tuple(duplicates), tuple(trouble))

    def submit_import(self, jobs: JobManager, paths: Sequence[Path], mode: ImportMode) -> str:
        """Run ``import_paths`` as a background job (kind "import") with progress and cancel; returns its id."""
        names = ", ".join(Path(p).name for p in paths[:3]) + ("…" if len(paths) > 3 else "")

        params = ImportJobParams(tuple(str(p) for p in paths), mode)

        def run(ctx: Any) -> dict[str, Any]:
            job = ImportJobParams.from_params(ctx.params)
            report = self.import_paths(
                [Path(p) for p in job.paths],
                job.mode,
                progress=lambda done, total, msg: ctx.report(done / total, msg),
                token=ctx.token,
            )
            return report.to_json()

        return jobs.submit(JobKind.IMPORT, f"Import {names}", run, params=params.to_params())

    def add_downloaded(
        self, paths: Sequence[Path], *, repo_id: str | None = None, name: str | None = None
    ) -> LibraryEntry:
        """Index a model the downloader has put in place (a GGUF file, every part of a split set, or a folder)."""
        first = Path(paths[0])
        known = self.find_by_path(first)
        if known is not None:  # already indexed: no header to read again
            return known
        # A GGUF file or any part of a split set is recognised with its siblings; a folder model's files by it.
        recognition = recognise([first if first.is_dir() or first.suffix.lower() == ".gguf" else first.parent])
        if recognition.problems and not recognition.candidates:
            raise ModelFileError(recognition.problems[0].message)
        wanted = {Path(p).absolute() for p in paths}
        matches = [c for c in recognition.candidates if wanted & {f.absolute() for f in c.files} or c.root in wanted]
        if not matches:
            raise ModelFileError(f"No model was recognised in {paths[0]}.")
        candidate = matches[0]
        if name:
            candidate = Candidate(**{**candidate.__dict__, "name": name})
        existing = self.find_by_path(candidate.root)
        if existing is not None:
            return existing
        entry = self._insert(
            Candidate(**{**candidate.__dict__, "repo_id": repo_id}), Origin.DOWNLOADED, fingerprint=None
        )
        self.changed.emit()
        return entry

    def register_adapter(self, path: Path, base_model_id: str | None, *, name: str | None = None) -> LibraryEntry:
        """Index a LoRA adapter (a fine-tune's output, in place) and link it to its base model's entry."""
        if base_model_id is not None:
            base_model_id = self.get(base_model_id).id
        recognition = recognise([Path(path)])
        adapters = [c for c in recognition.candidates if c.format == ModelFormat.LORA]
        if not adapters:
            message = recognition.problems[0].message if recognition.problems else f"{path} is not an adapter."
            raise ModelFileError(message)
        candidate = adapters[0] if name is None else Candidate(**{**adapters[0].__dict__, "name": name})
        existing = self.find_by_path(candidate.root)
        if existing is not None:
            self._store.execute(
                "UPDATE library_models SET base_model_id = ? WHERE id = ?", (base_model_id, existing.id)
            )
            self.changed.emit()
            return self.get(existing.id)
        entry = self._insert(candidate, Origin.LINKED, fingerprint=None, base_model_id=base_model_id)
        self.changed.emit()
        return entry

    def adapters_of(self, base_model_id: str) -> builtins.list[LibraryEntry]:
        return [e for e in self.list(format=ModelFormat.LORA) if e.base_model_id == base_model_id]

    # -- removing -------------------------------------------------------------------------------------------
    def remove(self, name_or_id: str, *, delete_files: bool | None = None) -> RemoveResult:
        """Take a model out of the library. Files Hangar put there (downloaded, imported) are deleted; files
        that were linked or found elsewhere are left alone unless ``delete_files`` is True."""
        entry = self.get(name_or_id)
        delete = entry.origin.owns_files if delete_files is None else delete_files
        if delete and entry.source in _NO_DELETE and not entry.origin.owns_files:
            raise UsageError(
                f"{entry.name} lives in {entry.source.title()}'s store, which shares files between models; "
                f"Hangar only unlinks it there.",
                hint=f"Use `{_NO_DELETE[entry.source]}` to delete it.",
            )
        freed = _delete(entry, self.list()) if delete else 0
        with self._store.transaction() as conn:
            conn.execute("DELETE FROM library_models WHERE id = ?", (entry.id,))
            if not delete:
                # Otherwise the next rescan would bring it straight back (from another app's folder, or from
                # Hangar's own models folder when its files were kept).
                conn.execute(
                    "INSERT OR REPLACE INTO library_hidden (root, hidden_at) VALUES (?, ?)",
                    (str(entry.root), time.time()),
                )
        self.changed.emit()
        return RemoveResult(entry, files_deleted=delete, freed_bytes=freed)

    def space_freed_by_delete(self, name_or_id: str) -> int:
        entry = self.get(name_or_id)
        return sum(f.stat().st_size for f in entry.files if f.exists())

    # -- duplicates -----------------------------------------------------------------------------------------
    def find_duplicate(self, candidate: Candidate) -> LibraryEntry | None:
        """An entry with the same content. Only same-size entries are fingerprinted (and then remembered)."""
        same_path = self.find_by_path(candidate.root)
        if same_path is not None:
            return same_path
        rows = self._store.query(
            f"SELECT {COLUMNS} FROM library_models WHERE size_bytes = ? AND format = ?",
            (candidate.size_bytes, candidate.format.value),
        )
        if not rows:
            return None
        mine = fingerprint(candidate)
        for row in rows:
            entry = row_to_entry(row)
            theirs = entry.fingerprint
            if theirs is None and entry.available:
                theirs = fingerprint(candidate_of(entry))
                self._store.execute("UPDATE library_models SET fingerprint = ? WHERE id = ?", (theirs, entry.id))
            if theirs == mine:
                return entry
        return None

    def _fingerprint_of(self, candidate: Candidate, placed: Placed) -> str | None:
        # Same-size entries are rare; computing a fingerprint for every import costs ~2 MiB of reads, cheap
        # enough to do now rather than later.
        try:
            return fingerprint(Candidate(**{**candidate.__dict__, "root": placed.root, "files": placed.files}))
        except OSError:
            return None

    # -- the index ------------------------------------------------------------------------------------------
    def _insert(
        self,
        candidate: Candidate,
        origin: Origin,
        *,
        fingerprint: str | None,
        base_model_id: str | None = None,
    ) -> LibraryEntry:
        entry_id = uuid.uuid4().hex[:12]
        now = time.time()
        with self._store.transaction() as conn:
            name = unique_name(conn, printable(candidate.name) or "model")
            conn.execute("DELETE FROM library_hidden WHERE root = ?", (str(candidate.root.absolute()),))
            conn.execute(
                f"INSERT INTO library_models ({COLUMNS}) VALUES ({', '.join('?' * 22)})",
                (
                    entry_id,
                    name,
                    candidate.format.value,
                    origin.value,
                    candidate.source,
                    str(candidate.root.absolute()),
                    json.dumps([str(f.absolute()) for f in candidate.files]),
                    candidate.size_bytes,
                    *_metadata_values(candidate),
                    candidate.repo_id,
                    base_model_id,
                    fingerprint,
                    safe_stat_key(candidate.files),
                    now,
                ),
            )
        logger.info("library: added %s (%s, %s) at %s", name, candidate.format, origin, candidate.root)
        return self.get(entry_id)

    def _update_description(self, entry_id: str, candidate: Candidate) -> None:
        self._store.execute(
            "UPDATE library_models SET files = ?, size_bytes = ?, architecture = ?, parameter_count = ?, quant = ?, "
            "context_length = ?, has_chat_template = ?, license = ?, model_name = ?, base_model = ?, embedding = ?, "
            "fingerprint = NULL, stat_key = ? WHERE id = ?",
            (
                json.dumps([str(f.absolute()) for f in candidate.files]),
                candidate.size_bytes,
                *_metadata_values(candidate),
                safe_stat_key(candidate.files),
                entry_id,
            ),
        )

    def rescan(self, roots: ScanRoots | None = None) -> ScanReport:
        """Find models in other apps' folders, the user's scan folders and Hangar's own models folder (see
        ``core.library.scan``), then apply what changed. A file that cannot be read is reported, not fatal."""
        from core.library.scan import ScanRoots, own_folder_diff, plan_rescan

        folders = tuple(self._settings.current.scan_folders) if self._settings else ()
        with self._scan_lock:
            clean_leftovers(self.models_dir)
            entries = self.list()
            keys = {str(r["id"]): r["stat_key"] for r in self._store.query("SELECT id, stat_key FROM library_models")}
            hidden = {str(r["root"]) for r in self._store.query("SELECT root FROM library_hidden")}
            diff = plan_rescan(entries, keys, hidden, roots or ScanRoots.default(extra=folders))
            self._apply(diff)
            own = own_folder_diff(self.models_dir, self.list(), keys, hidden)
            self._apply(own)
        logger.info(
            "scan: %d models found, %d new, %d gone, %d headers read, %d re-registered from the models folder",
            diff.found,
            len(diff.add),
            len(diff.remove),
            diff.headers_read,
            len(own.add),
        )
        report = ScanReport(
            found=diff.found + len(own.add),
            added=len(diff.add) + len(own.add),
            removed=len(diff.remove),
            headers_read=diff.headers_read + own.headers_read,
            problems=diff.problems + own.problems,
        )
        if report.added or report.removed or diff.update:
            self.changed.emit()
        return report

    def _apply(self, diff: ScanDiff) -> None:
        for candidate, origin in diff.add:
            try:
                self._insert(candidate, origin, fingerprint=None)
            except (ValueError, OverflowError) as exc:  # a value SQLite cannot hold: report, keep going
                logger.warning("could not add %s: %s", candidate.root, exc)
        for entry_id, candidate in diff.update:
            self._update_description(entry_id, candidate)
        for entry_id in diff.remove:
            self._store.execute("DELETE FROM library_models WHERE id = ?", (entry_id,))

    def relocate(self, source: Path, target: Path, top: Path) -> None:
        """Point every entry under ``top`` (inside the folder ``source``) at the same place under ``target``:
        the files have moved there (a model and, say, its adapters move together)."""
        with self._store.transaction() as conn:
            for row in conn.execute("SELECT id, root, files FROM library_models").fetchall():
                root = Path(row["root"])
                if not root.resolve().is_relative_to(top):
                    continue
                new_root = target / root.resolve().relative_to(source)
                files = [str(target / Path(f).resolve().relative_to(source)) for f in json.loads(row["files"])]
                conn.execute(
                    "UPDATE library_models SET root = ?, files = ? WHERE id = ?",
                    (str(new_root), json.dumps(files), row["id"]),
                )


def _delete(entry: LibraryEntry, everyone: builtins.list[LibraryEntry]) -> int:
    """Delete the entry's files, except those another entry uses too (the projector of two quants of a model)."""
    shared = {f for other in everyone if other.id != entry.id for f in other.files}
    return delete_files(entry.root, tuple(f for f in entry.files if f not in shared))


def _metadata_values(candidate: Candidate) -> tuple[object, ...]:
    """The description columns (architecture .. embedding), in table order, for INSERT and UPDATE alike."""
    meta = candidate.metadata
    return (
        meta.architecture,
        meta.parameter_count,
        meta.quant,
        meta.context_length,
        int(meta.has_chat_template),
        meta.license,
        meta.model_name,
        meta.base_model,
        int(meta.embedding),
    )
