"""What a CUDA graph freezes at capture, and the two hazards the contract rules out.

A graph replays only tensor work on addresses fixed at capture. The capture
stand-in (``tests/engine/capture_standin.py``) gives CPU tests those semantics;
these tests check that it refuses what a real capture would get wrong, and that
the two tasks that once did it (zero-shot-image-classification reading its label
cache inside the step, mask-generation keeping Python state and host copies in its
reduce) no longer can.
"""

import dataclasses
import warnings

import pytest
import torch
import transformers

import pipejit
from pipejit.contract import StepTask
from pipejit.engine.pipeline import Pipeline
from pipejit.tasks.mask_generation import MaskGeneration
from tests.engine.capture_standin import with_graphs
from tests.models import sentences
from tests.parity import assert_same
from tests.vision_zero_shot_models import images, pipeline_pair

TEXTS = sentences(4, seed=11)
LABELS = ["a cat", "the dog", "a car"]


@pytest.fixture(scope="module")
def text_pair(model_folder):
    folder = str(model_folder("text-classification"))
    return transformers.pipeline("text-classification", model=folder), folder


def graphed_text(folder):
    """An eager text classifier recording through the stand-in; one length bucket."""
    return with_graphs(
        pipejit.pipeline("text-classification", model=folder, compile=False, length_buckets=(128,))
    )


def turned_off(pj, call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    reasons = [str(w.message) for w in caught if "CUDA graphs turned off" in str(w.message)]
    assert len(reasons) == 1 and pj.stats()["graphs_disabled"]
    return reasons[0]


def test_a_tensor_read_from_python_state_is_refused(text_pair):
    reference, folder = text_pair
    pj = graphed_text(folder)
    cache = {"bias": torch.zeros(2, 3)}  # held by Python, not by the engine
    reduce = pj.task.reduce
    pj.task.reduce = lambda outputs, inputs, params: {
        **reduce(outputs, inputs, params),
        "bias": outputs.logits + cache["bias"][:1],
    }
    reason = turned_off(pj, lambda: pj(TEXTS[:2], batch_size=2))
    assert "ForeignTensorError" in reason and "explicit input" in reason


@pytest.mark.parametrize("sync", ["cpu", "item", "tolist", "branch"])
def test_a_host_sync_during_capture_is_refused(text_pair, sync):
    reference, folder = text_pair
    pj = graphed_text(folder)
    reduce = pj.task.reduce

    def syncing(outputs, inputs, params):
        logits = outputs.logits
        if sync == "cpu":
            logits.cpu()
        elif sync == "item":
            logits[0, 0].item()
        elif sync == "tolist":
            logits.tolist()
        elif logits.sum() > 0:  # Python branching on a device value
            pass
        return reduce(outputs, inputs, params)

    pj.task.reduce = syncing
    reason = turned_off(pj, lambda: pj(TEXTS[:2], batch_size=2))
    assert "HostSyncError" in reason
    # the uncaptured run still answers
    assert_same(pj(TEXTS[:2], batch_size=2), reference(TEXTS[:2]))


def test_replay_runs_only_the_recorded_operations(text_pair):
    """Python in the step runs at capture only: a replay does not call it again."""
    reference, folder = text_pair
    pj = graphed_text(folder)
    calls = []
    reduce = pj.task.reduce
    pj.task.reduce = lambda *args: calls.append(1) or reduce(*args)
    assert_same(pj(TEXTS[:2], batch_size=2), reference(TEXTS[:2]))
    traced = len(calls)
    assert_same(pj(TEXTS[2:4], batch_size=2), reference(TEXTS[2:4]))
    assert len(calls) == traced and pj.stats()["graph_hits"] == 2


@pytest.fixture(scope="module")
def clip_pair(tmp_path_factory):
    return pipeline_pair("clip", "zero-shot-image-classification", tmp_path_factory.mktemp("clip"))


def test_zero_shot_image_label_embeddings_survive_eviction(clip_pair):
    """The label embeddings are a call tensor: the graph reads its own copy. Evicting
    the cache entry and reusing its memory (as a freed CUDA block would be) changes
    nothing in later replays."""
    reference, pj = clip_pair
    pj = with_graphs(pj)
    pictures = images(2, seed=4)
    want = reference(pictures, candidate_labels=LABELS)
    assert_same(pj(pictures, candidate_labels=LABELS, batch_size=2), want)
    assert pj.stats()["captures"] == 1 and pj.stats()["graphs_disabled"] is None
    cache = pj.task._text_cache
    (cached,) = list(cache._entries.values())
    cache._entries.clear()
    with torch.inference_mode():
        cached.fill_(float("nan"))  # the evicted block, reused for something else
    assert_same(pj(pictures, candidate_labels=LABELS, batch_size=2), want)
    stats = pj.stats()
    assert stats["graph_hits"] == 2 and stats["captures"] == 1


def test_mask_generation_is_a_step_task_and_never_captured(tmp_path_factory):
    assert issubclass(MaskGeneration, StepTask) and not MaskGeneration.capturable
    _, pj = pipeline_pair("sam", "mask-generation", tmp_path_factory.mktemp("sam"))
    wants_graphs = dataclasses.replace(pj.config, cuda_graphs=True, graph_mode="auto")
    assert Pipeline(pj.task, wants_graphs, {}).graphs is None
    forced = dataclasses.replace(wants_graphs, graph_mode=True)
    with pytest.raises(ValueError, match="CUDA graph cannot hold"):
        Pipeline(pj.task, forced, {})
