"""Huge inputs are refused within a stated memory bound, measured as peak RSS.

A 10-million-character text, a 20000 x 20000 image (a file, and a lazily opened
PIL image) and an hour of audio (an array, and WAV bytes) are each given to a
pipeline in a fresh process (tests/fuzz/peak_memory.py), which reports the peak
RSS the call took above the RSS just before it. The bound, documented in the
README: refusing a hostile input takes at most ``REFUSAL_BOUND_MB``; the largest
text accepted by default (100,000 characters, truncated) at most ``TEXT_BOUND_MB``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REFUSAL_BOUND_MB = 16
TEXT_BOUND_MB = 64
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="needs Linux's per-process peak RSS reset"
)


@pytest.fixture(scope="module")
def peaks(fuzz_pair, hostile_files):
    """Each case's JSON report, all measured in one fresh process."""
    text = fuzz_pair("text-classification").folder
    image = fuzz_pair("image-classification").folder
    audio = fuzz_pair("audio-classification").folder
    huge = hostile_files["huge_png"]
    cases = [
        ["text-classification", text, "text_100k", None],
        ["text-classification", text, "text_10m", None],
        ["image-classification", image, "image_file_20000", huge],
        ["image-classification", image, "image_lazy_20000", huge],
        ["audio-classification", audio, "audio_hour_array", None],
        ["audio-classification", audio, "audio_hour_wav", None],
    ]
    run = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.peak_memory", json.dumps(cases)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    reports = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    return {report["case"]: report for report in reports}


@pytest.mark.parametrize(
    ("case", "limit"),
    [
        ("text_10m", "max_input_length=100,000"),
        ("image_file_20000", "too large to decode"),
        ("image_lazy_20000", "max_image_pixels=25,000,000"),
        ("audio_hour_array", "max_audio_seconds=1,800"),
        ("audio_hour_wav", "max_audio_seconds=1,800"),
    ],
)
def test_huge_inputs_are_refused_within_the_bound(peaks, case, limit):
    report = peaks[case]
    assert report["outcome"].startswith("ValueError") and limit in report["outcome"], report
    assert report["extra_mb"] <= REFUSAL_BOUND_MB, report


def test_the_longest_default_text_is_answered_within_the_bound(peaks):
    report = peaks["text_100k"]
    assert report["outcome"] == "answered", report
    assert report["extra_mb"] <= TEXT_BOUND_MB, report
