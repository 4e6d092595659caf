"""Benchmark reports: results.json, a markdown table per case, a throughput plot, comparisons.

Every case has one shape (``pipejit.bench.results``): engines at each setting of
an axis (batch size, callers, clients, a kernel's shape), rates against a
baseline engine (transformers unless the case names another).
"""

from __future__ import annotations

import json
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import torch
import transformers

import pipejit
from pipejit.engine import arena_cache, mkl_kernels
from pipejit.engine.cpu_path import cpu_flags

ENGINES = ("transformers", "pipejit")  # every task case has these; some add alternatives


def engines_of(case: dict) -> list[str]:
    """The engines a case ran, in the order it ran them (older results: the two)."""
    return list(case.get("engines", ENGINES))


def baseline_of(case: dict) -> str:
    """The engine the others are divided by: transformers unless the case says."""
    return case.get("baseline", "transformers")


def machine(device: str) -> dict:
    """What ran the benchmark: processor, accelerator, versions, git commit, date."""
    info = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "device": device,
        "cpu": _cpu_model(),
        "cpu_flags": cpu_flags(),
        "mkl_kernels": mkl_kernels.state,
        "python_arenas": arena_cache.state,
        "cpu_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "pipejit": pipejit.__version__,
        "git_commit": _git_commit(),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def write(results: dict, folder: Path) -> list[Path]:
    """``results.json``, ``results.md`` and ``throughput.png`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=2, default=str))
    return [folder / "results.json", *rebuild(folder)]


def rebuild(folder: Path) -> list[Path]:
    """The table and the plot again, from ``folder/results.json``."""
    results = json.loads((folder / "results.json").read_text())
    (folder / "results.md").write_text(markdown(results))
    written = [folder / "results.md"]
    if plot(results, folder / "throughput.png"):
        written.append(folder / "throughput.png")
    return written


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"# pipejit-bench {results['suite']}, {m['date']}, {m.get('gpu') or m['cpu']}",
        "",
        f"`{results['command']}`; torch {m['torch']}, transformers {m['transformers']}, "
        f"dtype {results['dtype'] or 'float32'}, commit {m['git_commit']}. Median of "
        f"{results['repeats']} interleaved repeats; warmup (the first pass) timed apart.",
    ]
    if m.get("cpu_flags") is not None:
        lines += ["", f"CPU instruction sets: {', '.join(m['cpu_flags']) or 'none of note'}."]
    if m.get("mkl_kernels") is not None and not m["device"].startswith("cuda"):
        lines += ["", f"MKL's GEMM kernels: {m['mkl_kernels']}."]
    if m.get("python_arenas") is not None:
        lines += ["", f"Python's object arenas: {m['python_arenas']}."]
    for case in results["cases"]:
        lines += ["", f"## {case['case']}", ""]
        if not case.get("supported", True):
            lines.append(f"Not supported in this build: {case['reason']}")
            continue
        lines += _case_table(case)
    return "\n".join(lines) + "\n"


def _case_table(case: dict) -> list[str]:
    engines, base = engines_of(case), baseline_of(case)
    others = [e for e in engines if e != base]
    cells = [run for runs in case["runs"].values() for run in runs.values()]
    rate = f"{case.get('items_name', 'items')}/s"
    columns: list[tuple[str, str, object]] = [(f"{e} {rate}", e, _rate) for e in engines]
    columns += [(f"{e} vs {base}", e, _ratio(base)) for e in others]
    if "unit" in case:
        unit = f"{case['unit']}/s"
        columns += [(f"{e} {unit}", e, _figure("units_per_s")) for e in engines]
    if "gemm_flops" in case:
        columns += [(f"{e} % ceiling", e, _share) for e in engines]
    if any("latency_ms" in run for run in cells):
        columns += [(f"{e} p50 / p99 ms", e, _latency) for e in engines]
    for key in case.get("columns", []):
        columns += [(f"{e} {key}", e, _figure(key)) for e in engines]
    header = f"| {case.get('axis', 'batch')} |" + "".join(f" {c[0]} |" for c in columns)
    rule = "|--:|" + "--:|" * len(columns)
    warmups = any("warmup_seconds" in run for run in cells)
    if warmups:
        header += " warmup (s) |"
        rule += "--:|"
    lines = [header + " parity |", rule + ":--|"]
    for setting, runs in case["runs"].items():
        row = f"| {setting} |"
        for _, engine, cell in columns:
            row += f" {cell(runs, engine) if engine in runs else '-'} |"
        if warmups:
            warm = [f"{runs[e]['warmup_seconds']:.1f}" for e in others if e in runs]
            row += f" {' / '.join(warm) or '-'} |"
        lines.append(row + f" {_parity_cell(runs)} |")
    sentences = [_latency_sentence(case, engines)] if "latency_ms" in case else []
    if "first_calls_seconds" in case:
        sentences.append(
            f"pipejit's first calls (its graphs compile) took {case['first_calls_seconds']:.1f} s"
            " before the timed passes (its batch graph's beside ONNX Runtime's export)."
        )
    if "pipejit_stage_ms" in case:
        sentences.append(stage_sentence(case["pipejit_stage_ms"]))
    if "pipejit_forwards_a_pass" in case:
        sentences.append(forwards_sentence(case["pipejit_forwards_a_pass"], case.get("items")))
    if "padding_ratio" in case:
        sentences.append(f"Padding ratio {case['padding_ratio']:.1%}.")
    if "peak_memory_mb" in case:
        sentences.append(f"Peak memory {case['peak_memory_mb']:.0f} MB (process).")
    if "ceiling" in case:
        sentences.append(ceiling_sentence(case["ceiling"]))
    elif "gemm_flops" in case:
        ceiling = case["gemm_flops"] / 1e9
        sentences.append(f"Ceiling {ceiling:.0f} GFLOP/s (fp32 GEMM probe, this run).")
    if "unit" in case:
        sentences.append(f"One pass makes {case['units']:.1f} {case['unit']}.")
    sentences += case.get("notes", [])
    agreement = _agreement_sentence(case).strip()
    sentences += [agreement] if agreement else []
    if case["failed"]:
        sentences.append(f"**FAILED: an engine's outputs differ from {base}'s.**")
    return lines + ["", " ".join(sentences)]


def _rate(runs: dict, engine: str) -> str:
    return f"{runs[engine]['items_per_s']:.1f}"


def _ratio(base: str):
    def cell(runs: dict, engine: str) -> str:
        if base not in runs:
            return "-"
        return f"{runs[engine]['items_per_s'] / runs[base]['items_per_s']:.2f}x"

    return cell


def _share(runs: dict, engine: str) -> str:
    return f"{runs[engine].get('ceiling_share', 0):.0%}"


def _latency(runs: dict, engine: str) -> str:
    latency = runs[engine].get("latency_ms")
    return f"{latency['p50']:.1f} / {latency['p99']:.1f}" if latency else "-"


def _figure(key: str):
    def cell(runs: dict, engine: str) -> str:
        value = runs[engine].get(key)
        return "-" if value is None else f"{value:.3g}"

    return cell


def _parity_cell(runs: dict) -> str:
    failed = [e for e, run in runs.items() if run.get("parity") is False]
    if failed:
        return "FAILED: " + ", ".join(failed)
    return "ok" if any(run.get("parity") for run in runs.values()) else "not checked"


def _latency_sentence(case: dict, engines: list[str]) -> str:
    latency = case["latency_ms"]
    return (
        "Batch-1 latency p50 / p90 / p99: "
        + "; ".join(
            f"{e} {latency[e]['p50']:.1f} / {latency[e]['p90']:.1f} / {latency[e]['p99']:.1f} ms"
            for e in engines
            if e in latency
        )
        + "."
    )


def forwards_sentence(forwards: dict, items: int | None) -> str:
    """The model forwards pipejit ran a timed pass at each batch size: what a batch size
    became once the length buckets cut the batches."""
    sizes = list(forwards)
    counts = " / ".join(f"{forwards[size]:g}" for size in sizes)
    rows = f" for {items} items" if items else ""
    return f"pipejit's forwards a pass at batch {' / '.join(map(str, sizes))}: {counts}{rows}."


def stage_sentence(stage_ms: dict) -> str:
    """pipejit's host milliseconds a timed pass in each stage of its calls, per batch size
    (``pipejit.engine.stats.StageClock``)."""
    sizes = list(stage_ms)
    stages = list(next(iter(stage_ms.values())))
    cells = "; ".join(
        f"{stage} {' / '.join(f'{stage_ms[size][stage]:.1f}' for size in sizes)}"
        for stage in stages
    )
    return (
        f"pipejit's milliseconds a pass by stage at batch {' / '.join(map(str, sizes))}: {cells}."
    )


def ceiling_sentence(ceiling: dict) -> str:
    """Each dtype's best GEMM backend, the ceiling shares are of the fp32 one."""
    parts = [
        f"{dtype} {best['gflops']:.0f} GFLOP/s ({best['backend']})"
        for dtype, best in ((k[5:], v) for k, v in ceiling.items() if k.startswith("best_"))
    ]
    return "Ceiling (best GEMM backend, this run): " + "; ".join(parts) + "."


