"""A real HTTP server on 127.0.0.1 that speaks the Hugging Face Hub API the way huggingface_hub 2.4 calls it.

Endpoints: ``/api/models`` (search, filter, sort, cursor pagination with ``Link`` headers), ``/api/models/{repo}``
and ``/revision/{rev}`` (model info with siblings, sizes, LFS sha256, gguf/safetensors summaries, gated flag),
``/api/models/{repo}/tree/{rev}``, ``/api/whoami-v2``, and ``/{repo}/resolve/{rev}/{file}`` (GET/HEAD with ETag,
X-Repo-Commit, X-Linked-Size/X-Linked-Etag; LFS files redirect to a ``/cdn-lfs/`` URL that honours Range).
Gated repos answer 401/403 with the Hub's ``X-Error-Code`` headers. No ``X-Xet-Hash`` header is ever sent, so
huggingface_hub never chooses the Xet transport.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from tests.support.hub.model import Faults, HubFile, HubRepo, RequestRecord

logger = logging.getLogger(__name__)

SORT_KEYS = {
    "downloads": lambda r: r.downloads,
    "likes": lambda r: r.likes,
    "trendingScore": lambda r: r.trending_score,
    "lastModified": lambda r: r.last_modified,
    "createdAt": lambda r: r.created_at,
}
UNITS = {"K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}


class LocalHub:
    """Owns the repos, tokens, faults and the server thread. ``url`` is what HF_ENDPOINT should be."""

    def __init__(self) -> None:
        self.repos: dict[str, HubRepo] = {}
        #: token -> (user name, repos this user may download although gated)
        self.tokens: dict[str, tuple[str, set[str]]] = {}
        self.faults = Faults()
        self.requests: list[RequestRecord] = []
        self.redirects = 0
        self.page_size_cap = 1000
        # LFS downloads redirect to a second origin, as the Hub redirects to its CDN: huggingface_hub follows
        # redirects on the same origin but reads the metadata off a redirect to another one.
        self._servers = [_Server(("127.0.0.1", 0), _Handler), _Server(("127.0.0.1", 0), _Handler)]
        for server in self._servers:
            server.hub = self
        self._server = self._servers[0]
        self._threads = [
            threading.Thread(target=server.serve_forever, name="local-hub", daemon=True) for server in self._servers
        ]

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def cdn_url(self) -> str:
        host, port = self._servers[1].server_address[:2]
        return f"http://{host}:{port}"

    def add(self, repo: HubRepo) -> HubRepo:
        self.repos[repo.repo_id] = repo
        return repo

    def start(self) -> LocalHub:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def reset(self) -> None:
        """Forget faults and the request log between tests (repos and tokens stay)."""
        self.faults = Faults()
        self.requests.clear()

    def file_requests(self, repo_id: str, path: str) -> list[RequestRecord]:
        key = f"{repo_id}/{path}"
        return [r for r in self.requests if r.path == key and r.method == "GET"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    hub: LocalHub

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-body (cancel, pause, kill) are normal here.
        logger.debug("local hub: connection from %s ended abruptly", client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("local hub: " + format, *args)

    # -- plumbing -----------------------------------------------------------------------------------------------
    @property
    def hub(self) -> LocalHub:
        return self.server.hub

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def _dispatch(self, *, head: bool) -> None:
        split = urlsplit(self.path)
        query = parse_qs(split.query)
        path = unquote(split.path)
        try:
            if path == "/api/models":
                self._search(query)
            elif path == "/api/whoami-v2":
                self._whoami()
            elif path.startswith("/api/models/"):
                self._api_model(path.removeprefix("/api/models/"), query)
            elif path.startswith("/cdn-lfs/"):
                self._cdn(query, head=head)
            elif "/resolve/" in path:
                self._resolve(path.lstrip("/"), head=head)
            else:
                self._error(404, "RepoNotFound", "Not found")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _json(self, value: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for key, item in (headers or {}).items():
            self.send_header(key, item)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._record(status)

    def _error(self, status: int, code: str | None, message: str) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._json({"error": message}, status, headers)

    def _record(self, status: int, key: str | None = None) -> None:
        self.hub.requests.append(
            RequestRecord(
                self.command,
                key or urlsplit(self.path).path,
                self.headers.get("Range"),
                bool(self.headers.get("Authorization")),
                status,
            )
        )

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth.removeprefix("Bearer ").strip() or None if auth.startswith("Bearer ") else None

    def _repo(self, repo_id: str) -> HubRepo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found")
        return repo

    # -- /api/models ----------------------------------------------------------------------------------------
    def _search(self, query: dict[str, list[str]]) -> None:
        repos = list(self.hub.repos.values())
        if search := query.get("search", [""])[0].lower():
            repos = [r for r in repos if search in r.repo_id.lower()]
        if author := query.get("author", [None])[0]:
            repos = [r for r in repos if r.author == author]
        for wanted in query.get("filter", []):
            repos = [r for r in repos if wanted in r.tags or wanted == r.library_name or wanted == r.pipeline_tag]
        if pipeline := query.get("pipeline_tag", [None])[0]:
            repos = [r for r in repos if r.pipeline_tag == pipeline]
        if gated := query.get("gated", [None])[0]:
            repos = [r for r in repos if bool(r.gated) == (gated.lower() == "true")]
        if num := query.get("num_parameters", [None])[0]:
            low, high = _parameter_range(num)
            repos = [r for r in repos if r.num_parameters is not None and low <= r.num_parameters <= high]
        repos = [r for r in repos if not r.private]
        sort = query.get("sort", [None])[0]
        if sort in SORT_KEYS:
            descending = query.get("direction", ["-1"])[0] != "1"
            repos.sort(key=SORT_KEYS[sort], reverse=descending)
        else:
            repos.sort(key=lambda r: r.repo_id)
        limit = min(int(query.get("limit", ["1000"])[0]), self.hub.page_size_cap)
        start = int(query.get("cursor", ["0"])[0])
        page = repos[start : start + limit]
        headers = {}
        if start + limit < len(repos):
            params = [(k, v) for k, values in query.items() if k != "cursor" for v in values]
            params.append(("cursor", str(start + limit)))
            headers["Link"] = f'<{self.hub.url}/api/models?{urlencode(params)}>; rel="next"'
        expand = query.get("expand", []) + query.get("expand[]", [])
        full = query.get("full", ["false"])[0].lower() == "true"
        self._json([_summary(r, expand, full) for r in page], headers=headers)

    def _api_model(self, rest: str, query: dict[str, list[str]]) -> None:
        parts = rest.split("/")
        repo_id = "/".join(parts[:2])
        repo = self._repo(repo_id)
        if repo is None:
            return
        tail = parts[2:]
        if not tail or tail[0] == "revision":
            revision = tail[1] if len(tail) > 1 else "main"
            if revision not in ("main", repo.commit):
                return self._error(404, "RevisionNotFound", "Invalid rev id")
            blobs = query.get("blobs", ["false"])[0].lower() == "true"
            return self._json(_detail(repo, blobs))
        if tail[0] == "tree":
            revision = tail[1] if len(tail) > 1 else "main"
            if revision not in ("main", repo.commit):
                return self._error(404, "RevisionNotFound", "Invalid rev id")
            prefix = "/".join(tail[2:])
            return self._json(_tree(repo, prefix, query.get("recursive", ["false"])[0].lower() == "true"))
        self._error(404, None, "Not found")

    def _whoami(self) -> None:
        token = self._token()
        user = self.hub.tokens.get(token or "")
        if user is None:
            return self._error(401, None, "Invalid credentials in Authorization header")
        self._json(
            {
                "type": "user",
                "name": user[0],
                "fullname": user[0].title(),
                "auth": {"type": "access_token", "accessToken": {"displayName": "hangar", "role": "read"}},
            }
        )

    # -- downloads ----------------------------------------------------------------------------------------------
    def _resolve(self, path: str, *, head: bool) -> None:
        prefix, _, file_path = path.partition("/resolve/")
        revision, _, file_path = file_path.partition("/")
        repo = self._repo(prefix)
        if repo is None:
            return
        if revision not in ("main", repo.commit):
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        if repo.gated and file_path not in ("README.md", ".gitattributes"):
            token = self._token()
            if token is None:
                return self._error(
                    401,
                    "GatedRepo",
                    f"Access to model {repo.repo_id} is restricted. You must have access to it and be "
                    "authenticated to access it. Please log in.",
                )
            if token not in self.hub.tokens:
                return self._error(401, None, "Invalid credentials in Authorization header")
            if repo.repo_id not in self.hub.tokens[token][1]:
                return self._error(
                    403,
                    "GatedRepo",
                    f"Access to model {repo.repo_id} is restricted and you are not in the authorized list. "
                    f"Visit {self.hub.url}/{repo.repo_id} to ask for access.",
                )
        hub_file = repo.file(file_path)
        if hub_file is None:
            return self._error(404, "EntryNotFound", "Entry not found")
        common = {"X-Repo-Commit": repo.commit, "Accept-Ranges": "bytes"}
        if hub_file.is_lfs:
            location = f"{self.hub.cdn_url}/cdn-lfs/{hub_file.sha256}?" + urlencode(
                {"repo": repo.repo_id, "file": hub_file.path}
            )
            self.send_response(302)
            for key, value in {
                **common,
                "Location": location,
                "ETag": f'"{hub_file.blob_id}"',
                "X-Linked-Etag": f'"{hub_file.sha256}"',
                "X-Linked-Size": str(hub_file.size),
                "Content-Length": "0",
            }.items():
                self.send_header(key, value)
            self.end_headers()
            self._record(302, f"{repo.repo_id}/{hub_file.path}")
            return
        self._body(repo, hub_file, head=head, extra={**common, "ETag": f'"{hub_file.etag}"'})

    def _cdn(self, query: dict[str, list[str]], *, head: bool) -> None:
        repo = self.hub.repos.get(query.get("repo", [""])[0])
        hub_file = repo.file(query.get("file", [""])[0]) if repo else None
        if repo is None or hub_file is None:
            return self._error(404, None, "Not found")
        key = f"{repo.repo_id}/{hub_file.path}"
        faults = self.hub.faults
        if key in faults.redirect_forever or (key in faults.redirect_each and "once" not in query):
            self.hub.redirects += 1
            params = {"repo": repo.repo_id, "file": hub_file.path, "hop": str(self.hub.redirects)}
            if key in faults.redirect_each:
                params["once"] = "1"
            self.send_response(302)
            self.send_header("Location", f"{self.hub.cdn_url}/cdn-lfs/{hub_file.sha256}?" + urlencode(params))
            self.send_header("Content-Length", "0")
            self.end_headers()
            self._record(302, key)
            return
        self._body(repo, hub_file, head=head, extra={"ETag": f'"{hub_file.sha256}"', "Accept-Ranges": "bytes"})

    def _body(self, repo: HubRepo, hub_file: HubFile, *, head: bool, extra: dict[str, str]) -> None:
        key = f"{repo.repo_id}/{hub_file.path}"
        faults = self.hub.faults
        if not head and faults.take(faults.unavailable, key) is not None:
            self._record(503, key)
            return self._json({"error": "Service unavailable"}, 503, {"Retry-After": "0"})
        if key in faults.portal:
            page = faults.portal[key]
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self._record(200, key)
            if not head:
                self.wfile.write(page)
            return
        size = hub_file.size
        start, end = 0, size
        status = 200
        range_header = None if key in faults.ignore_range else self.headers.get("Range")
        if range_header and range_header.startswith("bytes="):
            first, _, last = range_header.removeprefix("bytes=").partition("-")
            start = int(first or 0)
            end = min(int(last) + 1, size) if last else size
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                self._record(416, key)
                return
            status = 206
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.end_headers()
        self._record(status, key)
        if head or self.command == "HEAD":
            return
        # A drop is spent only by a response that would pass its offset.
        armed = faults.drop_at.get(key)
        drop = faults.take(faults.drop_at, key) if armed and start <= armed[0] < end else None
        drop_offset = drop[0] if drop else None
        corrupt = key in faults.corrupt
        self._stream(hub_file, key, start, end, drop_offset, corrupt)

    def _stream(self, hub_file: HubFile, key: str, start: int, end: int, drop: int | None, corrupt: bool) -> None:
        faults = self.hub.faults
        chunk = 1 << 20
        if faults.throttle_bps:
            chunk = max(1024, faults.throttle_bps // 20)
        began = time.monotonic()
        faults.stream_started(key)
        try:
            self._send_body(hub_file, key, start, end, drop, corrupt, chunk, began)
        finally:
            faults.stream_ended(key)

    def _send_body(
        self,
        hub_file: HubFile,
        key: str,
        start: int,
        end: int,
        drop: int | None,
        corrupt: bool,
        chunk: int,
        began: float,
    ) -> None:
        faults = self.hub.faults
        if hub_file.source is not None and not faults.throttle_bps and drop is None and not corrupt:
            return self._send_file(hub_file.source, key, start, end)
        position = start
        while position < end:
            stop = min(end, position + chunk)
            if drop is not None and position <= drop < stop:
                stop = drop
            data = hub_file.read(position, stop)
            if corrupt and position <= hub_file.size // 2 < stop:
                index = hub_file.size // 2 - position
                data = data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1 :]
            self.wfile.write(data)
            faults.count_body(key, len(data))
            position = stop
            faults.sent(key, position)
            if drop is not None and position >= drop:
                self.close_connection = True
                self.connection.shutdown(2)  # the peer sees the body end early: a dropped connection
                return
            if faults.throttle_bps and position < end:
                ahead = (position - start) / faults.throttle_bps - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)

    def _send_file(self, source: Path, key: str, start: int, end: int) -> None:
        """A plain body from a file on disk: the kernel copies it (sendfile), as a real file server does, so the
        server's threads leave the interpreter to the client under test."""
        faults = self.hub.faults
        with source.open("rb") as handle:
            position = start
            while position < end:
                sent = self.connection.sendfile(handle, offset=position, count=min(end - position, 8 << 20))
                if not sent:
                    break
                faults.count_body(key, sent)
                position += sent
                faults.sent(key, position)


