"""Documents in the window's chat: a dropped file goes into the prompt whole when it is short (up to a quarter of
the context, LM Studio's rule) or through retrieval when it is long (an ad hoc collection for that conversation);
a reply that read passages keeps them as its sources, and a source's file can be shown at the cited place.

Binary, unreadable and huge files are refused with one line (``UnreadableDocument``); the chat goes on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.docs.extract import PDF_SUFFIXES, UnreadableDocument, read_pieces
from core.errors import HangarError

if TYPE_CHECKING:
    from core.docs.index import Hit
    from core.docs.service import DocumentService, Sources

#: A dropped file whose text takes up to this share of the model's context goes into the prompt whole.
WHOLE_SHARE = 0.25
#: Characters per token, for the estimate of a file's size in tokens (English text and code run 3.5-4.5).
CHARS_PER_TOKEN = 4
#: The context assumed while no model is loaded.
DEFAULT_CONTEXT = 4096


@dataclass(frozen=True)
class Attachment:
    """A short file that goes into the prompt whole with the message it was dropped on."""

    name: str
    path: str
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "text": self.text}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attachment:
        return cls(str(data.get("name", "")), str(data.get("path", "")), str(data.get("text", "")))

    def prompt_text(self) -> str:
        return f"The user attached the file {self.name}:\n```\n{self.text}\n```"


@dataclass(frozen=True)
class DroppedFile:
    """What to do with a dropped file: ``attachment`` (short) or ``retrieve`` (long: index it for retrieval)."""

    path: Path
    attachment: Attachment | None
    tokens: int

    @property
    def long(self) -> bool:
        return self.attachment is None


def adhoc_collection(conversation_id: int) -> str:
    """The collection that holds the long files dropped into one conversation."""
    return f"chat-{conversation_id}"


def examine_drop(path: Path, context_length: int | None) -> DroppedFile:
    """Read a dropped file; ``UnreadableDocument`` (one line) for a folder, binary, unreadable or huge file."""
    if path.is_dir():
        raise UnreadableDocument(f"{path.name}: a folder; attach it as a collection (Documents → New collection…).")
    text = document_text(path)
    tokens = len(text) // CHARS_PER_TOKEN + 1
    limit = int((context_length or DEFAULT_CONTEXT) * WHOLE_SHARE)
    if tokens <= limit:
        return DroppedFile(path, Attachment(path.name, str(path), text), tokens)
    return DroppedFile(path, None, tokens)


def document_text(path: Path) -> str:
    """A document's whole text (the text its cited line numbers count in); PDFs page after page."""
    return "\n\n".join(text for _, text in document_pages(path))


def document_pages(path: Path) -> list[tuple[int | None, str]]:
    """``[(page, text)]`` for a PDF, ``[(None, text)]`` for anything else; ``UnreadableDocument`` as for indexing."""
    read_pieces(path)  # every check of the index: size, binary, unreadable, PDF that cannot be parsed
    if path.suffix.lower() in PDF_SUFFIXES:
        from pypdf import PdfReader

        reader = PdfReader(str(path))
        return [(number, page.extract_text() or "") for number, page in enumerate(reader.pages, start=1)]
    if path.suffix.lower() in {".html", ".htm", ".xhtml"}:
        from core.docs.extract import html_text

        return [(None, html_text(path.read_bytes().decode("utf-8", errors="replace")))]
    return [(None, path.read_bytes().decode("utf-8", errors="replace"))]


@dataclass(frozen=True)
class CitedPlace:
    """A source's file shown at its place: the text, and the lines (0-based, inclusive) to highlight."""

    text: str
    first: int
    last: int
    label: str


def cited_place(source: dict[str, Any]) -> CitedPlace:
    """The text to show for a stored source (``Sources.to_json`` entry) and where the cited passage is."""
    path = Path(str(source["path"]))
    page = source.get("page")
    pages = document_pages(path)
    if page is not None:
        text = next((t for n, t in pages if n == page), "")
        label = f"{path.name} — page {page}"
        first = _find_line(text, str(source.get("text", "")))
        passage_lines = max(1, str(source.get("text", "")).count("\n") + 1)
        return CitedPlace(text, first, first + passage_lines - 1, label)
    text = pages[0][1]
    first_line, last_line = source.get("first_line"), source.get("last_line")
    if isinstance(first_line, int):
        last = last_line if isinstance(last_line, int) else first_line
        return CitedPlace(text, first_line - 1, last - 1, f"{path.name} — {source.get('place') or ''}".rstrip(" —"))
    first = _find_line(text, str(source.get("text", "")))
    return CitedPlace(text, first, first, path.name)


def _find_line(text: str, passage: str) -> int:
    head = next((line.strip() for line in passage.splitlines() if line.strip()), "")
    if not head:
        return 0
    for number, line in enumerate(text.splitlines()):
        if head[:60] in line:
            return number
    return 0


def retrieve(
    docs: DocumentService, collections: list[str], question: str, *, limit: int = 4
) -> tuple[Sources, list[str]]:
    """The best passages for ``question`` from every named collection that exists (ranked together), and one line
    for each collection that could not be searched."""
    from core.docs.service import Sources

    hits: list[Hit] = []
    problems: list[str] = []
    retrieval, note = "full-text", None
    known = {c.name for c in docs.index.collections()}
    for name in collections:
        if name not in known:
            if not name.startswith("chat-"):
                problems.append(f"The collection {name!r} no longer exists; choose another under Documents.")
            continue
        try:
            found = docs.sources_for(name, question, limit=limit)
        except HangarError as exc:
            problems.append(f"{name}: {exc}")
            continue
        hits.extend(found.hits)
        retrieval, note = found.retrieval, found.note or note
    hits.sort(key=lambda h: h.score, reverse=True)
    return Sources(tuple(hits[:limit]), retrieval, note), problems
