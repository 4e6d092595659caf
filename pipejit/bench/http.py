"""The ``http`` suite: ``pipejit serve`` against the same FastAPI app calling
``transformers.pipeline`` once per request.

Two servers, each in its own process as in production (uvicorn on a loopback
port, idle OpenMP threads told not to spin), with the same routes and handlers;
only what the ``/embed`` handler awaits differs: pipejit's micro-batcher, or one
``transformers.pipeline`` call per request on one inference thread (the usual
FastAPI deployment; CPU advice is not to batch). This process runs the
closed-loop clients (send, wait, send the next): at each client count the two
servers alternate for the run's repeats (this shared CPU's speed drifts), and
every answer is checked against the other server's. Per engine: requests/s and
the latency percentiles. ``python -m pipejit.bench.http --serve ENGINE`` is the
server process the suite starts.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import transformers

from pipejit.bench.models import minilm_folder
from pipejit.bench.parity import outputs_match
from pipejit.bench.results import engine_run, settings_case
from pipejit.bench.suites import Options
from pipejit.bench.workloads import queries
from pipejit.server.process import ServerProcess, free_port

# a server compiles its model before it answers /health
START_TIMEOUT_S = 900.0

ENGINES = ("pipejit", "transformers")
MAX_WAIT_MS = 0.0  # pipejit serve's default


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


def start_server(
    engine: str, model: str, compile: bool, max_wait_ms: float, log: Path
) -> ServerProcess:
    """``python -m pipejit.bench.http --serve ENGINE`` on a free loopback port."""
    port = free_port()
    command = [sys.executable, "-m", "pipejit.bench.http", "--serve", engine]
    command += ["--port", str(port), "--model", model, "--max-wait-ms", str(max_wait_ms)]
    command += [] if compile else ["--no-compile"]
    return ServerProcess(command, port, log, env={"OMP_WAIT_POLICY": "PASSIVE"})


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


def suite(folder: Path, options: Options) -> list[dict[str, Any]]:
    """all-MiniLM-L6-v2 on ``/embed``, ``2 x items`` queries per client count."""
    wait = MAX_WAIT_MS if options.max_wait_ms is None else options.max_wait_ms
    return [
        run(
            minilm_folder(),
            queries(2 * options.items),
            options.clients,
            options.repeats,
            options.compile,
            wait,
            folder,
        )
    ]


def run(
    model: str,
    texts: list[str],
    clients: list[int],
    rounds: int,
    compile: bool,
    max_wait_ms: float,
    folder: Path,
) -> dict[str, Any]:
    """Both servers at each client count, rounds interleaved; one settings case."""
    done: dict[int, dict[str, list]] = {c: {e: [] for e in ENGINES} for c in clients}
    mismatches = {c: 0 for c in clients}
    servers = {
        e: start_server(e, model, compile, max_wait_ms, Path(folder) / f"{e}.log") for e in ENGINES
    }
    try:
        for server in servers.values():
            server.wait_ready(START_TIMEOUT_S)
        for server in servers.values():  # warm both: first calls, batch shapes
            asyncio.run(closed_loop(server.url, texts[:64], 8))
        for _ in range(rounds):
            for count in clients:
                batch = (texts * (1 + 4 * count // len(texts)))[: max(len(texts), 4 * count)]
                cell = {e: asyncio.run(closed_loop(servers[e].url, batch, count)) for e in ENGINES}
                for engine, result in cell.items():
                    done[count][engine].append(result)
                pairs = zip(cell["pipejit"]["answers"], cell["transformers"]["answers"])
                mismatches[count] += sum(not outputs_match(got, want) for got, want in pairs)
        batch_mean = _batch_size_mean(servers["pipejit"].url)
    except Exception:
        for engine, server in servers.items():  # say why a server stopped answering
            print(f"--- {engine} server log ---\n{server.text()[-3000:]}")
        raise
    finally:
        for server in servers.values():
            server.terminate()
    runs = {
        count: {
            engine: engine_run(
                len(engine_runs[0]["latencies"]),
                [run["seconds"] for run in engine_runs],
                True if engine == "transformers" else mismatches[count] == 0,
                [x for run in engine_runs for x in run["latencies"]],
            )
            for engine, engine_runs in cells.items()
        }
        for count, cells in done.items()
    }
    return settings_case(
        "feature-extraction all-MiniLM-L6-v2 over HTTP /embed, one text per request",
        task="feature-extraction",
        axis="clients",
        baseline="transformers",
        items_name="requests",
        runs=runs,
        notes=[
            "The same FastAPI app and handlers, each server in its own process, awaiting "
            f"pipejit's micro-batcher ({'compiled' if compile else 'eager'}, max_wait_ms="
            f"{max_wait_ms}) or one `transformers.pipeline` call per request on one inference "
            f"thread; closed-loop clients, {rounds} rounds interleaved. pipejit formed batches "
            f"of {batch_mean} requests on average; {sum(mismatches.values())} answers differed."
        ],
        mismatches={str(c): n for c, n in mismatches.items()},
    )


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


def main(argv: list[str] | None = None) -> int:
    """The server process: ``--serve ENGINE --port N --model PATH`` until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m pipejit.bench.http", description=__doc__)
    parser.add_argument("--serve", choices=ENGINES, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--max-wait-ms", type=float, default=MAX_WAIT_MS)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args(argv)
    serve(args.serve, args.model, args.port, not args.no_compile, args.max_wait_ms)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
