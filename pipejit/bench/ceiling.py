"""The machine's ceiling: the fastest GEMM any backend reachable from here gets on this CPU.

A share of torch's default matmul alone would flatter whoever beats a slow
library (MKL on an AMD CPU reaches less than half of what oneDNN does), so every
backend is probed on the same fp32 GEMM (a distilbert-size linear: 2048x768 by
768x3072) and the best one sets the ceiling: torch's matmul (MKL on x86),
``F.linear``, MKL's prepacked linear (which inductor's frozen graphs call), oneDNN
through ``torch.utils.mkldnn.to_mkldnn`` and through its prepacked
``mkldnn._linear_pointwise``, numpy's BLAS, and ONNX Runtime's MLAS when installed.
MKL runs as pipejit leaves it: on an AMD CPU with Intel's kernels
(``pipejit.engine.mkl_kernels``), which the reports name. On a CPU with bf16 instructions
(avx512_bf16, AMX) the bf16 backends are probed too, for the bf16 opt-in's own ceiling.
Backends are probed in alternation, several rounds, and each keeps its best round: a
shared machine only ever makes a backend slower than it is. A backend whose threads spin
after its calls is followed by a pause (``SPINS_AFTER``), so that the backend timed next,
or the engine timed after the probe, gets the cores to itself.

``python -m pipejit.bench.ceiling --shape 48x384x1536`` probes other shapes: a single
sentence's GEMMs have a few dozen rows, where the backends differ more than on the
ceiling's 2048 (``pipejit/bench/results/*-small-gemms.md``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pipejit.engine import mkl_kernels
from pipejit.engine.cpu_path import bf16_supported, cpu_flags

GEMM_SHAPE = (2048, 768, 3072)  # rows, inner, outputs
# seconds to wait after a backend whose worker threads keep spinning once a call returns:
# numpy's OpenBLAS, for about 0.1-0.15 s (on a 2-core AMD EPYC, Zen 3, torch's GEMM started
# right after one ran at about half its rate; 0.15 s after, at 95%): there, without the
# pause, oneDNN's two backends probed next had medians of 95 and 109 GFLOP/s, with it 106
# and 130 (four probes each, interleaved)
SPINS_AFTER = {"numpy": 0.25}


@dataclass
class Ceiling:
    """GFLOP/s per backend and dtype; the best fp32 backend is the ceiling."""

    gflops: dict[str, dict[str, float]] = field(default_factory=dict)  # dtype -> backend -> rate
    flags: list[str] = field(default_factory=list)
    shape: tuple[int, int, int] = GEMM_SHAPE  # rows, inner, outputs

    def best(self, dtype: str = "float32") -> tuple[str, float]:
        """(backend, GFLOP/s) of the fastest backend of ``dtype``."""
        rates = self.gflops.get(dtype, {})
        if not rates:
            raise ValueError(f"no {dtype} GEMM was probed")
        backend = max(rates, key=rates.__getitem__)
        return backend, rates[backend]

    def to_dict(self) -> dict:
        out: dict = {"shape": list(self.shape), "flags": self.flags, "gflops": self.gflops}
        for dtype in self.gflops:
            backend, rate = self.best(dtype)
            out[f"best_{dtype}"] = {"backend": backend, "gflops": rate}
        return out


def probe(
    rounds: int = 3,
    repeats: int = 4,
    bf16: bool | None = None,
    shape: tuple[int, int, int] = GEMM_SHAPE,
) -> Ceiling:
    """Every backend's rate on a GEMM of ``shape``, ``rounds`` alternating rounds of
    ``repeats`` calls each."""
    flags = cpu_flags()
    backends = {"float32": fp32_backends(shape)}
    if bf16_supported(flags) if bf16 is None else bf16:
        backends["bfloat16"] = bf16_backends(shape)
    rows, inner, outputs = shape
    work = 2 * rows * inner * outputs
    best: dict[str, dict[str, float]] = {dtype: {} for dtype in backends}
    with torch.inference_mode():
        for _ in range(rounds):
            for dtype, calls in backends.items():
                for name, call in calls.items():
                    rate = work / _seconds_per_call(call, repeats) / 1e9
                    best[dtype][name] = max(rate, best[dtype].get(name, 0.0))
                    if name in SPINS_AFTER:
                        time.sleep(SPINS_AFTER[name])
    return Ceiling(gflops=best, flags=flags, shape=shape)


def merge(probes: list[Ceiling]) -> Ceiling:
    """Several probes of one run as one: each backend at its best probe."""
    if not probes:
        return Ceiling()
    gflops: dict[str, dict[str, float]] = {}
    for found in probes:
        for dtype, rates in found.gflops.items():
            for name, rate in rates.items():
                gflops.setdefault(dtype, {})[name] = max(rate, gflops.get(dtype, {}).get(name, 0))
    return Ceiling(gflops=gflops, flags=probes[0].flags, shape=probes[0].shape)


def fp32_backends(shape: tuple[int, int, int] = GEMM_SHAPE) -> dict[str, Callable[[], object]]:
    """The fp32 GEMM of ``shape`` through each backend this process can reach."""
    rows, inner, outputs = shape
    torch.manual_seed(0)
    x, linear = torch.randn(rows, inner), torch.nn.Linear(inner, outputs).eval()
    weight, bias = linear.weight.detach(), linear.bias.detach()
    weight_t = weight.t().contiguous()
    x_np, w_np = x.numpy(), weight_t.numpy()
    calls: dict[str, Callable[[], object]] = {
        "torch matmul": lambda: x @ weight_t,
        "torch F.linear": lambda: torch.nn.functional.linear(x, weight, bias),
        "numpy": lambda: x_np @ w_np,
    }
    if torch.backends.mkl.is_available():
        mkl_packed = torch.ops.mkl._mkl_reorder_linear_weight(weight, rows)
        calls["MKL prepacked linear"] = lambda: torch.ops.mkl._mkl_linear(
            x, mkl_packed, weight, bias, rows
        )
    if torch.backends.mkldnn.is_available():
        from torch.utils import mkldnn

        onednn = mkldnn.to_mkldnn(torch.nn.Linear(inner, outputs).eval())
        calls["oneDNN to_mkldnn Linear"] = lambda: onednn(x)
        packed = torch.ops.mkldnn._reorder_linear_weight(weight)
        calls["oneDNN prepacked linear"] = lambda: torch.ops.mkldnn._linear_pointwise(
            x, packed, bias, "none", [], ""
        )
    ort = _onnxruntime_matmul(x_np, w_np)
    if ort is not None:
        calls["ONNX Runtime MatMul (MLAS)"] = ort
    return calls


def bf16_backends(shape: tuple[int, int, int] = GEMM_SHAPE) -> dict[str, Callable[[], object]]:
    """The bf16 GEMM of ``shape`` through torch's kernels and oneDNN (AMX where the CPU
    has it)."""
    rows, inner, outputs = shape
    torch.manual_seed(0)
    x = torch.randn(rows, inner, dtype=torch.bfloat16)
    linear = torch.nn.Linear(inner, outputs).eval().to(torch.bfloat16)
    weight, bias = linear.weight.detach(), linear.bias.detach()
    calls: dict[str, Callable[[], object]] = {
        "torch F.linear bf16": lambda: torch.nn.functional.linear(x, weight, bias),
    }
    if torch.backends.mkldnn.is_available():
        from torch.utils import mkldnn

        onednn = mkldnn.to_mkldnn(torch.nn.Linear(inner, outputs).eval(), torch.bfloat16)
        calls["oneDNN to_mkldnn Linear bf16"] = lambda: onednn(x)
    return calls


def _onnxruntime_matmul(a: np.ndarray, b: np.ndarray) -> Callable[[], object] | None:
    """ONNX Runtime's MatMul on ``a @ b`` (no spinning threads), or None when not installed."""
    try:
        import onnx
        import onnxruntime
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "gemm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, list(a.shape))],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [a.shape[0], b.shape[1]])],
        initializer=[numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)
    session = onnxruntime.InferenceSession(
        onnx._serialize(model) if hasattr(onnx, "_serialize") else model.SerializeToString(),
        quiet_session_options(),
        providers=["CPUExecutionProvider"],
    )
    return lambda: session.run(None, {"a": a})


