"""automatic-speech-recognition for Whisper: batched windows, compiled encoder, static-cache decode.

Each input becomes one or more 30-second windows (Whisper's own window; the
chunks of ``chunk_length_s`` when given, with their strides), prepared by the
reference pipeline's preprocessing so that features, strides and extra keys are
transformers' own. The windows of all inputs are batched together and handed
to Whisper's ``generate``, which owns the decoding rules (initial tokens,
language detection, timestamp rules, seeking within a window, the temperature
fallback). The engine runs ``generate`` (``Steps.generate``): when compiling (on
CUDA only, see ``COMPILE_DEVICES``), the encoder is compiled in place (every window
has one shape) and decoding uses a static KV cache and ``generate``'s compiled
one-token step, batches filled to the shape policy's decode size so that the step
compiles once per batch bucket, never per step or per length.

Audio longer than one window without ``chunk_length_s`` goes through
``generate``'s own sequential long-form loop (batched with inputs of the same
length). Word timestamps come from its cross-attention alignment, one row at a
time: a batch's alignment reads the other rows' padding, so transformers' own
batched word times differ from its batch-1 ones. Output formatting is the reference's
``postprocess`` (``_decode_asr``), fed per window exactly as at batch size 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pipejit.compat import prepare_generate_kwargs, sanitize_parameters
from pipejit.contract import Features, Module, Params, Row, Steps, StepTask
from pipejit.tasks.audio_inputs import is_single_audio, load_audio

# The longest input, in seconds; longer audio wants chunk_length_s.
MAX_SECONDS = 3600
# Where compile=True compiles the encoder and the decode step. On a 2-core CPU a
# whisper-tiny-size run gained nothing from it (chunks of 30 s, interleaved with
# eager), and compiled kernels' rounding flipped one greedy token of 96 x 12 on
# random weights, so CPUs decode eager.
COMPILE_DEVICES = ("cuda",)


class SpeechRecognitionSeq2Seq(StepTask):
    name = "automatic-speech-recognition"
    pads = False
    length_unit = "encoder positions"

    @classmethod
    def serves(cls, model: torch.nn.Module) -> bool:
        return model.config.model_type == "whisper" and hasattr(model, "generate")

    def __init__(self, reference):
        super().__init__(reference)
        self.feature_extractor = reference.feature_extractor
        self.sampling_rate = int(self.feature_extractor.sampling_rate)
        self.window_frames = int(self.feature_extractor.nb_max_frames)

    def modules(self) -> dict[str, Module]:
        return {"whisper": Module(self.model, compile_devices=COMPILE_DEVICES)}

    @property
    def max_length(self) -> int:
        return MAX_SECONDS * self.sampling_rate // self.feature_extractor.hop_length // 2

    @property
    def length_ladder(self) -> tuple[int, ...]:
        """One window's encoder positions: every window costs the same (warmup runs one)."""
        return (self.window_frames // 2,)

    def dummy_features(self, length: int) -> Features:
        return self.preprocess(np.zeros(self.sampling_rate, np.float32), Params())[0]

    def is_single(self, inputs: Any) -> bool:
        return is_single_audio(inputs)

    # -- parameters ---------------------------------------------------------------------

    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        pre, forward, post = sanitize_parameters(self.reference, **kwargs)
        timestamps = forward.pop("return_timestamps", None)
        language = forward.pop("return_language", None)
        generation = dict(forward)
        timestamps = timestamps or getattr(self.model.generation_config, "return_timestamps", False)
        if timestamps not in (None, False, True, "word"):
            raise ValueError(
                "Whisper gives segment or word timestamps: return_timestamps must be True or "
                f"'word' (or None), got {timestamps!r}"
            )
        if timestamps:
            generation["return_timestamps"] = True
            if timestamps == "word":
                generation["return_token_timestamps"] = True
                generation["return_segments"] = True
        if language:
            generation["return_segments"] = True
        generation = prepare_generate_kwargs(self.reference, generation)
        _check_chunking(pre)
        return Params(
            preprocess=pre,
            postprocess={
                "generate": generation,
                "words": timestamps == "word",
                "language": bool(language),
                "format": post,
            },
        )

    # -- inputs ---------------------------------------------------------------------------

    def preprocess(self, item: Any, params: Params) -> list[Features]:
        audio = load_audio(item, self.sampling_rate, channels_first=True)
        extra = dict(audio.extra)
        stride = extra.pop("stride", None)
        raw: dict[str, Any] = {"raw": audio.samples, "sampling_rate": self.sampling_rate}
        if stride is not None:
            raw["stride"] = tuple(int(round(s * audio.ratio)) for s in stride)
        items = []
        for window in self.reference.preprocess(raw, **params.preprocess):
            features = window.pop("input_features")[0]
            mask = window.pop("attention_mask")[0].long()
            context = {
                "stride": window.pop("stride", None),
                "is_last": window.pop("is_last"),
                "extra": {**extra, **window},
            }
            frames = int(features.shape[-1])
            # windows of one length share batches; the cost is the encoder's positions
            items.append(
                Features(
                    {"input_features": features.to(self.model.dtype), "attention_mask": mask},
                    context,
                    group=frames,
                    size=frames // 2,
                )
            )
        return items

    # -- decoding -------------------------------------------------------------------------

    def run(self, steps: Steps, inputs: dict[str, torch.Tensor], params: Params) -> dict:
        generation = params.postprocess["generate"]
        features, mask = inputs["input_features"], inputs["attention_mask"]
        rows = features.shape[0]
        if params.postprocess["words"]:
            # the alignment of a batch reads the other rows' padding: one row at a time
            parts = [
                self._rows(
                    steps.generate(
                        "whisper",
                        {"input_features": features[i : i + 1], "attention_mask": mask[i : i + 1]},
                        generation,
                        static=False,  # word times read cross-attention, which it drops
                    ),
                    1,
                    params,
                )
                for i in range(rows)
            ]
            return _stack(parts, self.model.generation_config.pad_token_id)
        output = steps.generate(
            "whisper",
            {"input_features": features, "attention_mask": mask},
            generation,
            static=_beams(self.model, generation) == 1,
        )
        return self._rows(output, rows, params)

    def _rows(self, output: Any, rows: int, params: Params) -> dict[str, torch.Tensor]:
        """generate()'s output to per-row tensors: tokens, their count, and what the
        options ask for (word times, the language token)."""
        sequences = output if isinstance(output, torch.Tensor) else output["sequences"]
        sequences = sequences[:rows]
        pad = self.model.generation_config.pad_token_id
        real = sequences != pad if pad is not None else torch.ones_like(sequences, dtype=bool)
        # generate pads rows on the right: a row's count ends after its last real token
        positions = torch.arange(1, sequences.shape[1] + 1, device=sequences.device)
        counts = (real * positions).amax(dim=1) if sequences.shape[1] else sequences.new_zeros(rows)
        result = {"tokens": sequences, "counts": counts}
        if params.postprocess["words"]:
            result["token_timestamps"] = _token_timestamps(output, rows, sequences.shape[1])
        if params.postprocess["language"]:
            result["language"] = self._languages(output, rows)
        return result

    def _languages(self, output: Any, rows: int) -> torch.Tensor:
        """The language token each row was decoded in (-1 where none), read from the
        first segment's full sequence as the reference pipeline reads it."""
        ids = set(getattr(self.model.generation_config, "lang_to_id", {}).values())
        found = torch.full((rows,), -1, dtype=torch.long)
        for row, segments in enumerate(output.get("segments", [])[:rows]):
            if not segments:
                continue
            result = segments[0]["result"]
            sequence = result["sequences"] if isinstance(result, dict) else result
            for token in sequence.tolist():
                if token in ids:
                    found[row] = token
                    break
        return found

    # -- outputs --------------------------------------------------------------------------

    def postprocess(self, item: Any, features: list[Features], rows: list[Row], params: Params):
        windows = []
        for window, row in zip(features, rows):
            count = int(row["counts"])
            output: dict[str, Any] = {
                "tokens": torch.as_tensor(row["tokens"][:count])[None],
                "is_last": window.context["is_last"],
            }
            if window.context["stride"] is not None:
                output["stride"] = window.context["stride"]
            if "token_timestamps" in row:
                output["token_timestamps"] = torch.as_tensor(row["token_timestamps"][:count])[None]
            if "language" in row and int(row["language"]) >= 0:
                output["lang_id"] = torch.tensor([int(row["language"])])
            output.update(window.context["extra"])
            windows.append(output)
        return self.reference.postprocess(windows, **params.postprocess["format"])


def _check_chunking(preprocess: dict[str, Any]) -> None:
    chunk = preprocess.get("chunk_length_s")
    if chunk is not None and (not isinstance(chunk, (int, float)) or chunk < 0):
        raise ValueError(f"chunk_length_s must be a positive number, got {chunk!r}")
    stride = preprocess.get("stride_length_s")
    pair = stride if isinstance(stride, (list, tuple)) else [stride]
    if stride is not None and (
        len(pair) not in (1, 2) or not all(isinstance(s, (int, float)) and s >= 0 for s in pair)
    ):
        raise ValueError(
            f"stride_length_s must be a number or a (left, right) pair, got {stride!r}"
        )


def _beams(model: torch.nn.Module, generation: dict[str, Any]) -> int:
    config = generation.get("generation_config") or model.generation_config
    return int(generation.get("num_beams", config.num_beams) or 1)


def _token_timestamps(output: Any, rows: int, width: int) -> torch.Tensor:
    """Each row's token times, padded to ``width`` with the row's last time."""
    if "segments" not in output:
        return output["token_timestamps"][:rows, :width]
    times = torch.zeros(rows, width, dtype=torch.float64)
    for row, segments in enumerate(output["segments"][:rows]):
        if segments:
            joined = torch.cat([s["token_timestamps"] for s in segments]).double()
            times[row, : joined.shape[0]] = joined[:width]
    return times


def _stack(parts: list[dict[str, torch.Tensor]], pad: int | None) -> dict[str, torch.Tensor]:
    """Rows decoded apart, as one batch: tokens padded with ``pad``, times with zeros."""
    width = max(part["tokens"].shape[1] for part in parts)
    stacked = {}
    for key in parts[0]:
        values = [part[key] for part in parts]
        if values[0].dim() == 2:
            fill = (pad or 0) if key == "tokens" else 0
            values = [
                torch.nn.functional.pad(v, (0, width - v.shape[1]), value=fill) for v in values
            ]
        stacked[key] = torch.cat(values)
    return stacked
