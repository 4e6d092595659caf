"""text-generation: prompts (or chats) continued by a causal LM, decoded on the engine.

Parameters, tokenization (prefix, chat templates, ``continue_final_message``)
and output formatting are transformers' own, through the reference pipeline's
helpers; the generation parameters resolve as ``generate`` resolves them (the
model's generation config, then the pipeline's defaults, then the call). What
runs differently is the decoding: prompts of a batch are left-padded to their
length bucket and decoded together by the engine (``Steps.decode``: a prefill,
then a compiled static-cache one-token step).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import GenerationConfig, StopStringCriteria
from transformers.utils.chat_template_utils import Chat, is_valid_message

from pipejit.compat import prepare_generate_kwargs, prepare_generation_config, sanitize_parameters
from pipejit.contract import Features, Module, Params, Row, Steps, StepTask
from pipejit.tasks.token_choice import TokenChooser

# generate() parameters the engine's decoder implements; any other is refused.
GENERATE_PARAMS = {
    "max_new_tokens",
    "max_length",
    "do_sample",
    "temperature",
    "top_k",
    "top_p",
    "repetition_penalty",
    "num_return_sequences",
    "eos_token_id",
    "pad_token_id",
    "bos_token_id",
    "stop_strings",
    "generation_config",
}
UNSUPPORTED_PIPELINE_PARAMS = {"tools", "documents", "assistant_model", "assistant_tokenizer"}


class TextGeneration(StepTask):
    name = "text-generation"
    padding_side = "left"
    max_padding = 1.0

    def __init__(self, reference):
        super().__init__(reference)
        self._stop_criteria: dict[tuple[str, ...], StopStringCriteria] = {}

    @classmethod
    def serves(cls, model: torch.nn.Module) -> bool:
        return not model.config.is_encoder_decoder

    def modules(self) -> dict[str, Module]:
        return {"lm": Module(self.model)}

    # -- parameters ---------------------------------------------------------------------

    def parse_params(self, kwargs: dict[str, Any]) -> Params:
        refused = sorted(UNSUPPORTED_PIPELINE_PARAMS & set(kwargs))
        if refused:
            raise TypeError(f"pipejit's text-generation does not support {refused} yet")
        pre, forward, post = sanitize_parameters(self.reference, **kwargs)
        forward.pop("tokenizer", None)
        prefix_length = forward.pop("prefix_length", 0)
        unknown = sorted(set(forward) - GENERATE_PARAMS)
        if unknown:
            raise TypeError(
                f"text-generation got unexpected parameter(s) {unknown}; pipejit's decoder "
                f"accepts the generation parameters {sorted(GENERATE_PARAMS)}"
            )
        config = self._generation_config(prepare_generate_kwargs(self.reference, forward))
        if config.max_new_tokens is None and prefix_length:
            config.max_length += prefix_length
        for name in ("num_return_sequences",):
            value = getattr(config, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if config.max_new_tokens is not None and config.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {config.max_new_tokens}")
        chooser = TokenChooser.from_config(config)
        return Params(
            preprocess={"tokenize": pre, "config": config},
            postprocess={"format": post, "config": config, "chooser": chooser},
        )

    def _generation_config(self, generate_kwargs: dict[str, Any]) -> GenerationConfig:
        """The call's generation config, resolved by generate()'s own merging (the
        call, then the model's generation config, then the global defaults)."""
        user = generate_kwargs.pop("generation_config", None)
        config, unused = prepare_generation_config(self.model, user, **generate_kwargs)
        if unused:
            raise TypeError(f"text-generation got unexpected parameter(s) {sorted(unused)}")
        if (config.num_beams or 1) != 1:
            raise ValueError(f"pipejit decodes without beam search; num_beams={config.num_beams}")
        config.validate()
        return config

    # -- inputs ---------------------------------------------------------------------------

    def normalize_call(self, inputs: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
        inputs = super().normalize_call(inputs, args, kwargs)
        if isinstance(inputs, (list, tuple)) and inputs:
            if is_valid_message(inputs[0]):
                return Chat(list(inputs))
            if all(isinstance(c, (list, tuple)) and c and is_valid_message(c[0]) for c in inputs):
                return [Chat(list(chat)) for chat in inputs]
        return inputs

    def is_single(self, inputs: Any) -> bool:
        return isinstance(inputs, (str, Chat))

    def preprocess(self, item: Any, params: Params) -> list[Features]:
        if isinstance(item, (list, tuple)) and item and all(map(is_valid_message, item)):
            item = Chat(list(item))  # a chat streamed from a generator or dataset
        if not isinstance(item, (str, Chat)):
            raise ValueError(
                "text-generation takes a string or a chat (a list of {'role', 'content'} "
                f"dicts), got {type(item).__name__}"
            )
        encoded = self.reference.preprocess(item, **params.preprocess["tokenize"])
        input_ids = encoded["input_ids"][0].long()
        config: GenerationConfig = params.preprocess["config"]
        new_tokens = config.max_new_tokens
        if new_tokens is None:
            new_tokens = config.max_length - input_ids.shape[0]
            if new_tokens < 1:
                raise ValueError(
                    f"the prompt is {input_ids.shape[0]} tokens long, not below "
                    f"max_length={config.max_length}; raise max_length or pass max_new_tokens"
                )
        limit = getattr(self.config, "max_position_embeddings", None)
        if isinstance(limit, int) and input_ids.shape[0] + new_tokens > limit:
            raise ValueError(
                f"the prompt ({input_ids.shape[0]} tokens) and max_new_tokens={new_tokens} "
                f"exceed the model's {limit} positions; shorten the prompt or lower "
                "max_new_tokens"
            )
        mask = encoded.get("attention_mask")
        mask = torch.ones_like(input_ids) if mask is None else mask[0].long()
        # the row's token budget rides along as a tensor: run() sees only tensors
        budget = torch.full_like(input_ids, new_tokens)
        tensors = {"input_ids": input_ids, "attention_mask": mask, "budget": budget}
        context = {"prompt_text": encoded["prompt_text"], "input_ids": input_ids}
        return [Features(tensors, context) for _ in range(config.num_return_sequences)]

    def dummy_features(self, length: int) -> Features:
        item = super().dummy_features(length)
        # two new tokens: the prefill, then one run of the compiled step
        item.tensors["budget"] = torch.full((length,), 2, dtype=torch.long)
        return item

    # -- decoding -------------------------------------------------------------------------

    def run(self, steps: Steps, inputs: dict[str, torch.Tensor], params: Params) -> dict:
        config: GenerationConfig = params.postprocess["config"]
        chooser: TokenChooser = params.postprocess["chooser"]
        eos = config.eos_token_id
        eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
        pad = config.pad_token_id if config.pad_token_id is not None else (eos or [0])[0]
        budgets = inputs["budget"][:, -1]  # left padding: the last column is real
        decoded = steps.decode(
            "lm",
            inputs["input_ids"],
            inputs["attention_mask"],
            max_new_tokens=int(budgets.max()),
            choose=chooser,
            eos_ids=torch.tensor(eos, dtype=torch.long, device=budgets.device),
            pad_id=int(pad),
            stop=self._stop_check(config.stop_strings),
            budgets=budgets,
            prefill_kwargs=self.prefill_inputs(inputs),
        )
        return {"tokens": decoded.tokens, "counts": decoded.counts}

    def prefill_inputs(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Inputs of the prompt's forward besides its tokens (none for a text model)."""
        return {}

    def _stop_check(self, stop_strings: str | list[str] | None):
        if not stop_strings:
            return None
        key = (stop_strings,) if isinstance(stop_strings, str) else tuple(stop_strings)
        if key not in self._stop_criteria:
            self._stop_criteria[key] = StopStringCriteria(self.tokenizer, list(key))
        criteria = self._stop_criteria[key]
        return lambda tokens: criteria(tokens, None)

    # -- outputs --------------------------------------------------------------------------

    def postprocess(self, item: Any, features: list[Features], rows: list[Row], params: Params):
        prompt = features[0].context["input_ids"]
        steps = max(int(row["counts"]) for row in rows)
        new = torch.stack([torch.as_tensor(row["tokens"][:steps]) for row in rows])
        sequences = torch.cat([prompt.expand(len(rows), -1), new], dim=1)
        outputs = {
            "generated_sequence": sequences[None],
            "input_ids": prompt[None],
            "prompt_text": features[0].context["prompt_text"],
        }
        return self.reference.postprocess(outputs, **params.postprocess["format"])
