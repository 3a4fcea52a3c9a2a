"""The process that talks to the Hub: `python -m webapp.hub.worker`, one request (JSON on
stdin), one answer (JSON on the last line of stdout).

It runs apart from the app so that the app stays offline (huggingface_hub decides offline
mode once per process), so a stalled connection never holds a page, and so an install is
stopped by ending the process. The access token comes in the environment
(ATELIER_HUB_TOKEN), never on the command line, and is never written out.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from webapp.errors import AtelierError, ValidationError
from webapp.hub.plan import HubFile, RepoPlan, choose_files, default_name

TOKEN_ENV = "ATELIER_HUB_TOKEN"
LOOK_UP_TIMEOUT = 10  # seconds: a Hub that does not answer is reported, not waited for
WORKERS = 8
CHUNK = 8 * 2**20
# huggingface_hub writes (and, after a dropped connection, resumes from) whole chunks of
# 10 MiB; 1 MiB chunks resume closer to where a connection broke and move the progress bar
# more often, at no cost in speed.
DOWNLOAD_CHUNK = 2**20


def look_up(repo_id: str, revision: str, endpoint: str, token: str | None) -> RepoPlan:
    """The repo's files with sizes and hashes, the files to fetch, its licence and whether
    this token may download it."""
    from huggingface_hub import HfApi

    info = HfApi(endpoint=endpoint, token=token).model_info(
        repo_id, revision=revision, files_metadata=True, timeout=LOOK_UP_TIMEOUT
    )
    files = [
        HubFile(
            path=s.rfilename,
            size=int(s.lfs.size if s.lfs else s.size or 0),
            sha256=s.lfs.sha256 if s.lfs else None,
            blob_id=s.blob_id,
        )
        for s in info.siblings or []
    ]
    layout, chosen, skipped = choose_files(repo_id, files)
    card = info.card_data.to_dict() if info.card_data else {}
    license_name = str(card.get("license_name") or card.get("license") or "unknown")
    plan = RepoPlan(
        repo_id=repo_id,
        revision=revision,
        commit=info.sha or revision,
        layout=layout,
        files=tuple(chosen),
        skipped=tuple(skipped),
        license=license_name,
        license_link=license_page(card.get("license_link"), endpoint, repo_id, info.sha),
        gated=bool(info.gated),
        name=default_name(repo_id),
    )
    if plan.gated:
        plan = _with_access(plan, endpoint, token)
    return plan


def license_page(link: object, endpoint: str, repo_id: str, commit: str | None) -> str:
    """Where to read the licence: the card's link if it is a web address, a file of the
    repo if it names one, else the repo's page (never another kind of link)."""
    text = str(link or "").strip()
    if re.match(r"^https?://[^\s()<>]+$", text):
        return text
    if re.match(r"^[A-Za-z0-9._/-]+$", text) and ".." not in text:
        return f"{endpoint}/{repo_id}/blob/{commit or 'main'}/{text.lstrip('/')}"
    return f"{endpoint}/{repo_id}"


def _with_access(plan: RepoPlan, endpoint: str, token: str | None) -> RepoPlan:
    """A gated repo lists its files to anyone; whether this token may download them is
    asked with one small file."""
    from dataclasses import replace

    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError

    smallest = min(plan.files, key=lambda f: f.size)
    url = hf_hub_url(plan.repo_id, smallest.path, revision=plan.commit, endpoint=endpoint)
    try:
        get_hf_file_metadata(url, token=token or False, timeout=LOOK_UP_TIMEOUT)
    except (GatedRepoError, HfHubHTTPError) as error:
        status = error.response.status_code if error.response is not None else 0
        if status not in (401, 403):
            raise
        return replace(plan, access="token-refused" if token else "needs-token")
    return replace(plan, access="granted")


def download(plan: RepoPlan, staging: Path, endpoint: str, token: str | None) -> list[str]:
    """Every file of the plan into `staging`, each checked against the Hub's size and hash
    as soon as it arrives. Files already there and whole are kept (an interrupted install
    goes on where it stopped); a file that fails its check is deleted. Returns the files."""
    from huggingface_hub import constants, hf_hub_download

    constants.DOWNLOAD_CHUNK_SIZE = DOWNLOAD_CHUNK

    def fetch(f: HubFile) -> str:
        path = Path(
            hf_hub_download(
                plan.repo_id,
                f.path,
                revision=plan.commit,
                local_dir=staging,
                endpoint=endpoint,
                token=token,
            )
        )
        verify(path, f)
        return f.path

    with ThreadPoolExecutor(WORKERS) as pool:
        futures = [pool.submit(fetch, f) for f in sorted(plan.files, key=lambda f: -f.size)]
        return [future.result() for future in as_completed(futures)]


