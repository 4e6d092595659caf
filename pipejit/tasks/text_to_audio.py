"""text-to-audio (alias text-to-speech): texts to waveforms with VITS models.

Why VITS: it synthesises in one non-autoregressive pass (text encoder, duration
predictor, flow, HiFi-GAN), so a batch runs as two fixed-shape modules and no
decoding loop, a tiny model is built offline from a config and a character vocab,
and with the noise scales at 0 its output is deterministic, so parity with
``transformers.pipeline`` is exact within float tolerance. (SpeechT5 needs a
separate vocoder and an autoregressive decoder whose prenet dropout is always on;
MusicGen and Bark sample.)

How a batch runs: texts are tokenized by the reference pipeline, sorted and padded
to a length bucket; module ``"text"`` (``VitsFrontEnd``: text encoder and duration
predictor) runs on the engine, compiled as every module is. The frame count each
text gets is known only then: the batch's frames are padded to its longest row (to
the engine's frame bucket when it compiles per shape, ``Steps.padded_length``), and
module ``"synthesis"`` (``VitsSynthesis``: flow and HiFi-GAN, masked so that padding
never reaches a row's samples; see ``pipejit.tasks.vits_modules``) runs on the
engine too. batch_size > 1 gives the audio of batch 1. The waveform is cut to
each row's length and formatted by the reference's own ``postprocess``.

Parameters are the reference's: ``forward_params`` (``speaker_id``,
``speaking_rate``), ``generate_kwargs`` (refused, as the reference refuses them for
forward-only models), ``preprocess_params`` (tokenizer options). With noise scales
above 0 the output is a sample from the same distribution as the reference's, not
the same draw.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import VitsModel

from pipejit.compat import sanitize_parameters
from pipejit.contract import Features, Module, Params, Row, Steps, StepTask
from pipejit.tasks.base import reject_unknown
from pipejit.tasks.vits_modules import VitsFrontEnd, VitsSynthesis

CALL_PARAMS = {"forward_params", "generate_kwargs", "preprocess_params"}
FORWARD_PARAMS = {"speaker_id", "speaking_rate"}
# VITS has no position limit (relative attention); texts are tokens with blanks between
MAX_TOKENS = 1024


class TextToAudio(StepTask):
    name = "text-to-audio"
    aliases = ("text-to-speech",)
    truncation_hint = "split it into shorter texts"

    @classmethod
    def serves(cls, model: torch.nn.Module) -> bool:
        return isinstance(model, VitsModel)

    def modules(self) -> dict[str, Module]:
        return {
            "text": Module(VitsFrontEnd(self.model)),
            # batch and frames vary; the flow's channels do not
            "synthesis": Module(VitsSynthesis(self.model), dynamic_dims=(0, 2)),
        }

    @property
    def max_length(self) -> int:
        return MAX_TOKENS

    # -- parameters ---------------------------------------------------------------------

    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        reject_unknown(self.name, kwargs, CALL_PARAMS)
        pre, forward, _ = sanitize_parameters(self.reference, **kwargs)
        if forward["generate_kwargs"]:
            raise ValueError(
                f"{type(self.model).__name__} synthesises in one forward pass and takes no "
                f"generate_kwargs (got {sorted(forward['generate_kwargs'])}); pass "
                f"forward_params with {sorted(FORWARD_PARAMS)} instead"
            )
        options = dict(forward["forward_params"])
        unknown = sorted(set(options) - FORWARD_PARAMS)
        if unknown:
            raise TypeError(
                f"{self.name} got unexpected forward_params {unknown}; it accepts "
                f"{sorted(FORWARD_PARAMS)}"
            )
        rate = options.get("speaking_rate", self.model.speaking_rate)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0:
            raise ValueError(f"speaking_rate must be a positive number, got {rate!r}")
        return Params(
            preprocess={"tokenize": pre},
            postprocess={"speaking_rate": float(rate), "speaker_id": self._speaker(options)},
        )

    def _speaker(self, options: dict[str, Any]) -> int | None:
        """The speaker to condition on: None for one-speaker models or when not given,
        as the model itself ignores ``speaker_id`` then."""
        speaker = options.get("speaker_id")
        speakers = self.config.num_speakers
        if speaker is None or speakers <= 1:
            return None
        if isinstance(speaker, torch.Tensor) and speaker.numel() == 1:
            speaker = int(speaker)
        if isinstance(speaker, bool) or not isinstance(speaker, int):
            raise ValueError(f"speaker_id must be an int, got {speaker!r}")
        if not 0 <= speaker < speakers:
            raise ValueError(f"speaker_id must be in the range 0-{speakers - 1}, got {speaker}")
        return speaker

    # -- inputs ---------------------------------------------------------------------------

    def preprocess(self, item: Any, params: Params) -> list[Features]:
        if not isinstance(item, str):
            raise TypeError(f"{self.name} takes a string or a list of strings, got {item!r}")
        encoded = self.reference.preprocess(item, **params.preprocess["tokenize"])
        input_ids = encoded["input_ids"][0].long()
        if input_ids.numel() == 0:
            raise ValueError(
                f"the text {item!r} has no character the tokenizer knows; nothing to synthesise"
            )
        mask = encoded.get("attention_mask")
        mask = torch.ones_like(input_ids) if mask is None else mask[0].long()
        return [Features({"input_ids": input_ids, "attention_mask": mask})]

    # -- the model ------------------------------------------------------------------------

    def run(self, steps: Steps, inputs: dict[str, torch.Tensor], params: Params) -> dict:
        speaker_id = params.postprocess["speaker_id"]
        rows = inputs["input_ids"].shape[0]
        device = inputs["input_ids"].device
        speaker = {}
        if speaker_id is not None:
            speaker["speaker_id"] = torch.full((rows,), speaker_id, device=device)
        log_duration, means, log_variances = steps.forward("text", {**inputs, **speaker})
        with torch.inference_mode():
            latents, frames = self._expand(
                steps, inputs["attention_mask"], log_duration, means, log_variances, params
            )
        waveform, samples = steps.forward(
            "synthesis", {"prior_latents": latents, "frames": frames, **speaker}
        )
        return {"waveform": waveform, "samples": samples}

    def _expand(
        self,
        steps: Steps,
        attention_mask: torch.Tensor,
        log_duration: torch.Tensor,
        means: torch.Tensor,
        log_variances: torch.Tensor,
        params: Params,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each token's prior repeated over its predicted frames, the batch padded to the
        length the engine runs its longest row at: (batch, flow, frames) latents and
        each row's frame count."""
        input_mask = attention_mask.unsqueeze(1).to(means.dtype)  # (batch, 1, tokens)
        scale = 1.0 / params.postprocess["speaking_rate"]
        duration = torch.ceil(torch.exp(log_duration) * input_mask * scale)
        frames = torch.clamp_min(duration.sum(dim=(1, 2)), 1).long()
        length = steps.padded_length("synthesis", int(frames.max()))
        positions = torch.arange(length, device=means.device, dtype=duration.dtype)
        # token j covers frames [end of j-1, end of j): "before its end" minus "before the last end"
        before_end = (positions[None, :, None] < torch.cumsum(duration, -1)).to(means.dtype)
        covers = before_end - nn.functional.pad(before_end, (1, 0))[..., :-1]
        output_mask = (positions[None, :] < frames[:, None]).to(means.dtype)
        alignment = covers * output_mask[:, :, None] * input_mask
        prior_means = torch.matmul(alignment, means).transpose(1, 2)
        prior_log_variances = torch.matmul(alignment, log_variances).transpose(1, 2)
        noise = torch.randn_like(prior_means) * torch.exp(prior_log_variances)
        return prior_means + noise * self.model.noise_scale, frames

    # -- outputs --------------------------------------------------------------------------

    def postprocess(self, item: Any, features: list[Features], rows: list[Row], params: Params):
        (row,) = rows
        audio = torch.from_numpy(row["waveform"][: int(row["samples"])].copy())
        return self.reference.postprocess(audio[None])
