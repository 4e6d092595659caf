"""The cyclic collector is paused while a window's outputs are built, and only then."""

import gc

import pytest

from pipejit.engine.collector import collector_paused
from tests.models import sentences
from tests.parity import assert_same


@pytest.fixture
def pair(pipelines):
    return pipelines("feature-extraction")


def _recording_postprocess(pj, monkeypatch, seen: list):
    postprocess = pj.task.postprocess

    def recording(*args, **kwargs):
        out = postprocess(*args, **kwargs)
        seen.append((gc.isenabled(), [[] for _ in range(2000)]))  # lists enough for collections
        return out

    monkeypatch.setattr(pj.task, "postprocess", recording)


def test_no_collection_runs_while_outputs_are_built_and_outputs_match(pair, monkeypatch):
    reference, pj = pair
    texts = sentences(6, seed=1)
    seen, collections = [], []
    _recording_postprocess(pj, monkeypatch, seen)

    def count(phase, info):
        if phase == "start" and seen and len(seen) < len(texts):
            collections.append(info["generation"])

    gc.callbacks.append(count)
    try:
        outputs = pj(texts, batch_size=4, truncation=True)
    finally:
        gc.callbacks.remove(count)
    assert [enabled for enabled, _ in seen] == [False] * len(texts)
    assert collections == []  # 12,000 new lists and not one collection among them
    assert gc.isenabled()
    assert_same(outputs, reference(texts, truncation=True))


def test_a_collector_the_caller_turned_off_stays_off(pair, monkeypatch):
    _, pj = pair
    gc.disable()
    try:
        pj(sentences(2), truncation=True)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_is_back_on_after_a_failure():
    with pytest.raises(RuntimeError, match="formatting failed"), collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("formatting failed")
    assert gc.isenabled()
