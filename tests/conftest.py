"""Shared fixtures: tiny offline model folders, compile-cache reset, the cuda marker."""

from __future__ import annotations

import pytest
import torch

from tests.models import BUILDERS, build_model_folder


@pytest.fixture(scope="session")
def model_folder(tmp_path_factory):
    """``model_folder(kind)`` -> a folder with a tiny model of that kind and its tokenizer."""
    built = {}

    def get(kind: str):
        if kind not in built:
            built[kind] = build_model_folder(kind, tmp_path_factory.mktemp(kind.replace("-", "_")))
        return built[kind]

    return get


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


__all__ = ["BUILDERS"]
