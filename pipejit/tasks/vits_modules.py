"""VITS split in the two fixed-shape modules text-to-audio batches on the engine.

``VitsFrontEnd`` (text encoder, duration predictor) runs per text bucket and
``VitsSynthesis`` (flow, HiFi-GAN) per frame bucket. Both call the model's own
layers; the loops around them are restated here for two reasons: transformers'
encoder draws a LayerDrop number with numpy and its WaveNet slices by a tensor's
``.item()``, each a graph break under ``torch.compile``; and HiFi-GAN's
convolutions would carry a padded row's tail into its last samples, so every
convolution's input here is zeroed past each row's length at that layer's
resolution, and each row sees exactly the zeros it would see alone.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import VitsModel
from transformers.masking_utils import create_bidirectional_mask


class VitsFrontEnd(nn.Module):
    """Token ids to each token's log duration and prior means and log variances."""

    def __init__(self, model: VitsModel):
        super().__init__()
        self.vits = model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        speaker_id: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        vits = self.vits
        text = vits.text_encoder
        mask = attention_mask.unsqueeze(-1).to(text.embed_tokens.weight.dtype)
        speaker = _speaker(vits, speaker_id)
        hidden = text.embed_tokens(input_ids) * math.sqrt(vits.config.hidden_size)
        pairs = create_bidirectional_mask(
            config=text.encoder.config, inputs_embeds=hidden, attention_mask=attention_mask
        )
        hidden = hidden * mask
        for layer in text.encoder.layers:
            hidden = layer(hidden, attention_mask=pairs, padding_mask=mask)[0]
        hidden = hidden * mask
        stats = text.project(hidden.transpose(1, 2)).transpose(1, 2) * mask
        means, log_variances = torch.split(stats, vits.config.flow_size, dim=2)
        hidden, mask = hidden.transpose(1, 2), mask.transpose(1, 2)
        if vits.config.use_stochastic_duration_prediction:
            log_duration = _stochastic_durations(vits, hidden, mask, speaker)
        else:
            log_duration = vits.duration_predictor(hidden, mask, speaker)
        return log_duration, means, log_variances


@torch.compiler.disable
def _stochastic_durations(
    vits: VitsModel, hidden: torch.Tensor, mask: torch.Tensor, speaker: torch.Tensor | None
) -> torch.Tensor:
    """The stochastic duration predictor, left eager: its spline flows select bins by
    boolean indexing, whose data-dependent shapes would split the graph many times."""
    return vits.duration_predictor(
        hidden, mask, speaker, reverse=True, noise_scale=vits.noise_scale_duration
    )


class VitsSynthesis(nn.Module):
    """Frame-padded prior latents (batch, flow, frames) and each row's frame count to
    waveforms (batch, samples) and each row's sample count."""

    def __init__(self, model: VitsModel):
        super().__init__()
        self.vits = model

    def forward(
        self,
        prior_latents: torch.Tensor,
        frames: torch.Tensor,
        speaker_id: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        speaker = _speaker(self.vits, speaker_id)
        mask = _mask(frames, prior_latents)
        latents = prior_latents
        for coupling in reversed(self.vits.flow.flows):
            latents = _coupling_reverse(coupling, torch.flip(latents, [1]), mask, speaker)
        return _decode(self.vits.decoder, latents * mask, frames, speaker)


def _speaker(vits: VitsModel, speaker_id: torch.Tensor | None) -> torch.Tensor | None:
    return None if speaker_id is None else vits.embed_speaker(speaker_id).unsqueeze(-1)


def _mask(lengths: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(batch, 1, time) ones before each row's length, zeros after, in ``like``'s dtype."""
    positions = torch.arange(like.shape[-1], device=like.device)
    return (positions < lengths[:, None]).unsqueeze(1).to(like.dtype)


def _coupling_reverse(
    coupling: nn.Module, inputs: torch.Tensor, mask: torch.Tensor, speaker: torch.Tensor | None
) -> torch.Tensor:
    """One residual coupling layer run backwards (its log scale is always zero)."""
    first, second = torch.split(inputs, [coupling.half_channels] * 2, dim=1)
    hidden = coupling.conv_pre(first) * mask
    hidden = _wavenet(coupling.wavenet, hidden, mask, speaker)
    mean = coupling.conv_post(hidden) * mask
    return torch.cat([first, (second - mean) * mask], dim=1)


def _wavenet(
    wavenet: nn.Module, inputs: torch.Tensor, mask: torch.Tensor, speaker: torch.Tensor | None
) -> torch.Tensor:
    channels = wavenet.hidden_size
    outputs = torch.zeros_like(inputs)
    conditioning = wavenet.cond_layer(speaker) if speaker is not None else None
    for i, (in_layer, res_skip) in enumerate(zip(wavenet.in_layers, wavenet.res_skip_layers)):
        hidden = in_layer(inputs)
        if conditioning is not None:
            hidden = hidden + conditioning[:, i * 2 * channels : (i + 1) * 2 * channels, :]
        acts = torch.tanh(hidden[:, :channels, :]) * torch.sigmoid(hidden[:, channels:, :])
        acts = res_skip(acts)
        if i < wavenet.num_layers - 1:
            inputs = (inputs + acts[:, :channels, :]) * mask
            outputs = outputs + acts[:, channels:, :]
        else:
            outputs = outputs + acts
    return outputs * mask


def _decode(
    decoder: nn.Module, spectrogram: torch.Tensor, lengths: torch.Tensor, speaker
) -> tuple[torch.Tensor, torch.Tensor]:
    """HiFi-GAN with each convolution's input masked to the row's length at its resolution."""
    slope = decoder.config.leaky_relu_slope
    hidden = decoder.conv_pre(spectrogram)
    if speaker is not None:
        hidden = hidden + decoder.cond(speaker)
    for i, upsample in enumerate(decoder.upsampler):
        hidden = upsample(nn.functional.leaky_relu(hidden, slope) * _mask(lengths, hidden))
        stride, padding = upsample.stride[0], upsample.padding[0]
        lengths = (lengths - 1) * stride - 2 * padding + upsample.kernel_size[0]
        mask = _mask(lengths, hidden)
        blocks = decoder.resblocks[i * decoder.num_kernels : (i + 1) * decoder.num_kernels]
        summed = _resblock(blocks[0], hidden, mask)
        for block in blocks[1:]:
            summed += _resblock(block, hidden, mask)
        hidden = summed / decoder.num_kernels
    hidden = nn.functional.leaky_relu(hidden) * _mask(lengths, hidden)
    return torch.tanh(decoder.conv_post(hidden)).squeeze(1), lengths


def _resblock(block: nn.Module, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    slope = block.leaky_relu_slope
    for conv1, conv2 in zip(block.convs1, block.convs2):
        residual = hidden
        hidden = conv1(nn.functional.leaky_relu(hidden, slope) * mask)
        hidden = conv2(nn.functional.leaky_relu(hidden, slope) * mask)
        hidden = hidden + residual
    return hidden