def quiet_session_options():
    """ONNX Runtime session options whose thread pools sleep instead of spinning between
    calls, so that interleaved engines do not pay for each other's idle threads."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def _seconds_per_call(call: Callable[[], object], repeats: int) -> float:
    call()
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - start) / repeats


def describe(ceiling: Ceiling) -> str:
    """One line: the CPU's instruction sets and each dtype's best backend."""
    parts = [f"CPU flags: {', '.join(ceiling.flags) or 'unknown'}"]
    for dtype in ceiling.gflops:
        backend, rate = ceiling.best(dtype)
        parts.append(f"{dtype} ceiling {rate:.0f} GFLOP/s ({backend})")
    return "; ".join(parts)


def markdown(probes: list[Ceiling], cpu: str, date: str) -> str:
    """Each probe as a table: every backend's GFLOP/s, best first, per dtype."""
    lines = [
        f"# GEMM ceiling, {date}, {cpu}",
        "",
        f"`python -m pipejit.bench.ceiling`: {torch.get_num_threads()} threads, backends "
        f"alternating, each its best round. MKL's GEMM kernels: {mkl_kernels.state}.",
    ]
    for found in probes:
        rows, inner, outputs = found.shape
        lines += [
            "",
            f"## {rows}x{inner} by {inner}x{outputs}",
            "",
            describe(found) + ".",
            "",
            "| dtype | backend | GFLOP/s |",
            "|:--|:--|--:|",
        ]
        for dtype, rates in found.gflops.items():
            for name, rate in sorted(rates.items(), key=lambda item: -item[1]):
                lines.append(f"| {dtype} | {name} | {rate:.0f} |")
    return "\n".join(lines) + "\n"


