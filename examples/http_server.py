"""A JSON web endpoint on pipejit's micro-batcher, with the standard library only.

Each HTTP request is handled on its own thread and calls ``server.submit``; the
micro-batcher coalesces the concurrent calls into batches. Run it with

    python examples/http_server.py --task text-classification \
        --model distilbert-base-uncased-finetuned-sst-2-english

and ask it

    curl -s localhost:8000 -d '{"inputs": "This restaurant is awesome", "top_k": 2}'
    curl -s localhost:8000/stats

A full queue answers 503, a missed deadline 504 and a bad input 400 with its error.
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pipejit
from pipejit.engine.serve import QueueFullError, ServerClosedError


def make_handler(server: pipejit.MicroBatcher, timeout_s: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/stats":
                return self.reply(404, {"error": "POST a JSON body to /, or GET /stats"})
            self.reply(200, server.stats())

        def do_POST(self) -> None:
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                params = dict(body)
                item = params.pop("inputs")
            except (ValueError, TypeError, KeyError):
                return self.reply(400, {"error": 'send a JSON object {"inputs": ..., **params}'})
            try:
                future = server.submit(item, deadline_s=timeout_s, **params)
                output = future.result(timeout_s)
            except (QueueFullError, ServerClosedError) as error:
                return self.reply(503, {"error": str(error)})
            except TimeoutError as error:
                future.cancel()  # skipped by the worker if it has not started it yet
                return self.reply(504, {"error": str(error) or f"no answer in {timeout_s} s"})
            except (ValueError, TypeError) as error:
                return self.reply(400, {"error": str(error)})
            except Exception as error:  # noqa: BLE001 - the model failed on this input
                return self.reply(500, {"error": f"{type(error).__name__}: {error}"})
            self.reply(200, output)

        def reply(self, status: int, payload: object) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="text-classification")
    parser.add_argument("--model", required=True)
    parser.add_argument("--device", default=None)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--timeout-s", type=float, default=10.0)
    args = parser.parse_args()
    pipe = pipejit.pipeline(args.task, model=args.model, device=args.device)
    pipe.warmup()  # compile before the first caller, not during its request
    with pipe.serve(max_wait_ms=args.max_wait_ms, max_queue=4096) as server:
        http = ThreadingHTTPServer(("0.0.0.0", args.port), make_handler(server, args.timeout_s))
        print(f"serving {args.task} on http://0.0.0.0:{args.port}")
        try:
            http.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            http.server_close()


if __name__ == "__main__":
    main()
