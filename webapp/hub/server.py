"""A small Hub look-alike on 127.0.0.1, serving model folders in the Hub's layout and API:
what huggingface_hub calls to look up a repo (`/api/models/...`, with file sizes and
hashes), list its tree, and download its files (`/resolve/...`, with HEAD, ETags, the
commit header and byte ranges).

It is real HTTP, so installs are tested through huggingface_hub itself; and it can misbehave
on purpose: drop a connection mid-file, serve a damaged file, be down, or hold a repo gated
behind a token. The install bench uses it too.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".ckpt", ".gguf", ".pth")
CHUNK = 1 << 20


@dataclass
class ServedFile:
    path: str
    source: Path
    size: int
    sha256: str
    blob_id: str

    @property
    def lfs(self) -> bool:
        return self.path.endswith(LFS_SUFFIXES)


@dataclass
class ServedRepo:
    repo_id: str
    files: dict[str, ServedFile]
    commit: str
    license: str = "apache-2.0"
    gated: bool = False
    token: str | None = None  # the token that may download a gated repo


@dataclass
class Faults:
    """Misbehaviour on demand. `drop_after[path] = n`: the next download of that file stops
    after n bytes (the connection is closed). `corrupt`: files served with a byte changed.
    `down`: every request answers 503. `pause`: seconds slept before each 64 KiB sent (a
    slow link)."""

    drop_after: dict[str, int] = field(default_factory=dict)
    corrupt: set[str] = field(default_factory=set)
    down: bool = False
    pause: float = 0.0


def _digests(path: Path) -> tuple[str, str]:
    size = path.stat().st_size
    sha256, sha1 = hashlib.sha256(), hashlib.sha1(f"blob {size}\0".encode())
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            sha256.update(chunk)
            sha1.update(chunk)
    return sha256.hexdigest(), sha1.hexdigest()


def repo_from_folder(repo_id: str, folder: Path, **options) -> ServedRepo:
    """Every file under `folder` as a repo at one commit (named after its content)."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        sha256, blob_id = _digests(path)
        files[relative] = ServedFile(relative, path, path.stat().st_size, sha256, blob_id)
    commit = hashlib.sha1("".join(f.blob_id for f in files.values()).encode()).hexdigest()
    return ServedRepo(repo_id, files, commit, **options)