def _parameter_range(spec: str) -> tuple[float, float]:
    low, high = 0.0, float("inf")
    for part in spec.split(","):
        name, _, value = part.partition(":")
        number = float(value[:-1]) * UNITS[value[-1].upper()] if value[-1:].upper() in UNITS else float(value)
        if name == "min":
            low = number
        elif name == "max":
            high = number
    return low, high


def _summary(repo: HubRepo, expand: list[str], full: bool) -> dict[str, Any]:
    base: dict[str, Any] = {
        "_id": repo.commit[:24],
        "id": repo.repo_id,
        "modelId": repo.repo_id,
        "likes": repo.likes,
        "trendingScore": repo.trending_score,
        "private": repo.private,
        "downloads": repo.downloads,
        "tags": repo.tags,
        "pipeline_tag": repo.pipeline_tag,
        "library_name": repo.library_name,
        "createdAt": repo.created_at,
    }
    extra = {
        "author": repo.author,
        "lastModified": repo.last_modified,
        "gated": repo.gated,
        "sha": repo.commit,
        "gguf": repo.gguf,
        "safetensors": repo.safetensors,
        "cardData": repo.card_data,
    }
    if expand:
        merged = {**base, **extra}
        return {"_id": base["_id"], "id": repo.repo_id, **{k: merged[k] for k in expand if k in merged}}
    if full:
        base.update(extra, siblings=[{"rfilename": f.path} for f in repo.files])
    return {k: v for k, v in base.items() if v is not None}


