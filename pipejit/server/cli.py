"""``pipejit serve --task T --model M``: load, warm up, then serve over HTTP until SIGTERM.

The port opens only after warmup (compiles happen before the first client, and
the log says how long they took). SIGTERM or Ctrl-C stops accepting connections,
answers every request in flight, drains the micro-batcher, then exits.
"""

from __future__ import annotations

import argparse
import importlib
import logging

log = logging.getLogger("pipejit.server")

EXTRA_MODULES = ("fastapi", "uvicorn", "prometheus_client")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pipejit serve",
        description="Serve a pipejit pipeline over HTTP (TEI, OpenAI embeddings and /pipeline).",
    )
    parser.add_argument("--task", required=True, help="the pipeline task, e.g. feature-extraction")
    parser.add_argument("--model", required=True, help="a model folder (or hub id when online)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cpu)")
    parser.add_argument("--dtype", default=None, help="float32, float16 or bfloat16 weights")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--max-wait-ms",
        type=float,
        default=0.0,
        help="how long a lone input waits for others (default 0: batch what queued while "
        "the previous batch ran)",
    )
    parser.add_argument("--max-queue", type=int, default=4096, help="inputs queued at most")
    parser.add_argument(
        "--max-batch-tokens", type=int, default=None, help="padded tokens per model batch"
    )
    parser.add_argument("--max-inputs-per-request", type=int, default=32)
    parser.add_argument(
        "--max-input-length",
        type=int,
        default=None,
        help="tokens per input (default: sentence-transformers' max_seq_length or the model's)",
    )
    parser.add_argument(
        "--deadline-ms", type=float, default=30_000, help="an input still queued after this fails"
    )
    parser.add_argument(
        "--payload-limit", type=int, default=16_000_000, help="largest request body, in bytes"
    )
    parser.add_argument("--api-key", default=None, help="require 'Authorization: Bearer <key>'")
    parser.add_argument(
        "--pooling", choices=("mean", "cls", "max"), default=None, help="override the ST config"
    )
    parser.add_argument(
        "--allowed-dir",
        action="append",
        default=[],
        help="a directory /pipeline may read media files from (repeatable)",
    )
    parser.add_argument(
        "--keep-alive-s",
        type=float,
        default=60.0,
        help="idle seconds before a keep-alive connection is closed",
    )
    parser.add_argument("--no-compile", action="store_true", help="run eager, no torch.compile")
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def require_extra() -> None:
    """Fail with the install command when the ``serve`` extra is missing."""
    for name in EXTRA_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise SystemExit(
                f"pipejit serve needs {name}, which is not installed: pip install 'pipejit[serve]'"
            ) from error


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    require_extra()
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import uvicorn

    from pipejit.server.app import build_app
    from pipejit.server.setup import build_service

    service = build_service(args)
    config = uvicorn.Config(
        build_app(service),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        lifespan="on",
        timeout_keep_alive=args.keep_alive_s,
    )
    log.info("pipejit serve: %s on http://%s:%d", args.task, args.host, args.port)
    uvicorn.Server(config).run()
