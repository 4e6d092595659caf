"""Build a ``Service`` from ``pipejit serve``'s arguments: pipeline, limits, warmup, batcher."""

from __future__ import annotations

import argparse
import logging
import time

import pipejit
from pipejit.server.media import MediaDecoder
from pipejit.server.model_card import max_seq_length, pooling_mode
from pipejit.server.service import Limits, Service
from pipejit.server.texts import TextLimits

log = logging.getLogger("pipejit.server")


def build_service(args: argparse.Namespace) -> Service:
    start = time.perf_counter()
    pipe = pipejit.pipeline(
        args.task,
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        token_budget=args.max_batch_tokens,
        compile=not args.no_compile,
    )
    log.info("pipejit serve: loaded %s in %.1f s", args.model, time.perf_counter() - start)
    task = pipe.task.name
    pooling = None
    if task == "feature-extraction":
        pooling = args.pooling or pooling_mode(args.model)
        if pooling is None:
            log.warning("no sentence-transformers pooling config in %s: pooling cls", args.model)
            pooling = "cls"
    limit = min(
        v for v in (args.max_input_length, max_seq_length(args.model), pipe.task.max_length) if v
    )
    tokenizer = getattr(pipe.task, "tokenizer", None)
    texts = TextLimits(tokenizer, limit) if hasattr(tokenizer, "backend_tokenizer") else None
    start = time.perf_counter()
    # eager runs compile nothing per shape: one length warms the model and the allocator
    lengths = None if pipe.stats()["compiled"] else pipe.shapes.lengths[:1]
    try:
        pipe.warmup(lengths)
        log.info("pipejit serve: warmed up in %.1f s", time.perf_counter() - start)
    except NotImplementedError as error:  # tasks whose items are not lengths (images)
        log.warning("pipejit serve: no warmup: %s", error)
    batcher = pipe.serve(max_wait_ms=args.max_wait_ms, max_queue=args.max_queue, on_full="raise")
    return Service(
        task=task,
        model_id=args.model,
        dtype=str(pipe.model.dtype).removeprefix("torch."),
        device=str(pipe.device),
        pipe=pipe,
        batcher=batcher,
        limits=Limits(
            max_inputs_per_request=args.max_inputs_per_request,
            max_input_length=limit,
            max_batch_tokens=args.max_batch_tokens,
            max_queue=args.max_queue,
            max_wait_ms=args.max_wait_ms,
            deadline_ms=args.deadline_ms,
            payload_limit=args.payload_limit,
        ),
        texts=texts,
        media=MediaDecoder(task, args.allowed_dir),
        pooling=pooling,
        api_key=args.api_key,
    )