def verify(path: Path, f: HubFile) -> None:
    """The file's size and content hash (SHA-256 for large files, git's blob SHA-1 for the
    rest) against the Hub's; a mismatch deletes the file and raises."""
    size = path.stat().st_size
    problem = None
    if size != f.size:
        problem = f"is {size:,} bytes where the Hub lists {f.size:,}"
    elif f.sha256 and file_digest(path, hashlib.sha256()) != f.sha256:
        problem = "does not match the Hub's SHA-256 checksum"
    elif not f.sha256 and f.blob_id and blob_sha1(path, size) != f.blob_id:
        problem = "does not match the Hub's checksum"
    if problem:
        path.unlink(missing_ok=True)
        raise ChecksumMismatch(
            f"{f.path} {problem}: the download was damaged on the way, or the mirror serves "
            "another file. It was deleted; press Retry. If it happens again, check the mirror.",
            field="repo_id",
        )


class ChecksumMismatch(AtelierError):
    pass


def file_digest(path: Path, digest: Any) -> str:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def blob_sha1(path: Path, size: int) -> str:
    digest = hashlib.sha1(f"blob {size}\0".encode())
    return file_digest(path, digest)


def explain(error: BaseException, repo_id: str, endpoint: str, token: str | None) -> AtelierError:
    """A Hub or disk failure as a message that says what to do, and its field."""
    import httpx2
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(error, AtelierError):
        return error
    if isinstance(error, GatedRepoError) or (
        isinstance(error, HfHubHTTPError)
        and error.response is not None
        and error.response.status_code in (401, 403)
        and token
    ):
        return _access_error(repo_id, endpoint, token)
    if isinstance(error, RevisionNotFoundError):
        return ValidationError(
            f"{repo_id} has no revision of that name: give an existing branch (main), tag or "
            "commit id, or leave it empty.",
            field="revision",
        )
    if isinstance(error, RepositoryNotFoundError):
        return ValidationError(
            f"No model {repo_id} on {endpoint}: check the spelling (owner/name, as in the "
            "model's address). A private repo needs an access token that can read it.",
            field="repo_id",
        )
    if isinstance(error, httpx2.TimeoutException | httpx2.ConnectError | OfflineModeIsEnabled):
        return AtelierError(
            f"Cannot reach the Hub at {endpoint} ({type(error).__name__}). Check this server's "
            "network, or set ATELIER_HF_ENDPOINT to your company's mirror. Nothing was "
            "installed; files already fetched are kept for a retry.",
            field="endpoint",
        )
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code if error.response is not None else "?"
        return AtelierError(
            f"The Hub at {endpoint} answered with an error ({status}): it (or the mirror) may "
            "be down. Try again later; files already fetched are kept.",
            field="endpoint",
        )
    if isinstance(error, httpx2.HTTPError):
        return AtelierError(
            f"The connection to {endpoint} broke ({type(error).__name__}) and did not come "
            "back. Press Retry: files already fetched are kept.",
            field="endpoint",
        )
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return AtelierError(
            "The disk holding the models dir is full. Free some space (or delete a model you "
            "no longer use) and press Retry: files already fetched are kept.",
            field="disk",
        )
    return AtelierError(
        f"The install failed: {type(error).__name__}: {error}. Press Retry; if it fails "
        "again, look in the server's log.",
    )


def _access_error(repo_id: str, endpoint: str, token: str | None) -> AtelierError:
    page = f"{endpoint}/{repo_id}"
    if token:
        return ValidationError(
            f"The access token was refused for {repo_id}: check that it is a valid token with "
            f"read access, and that its account has accepted the model's licence at {page}.",
            field="token",
        )
    return ValidationError(
        f"{repo_id} is gated: accept its licence at {page} with a Hub account, create an "
        "access token (read) for that account, and paste it in Access token.",
        field="token",
    )


def handle(request: dict[str, Any], token: str | None) -> dict[str, Any]:
    endpoint = request["endpoint"]
    try:
        if request["action"] == "look_up":
            plan = look_up(request["repo_id"], request["revision"], endpoint, token)
            return {"ok": True, "plan": plan.to_dict()}
        plan = RepoPlan.from_dict(request["plan"])
        files = download(plan, Path(request["staging"]), endpoint, token)
        return {"ok": True, "files": files}
    except Exception as error:  # every failure becomes a message; the app shows it
        explained = explain(error, request.get("repo_id", "the repo"), endpoint, token)
        return {"ok": False, "error": explained.message, "field": explained.field}


def main() -> int:
    token = os.environ.pop(TOKEN_ENV, None) or None
    request = json.loads(sys.stdin.read())
    answer = handle(request, token)
    sys.stdout.write("\n" + json.dumps(answer) + "\n")
    sys.stdout.flush()
    return 0 if answer["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
