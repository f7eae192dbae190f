"""The ``datarax`` command: ``datarax version`` and ``datarax demo``.

Example:
    >>> main(["demo", "--records", "256", "--batch-size", "64", "--epochs", "1",
    ...       "--no-progress"])  # doctest: +ELLIPSIS
    datarax demo: 256 synthetic images 28x28x1, batch size 64, 1 epoch, seed 0, on ...
    records processed: 256
    ...
    0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from datarax import __version__, from_source
from datarax.core.batch import Batch
from datarax.core.element import Element
from datarax.core.errors import DataraxError
from datarax.core.progress import ProgressBar
from datarax.dag.nodes import OperatorNode
from datarax.dag.pipeline import Pipeline
from datarax.operators import ElementOperator, ElementOperatorConfig
from datarax.sources import MemorySource, MemorySourceConfig, synthetic_images


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Args:
        argv: The arguments after the program name (default: ``sys.argv[1:]``).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.handler(args)
    except DataraxError as error:
        print(f"datarax: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndatarax: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog="datarax",
        description="Deterministic, resumable, XLA-compiled data pipelines for JAX.",
    )
    parser.add_argument("--version", action="version", version=f"datarax {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    version = commands.add_parser(
        "version", help="print the versions of datarax and its dependencies and the JAX platform"
    )
    version.set_defaults(handler=_run_version)

    demo = commands.add_parser(
        "demo",
        help="run an image pipeline over a built-in synthetic dataset",
        description="Shuffle, normalise and randomly flip synthetic images; report the "
        "throughput and check the output.",
    )
    demo.add_argument(
        "--records",
        type=_positive_int,
        default=10_000,
        metavar="N",
        help="images in the dataset (default: %(default)s)",
    )
    demo.add_argument(
        "--batch-size",
        type=_positive_int,
        default=128,
        metavar="B",
        help="records per batch (default: %(default)s)",
    )
    demo.add_argument(
        "--epochs",
        type=_positive_int,
        default=3,
        metavar="E",
        help="passes over the dataset (default: %(default)s)",
    )
    demo.add_argument(
        "--seed",
        type=_non_negative_int,
        default=0,
        metavar="S",
        help="seeds the data, the shuffle and the flips (default: %(default)s)",
    )
    demo.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="do not show the progress bar on stderr",
    )
    demo.set_defaults(handler=_run_demo)
    return parser


# -- version ---------------------------------------------------------------------------
def _run_version(args: argparse.Namespace) -> int:
    devices = jax.devices()
    kinds = sorted({d.device_kind for d in devices})
    print(f"datarax {__version__}")
    print(f"jax {jax.__version__}")
    print(f"flax {flax.__version__}")
    print(f"numpy {np.__version__}")
    plural = "s" if len(devices) != 1 else ""
    print(f"platform {devices[0].platform} ({len(devices)} device{plural}: {', '.join(kinds)})")
    return 0


# -- demo ------------------------------------------------------------------------------
def normalize(element: Element) -> Element:
    """Scale the pixel values from [0, 255] to [0, 1]."""
    return element.update_data({"image": element.data["image"] / 255.0})


def random_flip(element: Element, key: jax.Array) -> Element:
    """Mirror the image left-right with probability 1/2."""
    image = element.data["image"]
    flip = jax.random.bernoulli(key, 0.5)
    return element.update_data({"image": jnp.where(flip, jnp.flip(image, axis=1), image)})


def build_demo_pipeline(
    data: dict[str, np.ndarray], *, batch_size: int, epochs: int, seed: int
) -> Pipeline:
    """Shuffled batches of ``data``, normalised to [0, 1] and randomly flipped."""
    source = MemorySource(MemorySourceConfig(), data=data)
    normalizer = ElementOperator(ElementOperatorConfig(), fn=normalize)
    flipper = ElementOperator(
        ElementOperatorConfig(stochastic=True, stream_name="augment"),
        fn=random_flip,
        rngs=nnx.Rngs(seed),
    )
    return (
        from_source(source, batch_size, shuffle=True, seed=seed, num_epochs=epochs)
        >> OperatorNode(normalizer)
        >> OperatorNode(flipper)
    )


@dataclass
class OutputCheck:
    """Checks the output batches against the source images.

    :meth:`add` keeps the range and mean of all output pixels (cheap, done while
    iterating) and holds on to the batches of ``check_epoch``; :meth:`finish` then
    counts the records of that epoch that came out mirrored. A record whose image
    equals its own mirror image is counted as ``symmetric`` and left out of the
    flipped fraction; one that matches neither is a ``mismatch``.
    """

    source_images: np.ndarray
    check_epoch: int
    minimum: float = float("inf")
    maximum: float = float("-inf")
    total: float = 0.0
    pixels: int = 0
    flipped: int = 0
    kept: int = 0
    symmetric: int = 0
    mismatches: int = 0
    _held: list[tuple[np.ndarray | None, Any]] = field(default_factory=list, repr=False)

    def add(self, batch: Batch) -> None:
        """Account for one output batch."""
        out = np.asarray(batch["image"])
        self.minimum = min(self.minimum, float(out.min()))
        self.maximum = max(self.maximum, float(out.max()))
        self.total += float(out.sum(dtype=np.float64))
        self.pixels += out.size
        if batch.epoch == self.check_epoch:
            self._held.append((batch.record_ids, batch["image"]))

    def finish(self) -> None:
        """Compare the held batches with the normalised source images."""
        for record_ids, image in self._held:
            out = np.asarray(image)
            src = self.source_images[record_ids] / np.float32(255.0)
            mirrored = src[:, :, ::-1]
            as_is = _close_per_record(out, src)
            as_mirror = _close_per_record(out, mirrored)
            distinct = ~_close_per_record(src, mirrored)
            self.flipped += int(np.sum(as_mirror & distinct))
            self.kept += int(np.sum(as_is & distinct))
            self.symmetric += int(np.sum(~distinct & as_is))
            self.mismatches += int(np.sum(~(as_is | as_mirror)))
        self._held.clear()

    @property
    def mean(self) -> float:
        """Mean output pixel value."""
        return self.total / self.pixels if self.pixels else float("nan")

    @property
    def flip_fraction(self) -> float:
        """Share of the records told apart that came out mirrored."""
        told_apart = self.flipped + self.kept
        return self.flipped / told_apart if told_apart else float("nan")


def _close_per_record(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.allclose`` for each record of two batches (axis 0)."""
    return np.isclose(a, b).reshape(len(a), -1).all(axis=1)


