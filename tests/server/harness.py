"""Start ``python -m pipejit serve`` as a real process on a free loopback port."""

from __future__ import annotations

import sys
from pathlib import Path

from pipejit.server.process import HOST, ServerProcess, free_port

START_TIMEOUT_S = 180.0
ROOT = Path(__file__).resolve().parents[2]


def launch(task: str, model: str | Path, log_dir: Path, *options: str) -> ServerProcess:
    """Start a server (eager, loopback, free port) without waiting for it."""
    port = free_port()
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
    return ServerProcess(
        command, port, log_dir / f"server-{port}.log", env={"PYTHONPATH": str(ROOT)}, cwd=ROOT
    )
