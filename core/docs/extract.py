"""Text out of a user's files, in pieces that remember where they came from (page, lines).

Plain text, Markdown, source code, HTML and PDF are read; anything else that is text (by content, not by name) too.
Binary files, files too large to be documents, and PDFs that cannot be parsed are refused with a reason, and the
rest of the collection goes on."""

from __future__ import annotations

import html.parser
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.errors import HangarError

logger = logging.getLogger(__name__)

#: A document larger than this is most likely a log or a dump, not something to chat with.
MAX_FILE_BYTES = 50 * 1024 * 1024
#: About 200 tokens a chunk: small enough to cite a place, large enough to carry a thought.
CHUNK_CHARS = 900
CHUNK_OVERLAP = 150
TEXT_SUFFIXES = frozenset(
    {
        ".txt",
        ".md",
        ".markdown",
        ".rst",
        ".org",
        ".csv",
        ".tsv",
        ".json",
        ".yaml",
        ".yml",
        ".toml",
        ".ini",
        ".cfg",
        ".log",
        ".tex",
        ".py",
        ".js",
        ".ts",
        ".tsx",
        ".jsx",
        ".java",
        ".c",
        ".h",
        ".cc",
        ".cpp",
        ".hpp",
        ".cs",
        ".go",
        ".rs",
        ".rb",
        ".php",
        ".swift",
        ".kt",
        ".scala",
        ".sh",
        ".bash",
        ".zsh",
        ".ps1",
        ".sql",
        ".r",
        ".m",
        ".lua",
        ".pl",
        ".xml",
    }
)
HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
PDF_SUFFIXES = frozenset({".pdf"})
SKIP_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox", ".mypy_cache"})


class UnreadableDocument(HangarError):
    """One file could not be read as a document; the message says why. The collection goes on without it."""

    code = "document"


@dataclass(frozen=True)
class Piece:
    """A chunk of a document's text and where it is: ``page`` for PDFs, ``first_line``/``last_line`` for text."""

    text: str
    page: int | None = None
    first_line: int | None = None
    last_line: int | None = None

    @property
    def place(self) -> str:
        if self.page is not None:
            return f"page {self.page}"
        if self.first_line is not None:
            if self.last_line and self.last_line != self.first_line:
                return f"lines {self.first_line}-{self.last_line}"
            return f"line {self.first_line}"
        return ""


def files_under(paths: list[Path]) -> Iterator[Path]:
    """Every regular file named or under a named folder (hidden and tool folders skipped), in a stable order."""
    for path in paths:
        if path.is_file():
            yield path
        elif path.is_dir():
            for child in sorted(path.rglob("*")):
                if any(part in SKIP_DIRS or part.startswith(".") for part in child.relative_to(path).parts[:-1]):
                    continue
                if child.is_file() and not child.name.startswith("."):
                    yield child


def read_pieces(path: Path) -> list[Piece]:
    """The document's text in chunks; ``UnreadableDocument`` with the reason if it is not one."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise UnreadableDocument(f"{path.name}: cannot be read ({exc.strerror or exc}).") from None
    if not path.is_file():
        raise UnreadableDocument(f"{path.name}: not a regular file.")
    if stat.st_size > MAX_FILE_BYTES:
        raise UnreadableDocument(
            f"{path.name}: {stat.st_size / 2**20:,.0f} MB is too large for a document "
            f"(the limit is {MAX_FILE_BYTES // 2**20} MB); split it or leave it out."
        )
    suffix = path.suffix.lower()
    if suffix in PDF_SUFFIXES:
        return _pdf_pieces(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UnreadableDocument(f"{path.name}: cannot be read ({exc.strerror or exc}).") from None
    if b"\x00" in raw[:8192]:
        raise UnreadableDocument(f"{path.name}: a binary file, not text.")
    text = raw.decode("utf-8", errors="replace")
    if suffix in HTML_SUFFIXES:
        return _chunk_text(html_text(text))
    if suffix not in TEXT_SUFFIXES and text.count("\ufffd") > len(text) // 20:
        raise UnreadableDocument(f"{path.name}: not readable as text.")
    return _chunk_text(text)


def _chunk_text(text: str, page: int | None = None) -> list[Piece]:
    """Chunks of whole lines up to ``CHUNK_CHARS``, overlapping by about ``CHUNK_OVERLAP`` characters."""
    lines = text.splitlines()
    pieces: list[Piece] = []
    start = 0
    while start < len(lines):
        size, end = 0, start
        while end < len(lines) and (size == 0 or size + len(lines[end]) + 1 <= CHUNK_CHARS):
            size += len(lines[end]) + 1
            end += 1
        body = "\n".join(lines[start:end]).strip()
        if len(body) > CHUNK_CHARS * 2:  # one enormous line (minified code, a data dump): cut it
            body = body[: CHUNK_CHARS * 2]
        if body:
            first, last = (None, None) if page is not None else (start + 1, end)
            pieces.append(Piece(body, page=page, first_line=first, last_line=last))
        if end >= len(lines):
            break
        back, overlap = end, 0
        while back > start + 1 and overlap < CHUNK_OVERLAP:
            back -= 1
            overlap += len(lines[back]) + 1
        start = max(back, start + 1)
    return pieces


def _pdf_pieces(path: Path) -> list[Piece]:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError:
        raise UnreadableDocument(f"{path.name}: reading PDF files needs the 'pypdf' package.") from None
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            raise UnreadableDocument(f"{path.name}: the PDF is encrypted.")
        pieces: list[Piece] = []
        for number, page in enumerate(reader.pages, start=1):
            text = page.extract_text() or ""
            pieces.extend(_chunk_text(text, page=number))
    except UnreadableDocument:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
        raise UnreadableDocument(f"{path.name}: the PDF cannot be parsed ({type(exc).__name__}).") from None
    if not pieces:
        raise UnreadableDocument(f"{path.name}: the PDF has no text (a scan? text recognition is not built in).")
    return pieces


class _TextOfHtml(html.parser.HTMLParser):
    _SKIP = frozenset({"script", "style", "noscript", "template"})
    _BLOCK = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "pre"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_text(markup: str) -> str:
    parser = _TextOfHtml()
    parser.feed(markup)
    parser.close()
    return re.sub(r"\n\s*\n+", "\n\n", "".join(parser.parts))
