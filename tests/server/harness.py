"""Start ``python -m pipejit serve`` as a real process on a free loopback port, and stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

HOST = "127.0.0.1"
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 60.0
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    log: Path

    def wait_ready(self) -> None:
        """Poll /health until it answers 200 (bounded); fail with the server's log."""
        give_up = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < give_up:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited ({self.process.returncode}):\n{self.text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server did not start in {START_TIMEOUT_S} s:\n{self.text()}")

    def terminate(self) -> int:
        """SIGTERM, then wait for the exit (killed after ``STOP_TIMEOUT_S``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def launch(task: str, model: str | Path, log_dir: Path, *options: str) -> Server:
    """Start a server (eager, loopback, free port) without waiting for it."""
    port = free_port()
    log = log_dir / f"server-{port}.log"
    command = [
        sys.executable,
        "-m",
        "pipejit",
        "serve",
        "--task",
        task,
        "--model",
        str(model),
        "--host",
        HOST,
        "--port",
        str(port),
        "--no-compile",
        *options,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
    with log.open("w") as handle:
        process = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )
    return Server(process, f"http://{HOST}:{port}", log)