def _detail(repo: HubRepo, blobs: bool) -> dict[str, Any]:
    info = _summary(repo, [], full=True)
    siblings = []
    for hub_file in repo.files:
        sibling: dict[str, Any] = {"rfilename": hub_file.path}
        if blobs:
            sibling.update(size=hub_file.size, blobId=hub_file.blob_id)
            if hub_file.is_lfs:
                sibling["lfs"] = {"size": hub_file.size, "sha256": hub_file.sha256, "pointerSize": 134}
        siblings.append(sibling)
    info["siblings"] = siblings
    info["usedStorage"] = sum(f.size for f in repo.files)
    return {k: v for k, v in info.items() if v is not None}


def _tree(repo: HubRepo, prefix: str, recursive: bool) -> list[dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    base = f"{prefix}/" if prefix else ""
    for hub_file in repo.files:
        if not hub_file.path.startswith(base):
            continue
        rest = hub_file.path[len(base) :]
        if "/" in rest and not recursive:
            folder = base + rest.split("/")[0]
            entries.setdefault(folder, {"type": "directory", "oid": repo.commit, "size": 0, "path": folder})
            continue
        entry: dict[str, Any] = {
            "type": "file",
            "oid": hub_file.blob_id,
            "size": hub_file.size,
            "path": hub_file.path,
        }
        if hub_file.is_lfs:
            entry["lfs"] = {"oid": hub_file.sha256, "size": hub_file.size, "pointerSize": 134}
        entries[hub_file.path] = entry
    return list(entries.values())


def resolve_url(hub: LocalHub, repo_id: str, path: str, revision: str = "main") -> str:
    return f"{hub.url}/{repo_id}/resolve/{revision}/{quote(path)}"