def gemm_shape(text: str) -> tuple[int, int, int]:
    """``ROWSxINNERxOUTPUTS`` (``48x384x1536``) as a shape."""
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(
            f"a GEMM shape is ROWSxINNERxOUTPUTS of positive integers, got {text!r}"
        )
    rows, inner, outputs = (int(p) for p in parts)
    return rows, inner, outputs


def repeats_for(shape: tuple[int, int, int]) -> int:
    """Calls per timed round: about as much work as 4 calls of the ceiling's own GEMM, so a
    small GEMM's round is not a handful of microseconds."""
    work, ceiling_work = np.prod(shape, dtype=float), np.prod(GEMM_SHAPE, dtype=float)
    return int(min(2000, max(4, round(4 * ceiling_work / work))))


def main(argv: list[str] | None = None) -> int:
    import json

    from pipejit.bench.report import machine

    parser = argparse.ArgumentParser(prog="python -m pipejit.bench.ceiling", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--shape",
        type=gemm_shape,
        action="append",
        help="ROWSxINNERxOUTPUTS, repeatable (default: the ceiling's own, "
        + "x".join(map(str, GEMM_SHAPE))
        + ")",
    )
    parser.add_argument("--out", type=Path, help="folder for ceiling.json and ceiling.md")
    args = parser.parse_args(argv)
    shapes = args.shape or [GEMM_SHAPE]
    probes = [probe(rounds=args.rounds, repeats=repeats_for(s), shape=s) for s in shapes]
    host = machine("cpu")
    table = markdown(probes, host["cpu"], host["date"])
    print(table)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        summary = {"machine": host, "probes": [found.to_dict() for found in probes]}
        (args.out / "ceiling.json").write_text(json.dumps(summary, indent=2))
        (args.out / "ceiling.md").write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
