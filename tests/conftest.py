"""Shared fixtures: tiny offline model folders, compile-cache reset, the cuda marker."""

from __future__ import annotations

import pytest
import torch

from tests.models import build_model_folder


@pytest.fixture(scope="session")
def model_folder(tmp_path_factory):
    """``model_folder(kind)`` -> a folder with a tiny model of that kind and its tokenizer."""
    built = {}

    def get(kind: str):
        if kind not in built:
            built[kind] = build_model_folder(kind, tmp_path_factory.mktemp(kind.replace("-", "_")))
        return built[kind]

    return get


def pytest_addoption(parser):
    parser.addoption(
        "--fuzz-long",
        metavar="N",
        default=None,
        help="run N random hypothesis examples per task in tests/fuzz (CI: a fixed few)",
    )


@pytest.fixture(autouse=True)
def reset_compile_caches():
    """No test's compiled graphs decide another test's result."""
    torch.compiler.reset()
    yield
    torch.compiler.reset()


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def pipelines(model_folder):
    """``pipelines(kind, task, **options)`` -> (transformers pipeline, eager pipejit pipeline)."""
    import transformers

    import pipejit

    def get(kind: str, task: str | None = None, **options):
        task = task or kind
        folder = str(model_folder(kind))
        reference = transformers.pipeline(task, model=folder)
        options.setdefault("compile", False)
        return reference, pipejit.pipeline(task, model=folder, **options)

    return get


class CountingBackend:
    """A torch.compile backend that counts the graphs it is handed and runs them eagerly."""

    def __init__(self):
        self.graphs = 0

    def __call__(self, graph_module, example_inputs):
        self.graphs += 1
        return graph_module.forward


@pytest.fixture
def counting_backend():
    return CountingBackend()
