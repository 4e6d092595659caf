"""image-text-to-text: prompts with images (or chats with images in their content)
continued by a vision-language model, decoded on the engine.

Inputs, tokenization and output formatting are the reference pipeline's: its
``__call__`` rules for ``images=`` / ``text=`` / chats, its ``preprocess`` (the
processor, or the processor's chat template) and its ``postprocess``. What runs
differently is the decoding: the prompts of a batch are left-padded to their
length bucket, their images stacked beside them (a batch holds only prompts
whose image tensors share one shape), and the engine's decoder
(``Steps.decode``) runs one prefill forward with the pixel values, then its
static-cache one-token step. A list of texts with a list of images is split into one model
item per text, so its prompts batch (and pad) like any others.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from transformers import GenerationConfig
from transformers.image_utils import valid_images
from transformers.utils.chat_template_utils import Chat, is_valid_message

from pipejit.compat import prepare_generate_kwargs, sanitize_parameters
from pipejit.contract import Features, Params, Row
from pipejit.tasks.text_generation import GENERATE_PARAMS, TextGeneration
from pipejit.tasks.token_choice import TokenChooser

# the reference's own pipeline parameters that reach its preprocess step
PREPROCESS_PARAMS = {"timeout", "continue_final_message", "processor_kwargs"}
# the prompt's tensors besides these (pixel values, image sizes) have no length axis
TEXT_KEYS = {"input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids"}


class ImageTextToText(TextGeneration):
    name = "image-text-to-text"

    @classmethod
    def serves(cls, model: torch.nn.Module) -> bool:
        return not model.config.is_encoder_decoder

    @property
    def processor(self):
        return self.reference.processor

    @property
    def text_config(self):
        return self.config.get_text_config(decoder=True)

    @property
    def max_length(self) -> int:
        limits = [
            getattr(self.text_config, "max_position_embeddings", None),
            getattr(self.tokenizer, "model_max_length", None),
        ]
        usable = [int(v) for v in limits if isinstance(v, int) and 0 < v < 1_000_000]
        return min(usable) if usable else 2048

    # -- parameters ---------------------------------------------------------------------

    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        pre, forward, post = sanitize_parameters(self.reference, **kwargs)
        self._check_processing_kwargs(set(pre) - PREPROCESS_PARAMS)
        generate = dict(forward.get("generate_kwargs") or {})
        generate.pop("tokenizer", None)  # stop_sequence's, for generate()'s stop strings
        unknown = sorted(set(generate) - GENERATE_PARAMS)
        if unknown:
            raise TypeError(
                f"image-text-to-text got unexpected generation parameter(s) {unknown}; "
                f"pipejit's decoder accepts {sorted(GENERATE_PARAMS)}"
            )
        config = self._generation_config(prepare_generate_kwargs(self.reference, generate))
        if not isinstance(config.num_return_sequences, int) or config.num_return_sequences < 1:
            raise ValueError(
                f"num_return_sequences must be a positive int, got {config.num_return_sequences!r}"
            )
        if config.max_new_tokens is not None and config.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {config.max_new_tokens}")
        return Params(
            preprocess={"process": pre, "config": config},
            postprocess={
                "format": post,
                "config": config,
                "chooser": TokenChooser.from_config(config),
            },
        )

    def _check_processing_kwargs(self, names: set[str]) -> None:
        """Refuse what neither the processor nor its chat template reads (the reference
        only warns that it ignores them)."""
        typed = self.processor.valid_processor_kwargs
        known = set(typed.__annotations__)
        for modality in ("text_kwargs", "images_kwargs", "audio_kwargs", "videos_kwargs"):
            known |= set(getattr(typed.__annotations__.get(modality), "__annotations__", {}))
        for part in ("tokenizer", "image_processor"):
            valid = getattr(getattr(self.processor, part, None), "valid_kwargs", None)
            known |= set(getattr(valid, "__annotations__", {}))
        template = self.processor.chat_template or ""
        template = "\n".join(template.values()) if isinstance(template, dict) else template
        known |= set(re.findall(r"[A-Za-z_]\w*", template))
        unknown = sorted(names - known)
        misplaced = sorted(set(unknown) & GENERATE_PARAMS)
        if misplaced:
            # the reference would hand them to the processor, which ignores them
            raise TypeError(
                f"image-text-to-text takes generation parameters {misplaced} through "
                f"generate_kwargs, e.g. generate_kwargs={{{misplaced[0]!r}: ...}} "
                "(max_new_tokens may also be passed alone)"
            )
        if unknown:
            raise TypeError(
                f"image-text-to-text got unexpected parameter(s) {unknown}: neither the "
                f"pipeline, generate(), the processor nor its chat template takes them"
            )

    # -- inputs ---------------------------------------------------------------------------

    def normalize_call(self, inputs: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
        """The reference's ``__call__(images=None, text=None)`` rules, as one input or a list."""
        if len(args) > 1:
            raise TypeError(f"{self.name} takes at most images and text positionally")
        if args:
            if "text" in kwargs:
                raise TypeError(f"{self.name} got text both positionally and as text=")
            kwargs["text"] = args[0]
        images, text = kwargs.pop("images", None), kwargs.pop("text", None)
        if inputs is not None:
            if images is not None:
                raise TypeError(f"{self.name} got images both positionally and as images=")
            images = inputs
        if images is None and text is None:
            raise ValueError(f"{self.name} needs text, images, or chats (text=[messages])")
        if _is_chat(text):
            if images is not None:
                raise ValueError(
                    "images and chats cannot be passed apart: put each image in its chat "
                    "message's content, e.g. {'type': 'image', 'image': <PIL image or url>}"
                )
            return _chats(text)
        if text is None and _is_chat(images):
            return _chats(images)
        if text is None and not valid_images(images):
            return images  # {"images": ..., "text": ...} dicts, one or a list or a stream
        if images is None:
            return text  # text only
        if text is None:
            raise ValueError(f"{self.name} needs a text prompt with its images (text=...)")
        return {"images": images, "text": text}

    def is_single(self, inputs: Any) -> bool:
        return isinstance(inputs, (str, Chat, dict))

    def preprocess(self, item: Any, params: Params) -> list[Features]:
        if isinstance(item, (list, tuple)) and item and all(map(is_valid_message, item)):
            item = Chat(list(item))  # a chat streamed from a generator or dataset
        if isinstance(item, dict) and set(item) == {"images", "text"}:
            prompts = [{"images": images, "text": text} for images, text in self._pairs(**item)]
        elif isinstance(item, (str, Chat)):
            prompts = [item]
        else:
            raise ValueError(
                f"{self.name} takes a text, a chat (a list of {{'role', 'content'}} dicts), or "
                f"a dict {{'images': ..., 'text': ...}}, got {type(item).__name__}"
            )
        config: GenerationConfig = params.preprocess["config"]
        features: list[Features] = []
        for index, prompt in enumerate(prompts):
            processed = self.reference.preprocess(prompt, **dict(params.preprocess["process"]))
            one = self._features(processed, config)
            one.context["prompt"] = index
            features += [one] * config.num_return_sequences  # one row per sequence
        return features

    def _pairs(self, images: Any, text: Any) -> list[tuple[Any, str]]:
        """Each text with its images: in order, as many as the text has image tokens."""
        if isinstance(text, str):
            return [(images, text)]
        if not isinstance(text, (list, tuple)) or not all(isinstance(t, str) for t in text):
            raise ValueError(f"text must be a string or a list of strings, got {text!r:.100}")
        if isinstance(images, (list, tuple)) and len(images) == len(text):
            if all(isinstance(group, (list, tuple)) for group in images):
                return list(zip(images, text))
        flat = _flatten(images)
        token = getattr(self.processor, "image_token", None)
        if token is None:
            if len(flat) != len(text):
                raise ValueError(
                    f"got {len(flat)} images for {len(text)} texts; pass one image per "
                    "text, or one list of images per text"
                )
            return [([image], t) for image, t in zip(flat, text)]
        counts = [t.count(token) for t in text]
        if sum(counts) != len(flat):
            raise ValueError(
                f"the texts hold {sum(counts)} {token} tokens in all, for {len(flat)} images; "
                f"put one {token} in a text per image it shows"
            )
        pairs, start = [], 0
        for count, t in zip(counts, text):
            pairs.append((flat[start : start + count] or None, t))
            start += count
        return pairs

    def _features(self, processed: dict[str, Any], config: GenerationConfig) -> Features:
        """One processed prompt to a model item: tokens along its length, images whole."""
        input_ids = processed["input_ids"][0].long()
        length = input_ids.shape[0]
        new_tokens = config.max_new_tokens
        if new_tokens is None:
            new_tokens = config.max_length - length
            if new_tokens < 1:
                raise ValueError(
                    f"the prompt is {length} tokens long, not below max_length="
                    f"{config.max_length}; raise max_length or pass max_new_tokens"
                )
        limit = getattr(self.text_config, "max_position_embeddings", None)
        if isinstance(limit, int) and length + new_tokens > limit:
            raise ValueError(
                f"the prompt ({length} tokens, with its image tokens) and max_new_tokens="
                f"{new_tokens} exceed the model's {limit} positions; shorten the prompt or "
                "lower max_new_tokens"
            )
        mask = processed.get("attention_mask")
        tensors = {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids) if mask is None else mask[0].long(),
            # the row's token budget rides along as a tensor: run() sees only tensors
            "budget": torch.full_like(input_ids, new_tokens),
        }
        whole = set()
        for key, value in processed.items():
            if not isinstance(value, torch.Tensor) or key in tensors:
                continue
            if key in TEXT_KEYS:
                tensors[key] = value[0]
            else:
                tensors[key] = value
                whole.add(key)
        context = {"prompt_text": processed["text"], "input_ids": input_ids}
        group = tuple(sorted((key, tuple(tensors[key].shape)) for key in whole))
        return Features(tensors, context, group=group, whole=frozenset(whole))

    # -- decoding -------------------------------------------------------------------------

    def prefill_inputs(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        extra = {}
        for key, value in inputs.items():
            if key in ("input_ids", "attention_mask", "budget"):
                continue
            # whole tensors were stacked per prompt: the model takes them per image
            extra[key] = value if key in TEXT_KEYS else value.flatten(0, 1)
        return extra

    # -- outputs --------------------------------------------------------------------------

    def postprocess(self, item: Any, features: list[Features], rows: list[Row], params: Params):
        records = []
        for prompt in sorted({f.context["prompt"] for f in features}):
            mine = [i for i, f in enumerate(features) if f.context["prompt"] == prompt]
            records += super().postprocess(
                item, [features[i] for i in mine], [rows[i] for i in mine], params
            )
        return records


def _is_chat(value: Any) -> bool:
    """A chat (messages: dicts with a role) or a list of chats; a list of
    {"images", "text"} prompt dicts is not one."""
    if not isinstance(value, (list, tuple)) or not value:
        return False
    first = value[0]
    return isinstance(first, (list, tuple)) or (isinstance(first, dict) and "role" in first)


def _chats(value: list) -> Chat | list[Chat]:
    if isinstance(value[0], dict):
        return Chat(list(value))
    return [Chat(list(chat)) for chat in value]


def _flatten(images: Any) -> list:
    if isinstance(images, (list, tuple)):
        return [image for part in images for image in _flatten(part)]
    return [images]
