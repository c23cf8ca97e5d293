"""Searching the Hugging Face Hub and reading one model's details, through huggingface_hub.

Everything goes to ``$HF_ENDPOINT`` (read on every call, so tests and mirrors work) with the library's session,
auth headers and error classes; library errors become Hangar errors with messages a person can act on.
"""

from __future__ import annotations

import enum
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx2
from huggingface_hub import constants, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import ModelInfo
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from core import __version__
from core.errors import AuthError, HangarError, NetworkError, NotFoundError
from core.hub.files import FileGroup, RemoteFile, RepoFormat, detect_format, group_files

logger = logging.getLogger(__name__)

TokenProvider = Callable[[], str | None]
SEARCH_FIELDS = [
    "author",
    "downloads",
    "likes",
    "lastModified",
    "tags",
    "gated",
    "pipeline_tag",
    "library_name",
    "gguf",
    "safetensors",
    "trendingScore",
]


class SearchSort(enum.StrEnum):
    DOWNLOADS = "downloads"
    LIKES = "likes"
    TRENDING = "trending"
    UPDATED = "updated"

    @property
    def api_value(self) -> str:
        return {"trending": "trendingScore", "updated": "lastModified"}.get(self.value, self.value)


class FormatFilter(enum.StrEnum):
    ANY = "any"
    GGUF = "gguf"
    MLX = "mlx"
    #: Full-weight transformers models (the Hub's ``safetensors`` filter), the ones a fine-tune starts from:
    #: GGUF and MLX conversions are left out, they are for running.
    SAFETENSORS = "safetensors"


@dataclass(frozen=True)
class SearchQuery:
    text: str = ""
    format: FormatFilter = FormatFilter.ANY
    sort: SearchSort = SearchSort.DOWNLOADS
    #: A pipeline tag such as "text-generation"; None for every task.
    task: str | None = "text-generation"
    #: Parameter count bounds in billions (None: unbounded).
    min_params_b: float | None = None
    max_params_b: float | None = None
    limit: int = 20


@dataclass(frozen=True)
class ModelSummary:
    repo_id: str
    author: str
    downloads: int = 0
    likes: int = 0
    updated: datetime | None = None
    tags: tuple[str, ...] = ()
    #: False, or the Hub's gating mode ("auto" / "manual").
    gated: bool | str = False
    pipeline_tag: str | None = None
    library: str | None = None
    parameters: int | None = None

    @property
    def licence(self) -> str | None:
        return next((t.removeprefix("license:") for t in self.tags if t.startswith("license:")), None)

    @property
    def formats(self) -> tuple[str, ...]:
        found = tuple(f for f in ("gguf", "mlx") if f in self.tags or self.library == f)
        return found or (("safetensors",) if self.fine_tunable else ())

    @property
    def fine_tunable(self) -> bool:
        """Full safetensors weights, not a GGUF or MLX conversion: what the Fine-tune page starts from."""
        return "safetensors" in self.tags and not {"gguf", "mlx"} & {*self.tags, self.library or ""}


@dataclass(frozen=True)
class SearchPage:
    results: tuple[ModelSummary, ...]
    #: Where the next page is (the Hub's ``Link: rel="next"``), or None on the last page.
    next_url: str | None = None


@dataclass(frozen=True)
class ModelDetail:
    summary: ModelSummary
    commit: str
    card_markdown: str
    files: tuple[RemoteFile, ...]
    groups: tuple[FileGroup, ...]
    format: RepoFormat
    licence: str | None = None
    gguf: dict[str, Any] = field(default_factory=dict)
    licence_url: str = ""


def hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def gated_message(repo_id: str, endpoint: str, *, had_token: bool) -> str:
    if had_token:
        return (
            f"{repo_id} is gated and your Hugging Face token has no access to it yet. Accept the licence at "
            f"{endpoint}/{repo_id}, then try again."
        )
    return (
        f"{repo_id} is gated: accept its licence at {endpoint}/{repo_id} and add your Hugging Face token in "
        "Settings (or with `hangar token set`, or in the HF_TOKEN environment variable), then try again."
    )


