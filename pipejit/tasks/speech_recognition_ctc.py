"""automatic-speech-recognition for CTC models (wav2vec2-like): greedy CTC decoding.

Long audio may be cut into overlapping chunks (``chunk_length_s``,
``stride_length_s``); each chunk is one model item, batched with the others by
duration, and the frames of each chunk's strides are dropped before the chunks'
tokens are joined and decoded, as transformers does. The argmax over the
vocabulary runs on the device; decoding and timestamps reuse the tokenizer's own
``decode`` with offsets.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from transformers.pipelines.automatic_speech_recognition import chunk_iter, rescale_stride

from pipejit.contract import Features, Params, Row
from pipejit.tasks.audio_inputs import is_single_audio, load_audio
from pipejit.tasks.audio_task import WaveformTask
from pipejit.tasks.base import reject_unknown

TIMESTAMPS = ("char", "word")


class SpeechRecognitionCTC(WaveformTask):
    name = "automatic-speech-recognition"

    @classmethod
    def serves(cls, model: torch.nn.Module) -> bool:
        return type(model).__name__.endswith("ForCTC") and model.main_input_name == "input_values"

    @property
    def align_to(self) -> int:
        """Input samples per output frame."""
        return self.units_per_token

    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        allowed = {"chunk_length_s", "stride_length_s", "return_timestamps", "ignore_warning"}
        reject_unknown(self.name, kwargs, allowed)
        timestamps = kwargs.get("return_timestamps")
        if timestamps is not None and timestamps not in TIMESTAMPS:
            raise ValueError(
                "CTC models give character or word timestamps: return_timestamps must be "
                f"'char' or 'word' (or None), got {timestamps!r}"
            )
        chunk = kwargs.get("chunk_length_s") or 0
        stride = kwargs.get("stride_length_s")
        if chunk:
            chunk, stride = self._chunking(chunk, stride)
        return Params(preprocess={"chunk": chunk, "stride": stride}, postprocess={"ts": timestamps})

    def _chunking(self, chunk_s: Any, stride_s: Any) -> tuple[int, tuple[int, int]]:
        """Chunk and stride lengths in samples, rounded to whole frames as transformers does."""
        if not isinstance(chunk_s, (int, float)) or chunk_s < 0:
            raise ValueError(f"chunk_length_s must be a positive number, got {chunk_s!r}")
        if stride_s is None:
            stride_s = chunk_s / 6
        if isinstance(stride_s, (int, float)):
            stride_s = [stride_s, stride_s]
        if len(stride_s) != 2 or not all(isinstance(s, (int, float)) for s in stride_s):
            raise ValueError(
                f"stride_length_s must be a number or a (left, right) pair, got {stride_s!r}"
            )

        def samples(seconds: float) -> int:
            return int(round(seconds * self.sampling_rate / self.align_to) * self.align_to)

        chunk, left, right = samples(chunk_s), samples(stride_s[0]), samples(stride_s[1])
        if chunk < left + right:
            raise ValueError(
                f"chunk_length_s ({chunk_s}) must be longer than the two strides together "
                f"({stride_s[0]} + {stride_s[1]})"
            )
        return chunk, (left, right)

    def is_single(self, inputs: Any) -> bool:
        return is_single_audio(inputs)

    def preprocess(self, item: Any, params: Params) -> list[Features]:
        audio = load_audio(item, self.sampling_rate, channels_first=True)
        extra = dict(audio.extra)
        stride = extra.pop("stride", None)
        samples = audio.samples
        if stride is not None:
            if stride[0] + stride[1] > samples.shape[0]:
                raise ValueError(
                    f"the audio's stride {tuple(stride)} is longer than its "
                    f"{samples.shape[0]} samples"
                )
            # (samples, left, right) at the model's rate, as transformers keeps it
            stride = (
                samples.shape[0],
                int(round(stride[0] * audio.ratio)),
                int(round(stride[1] * audio.ratio)),
            )
        if not params.preprocess["chunk"]:
            return [self.features(samples, attention_mask=True, stride=stride, extra=extra)]
        # a dict's own stride is dropped when the pipeline chunks, as in transformers
        left, right = params.preprocess["stride"]
        pieces = chunk_iter(
            samples, self.feature_extractor, params.preprocess["chunk"], left, right
        )
        return [self.as_features(piece, stride=piece["stride"], extra=extra) for piece in pieces]

    def reduce(self, outputs: Any, inputs: dict[str, torch.Tensor], params: Params) -> dict:
        return {"tokens": outputs.logits.argmax(dim=-1).to(torch.int32)}

    def postprocess(self, item: Any, features: list[Features], rows: list[Row], params: Params):
        pieces = []
        for chunk, row in zip(features, rows):
            tokens = row["tokens"][: self.frames(chunk.length)].astype(np.int64)
            stride = chunk.context["stride"]
            if stride is not None:
                total, left, right = rescale_stride([stride], 1 / self.align_to)[0]
                tokens = tokens[left : total - right]
            pieces.append(tokens)
        tokens = np.concatenate(pieces)
        output: dict[str, Any] = {"text": self.tokenizer.decode(tokens, skip_special_tokens=False)}
        timestamps = params.postprocess["ts"]
        if timestamps is not None:
            output["chunks"] = self._timestamps(tokens, timestamps)
        for key, value in features[0].context["extra"].items():
            output[key] = [value] * len(features)
        return output

    def _timestamps(self, tokens: np.ndarray, kind: str) -> list[dict[str, Any]]:
        offsets_key = f"{kind}_offsets"
        decoded = self.tokenizer.decode(
            tokens, skip_special_tokens=False, **{f"output_{offsets_key}": True}
        )
        chunks = []
        for offset in decoded[offsets_key]:
            start = offset["start_offset"] * self.align_to / self.sampling_rate
            stop = offset["end_offset"] * self.align_to / self.sampling_rate
            chunks.append({"text": offset[kind], "timestamp": (start, stop)})
        return chunks
