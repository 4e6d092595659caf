"""The FastAPI application: routes wired to handlers, with auth, errors and metrics.

Every POST route runs the same wrapper: check the API key, parse the JSON body,
call the handler, and turn an ``ApiError`` into the route's error body; each
answer's latency and each error's type are recorded for ``/metrics``. The
micro-batcher is closed, after draining, when uvicorn shuts the app down.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

import pipejit
from pipejit.server import routes_openai, routes_pipeline, routes_tei
from pipejit.server.errors import ApiError
from pipejit.server.fields import parse_body, read_body
from pipejit.server.metrics import ServerMetrics
from pipejit.server.service import ClientGone, Service

log = logging.getLogger("pipejit.server")

Handler = Callable[[Service, Request, dict[str, Any]], Awaitable[Any]]
# status of a request whose client left before its answer (nginx's convention; never sent)
CLIENT_CLOSED = 499
DRAIN_TIMEOUT_S = 60.0


def build_app(service: Service) -> FastAPI:
    metrics = ServerMetrics(service.batcher.stats, service.pipeline_stats)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        # uvicorn has stopped accepting and answered every request in flight
        service.batcher.close(drain=True, timeout=DRAIN_TIMEOUT_S)
        stats = service.batcher.stats()
        log.info(
            "pipejit serve: drained and stopped (inputs completed %d, failed %d, "
            "timed out %d, cancelled %d, rejected %d)",
            stats["completed"],
            stats["failed"],
            stats["timed_out"],
            stats["cancelled"],
            stats["rejected"],
        )

    app = FastAPI(title="pipejit serve", version=pipejit.__version__, lifespan=lifespan)

    def post(path: str, handler: Handler, openai: bool = False) -> None:
        async def endpoint(request: Request) -> Response:
            start = time.perf_counter()
            try:
                _check_key(service, request)
                body = parse_body(await read_body(request, service.limits.payload_limit))
                response: Response = JSONResponse(await handler(service, request, body))
            except ClientGone:
                metrics.errors.labels(path, "client_closed").inc()
                response = Response(status_code=CLIENT_CLOSED)
            except ApiError as error:
                metrics.errors.labels(path, error.error_type).inc()
                content = error.openai_body() if openai else error.tei_body()
                response = JSONResponse(content, error.status, headers=error.headers)
            except Exception as error:  # noqa: BLE001 - a server bug still gets a JSON answer
                log.exception("pipejit serve: %s failed", path)
                metrics.errors.labels(path, "internal").inc()
                message = f"internal error: {type(error).__name__}: {error}"
                internal = ApiError(500, message, "internal")
                content = internal.openai_body() if openai else internal.tei_body()
                response = JSONResponse(content, 500)
            elapsed = time.perf_counter() - start
            metrics.latency.labels(path, str(response.status_code)).observe(elapsed)
            return response

        app.add_api_route(path, endpoint, methods=["POST"], name=path)

    post("/embed", routes_tei.embed)
    post("/predict", routes_tei.predict)
    post("/rerank", routes_tei.rerank)
    post("/v1/embeddings", routes_openai.embeddings, openai=True)
    post("/pipeline", routes_pipeline.run_pipeline)

    @app.get("/health")
    async def health() -> Response:
        if not service.batcher.serving:
            body = {"error": "unhealthy: the micro-batcher is stopped", "error_type": "unhealthy"}
            return JSONResponse(body, 503)
        return Response(status_code=200)

    @app.get("/info")
    async def info(request: Request) -> Response:
        try:
            _check_key(service, request)
        except ApiError as error:
            return JSONResponse(error.tei_body(), error.status)
        return JSONResponse(_info(service))

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app


def _check_key(service: Service, request: Request) -> None:
    if service.api_key is None:
        return
    sent = request.headers.get("authorization", "")
    expected = f"Bearer {service.api_key}"
    if not secrets.compare_digest(sent.encode(), expected.encode()):
        why = "no Authorization header" if not sent else "a wrong API key"
        raise ApiError(
            401, f"unauthorized: {why}; send 'Authorization: Bearer <api key>'", "unauthorized"
        )


def _info(service: Service) -> dict[str, Any]:
    limits = service.limits
    return {
        "model_id": service.model_id,
        "task": service.task,
        "model_dtype": service.dtype,
        "device": service.device,
        "pooling": service.pooling,
        "max_input_length": limits.max_input_length,
        "max_client_batch_size": limits.max_inputs_per_request,
        "max_batch_tokens": limits.max_batch_tokens,
        "max_queue": limits.max_queue,
        "max_wait_ms": limits.max_wait_ms,
        "deadline_ms": limits.deadline_ms,
        "payload_limit": limits.payload_limit,
        "auth": service.api_key is not None,
        "version": pipejit.__version__,
    }
