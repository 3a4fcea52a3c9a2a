"""Starting and watching the Hub worker process from the app (which stays offline)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from webapp.errors import AtelierError
from webapp.hub.plan import RepoPlan
from webapp.hub.worker import LOOK_UP_TIMEOUT, TOKEN_ENV

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
# Starting Python and huggingface_hub takes a moment; the Hub itself gets LOOK_UP_TIMEOUT.
LOOK_UP_LIMIT = LOOK_UP_TIMEOUT + 20


def worker_environment(endpoint: str, token: str | None) -> dict[str, str]:
    """This process's environment, online, pointed at `endpoint`, with the token (if any)
    where only the worker reads it."""
    env = dict(os.environ)
    env.pop(TOKEN_ENV, None)
    env.update(
        HF_HUB_OFFLINE="0",
        TRANSFORMERS_OFFLINE="0",
        HF_ENDPOINT=endpoint,
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")])),
    )
    if token:
        env[TOKEN_ENV] = token
    return env


def start_worker(endpoint: str, token: str | None) -> subprocess.Popen:
    """A worker process waiting for its request (`answer` sends it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "webapp.hub.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # huggingface_hub's retries and warnings: not for people
        env=worker_environment(endpoint, token),
        text=True,
        start_new_session=True,  # a Ctrl+C in the terminal reaches the CLI, which stops it
    )


def answer(
    process: subprocess.Popen, request: dict[str, Any], endpoint: str, timeout: float | None = None
) -> dict[str, Any]:
    """Send the request; the worker's answer (its last line), waiting at most `timeout`
    seconds. Blocks: a download is waited for on a thread of its own."""
    try:
        output, _ = process.communicate(json.dumps({**request, "endpoint": endpoint}), timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    lines = [line for line in (output or "").splitlines() if line.strip()]
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return {
            "ok": False,
            "error": f"The download process stopped unexpectedly (exit code {process.returncode}).",
            "field": None,
        }


def look_up(repo_id: str, revision: str, endpoint: str, token: str | None) -> RepoPlan:
    """The repo's plan, or an AtelierError that says what to do; never waits long."""
    request = {"action": "look_up", "repo_id": repo_id, "revision": revision}
    try:
        reply = answer(start_worker(endpoint, token), request, endpoint, LOOK_UP_LIMIT)
    except subprocess.TimeoutExpired:
        raise AtelierError(
            f"The Hub at {endpoint} did not answer within {LOOK_UP_LIMIT} s. Check this "
            "server's network, or set ATELIER_HF_ENDPOINT to your company's mirror.",
            field="endpoint",
        ) from None
    if not reply["ok"]:
        raise AtelierError(reply["error"], field=reply.get("field"))
    return RepoPlan.from_dict(reply["plan"])


def download_request(plan: RepoPlan, staging: Path) -> dict[str, Any]:
    return {
        "action": "download",
        "repo_id": plan.repo_id,
        "plan": plan.to_dict(),
        "staging": str(staging),
    }


def folder_bytes(folder: Path) -> int:
    """Bytes under `folder`, partial downloads included: an install's progress."""
    total = 0
    stack = [folder]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue  # renamed or deleted while we looked
    return total
