"""Hostile files and faults around the app: special files, killed writes, a killed server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from webapp.atomic import remove_stale_staging
from webapp.registry import discover
from webapp.settings import Settings


def finishes_within(seconds: float, work) -> bool:
    """Run `work` on a daemon thread (a blocked one cannot hang the test run)."""
    done = threading.Event()
    threading.Thread(target=lambda: (work(), done.set()), daemon=True).start()
    return done.wait(seconds)


def test_a_fifo_in_the_models_dir_is_skipped_without_blocking(models_dir):
    os.mkfifo(models_dir / "x.safetensors")
    os.mkfifo(models_dir / "y.gguf")
    found = []
    assert finishes_within(10, lambda: found.append(discover(Settings(models_dir=models_dir))))
    names = {entry.name for entry in found[0]}
    assert "x" not in names and "y" not in names
    assert {"tiny-sd", "tiny-llm"} <= names


def test_a_fifo_in_place_of_a_config_file_does_not_block_discovery(models_dir):
    config = models_dir / "tiny-sd" / "unet" / "config.json"
    config.unlink()
    os.mkfifo(config)
    assert finishes_within(10, lambda: discover(Settings(models_dir=models_dir)))


def test_staging_files_left_by_a_killed_write_are_removed_and_fresh_ones_kept(tmp_path):
    folder = tmp_path / "images" / "ada-1234"
    folder.mkdir(parents=True)
    stale, fresh, image = folder / ".tmpab12.png", folder / ".tmpcd34.png", folder / "1.png"
    for path in (stale, fresh, image):
        path.write_bytes(b"x")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    assert remove_stale_staging(tmp_path / "images") == 1
    assert not stale.exists() and fresh.exists() and image.exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
            return True
    except OSError:
        return False


def test_stopping_atelier_serve_stops_its_server_and_frees_the_port(tiny_models_dir, tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "ATELIER_MODELS_DIR": str(tiny_models_dir),
        "ATELIER_DATA_DIR": str(tmp_path / "data"),
        "ATELIER_DEVICE": "cpu",
    }
    serve = [sys.executable, "-m", "webapp.cli", "serve", "--port", str(port)]
    server = subprocess.Popen(
        [*serve, "--address", "127.0.0.1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while not _port_answers(port):
            assert server.poll() is None, "atelier serve exited early"
            assert time.monotonic() < deadline, "atelier serve did not answer"
            time.sleep(0.5)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
        assert not _port_answers(port), "the server outlived atelier serve"
        with socket.socket() as sock:  # free at once for a restart (as servers bind)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
    finally:
        if server.poll() is None:
            server.kill()
