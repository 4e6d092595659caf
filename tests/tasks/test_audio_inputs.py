"""Audio loading: files and bytes decoded without ffmpeg, resampling without torchaudio,
clear errors for bad audio."""

import io

import numpy as np
import pytest
import torch

from pipejit.tasks.audio_inputs import load_audio, resample

soundfile = pytest.importorskip(
    "soundfile", reason="audio files need soundfile: pip install 'pipejit[audio]'"
)
TONES = ((220.0, 0.3), (1000.0, 0.2), (3100.0, 0.1))


def tones(rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return sum(a * np.sin(2 * np.pi * f * t) for f, a in TONES).astype(np.float32)


@pytest.mark.parametrize("orig, new", [(44_100, 16_000), (8_000, 16_000), (48_000, 22_050)])
def test_resampled_signal_matches_the_band_limited_reference(orig, new):
    """The same tones sampled directly at the new rate are the reference signal."""
    out = resample(tones(orig), orig, new)
    expected = tones(new)
    assert out.dtype == np.float32 and abs(out.shape[0] - expected.shape[0]) <= 1
    n = min(out.shape[0], expected.shape[0])
    interior = slice(200, n - 200)  # the filter's edges see zeros beyond the clip
    assert np.abs(out[interior] - expected[interior]).max() < 5e-3


def test_resampling_agrees_with_an_fft_resampler():
    from scipy.signal import resample as fft_resample

    signal = tones(44_100)
    ours = resample(signal, 44_100, 16_000)
    reference = fft_resample(signal.astype(np.float64), ours.shape[0])
    assert np.abs(ours[200:-200] - reference[200:-200]).max() < 5e-3


def test_dict_at_another_rate_is_resampled_and_reports_the_ratio():
    audio = load_audio({"raw": tones(8_000), "sampling_rate": 8_000, "id": 3}, 16_000)
    assert audio.samples.shape == (16_000,) and audio.ratio == 2.0 and audio.extra == {"id": 3}
    same = load_audio({"array": tones(16_000), "sampling_rate": 16_000.0, "path": "x"}, 16_000)
    assert np.array_equal(same.samples, tones(16_000)) and same.extra == {}


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG"])
def test_files_and_bytes_decoded_by_soundfile_mixed_to_mono(tmp_path, fmt):
    left, right = tones(16_000), tones(16_000) * 0.5
    path = tmp_path / f"clip.{fmt.lower()}"
    soundfile.write(path, np.stack([left, right], axis=1), 16_000, format=fmt)
    from_path = load_audio(str(path), 16_000).samples
    from_bytes = load_audio(path.read_bytes(), 16_000).samples
    assert np.array_equal(from_path, from_bytes)
    tolerance = 1e-3 if fmt != "OGG" else 0.1  # vorbis is lossy
    assert np.abs(from_path - (left + right) / 2).max() < tolerance


def test_file_at_another_rate_is_resampled(tmp_path):
    path = tmp_path / "clip.wav"
    soundfile.write(path, tones(44_100), 44_100, subtype="FLOAT")
    samples = load_audio(str(path), 16_000).samples
    assert np.array_equal(samples, resample(tones(44_100), 44_100, 16_000))


def test_containers_soundfile_cannot_read_are_decoded_by_pyav():
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16_000, layout="mono")
        signal = tones(16_000)
        frame = av.AudioFrame.from_ndarray(signal[None, :], format="flt", layout="mono")
        frame.sample_rate = 16_000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    samples = load_audio(buffer.getvalue(), 16_000).samples
    assert samples.dtype == np.float32 and samples.shape[0] >= 15_000
    # aac is lossy and delays its output: compare the spectrum's peaks, not the samples
    peaks = np.argsort(np.abs(np.fft.rfft(samples[:16_000], 16_000)))[-3:]
    assert sorted(peaks.tolist()) == [220, 1000, 3100]


def test_tensors_and_two_channel_arrays():
    signal = tones(16_000)
    assert np.array_equal(load_audio(torch.from_numpy(signal), 16_000).samples, signal)
    stereo = np.stack([signal, signal * 0.5])
    mono = load_audio(stereo, 16_000, channels_first=True).samples
    assert np.allclose(mono, signal * 0.75)
    with pytest.raises(ValueError, match="one channel"):
        load_audio(stereo, 16_000)


@pytest.mark.parametrize(
    "item, error, match",
    [
        (np.zeros(0, np.float32), ValueError, "zero samples"),
        (np.array([0.1, np.nan, np.inf], np.float32), ValueError, "2 NaN or infinite"),
        ({"raw": np.ones(10), "sampling_rate": "16000"}, ValueError, "positive int"),
        ({"raw": np.ones(10), "sampling_rate": 0}, ValueError, "positive int"),
        ({"raw": np.ones(10), "sampling_rate": True}, ValueError, "positive int"),
        ({"raw": np.ones(10), "sampling_rate": 16000.5}, ValueError, "positive int"),
        ({"audio": np.ones(10), "sampling_rate": 16000}, ValueError, "'raw'"),
        ({"raw": [0.1, 0.2], "sampling_rate": 16000}, TypeError, "numpy array or torch"),
        ("/no/such/file.wav", ValueError, "not an existing audio file"),
        ("https://example.com/a.wav", ValueError, "URL"),
        (b"", ValueError, "empty"),
        (b"not audio at all", ValueError, "could not decode"),
        (42, TypeError, "an audio input must be"),
        (np.zeros((3, 10), np.float32), ValueError, "at most 2 channels"),
    ],
)
def test_bad_audio_is_a_clear_error(item, error, match):
    with pytest.raises(error, match=match):
        load_audio(item, 16_000, channels_first=True)