@dataclass
class DemoResult:
    """What :func:`run_demo` measured."""

    records: int
    image_shape: tuple[int, ...]
    batch_size: int
    epochs: int
    seed: int
    platform: str
    records_processed: int
    batches_processed: int
    elapsed_s: float
    first_batch_s: float
    check: OutputCheck
    state: dict[str, Any] = field(default_factory=dict)
    #: Records and seconds after the first epoch (every compilation done by then).
    steady_records: int = 0
    steady_s: float = 0.0

    @property
    def steady_throughput(self) -> float | None:
        """Records per second after the first epoch, or None for a one-epoch run."""
        return self.steady_records / self.steady_s if self.steady_s > 0 else None

    @property
    def throughput(self) -> float:
        """Records per second over the whole run."""
        return self.records_processed / self.elapsed_s if self.elapsed_s > 0 else float("inf")

    @property
    def ok(self) -> bool:
        """Whether the output passed the checks."""
        c = self.check
        return (
            c.mismatches == 0
            and c.minimum >= 0.0
            and c.maximum <= 1.0
            and self.records_processed == self.records * self.epochs
        )

    def summary(self) -> str:
        """The report printed by ``datarax demo``."""
        c = self.check
        shape = "x".join(str(d) for d in self.image_shape)
        plural = "s" if self.epochs != 1 else ""
        told_apart = c.flipped + c.kept
        lines = [
            f"datarax demo: {self.records} synthetic images {shape}, batch size "
            f"{self.batch_size}, {self.epochs} epoch{plural}, seed {self.seed}, on {self.platform}",
            f"records processed: {self.records_processed}",
            f"batches processed: {self.batches_processed}",
            f"epochs: {self.epochs}",
            f"elapsed: {self.elapsed_s:.3f} s",
            f"throughput: {self.throughput:.0f} elements/s (whole run, compilation included)",
            *(
                [f"throughput after the first epoch: {self.steady_throughput:.0f} elements/s"]
                if self.steady_throughput is not None
                else []
            ),
            f"time to first batch: {self.first_batch_s:.3f} s",
            f"output images: min {c.minimum:.4f}, max {c.maximum:.4f}, mean {c.mean:.4f}",
            f"flipped in last epoch: {c.flip_fraction:.4f} ({c.flipped} of {told_apart} "
            f"records; {c.symmetric} symmetric, {c.mismatches} mismatched)",
            f"iterator state: {json.dumps(self.state, sort_keys=True)}",
        ]
        return "\n".join(lines)


def run_demo(
    records: int = 10_000,
    batch_size: int = 128,
    epochs: int = 3,
    seed: int = 0,
    *,
    progress: bool = True,
) -> DemoResult:
    """Build the demo pipeline, iterate it to the end and check its output.

    The clock starts when iteration starts, so ``elapsed_s`` and ``first_batch_s``
    include the compilation of the pipeline but not the making of the dataset. The
    flip check runs after the clock stops, on the last epoch's output (held until
    then: as many bytes as the dataset).
    """
    data = synthetic_images(records, seed=seed)
    pipeline = build_demo_pipeline(data, batch_size=batch_size, epochs=epochs, seed=seed)
    check = OutputCheck(data["image"], check_epoch=pipeline.epoch_cursor + epochs - 1)
    processed = batches = 0
    first_batch = float("nan")
    first_epoch = pipeline.epoch_cursor
    steady_start = None
    steady_records = 0
    start = time.perf_counter()
    it = iter(pipeline)
    with ProgressBar(records * epochs, desc="demo", enabled=progress) as bar:
        for batch in it:
            jax.block_until_ready(batch.data)
            if batches == 0:
                first_batch = time.perf_counter() - start
            if batch.epoch > first_epoch:
                if steady_start is None:
                    steady_start = time.perf_counter()
                steady_records += batch.batch_size
            processed += batch.batch_size
            batches += 1
            bar.update(batch.batch_size)
            check.add(batch)
    end = time.perf_counter()
    elapsed = end - start
    check.finish()
    return DemoResult(
        records=records,
        image_shape=tuple(data["image"].shape[1:]),
        batch_size=batch_size,
        epochs=epochs,
        seed=seed,
        platform=jax.devices()[0].platform,
        records_processed=processed,
        batches_processed=batches,
        elapsed_s=elapsed,
        first_batch_s=first_batch,
        check=check,
        state=it.get_state(),
        steady_records=steady_records,
        steady_s=0.0 if steady_start is None else end - steady_start,
    )


def _run_demo(args: argparse.Namespace) -> int:
    result = run_demo(args.records, args.batch_size, args.epochs, args.seed, progress=args.progress)
    print(result.summary())
    if not result.ok:
        print("datarax: error: the demo output failed its checks", file=sys.stderr)
        return 1
    return 0


# -- argument types --------------------------------------------------------------------
def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