class FakeHub:
    """`with FakeHub(port) as hub: hub.add(repo)`; `hub.url` is the endpoint, `hub.log`
    the requests seen (method, path, Range header, whether a token was sent)."""

    def __init__(self, port: int = 0):
        self.repos: dict[str, ServedRepo] = {}
        self.faults = Faults()
        self.log: list[tuple[str, str, str | None, bool]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, repo: ServedRepo) -> ServedRepo:
        self.repos[repo.repo_id] = repo
        return repo

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def downloads(self, path_suffix: str) -> list[str | None]:
        """The Range header of each GET of a file whose URL ends with `path_suffix`."""
        return [r for m, p, r, _ in self.log if m == "GET" and p.endswith(path_suffix)]

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                path = unquote(urlsplit(self.path).path)
                token = _bearer(self.headers.get("Authorization"))
                with hub._lock:
                    hub.log.append((self.command, path, self.headers.get("Range"), bool(token)))
                if hub.faults.down:
                    return self._error(503, "ServiceUnavailable", "down for maintenance")
                parts = path.strip("/").split("/")
                if parts[:2] == ["api", "models"] and len(parts) >= 4:
                    return self._api(parts[2:], token)
                if len(parts) >= 5 and parts[2] == "resolve":
                    return self._resolve(parts, token, body)
                self._error(404, "EntryNotFound", "no such address")

            def _repo(self, owner_name: list[str]) -> ServedRepo | None:
                repo = hub.repos.get("/".join(owner_name))
                if repo is None:
                    self._error(404, "RepoNotFound", "Repository not found")
                return repo

            def _api(self, rest: list[str], token: str | None) -> None:
                repo = self._repo(rest[:2])
                if repo is None:
                    return
                if len(rest) >= 4 and rest[2] in ("revision", "tree"):
                    if rest[3] not in ("main", repo.commit):
                        return self._error(404, "RevisionNotFound", "Invalid rev id")
                    if rest[2] == "tree":
                        return self._json([_tree_entry(f) for f in repo.files.values()])
                self._json(
                    {
                        "id": repo.repo_id,
                        "sha": repo.commit,
                        "private": False,
                        "gated": "manual" if repo.gated else False,
                        "cardData": {"license": repo.license},
                        "siblings": [_sibling(f) for f in repo.files.values()],
                    }
                )

            def _resolve(self, parts: list[str], token: str | None, body: bool) -> None:
                repo = self._repo(parts[:2])
                if repo is None:
                    return
                if parts[3] not in ("main", repo.commit):
                    return self._error(404, "RevisionNotFound", "Invalid rev id")
                if repo.gated and token != repo.token:
                    status = 403 if token else 401
                    return self._error(status, "GatedRepo", "Access to this model is restricted")
                served = repo.files.get("/".join(parts[4:]))
                if served is None:
                    return self._error(404, "EntryNotFound", "Entry not found")
                self._send_file(repo, served, body)

            def _send_file(self, repo: ServedRepo, served: ServedFile, body: bool) -> None:
                start = _range_start(self.headers.get("Range"))
                self.send_response(206 if start else 200)
                self.send_header("X-Repo-Commit", repo.commit)
                etag = served.sha256 if served.lfs else served.blob_id
                self.send_header("ETag", f'"{etag}"')
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(served.size - start))
                if start:
                    self.send_header(
                        "Content-Range", f"bytes {start}-{served.size - 1}/{served.size}"
                    )
                self.end_headers()
                if not body:
                    return
                limit = hub.faults.drop_after.pop(served.path, None)
                faulty = limit is not None or hub.faults.pause or served.path in hub.faults.corrupt
                with served.source.open("rb") as handle:
                    if not faulty:  # the kernel copies: the server is never the bottleneck
                        self.connection.sendfile(handle, offset=start, count=served.size - start)
                        return
                    handle.seek(start)
                    sent = start
                    while chunk := handle.read(64 * 1024):
                        if hub.faults.pause:
                            time.sleep(hub.faults.pause)
                        if served.path in hub.faults.corrupt and sent == 0:
                            chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                        if limit is not None and sent + len(chunk) > limit:
                            self.wfile.write(chunk[: max(limit - sent, 0)])
                            self.wfile.flush()
                            self.close_connection = True
                            self.connection.shutdown(2)
                            return
                        self.wfile.write(chunk)
                        sent += len(chunk)

            def _json(self, data: object) -> None:
                payload = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def _error(self, status: int, code: str, message: str) -> None:
                payload = json.dumps({"error": message}).encode()
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", message)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

        return Handler


def _bearer(header: str | None) -> str | None:
    if header and header.startswith("Bearer "):
        return header.removeprefix("Bearer ").strip() or None
    return None


def _range_start(header: str | None) -> int:
    if header and header.startswith("bytes="):
        first = header.removeprefix("bytes=").split("-", 1)[0]
        return int(first) if first.isdigit() else 0
    return 0


def _sibling(f: ServedFile) -> dict:
    entry: dict = {"rfilename": f.path, "size": f.size, "blobId": f.blob_id}
    if f.lfs:
        entry["lfs"] = {"size": f.size, "sha256": f.sha256, "pointerSize": 134}
    return entry


def _tree_entry(f: ServedFile) -> dict:
    entry: dict = {"type": "file", "path": f.path, "size": f.size, "oid": f.blob_id}
    if f.lfs:
        entry["lfs"] = {"size": f.size, "oid": f.sha256, "pointerSize": 134}
    return entry
