"""Fuzz fixtures: each task's pipelines built once per session, hostile files, hypothesis profiles.

CI runs the ``fuzz-ci`` profile: derandomized (a fixed seed), a small example budget
per task. ``pytest --fuzz-long=N`` runs N random examples per task instead, as long
as that takes; every failure it finds becomes an explicit test in test_regressions.py.
"""

from __future__ import annotations

import warnings

import pytest
from hypothesis import HealthCheck, settings

from tests.fuzz.contract import Pair
from tests.fuzz.hostile_files import write_files
from tests.fuzz.specs import SPECS, WHISPER

CI_EXAMPLES = 12
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
settings.register_profile(
    "fuzz-ci",
    max_examples=CI_EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=_HEALTH,
    database=None,
    print_blob=True,
)


def examples(spec) -> int:
    """This task's example budget: its share of CI's, or all of --fuzz-long's."""
    budget = settings.default.max_examples
    return (
        budget
        if settings.get_current_profile_name() == "fuzz-long"
        else max(2, round(budget * spec.budget))
    )


def pytest_configure(config):
    examples = config.getoption("--fuzz-long", None)
    if examples:
        settings.register_profile(
            "fuzz-long",
            max_examples=int(examples),
            deadline=None,
            suppress_health_check=_HEALTH,
            print_blob=True,
        )
        settings.load_profile("fuzz-long")
    else:
        settings.load_profile("fuzz-ci")


@pytest.fixture(scope="session")
def hostile_files(tmp_path_factory) -> dict[str, str]:
    return write_files(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="session")
def fuzz_pair(tmp_path_factory):
    """``fuzz_pair(key)`` -> the task's ``Pair`` (key: a task name, or "whisper"), built once."""
    import transformers

    import pipejit

    built: dict[str, Pair] = {}

    def get(key: str) -> Pair:
        if key not in built:
            spec = WHISPER if key == "whisper" else SPECS[key]
            folder = tmp_path_factory.mktemp(key.replace("-", "_"))
            model = spec.build(folder / "model")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reference = transformers.pipeline(spec.task, model=model)
                ours = pipejit.pipeline(spec.task, model=model, compile=False)
            if spec.task == "mask-generation":
                from tests.tasks.test_mask_generation import _give_reference_an_nms

                _give_reference_an_nms(reference)
            goods = spec.good(folder)
            built[key] = Pair(spec, model, reference, ours, goods, ours(goods[0], **spec.kwargs))
        return built[key]

    return get
