"""Benchmark reports: results.json, a markdown table per case, a throughput plot, comparisons."""

from __future__ import annotations

import json
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import torch
import transformers

import pipejit
from pipejit.engine.cpu_path import cpu_flags

ENGINES = ("transformers", "pipejit")  # every case has these; some add alternatives


def engines_of(case: dict) -> list[str]:
    """The engines a case ran, in the order it ran them (older results: the two)."""
    return list(case.get("engines", ENGINES))


def machine(device: str) -> dict:
    """What ran the benchmark: processor, accelerator, versions, git commit, date."""
    info = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "device": device,
        "cpu": _cpu_model(),
        "cpu_flags": cpu_flags(),
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
    for case in results["cases"]:
        lines += ["", f"## {case['case']}", ""]
        if not case.get("supported", True):
            lines.append(f"Not supported in this build: {case['reason']}")
            continue
        lines += _case_table(case)
    if results.get("kernels"):
        lines += [
            "",
            "## kernels",
            "",
            "| kernel | impl | batch | row length | dtype | ms | GB/s |",
        ]
        lines.append("|:--|:--|--:|--:|:--|--:|--:|")
        for r in results["kernels"]:
            lines.append(
                f"| {r['kernel']} | {r['impl']} | {r['batch']} | {r['row_length']} | "
                f"{r['dtype']} | {r['ms']:.3f} | {r.get('gb_per_s', 0):.1f} |"
            )
    return "\n".join(lines) + "\n"


def _case_table(case: dict) -> list[str]:
    engines = engines_of(case)
    shares = "gemm_flops" in case
    header = "| batch |" + "".join(f" {e} items/s |" for e in engines)
    header += "".join(f" {e} vs transformers |" for e in engines[1:])
    rule = "|--:|" + "--:|" * (2 * len(engines) - 1)
    if shares:
        header += "".join(f" {e} % ceiling |" for e in engines)
        rule += "--:|" * len(engines)
    header += " warmup (s) | parity |"
    rule += "--:|:--|"
    lines = [header, rule]
    for batch, runs in case["runs"].items():
        base = runs["transformers"]["items_per_s"]
        row = f"| {batch} |" + "".join(f" {runs[e]['items_per_s']:.1f} |" for e in engines)
        row += "".join(f" {runs[e]['items_per_s'] / base:.2f}x |" for e in engines[1:])
        if shares:
            row += "".join(f" {runs[e].get('ceiling_share', 0):.0%} |" for e in engines)
        row += " " + " / ".join(f"{runs[e]['warmup_seconds']:.1f}" for e in engines[1:]) + " |"
        failed = [e for e in engines if not runs[e]["parity"]]
        row += f" {'FAILED: ' + ', '.join(failed) if failed else 'ok'} |"
        lines.append(row)
    latency = case["latency_ms"]
    lines += [
        "",
        "Batch-1 latency p50 / p90 / p99: "
        + "; ".join(
            f"{e} {latency[e]['p50']:.1f} / {latency[e]['p90']:.1f} / {latency[e]['p99']:.1f} ms"
            for e in engines
            if e in latency
        )
        + f". Padding ratio {case['padding_ratio']:.1%}; peak memory {case['peak_memory_mb']:.0f}"
        " MB (process)."
        + (f" {ceiling_sentence(case['ceiling'])}" if "ceiling" in case else "")
        + (f" Ceiling {case['gemm_flops'] / 1e9:.0f} GFLOP/s (fp32 GEMM probe, this run)."
           if shares and "ceiling" not in case else "")
        + _agreement_sentence(case)
        + (" **FAILED: an engine's outputs differ from transformers.**" if case["failed"] else ""),
    ]  # fmt: skip
    return lines


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
        if "agreement" in runs[e]
    ]
    if not found:
        return ""
    labels = min(a["labels_equal"] for _, a in found)
    cosine = min(a["min_cosine"] for _, a in found)
    return (
        f" bf16 against fp32: at least {labels:.1%} labels equal, embedding cosine >= {cosine:.5f}."
    )


def plot(results: dict, path: Path) -> bool:
    """Items/s against batch size, one line per engine, a panel per case."""
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
        batches = [int(b) for b in case["runs"]]
        for engine in engines_of(case):
            rates = [case["runs"][b][engine]["items_per_s"] for b in case["runs"]]
            low = [case["runs"][b][engine]["spread"][0] for b in case["runs"]]
            high = [case["runs"][b][engine]["spread"][1] for b in case["runs"]]
            ax.plot(batches, rates, marker="o", label=engine)
            ax.fill_between(batches, low, high, alpha=0.2)
        ax.set_xscale("log", base=2)
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.set_xlabel("batch size")
        ax.set_ylabel("items/s")
        ax.set_title(case["case"], fontsize=9)
        ax.set_ylim(bottom=0)
        ax.legend()
    m = results["machine"]
    fig.suptitle(f"pipejit-bench {results['suite']}: {m.get('gpu') or m['cpu']}, {m['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


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
                if engine not in other["runs"][batch]:
                    continue
                x, y = runs[engine]["items_per_s"], other["runs"][batch][engine]["items_per_s"]
                lines.append(
                    f"| {case['case']} | {batch} | {engine} | {x:.1f} | {y:.1f} | {y / x:.2f}x |"
                )
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