def translate_error(exc: Exception, repo_id: str, *, endpoint: str, had_token: bool) -> HangarError:
    """A huggingface_hub / transport error as a Hangar error. Never includes request headers (the token)."""
    if isinstance(exc, HangarError):
        return exc
    if isinstance(exc, GatedRepoError):
        return AuthError(gated_message(repo_id, endpoint, had_token=had_token))
    if (
        had_token
        and isinstance(exc, HfHubHTTPError)
        and exc.response is not None
        and exc.response.status_code == 401
        and "Invalid credentials" in (exc.response.headers.get("X-Error-Message") or "")
    ):
        return AuthError("The Hugging Face token was refused.", hint="Enter a valid token in Settings.")
    if isinstance(exc, RepositoryNotFoundError):
        return NotFoundError(f"There is no model {repo_id} on {endpoint} (or it is private).")
    if isinstance(exc, RevisionNotFoundError):
        return NotFoundError(f"{repo_id} has no such revision.")
    if isinstance(exc, EntryNotFoundError):
        return NotFoundError(f"{repo_id} has no such file.")
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "?"
        return NetworkError(f"The Hub answered {status} for {repo_id or 'the search'}.", hint="Try again later.")
    if isinstance(exc, httpx2.TransportError):
        return NetworkError(
            f"Could not reach the Hugging Face Hub at {endpoint} ({type(exc).__name__}).",
            hint="Check your connection and try again.",
        )
    return NetworkError(f"Talking to the Hub failed: {type(exc).__name__}.")


