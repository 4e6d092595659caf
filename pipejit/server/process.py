"""An HTTP server as a child process on a free loopback port: start it, wait for its
``/health``, stop it with SIGTERM. The HTTP benchmark and the server tests both run
their servers through it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

HOST = "127.0.0.1"
STOP_TIMEOUT_S = 60.0


def free_port() -> int:
    """A loopback port no one listens on now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``command`` (which serves on ``port``) running with its output in ``log``."""

    def __init__(
        self,
        command: Sequence[str],
        port: int,
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ):
        self.url = f"http://{HOST}:{port}"
        self.log = log
        environment = {**os.environ, "TOKENIZERS_PARALLELISM": "false", **(env or {})}
        with log.open("w") as handle:
            self.process = subprocess.Popen(
                list(command), stdout=handle, stderr=subprocess.STDOUT, env=environment, cwd=cwd
            )

    def wait_ready(self, timeout_s: float) -> None:
        """Poll /health until it answers 200 (bounded); fail with the server's log."""
        import httpx

        give_up = time.monotonic() + timeout_s
        while time.monotonic() < give_up:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the server at {self.url} exited ({self.process.returncode}):\n{self.text()}"
                )
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(
            f"the server at {self.url} did not start in {timeout_s} s:\n{self.text()}"
        )

    def terminate(self) -> int:
        """SIGTERM, then wait for the exit (killed after ``STOP_TIMEOUT_S``); the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def text(self) -> str:
        """What the server has written so far."""
        return self.log.read_text(errors="replace")
