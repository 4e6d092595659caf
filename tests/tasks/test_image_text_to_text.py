"""image-text-to-text parity with transformers.pipeline on a tiny LLaVA-like model."""

from __future__ import annotations

import pytest
import torch
import transformers

import pipejit
from pipejit.engine.collate import collate
from tests.vlm_models import build_llava_folder, make_image

TASK = "image-text-to-text"
GREEDY = dict(max_new_tokens=10)  # greedy: the tiny model's generation config
# prompts of mixed lengths, each with one image placeholder
TEXTS = [
    "<image> the",
    "<image> the movie was good and the music was great",
    "a photo of <image> john went to the bank",
    "<image> paris london berlin",
    "<image> the food was bad and the team won the match",
]


def chat(seed: int, words: str, prefill: str | None = None) -> list[dict]:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": make_image(seed)},
                {"type": "text", "text": words},
            ],
        }
    ]
    if prefill is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": prefill}]})
    return messages


CHATS = [chat(i, text.replace("<image> ", "")) for i, text in enumerate(TEXTS)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return str(build_llava_folder(tmp_path_factory.mktemp("llava")))


@pytest.fixture(scope="module")
def pair(folder):
    return transformers.pipeline(TASK, model=folder), pipejit.pipeline(
        TASK, model=folder, compile=False
    )


def test_single_prompt_with_an_image(pair):
    reference, ours = pair
    image = make_image(0)
    want = reference(images=image, text=TEXTS[1], **GREEDY)
    assert ours(images=image, text=TEXTS[1], **GREEDY) == want
    assert ours(image, TEXTS[1], **GREEDY) == want
    assert ours(image, text=TEXTS[1], **GREEDY) == want
    # the image decides what is generated
    assert ours(images=make_image(5), text=TEXTS[1], **GREEDY) != want


def test_task_is_inferred_from_the_architecture(folder):
    assert pipejit.pipeline(model=folder, compile=False).task.name == TASK


@pytest.mark.parametrize("return_full_text", [True, False])
def test_chat_with_an_image(pair, return_full_text):
    reference, ours = pair
    kwargs = dict(GREEDY, return_full_text=return_full_text)
    assert ours(text=CHATS[2], **kwargs) == reference(text=CHATS[2], **kwargs)
    assert ours(CHATS[2], **kwargs) == reference(CHATS[2], **kwargs)


def test_continue_final_message(pair):
    reference, ours = pair
    prefilled = chat(3, "describe this", prefill="there is a")
    assert ours(text=prefilled, **GREEDY) == reference(text=prefilled, **GREEDY)
    for flag in (True, False):
        got = ours(text=prefilled, continue_final_message=flag, **GREEDY)
        assert got == reference(text=prefilled, continue_final_message=flag, **GREEDY)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_batch_of_chats_of_mixed_lengths(pair, batch_size):
    reference, ours = pair
    kwargs = dict(GREEDY, return_full_text=False)
    want = reference(text=CHATS, **kwargs)  # one chat at a time
    assert ours(text=CHATS, batch_size=batch_size, **kwargs) == want


def test_texts_with_their_images_in_one_input(pair):
    """A list of texts with a list of images: the reference pads them into one batch
    (left, as the tiny tokenizer says); pipejit splits them into items, batched with
    each other by length."""
    reference, ours = pair
    images = [make_image(i) for i in range(len(TEXTS))]
    want = reference(images=images, text=TEXTS, **GREEDY)
    assert len(want) == len(TEXTS)
    assert ours(images=images, text=TEXTS, batch_size=4, **GREEDY) == want
    # one list of images per text, two images in one prompt: apart from the others
    texts = ["<image> <image> two of them", TEXTS[0], TEXTS[3]]
    nested = [[make_image(7), make_image(8)], [make_image(0)], [make_image(3)]]
    want = [reference(images=group, text=text, **GREEDY)[0] for group, text in zip(nested, texts)]
    assert ours(images=nested, text=texts, batch_size=4, **GREEDY) == want
    assert ours(images=_flat(nested), text=texts, batch_size=4, **GREEDY) == want


def _flat(nested: list[list]) -> list:
    return [image for group in nested for image in group]


def test_prompt_images_stack_whole_beside_left_padded_tokens(pair):
    _, ours = pair
    task = ours.task
    params = task.parse_params(dict(GREEDY))
    items = [
        task.preprocess({"images": make_image(i), "text": TEXTS[i]}, params)[0] for i in (0, 1)
    ]
    assert items[0].group == items[1].group == (("pixel_values", (1, 3, 30, 30)),)
    batch = collate(items, 32, task.pad_values, torch.device("cpu"), task.padding_side)
    assert batch["pixel_values"].shape == (2, 1, 3, 30, 30)
    torch.testing.assert_close(batch["pixel_values"][1], items[1].tensors["pixel_values"])
    short = items[0].length
    assert batch["attention_mask"][0].tolist() == [0] * (32 - short) + [1] * short
    assert batch["input_ids"][0, -short:].tolist() == items[0].tensors["input_ids"].tolist()


def test_return_tensors_and_text_only_prompts(pair):
    reference, ours = pair
    want = reference(text=CHATS[1], return_tensors=True, **GREEDY)
    got = ours(text=CHATS[1], return_tensors=True, **GREEDY)
    assert [r["input_text"] for r in got] == [r["input_text"] for r in want]
    for ours_row, ref_row in zip(got, want):
        assert torch.equal(ours_row["generated_token_ids"], ref_row["generated_token_ids"])
    texts = ["the movie was", "a"]
    assert ours(text=texts, batch_size=2, **GREEDY) == reference(text=texts, **GREEDY)


def test_stop_sequence(pair):
    reference, ours = pair
    kwargs = dict(max_new_tokens=30, return_full_text=False)
    stopped = ours(text=CHATS[:3], batch_size=4, stop_sequence="e", **kwargs)
    assert stopped == reference(text=CHATS[:3], stop_sequence="e", **kwargs)
    full = ours(text=CHATS[:3], batch_size=4, **kwargs)
    assert any(
        len(s[0]["generated_text"]) < len(f[0]["generated_text"]) for s, f in zip(stopped, full)
    )


def test_decode_step_compiles_once_per_batch_bucket(folder, pair, counting_backend):
    reference, _ = pair
    ours = pipejit.pipeline(TASK, model=folder, compile=True, compile_backend=counting_backend)
    kwargs = dict(GREEDY, return_full_text=False)
    want = reference(text=CHATS, **kwargs)
    assert ours(text=CHATS, batch_size=4, **kwargs) == want  # batches of 4 and 1

    def step_shapes():
        return {
            (rows, slots) for _, rows, slots in ours.stats()["modules"]["lm"]["compiled_shapes"]
        }

    assert ours.stats()["compile_failed"] is None
    assert counting_backend.graphs == len(step_shapes()) >= 1
    # three prompts fill a batch of four; other lengths and images reuse its graph
    longer = [chat(9 + i, "the city and the river " * (i + 1)) for i in range(3)]
    got = ours(text=longer, batch_size=4, **dict(kwargs, max_new_tokens=14))
    assert got == reference(text=longer, **dict(kwargs, max_new_tokens=14))
    assert counting_backend.graphs == len(step_shapes())
    # two images a prompt: a batch of three fills to four with the last prompt's pair
    texts = ["<image><image> a", "<image><image> the cat and", "<image> <image> paris"]
    nested = [[make_image(i), make_image(i + 1)] for i in range(3)]
    want = [reference(images=group, text=text, **GREEDY)[0] for group, text in zip(nested, texts)]
    assert ours(images=nested, text=texts, batch_size=4, **GREEDY) == want
    assert counting_backend.graphs == len(step_shapes())
    assert (4, 64) in step_shapes()  # prompts of mixed lengths decoded together
    assert {rows for rows, _ in step_shapes()} <= {1, 4}
    assert {slots for _, slots in step_shapes()} == {64}


def test_bad_inputs_name_the_problem(pair):
    _, ours = pair
    with pytest.raises(ValueError, match="no images"):
        ours(text=TEXTS[0], **GREEDY)  # a placeholder, no image
    with pytest.raises(ValueError, match="needs a text prompt"):
        ours(images=make_image(0), **GREEDY)
    with pytest.raises(TypeError, match="format used for image"):
        ours(images=123, text=TEXTS[0], **GREEDY)
    with pytest.raises(ValueError, match="image source"):
        ours(images="no/such/image.png", text=TEXTS[0], **GREEDY)
    with pytest.raises(ValueError, match="2 <image> tokens in all, for 3 images"):
        ours(images=[make_image(i) for i in range(3)], text=TEXTS[:2], **GREEDY)
    with pytest.raises(ValueError, match="chat message's content"):
        ours(images=make_image(0), text=CHATS[0], **GREEDY)
    with pytest.raises(TypeError, match=r"unexpected parameter\(s\) \['foo'\]"):
        ours(images=make_image(0), text=TEXTS[0], foo=1, **GREEDY)
    with pytest.raises(TypeError, match="min_new_tokens"):
        ours(text=CHATS[0], generate_kwargs={"min_new_tokens": 1}, **GREEDY)
    with pytest.raises(TypeError, match="generate_kwargs"):
        ours(text=CHATS[0], do_sample=True, **GREEDY)
    with pytest.raises(ValueError, match="positions"):
        ours(images=make_image(0), text=TEXTS[0], max_new_tokens=500)
    with pytest.raises(ValueError, match="input 1: .*no images"):
        ours(text=[chat(0, "fine"), [{"role": "user", "content": [{"type": "image"}]}]], **GREEDY)


def test_sampling_is_reproducible_under_a_seed(pair):
    pytest.importorskip("pipejit.kernels.sampling")
    _, ours = pair
    sampling = dict(do_sample=True, top_k=20, temperature=1.3)
    kwargs = dict(max_new_tokens=8, generate_kwargs=sampling)
    torch.manual_seed(3)
    first = ours(text=CHATS, batch_size=4, **kwargs)
    torch.manual_seed(3)
    assert ours(text=CHATS, batch_size=4, **kwargs) == first


@pytest.mark.slow
def test_inductor_compiled_decoding_matches_reference(folder, pair):
    reference, _ = pair
    ours = pipejit.pipeline(TASK, model=folder, compile=True)
    assert ours(text=CHATS, batch_size=4, **GREEDY) == reference(text=CHATS, **GREEDY)
    assert ours.stats()["compile_failed"] is None
