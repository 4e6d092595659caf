"""automatic-speech-recognition for Whisper: batched windows, compiled encoder, static-cache decode.

Each input becomes one or more 30-second windows (Whisper's own window; the
chunks of ``chunk_length_s`` when given, with their strides), prepared by the
reference pipeline's preprocessing so that features, strides and extra keys are
transformers' own. The windows of all inputs are batched together and handed
to Whisper's ``generate``, which owns the decoding rules (initial tokens,
language detection, timestamp rules, seeking within a window, the temperature
fallback). When compiled (on CUDA: see ``compile_devices``), the encoder is
compiled in place (every window has one shape) and decoding uses a static KV
cache and ``generate``'s compiled one-token step; batches are filled to a power
of two so that the step compiles once per batch bucket, never per step or per
length.

Audio longer than one window without ``chunk_length_s`` goes through
``generate``'s own sequential long-form loop (batched with inputs of the same
length). Word timestamps come from its cross-attention alignment, one row at a
time: a batch's alignment reads the other rows' padding, so transformers' own
batched word times differ from its batch-1 ones. Output formatting is the reference's
``postprocess`` (``_decode_asr``), fed per window exactly as at batch size 1.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from transformers import CompileConfig

from pipejit.tasks.audio_inputs import is_single_audio, load_audio
from pipejit.tasks.base import Features, Params, Row, Task

# The longest input, in seconds; longer audio wants chunk_length_s.
MAX_SECONDS = 3600


class SpeechRecognitionSeq2Seq(Task):
    name = "automatic-speech-recognition"
    pads = False
    length_unit = "encoder positions"
    # generate() syncs with the host every step: nothing a CUDA graph can hold
    capturable = False
    # Where compile=True compiles the encoder and the decode step. On a 2-core CPU a
    # whisper-tiny-size run gained nothing from it (chunks of 30 s, interleaved with
    # eager), and compiled kernels' rounding flipped one greedy token of 96 x 12 on
    # random weights, so CPUs decode eager.
    compile_devices: tuple[str, ...] = ("cuda",)

    @classmethod
    def serves(cls, model: torch.nn.Module) -> bool:
        return model.config.model_type == "whisper" and hasattr(model, "generate")

    def __init__(self, reference):
        super().__init__(reference)
        self.feature_extractor = reference.feature_extractor
        self.sampling_rate = int(self.feature_extractor.sampling_rate)
        self.window_frames = int(self.feature_extractor.nb_max_frames)
        self._compile_config: CompileConfig | None = None
        self._compiled = False
        self._compile_failed = False

    @property
    def max_length(self) -> int:
        return MAX_SECONDS * self.sampling_rate // self.feature_extractor.hop_length // 2

    @property
    def length_ladder(self) -> tuple[int, ...]:
        """One window's encoder positions: every window costs the same (warmup runs one)."""
        return (self.window_frames // 2,)

    @property
    def forward_module(self) -> torch.nn.Module:
        return self.model.get_encoder()

    def dummy_features(self, length: int) -> Features:
        return self.preprocess(np.zeros(self.sampling_rate, np.float32), Params())[0]

    def is_single(self, inputs: Any) -> bool:
        return is_single_audio(inputs)

    # -- parameters ---------------------------------------------------------------------

    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        pre, forward, post = self.reference._sanitize_parameters(**kwargs)
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
        generation = self.reference._prepare_generate_kwargs(generation)
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

    def run(self, runner, inputs: dict[str, torch.Tensor], params: Params) -> dict:
        generation = dict(params.postprocess["generate"])
        features, mask = inputs["input_features"], inputs["attention_mask"]
        rows = features.shape[0]
        compiling = features.device.type in self.compile_devices
        if runner.compiled and compiling and not self._compile_failed:
            self._compile_encoder(runner)
            # word timestamps read cross-attention weights, which the compiled step drops
            if _beams(self.model, generation) == 1 and not params.postprocess["words"]:
                features, mask = _fill_to_power_of_two(features), _fill_to_power_of_two(mask)
                generation.update(
                    cache_implementation="static", compile_config=self._compile(runner)
                )
        try:
            if params.postprocess["words"]:
                # the alignment of a batch reads the other rows' padding: one row at a time
                parts = [
                    self._rows(
                        self._generate(features[i : i + 1], mask[i : i + 1], generation), 1, params
                    )
                    for i in range(rows)
                ]
                return _stack(parts, self.model.generation_config.pad_token_id)
            return self._rows(self._generate(features, mask, generation), rows, params)
        except torch.OutOfMemoryError:
            raise
        except Exception as error:  # noqa: BLE001 - a compiler failure means: run eager
            if not self._compiled:
                raise
            self._give_up_compiling(error)
            return self.run(runner, inputs, params)

    def _generate(self, features: torch.Tensor, mask: torch.Tensor, generation: dict) -> Any:
        with torch.inference_mode():
            return self.model.generate(input_features=features, attention_mask=mask, **generation)

    def _compile_encoder(self, runner) -> None:
        """Compile the encoder in place, once: generate() calls it for every window."""
        if not self._compiled:
            self.model.get_encoder().compile(backend=runner.backend, mode=runner.mode)
            self._compiled = True

    def _give_up_compiling(self, error: Exception) -> None:
        """A compiler failure: decode eager from now on, with one warning."""
        self.model.get_encoder()._compiled_call_impl = None
        self._compiled = False
        self._compile_failed = True
        warnings.warn(
            f"torch.compile failed for Whisper's encoder or decode step ({type(error).__name__}: "
            f"{str(error)[:200]}); decoding eager from now on. "
            "Pass compile=False to skip compiling.",
            RuntimeWarning,
            stacklevel=3,
        )

    def _compile(self, runner) -> CompileConfig:
        if self._compile_config is None:
            config = CompileConfig(
                fullgraph=True, dynamic=False, backend=runner.backend, mode=runner.mode or "default"
            )
            # generate() compiles only on accelerators unless told to on every device
            config._compile_all_devices = True
            self._compile_config = config
        return self._compile_config

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

    def reduce(self, outputs: Any, inputs: dict[str, torch.Tensor], params: Params) -> dict:
        raise NotImplementedError("speech recognition decodes in run()")

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


def _fill_to_power_of_two(batch: torch.Tensor) -> torch.Tensor:
    """The batch with copies of its last row up to the next power of two rows."""
    rows = batch.shape[0]
    filled = 1 << (rows - 1).bit_length()
    if filled == rows:
        return batch
    return torch.cat([batch, batch[-1:].expand(filled - rows, *batch.shape[1:])])


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
