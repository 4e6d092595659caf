"""The ``smoke`` marker: one fast parity test per task module (`pytest tests/tasks -m smoke`).

The second CI leg (scripts/ci_min_versions.sh) runs this selection on the GPU machines'
package versions. A task module without an entry, or an entry naming no collected test,
is a collection error whenever ``smoke`` is selected, so the selection keeps covering
every task.

On transformers 5.17 (the GPU machines' version, the lowest pyproject admits) five smoke tests
are strict expected failures, each with what 5.17 lacks (``GAPS_5_17``): they are the
findings of the second CI leg, and a fix turns them into failures to remove from the list.
"""

import pytest
import transformers

# test module -> the one parity test (with its parameter id, if any) run as the smoke test
SMOKE = {
    "test_audio_classification": "test_one_clip",
    "test_depth_estimation": "test_single_image",
    "test_document_question_answering": "test_one_document_in_every_call_form",
    "test_feature_extraction": "test_one_vector_per_real_token[4]",
    "test_fill_mask": "test_mixed_lengths[4]",
    "test_first_token": "test_first_position_only_answers_as_transformers[bert]",
    "test_image_classification": "test_single_image",
    "test_image_feature_extraction": "test_single_image",
    "test_image_segmentation": "test_semantic_single_and_batched",
    "test_image_text_to_text": "test_single_prompt_with_an_image",
    "test_mask_generation": "test_single_image",
    "test_object_detection": "test_single_image",
    "test_speech_recognition_ctc": "test_one_clip",
    "test_speech_recognition_seq2seq": "test_single_clip_and_dict_input",
    "test_table_question_answering": "test_one_table_one_query_in_every_call_form[aggregation]",
    "test_text_classification": "test_mixed_lengths_keep_input_order[8]",
    "test_text_generation": "test_greedy_batched_matches_batch_one_reference[gpt2]",
    "test_texts_in_one_call": "test_a_window_of_texts_costs_one_tokenizer_call_and_matches"
    "_transformers[text-classification]",
    "test_text_to_audio": "test_single_text",
    "test_token_classification": "test_ignore_labels_and_batch_sizes[8]",
    "test_video_classification": "test_single_file_and_each_parameter",
    "test_zero_shot_audio_classification": "test_one_clip",
    "test_zero_shot_classification": "test_mixed_lengths[8]",
    "test_zero_shot_image_classification": "test_single_image_positional_labels_and_path",
    "test_zero_shot_object_detection": "test_per_image_labels_dicts_and_label_strings[owlvit]",
}
_GENERATE = (
    "transformers 5.17 lacks _prepare_generate_kwargs; pipejit.compat falls back to the "
    "pipeline's generation_config, but greedy tokens still differ from 5.17's own pipeline"
)
GAPS_5_17 = {
    "test_text_generation": _GENERATE,
    "test_image_text_to_text": _GENERATE,
    "test_text_to_audio": "transformers 5.17's own text-to-audio preprocess, which pipejit "
    "reuses, calls BatchEncoding.to(dtype=...), which 5.17 does not accept",
    "test_image_segmentation": "transformers 5.17 loads no Segformer image processor "
    "without torchvision",
}
# modules of tests/tasks that test shared input helpers, not a task
NOT_TASKS = {"test_audio_inputs", "test_image_inputs", "test_lm_head_split"}


def pytest_collection_modifyitems(config, items):
    marked = set()
    modules = set()
    for item in items:
        module = item.path.stem
        if item.path.parent.name != "tasks" or module in NOT_TASKS:
            continue
        modules.add(module)
        if SMOKE.get(module) == item.name:
            item.add_marker(pytest.mark.smoke)
            marked.add(module)
            if module in GAPS_5_17 and transformers.__version__.startswith("5.17."):
                item.add_marker(pytest.mark.xfail(reason=GAPS_5_17[module], strict=True))
    if "smoke" not in (config.option.markexpr or ""):
        return
    missing = sorted(m for m in modules if m not in SMOKE)
    stale = sorted(m for m in modules & SMOKE.keys() if m not in marked)
    if missing or stale:
        raise pytest.UsageError(
            "tests/tasks/conftest.py SMOKE: "
            + (f"no smoke test for {missing}; " if missing else "")
            + (f"entries naming no collected test in {stale}" if stale else "")
        )