def _agreement_sentence(case: dict) -> str:
    found = [
        (batch, runs[e]["agreement"])
        for batch, runs in case["runs"].items()
        for e in engines_of(case)
        if "agreement" in runs.get(e, {})
    ]
    if not found:
        return ""
    labels = min(a["labels_equal"] for _, a in found)
    cosine = min(a["min_cosine"] for _, a in found)
    return (
        f" bf16 against fp32: at least {labels:.1%} labels equal, embedding cosine >= {cosine:.5f}."
    )


def plot(results: dict, path: Path) -> bool:
    """Items/s against each case's settings, one line per engine, a panel per case."""
    cases = [c for c in results["cases"] if c.get("supported", True) and c["runs"]]
    if not cases:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, len(cases))
    rows = -(-len(cases) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 4 * rows), squeeze=False)
    for ax in axes.flat[len(cases) :]:
        ax.set_visible(False)
    for ax, case in zip(axes.flat, cases):
        _panel(ax, case)
    m = results["machine"]
    fig.suptitle(f"pipejit-bench {results['suite']}: {m.get('gpu') or m['cpu']}, {m['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _panel(ax, case: dict) -> None:
    """One case: numeric settings on a log2 axis, others (kernel shapes) side by side."""
    settings = list(case["runs"])
    numeric = all(str(s).isdigit() for s in settings)
    xs = [int(s) for s in settings] if numeric else list(range(len(settings)))
    rates = []
    for engine in engines_of(case):
        cells = [case["runs"][s].get(engine) for s in settings]
        points = [(x, c) for x, c in zip(xs, cells) if c is not None]
        if not points:
            continue
        x = [p[0] for p in points]
        ax.plot(x, [c["items_per_s"] for _, c in points], marker="o", label=engine)
        low, high = ([c["spread"][i] for _, c in points] for i in (0, 1))
        ax.fill_between(x, low, high, alpha=0.2)
        rates += [c["items_per_s"] for _, c in points]
    if numeric:
        ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(s) for s in settings], rotation=0 if numeric else 60, fontsize=7)
    ax.set_xlabel(case.get("axis", "batch size"))
    ax.set_ylabel(f"{case.get('items_name', 'items')}/s")
    if rates and min(rates) > 0 and max(rates) / min(rates) > 100:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.set_title(case["case"], fontsize=9)
    ax.legend(fontsize=7)


