"""The chat page's documents: a collection picker (one collection per conversation, or "New collection…" indexed as
a background job with progress and each skipped file named), files dropped on the composer (short: an attachment
chip that goes into the prompt whole; long: indexed into the conversation's own collection), a status line, and
the viewer a citation opens."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QMimeData, Qt, QTimer, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPlainTextEdit, QToolButton, QWidget

from core.chat.documents import Attachment, DroppedFile, adhoc_collection, examine_drop
from core.chat.tools import ConversationOptions
from core.jobs import JobState
from ui.operations import run_in_background
from ui.theme import current_colors

if TYPE_CHECKING:
    from core.app import AppContext
    from core.chat.service import ChatService
    from ui.pages.chat_transcript import TranscriptView

logger = logging.getLogger(__name__)

NEW = "\x00new"  # the picker's "New collection…" entry


class ComposerEdit(QPlainTextEdit):
    """The message box; files dropped or pasted on it are handed on (as a copy: the originals are never moved), and
    pasted image data too."""

    files_dropped = Signal(list)
    #: Image data pasted from the clipboard (a ``QImage``).
    image_pasted = Signal(object)

    def canInsertFromMimeData(self, source: QMimeData) -> bool:
        return source.hasImage() or source.hasUrls() or super().canInsertFromMimeData(source)

    def insertFromMimeData(self, source: QMimeData) -> None:
        if source.hasImage():
            image = source.imageData()
            if isinstance(image, QImage) and not image.isNull():
                self.image_pasted.emit(image)
                return
        files = [Path(u.toLocalFile()) for u in source.urls() if u.isLocalFile()] if source.hasUrls() else []
        if files:
            self.files_dropped.emit(files)
            return
        super().insertFromMimeData(source)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
            return
        super().dragEnterEvent(event)

    def dragMoveEvent(self, event: Any) -> None:
        if event.mimeData().hasUrls():
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
            return
        super().dragMoveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
            self.files_dropped.emit(paths)
            return
        super().dropEvent(event)


class AttachmentChip(QWidget):
    """A file attached whole to the next message, with a button to take it off. (An image chip fits here too.)"""

    removed = Signal(object)

    def __init__(self, attachment: Attachment, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.attachment = attachment
        colors = current_colors()
        self.setObjectName("AttachmentChip")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(
            f"QWidget#AttachmentChip {{ border: 1px solid {colors.border}; border-radius: 10px;"
            f" background: {colors.surface}; }}"
        )
        self.label = QLabel(attachment.name)
        self.label.setToolTip(f"{attachment.path}\n{len(attachment.text):,} characters, sent whole with your message")
        close = QToolButton()
        close.setText("×")
        close.setAutoRaise(True)
        close.setToolTip(f"Do not send {attachment.name}")
        close.clicked.connect(lambda: self.removed.emit(self))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 0, 2, 0)
        layout.setSpacing(2)
        layout.addWidget(self.label)
        layout.addWidget(close)


class DocsBarMixin:
    """Mixed into ``ChatPage`` (which provides ``app``, ``service``, ``transcript``, ``conversation_id``,
    ``chat_options`` and ``_save_options``)."""

    app: AppContext
    service: ChatService
    transcript: TranscriptView
    conversation_id: int | None
    chat_options: ConversationOptions
    composer: ComposerEdit

    def _build_docs_bar(self) -> None:
        self.attachments: list[Attachment] = []
        self.docs_picker = QComboBox()
        self.docs_picker.setToolTip("Answer from a collection of your documents; replies cite their sources")
        self.docs_picker.setAccessibleName("Documents")
        self.docs_picker.setMinimumContentsLength(14)
        self.docs_picker.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.docs_picker.activated.connect(self._on_docs_picked)
        self.docs_status = QLabel()
        self.docs_status.setObjectName("DocsStatus")
        self.docs_status.setWordWrap(True)
        self.docs_status.hide()
        from ui.widgets.responsive import FlowLayout

        self.chips_row = QWidget()  # the files and images attached to the next message, wrapping in a narrow window
        self.chips = FlowLayout(self.chips_row, spacing=4, line_spacing=4)
        self._jobs: dict[str, QTimer] = {}
        self.composer.files_dropped.connect(self.handle_drop)
        self.transcript.source_requested.connect(self.show_source)
        self.refresh_collections()

    # -- collections --------------------------------------------------------------------------------------------------
    def refresh_collections(self) -> None:
        picker = self.docs_picker
        picker.blockSignals(True)
        picker.clear()
        picker.addItem("No documents", None)
        try:
            collections = [c for c in self.app.docs.index.collections() if not c.name.startswith("chat-")]
        except Exception as exc:  # the index is a nicety: chat goes on without it
            logger.warning("collections not listed: %s", exc)
            collections = []
        for info in collections:
            picker.addItem(f"Docs: {info.name}", info.name)
            picker.setItemData(
                picker.count() - 1,
                f"{info.files} file(s), {info.chunks} passages · {search_mode(info.embed_model)}",
                Qt.ItemDataRole.ToolTipRole,
            )
        picker.addItem("New collection…", NEW)
        index = picker.findData(self.chat_options.collection) if self.chat_options.collection else 0
        picker.setCurrentIndex(max(index, 0))
        picker.blockSignals(False)

    def _on_docs_picked(self, index: int) -> None:
        value = self.docs_picker.itemData(index)
        if value == NEW:
            self.refresh_collections()  # back to what was chosen until the new one is indexed
            self.new_collection()
            return
        self.use_collection(value)

    def use_collection(self, name: str | None) -> None:
        self.chat_options = ConversationOptions(self.chat_options.servers, self.chat_options.tool_choice, name)
        self._save_options()  # type: ignore[attr-defined]
        self.refresh_collections()

    def new_collection(self, dialog: Any = None) -> None:
        from ui.pages.chat_viewer import NewCollectionDialog

        dialog = dialog or NewCollectionDialog(self, embedding_models=self.embedding_models())  # type: ignore[arg-type]
        if not dialog.exec():
            return
        self.index_collection(
            dialog.name.text().strip(), dialog.chosen(), select=True, embed_model=dialog.embed_model()
        )

    def embedding_models(self) -> list[tuple[str, Path]]:
        """The embedding models in My Models (name, file) that are on disk, for search by meaning."""
        try:
            entries = self.app.library.list()
        except Exception as exc:  # full-text search still works
            logger.warning("embedding models not listed: %s", exc)
            return []
        return [(e.name, e.load_path) for e in entries if e.is_embedding and e.available]

    def index_collection(self, name: str, paths: list[Path], *, select: bool, embed_model: Path | None = None) -> None:
        """Index ``paths`` into ``name`` as a background job (with vectors from ``embed_model`` when given); progress
        and skipped files in the status line."""
        try:
            job_id = self.app.docs.submit_add(name, paths, embed_model=embed_model)
        except Exception as exc:
            self._docs_line(str(exc), bad=True)
            return
        self._docs_line(f"Indexing {name}…", bad=False)
        timer = QTimer(self)  # type: ignore[arg-type]
        timer.setInterval(200)
        timer.timeout.connect(lambda: self._poll_job(job_id, name, select))
        self._jobs[job_id] = timer
        timer.start()

    def _poll_job(self, job_id: str, name: str, select: bool) -> None:
        job = self.app.jobs.get(job_id)
        shown = name if not name.startswith("chat-") else "the dropped file"
        if not job.state.finished:
            percent = f" {job.progress * 100:.0f}%" if job.progress is not None else ""
            self._docs_line(f"Indexing {shown}…{percent} {job.message}".rstrip(), bad=False)
            return
        self._jobs.pop(job_id).stop()
        if job.state != JobState.SUCCEEDED:
            self._docs_line(f"Indexing {shown} failed: {job.error or job.state.value}", bad=True)
            return
        result = job.result or {}
        skipped = [_skip_line(str(s["path"]), str(s["reason"])) for s in result.get("skipped", [])]
        counted = int(result.get("added", 0)) + int(result.get("updated", 0)) + int(result.get("unchanged", 0))
        files = max(0, counted - len(skipped))
        line = f"{shown}: {files} file(s) indexed"
        if not name.startswith("chat-"):
            line += f" · {search_mode(self._embed_model_of(name))}"
        if skipped:
            line += f" · {len(skipped)} skipped — " + "; ".join(skipped)
        self._docs_line(line, bad=bool(skipped), tooltip="\n".join(skipped))
        if select:
            self.use_collection(name)

    def _embed_model_of(self, name: str) -> str | None:
        try:
            return self.app.docs.index.info(name).embed_model
        except Exception:  # removed meanwhile: said as full text
            return None

    # -- dropped files ------------------------------------------------------------------------------------------------
    def handle_drop(self, paths: list[Path]) -> None:
        """Files dropped on the chat: images become image chips; documents are each examined off the GUI thread."""
        from ui.pages.chat_images import is_image_path

        images = [p for p in paths if is_image_path(p)]
        if images:
            self.attach_image_files(images)  # type: ignore[attr-defined]
        model = self.service.host.model
        context = model.context_length if model is not None else None
        for path in (p for p in paths if not is_image_path(p)):
            run_in_background(
                lambda p=path: examine_drop(p, context),
                on_success=self._dropped,
                on_failure=lambda exc: self._docs_line(str(exc), bad=True),
                owner=self,  # type: ignore[arg-type]
            )

    def _dropped(self, dropped: DroppedFile) -> None:
        if dropped.attachment is not None:
            self.attach(dropped.attachment)
            return
        if self.conversation_id is None:
            self.new_chat()  # type: ignore[attr-defined]
        assert self.conversation_id is not None
        self._docs_line(f"{dropped.path.name} is long (about {dropped.tokens:,} tokens): indexing it…", bad=False)
        self.index_collection(adhoc_collection(self.conversation_id), [dropped.path], select=False)

    def attach(self, attachment: Attachment) -> None:
        if any(a.path == attachment.path for a in self.attachments):
            return
        self.attachments.append(attachment)
        chip = AttachmentChip(attachment)
        chip.removed.connect(self._remove_chip)
        self.chips.addWidget(chip)

    def _remove_chip(self, chip: AttachmentChip) -> None:
        self.attachments = [a for a in self.attachments if a is not chip.attachment]
        chip.setParent(None)
        chip.deleteLater()

    def clear_attachments(self) -> None:
        for index in reversed(range(self.chips.count())):  # the file chips (image chips are the images' own)
            item = self.chips.itemAt(index)
            widget = item.widget() if item is not None else None
            if isinstance(widget, AttachmentChip):
                self.chips.takeAt(index)
                widget.setParent(None)
                widget.deleteLater()
        self.attachments = []

    def forget_documents(self, conversation_id: int) -> None:
        """A deleted conversation's own collection (its dropped long files) goes with it."""
        name = adhoc_collection(conversation_id)
        try:
            if any(c.name == name for c in self.app.docs.index.collections()):
                self.app.docs.index.remove(name)
        except Exception as exc:  # the conversation is gone either way
            logger.warning("collection %s not removed: %s", name, exc)

    # -- citations ----------------------------------------------------------------------------------------------------
    def show_source(self, message_id: int, number: int) -> None:
        from ui.pages.chat_viewer import SourceViewer

        message = self.service.chats.message(message_id)
        source = next((s for s in message.sources if s.get("n") == number), None)
        if source is None:
            return
        self.viewer = SourceViewer(dict(source), self)  # type: ignore[arg-type]
        self.viewer.open()

    def _docs_line(self, text: str, *, bad: bool, tooltip: str = "") -> None:
        colors = current_colors()
        line = " ".join(text.split())
        self.docs_status.setText(line if len(line) <= 160 else line[:159] + "…")
        self.docs_status.setToolTip(tooltip or text)
        self.docs_status.setStyleSheet(f"color: {colors.bad if bad else colors.muted};")
        self.docs_status.show()


def search_mode(embed_model: str | None) -> str:
    """A collection's search, in words: hybrid with its embedding model, or full text only."""
    if embed_model:
        return f"search by meaning and words ({Path(embed_model).name})"
    return "full-text search only"


def _skip_line(path: str, reason: str) -> str:
    name = Path(path).name
    return reason if reason.startswith(name) else f"{name}: {reason}"
