"""Image classification, transformers against pipejit: items/s on mixed-size images.

A vit-base-size ViT with random weights (what a real one costs) and 1000 labels,
its default image processor, and mixed-size random images (decoded PIL images,
so both engines pay the same image processing). For every batch size the
engines' repeats are interleaved, since a shared machine's speed drifts, and
every output is checked against transformers at batch size 1.

    python -m pipejit.bench.image_classification --images 64 --batch-sizes 1 4 8 16
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from PIL import Image

import pipejit
from pipejit.bench.parity import outputs_match


def vit_base_folder(folder: Path, seed: int = 0) -> str:
    """A vit-base-patch16-224-size classifier with random weights and its processor."""
    torch.manual_seed(seed)
    labels = {i: f"class_{i}" for i in range(1000)}
    config = transformers.ViTConfig(id2label=labels, label2id={v: k for k, v in labels.items()})
    transformers.ViTForImageClassification(config).eval().save_pretrained(folder)
    transformers.ViTImageProcessor().save_pretrained(folder)
    return str(folder)


def mixed_images(count: int, seed: int = 0, low: int = 96, high: int = 640) -> list[Image.Image]:
    """RGB images of random sizes and aspect ratios."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        height, width = (int(v) for v in rng.integers(low, high, size=2))
        pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        out.append(Image.fromarray(pixels, mode="RGB"))
    return out


def run(images: list[Image.Image], batch_sizes: list[int], repeats: int, compile: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = vit_base_folder(Path(tmp))
        engines = {
            "transformers": transformers.pipeline("image-classification", model=folder),
            "pipejit": pipejit.pipeline("image-classification", model=folder, compile=compile),
        }
        expected = engines["transformers"](images, batch_size=1)
        print(f"torch threads {torch.get_num_threads()}, {len(images)} images, compile={compile}")
        for batch_size in batch_sizes:
            seconds: dict[str, list[float]] = {name: [] for name in engines}
            for name, engine in engines.items():  # warm up (and compile) untimed
                start = time.perf_counter()
                got = engine(images, batch_size=batch_size)
                warm = time.perf_counter() - start
                match = outputs_match(got, expected)
                print(
                    f"  {name} bs={batch_size}: warmup {warm:.1f} s, matches transformers {match}"
                )
            for _ in range(repeats):
                for name, engine in engines.items():
                    start = time.perf_counter()
                    engine(images, batch_size=batch_size)
                    seconds[name].append(time.perf_counter() - start)
            rates = {name: len(images) / statistics.median(s) for name, s in seconds.items()}
            print(
                f"batch_size={batch_size}: "
                + ", ".join(f"{name} {rate:.2f} items/s" for name, rate in rates.items())
                + f", pipejit/transformers {rates['pipejit'] / rates['transformers']:.2f}x"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args(argv)
    run(mixed_images(args.images), args.batch_sizes, args.repeats, not args.no_compile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