def compare(a: dict, b: dict) -> str:
    """Two runs side by side: items/s of each engine per case and batch, and B / A."""
    lines = [
        f"A: {a['machine']['date']} {a['machine'].get('gpu') or a['machine']['cpu']} "
        f"({a['machine']['git_commit']})",
        f"B: {b['machine']['date']} {b['machine'].get('gpu') or b['machine']['cpu']} "
        f"({b['machine']['git_commit']})",
        "",
        "| case | batch | engine | A items/s | B items/s | B / A |",
        "|:--|--:|:--|--:|--:|--:|",
    ]
    cases_b = {c["case"]: c for c in b["cases"] if c.get("supported", True)}
    for case in a["cases"]:
        other = cases_b.get(case["case"])
        if other is None or not case.get("supported", True):
            continue
        for batch, runs in case["runs"].items():
            if batch not in other["runs"]:
                continue
            for engine in engines_of(case):
                if engine not in runs or engine not in other["runs"][batch]:
                    continue
                x, y = runs[engine]["items_per_s"], other["runs"][batch][engine]["items_per_s"]
                lines.append(
                    f"| {case['case']} | {batch} | {engine} | {x:.1f} | {y:.1f} | {y / x:.2f}x |"
                )
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    return cpu_name(text) or platform.processor() or platform.machine()


def cpu_name(cpuinfo: str) -> str:
    """The first CPU's name in ``/proc/cpuinfo`` text, with its family and model numbers,
    which tell the generation where the name does not (a virtual machine's "AMD EPYC" was a
    Zen 3 with AVX2 one day, a Zen 4 with AVX-512, family 25 model 17, another); "" when
    the text names none."""
    first = cpuinfo.split("\n\n", 1)[0]
    fields = {
        key.strip(): value.strip()
        for key, _, value in (line.partition(":") for line in first.splitlines())
    }
    name = fields.get("model name", "")
    if name and "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def _git_commit() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"
