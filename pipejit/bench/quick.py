"""The quick benchmark of one text task: the case ``gpu-check`` runs per dtype and graphs."""

from __future__ import annotations

from pipejit.bench.measure import Case, run_case


def run_quick(
    task: str,
    model: str,
    texts: list[str],
    batch_sizes: list[int],
    repeats: int = 3,
    compile: bool = True,
    device: str = "cpu",
    dtype: str | None = None,
    cuda_graphs: bool | str = "auto",
    log=print,
) -> dict:
    """Both engines on ``texts`` at each batch size (see ``pipejit.bench.measure``)."""
    case = Case(f"{task} x sentences", task, model, texts, {"truncation": True})
    return run_case(
        case,
        batch_sizes,
        repeats=repeats,
        device=device,
        dtype=dtype,
        compile=compile,
        cuda_graphs=cuda_graphs,
        log=log,
    )