class HubClient:
    """Search and model details. Thread-safe (the library's session is); each call is one or two requests."""

    def __init__(
        self, token: TokenProvider | None = None, *, endpoint: str | None = None, timeout: float = 20.0
    ) -> None:
        self._token = token or (lambda: None)
        self._endpoint = endpoint
        self.timeout = timeout

    @property
    def endpoint(self) -> str:
        return (self._endpoint or hub_endpoint()).rstrip("/")

    def headers(self) -> tuple[dict[str, str], bool]:
        """Auth and user-agent headers, and whether a token is in them. ``False`` keeps the library from
        reading a token of its own (the token lives only in Hangar's keyring entry)."""
        token = self._token()
        headers = build_hf_headers(token=token or False, library_name="hangar", library_version=__version__)
        return headers, bool(token)

    def file_url(self, repo_id: str, path: str, revision: str) -> str:
        return hf_hub_url(repo_id, path, revision=revision, endpoint=self.endpoint)

    def _get(self, url: str, repo_id: str, params: Any = None) -> httpx2.Response:
        headers, had_token = self.headers()
        try:
            response = get_session().get(url, params=params, headers=headers, timeout=self.timeout)
            hf_raise_for_status(response)
        except Exception as exc:
            logger.info("hub request for %s failed: %s", repo_id or "search", type(exc).__name__)
            raise translate_error(exc, repo_id, endpoint=self.endpoint, had_token=had_token) from None
        return response

    # -- search -------------------------------------------------------------------------------------------------
    def search(self, query: SearchQuery, next_url: str | None = None) -> SearchPage:
        if next_url is not None:
            if urlsplit(next_url).netloc != urlsplit(self.endpoint).netloc:
                # The token goes with the request: never to a host other than the Hub's.
                raise NetworkError("The Hub sent a next-page link to another server; it was not followed.")
            response = self._get(next_url, "")
        else:
            params: list[tuple[str, Any]] = [("limit", query.limit), ("sort", query.sort.api_value)]
            params.append(("direction", -1))
            if query.text.strip():
                params.append(("search", query.text.strip()))
            if query.format != FormatFilter.ANY:
                params.append(("filter", query.format.value))
            if query.task:
                params.append(("pipeline_tag", query.task))
            bounds = []
            if query.min_params_b is not None:
                bounds.append(f"min:{query.min_params_b:g}B")
            if query.max_params_b is not None:
                bounds.append(f"max:{query.max_params_b:g}B")
            if bounds:
                params.append(("num_parameters", ",".join(bounds)))
            params.extend(("expand", name) for name in SEARCH_FIELDS)
            response = self._get(f"{self.endpoint}/api/models", "", params)
        items = response.json()
        results = tuple(_summary(ModelInfo(**{"siblings": None, **item})) for item in items)
        if query.format == FormatFilter.SAFETENSORS:
            results = tuple(r for r in results if r.fine_tunable)
        return SearchPage(results, response.links.get("next", {}).get("url"))

    # -- detail -------------------------------------------------------------------------------------------------
    def model_detail(self, repo_id: str, revision: str = "main") -> ModelDetail:
        path = f"{self.endpoint}/api/models/{repo_id}"
        if revision != "main":
            path += f"/revision/{revision}"
        info = ModelInfo(**self._get(path, repo_id, {"blobs": True}).json())
        files = tuple(
            RemoteFile(s.rfilename, s.size, s.lfs.sha256 if s.lfs else None, None if s.lfs else s.blob_id)
            for s in info.siblings or []
        )
        summary = _summary(info)
        commit = info.sha or revision
        card = self._card(repo_id, commit) if any(f.path == "README.md" for f in files) else ""
        licence = info.card_data.get("license") if info.card_data is not None else None
        return ModelDetail(
            summary=summary,
            commit=commit,
            card_markdown=card,
            files=files,
            groups=tuple(group_files(list(files), summary.tags)),
            format=detect_format([f.path for f in files], summary.tags),
            licence=licence if isinstance(licence, str) else None,
            gguf=dict(info.gguf or {}),
            licence_url=f"{self.endpoint}/{repo_id}",
        )

    def _card(self, repo_id: str, commit: str) -> str:
        try:
            text = self._get(self.file_url(repo_id, "README.md", commit), repo_id).text
        except HangarError as exc:
            logger.info("no model card for %s: %s", repo_id, exc)
            return ""
        return strip_front_matter(text)

    def whoami(self, token: str) -> str:
        """The user name the token belongs to; AuthError if the Hub refuses it."""
        headers = build_hf_headers(token=token, library_name="hangar", library_version=__version__)
        try:
            response = get_session().get(f"{self.endpoint}/api/whoami-v2", headers=headers, timeout=self.timeout)
        except httpx2.TransportError as exc:
            raise translate_error(exc, "", endpoint=self.endpoint, had_token=True) from None
        if response.status_code == 401:
            raise AuthError("The Hugging Face token was refused.", hint="Check that you copied all of it.")
        try:
            hf_raise_for_status(response)
        except HfHubHTTPError as exc:
            raise translate_error(exc, "", endpoint=self.endpoint, had_token=True) from None
        return str(response.json().get("name", ""))


def strip_front_matter(text: str) -> str:
    """A model card without its YAML metadata block."""
    return re.sub(r"\A---\s*\n.*?\n---\s*\n", "", text, count=1, flags=re.DOTALL)


def _summary(info: ModelInfo) -> ModelSummary:
    parameters = None
    if info.safetensors is not None:
        parameters = info.safetensors.total
    elif isinstance(info.gguf, dict) and info.gguf.get("total"):
        parameters = int(info.gguf["total"])
    return ModelSummary(
        repo_id=info.id,
        author=info.author or info.id.split("/")[0],
        downloads=info.downloads or 0,
        likes=info.likes or 0,
        updated=info.last_modified,
        tags=tuple(info.tags or ()),
        gated=info.gated or False,
        pipeline_tag=info.pipeline_tag,
        library=info.library_name,
        parameters=parameters,
    )
