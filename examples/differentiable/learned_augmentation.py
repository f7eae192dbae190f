"""Learned augmentation: a policy of eleven image operators, searched by gradient in a pipeline.

scikit-learn's 8x8 handwritten digits (1,797 real images, shipped with the
package) give, per seed, a small labelled training split, a validation split of
the same size and a fixed test set. The policy is two stages, each a
:class:`~datarax.operators.relaxed.RelaxedChoice` among eleven operators, each
operator behind a :class:`~datarax.operators.relaxed.RelaxedApply`: the choice
weights, the application probabilities and the magnitude ranges are all
``nnx.Param`` s of the pipeline's operators.

The search (DADA-style, bi-level): the model steps on the augmented training
batch; the policy steps on the validation loss of the model after that step
(one unrolled SGD step, differentiated through the pipeline's transform with
straight-through relaxed decisions). Then three models are trained from scratch
by iterating ordinary pipelines: without augmentation, with a hand-set
RandAugment, and with the learned policy (the searched operators themselves).

Run it::

    python examples/differentiable/learned_augmentation.py            # full: 5 seeds
    python examples/differentiable/learned_augmentation.py --quick    # one small seed

The full run writes ``docs/differentiable/learned_augmentation.md`` (the table)
and ``learned_augmentation.png`` (accuracies and the learned weights).
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from sklearn.datasets import load_digits

from datarax import from_source
from datarax.dag.nodes import OperatorNode
from datarax.dag.pipeline import Pipeline
from datarax.operators import Operator
from datarax.operators.image import (
    Affine,
    AffineConfig,
    Brightness,
    BrightnessConfig,
    Contrast,
    ContrastConfig,
    GaussianBlur,
    GaussianBlurConfig,
    GaussianNoise,
    GaussianNoiseConfig,
    Invert,
    InvertConfig,
    Sharpness,
    SharpnessConfig,
)
from datarax.operators.policies import AUGMENT_OPS, RandAugment, RandAugmentConfig
from datarax.operators.relaxed import (
    RelaxedApply,
    RelaxedApplyConfig,
    RelaxedChoice,
    RelaxedChoiceConfig,
)
from datarax.sources import MemorySource, MemorySourceConfig

OUT = Path(__file__).resolve().parents[2] / "docs" / "differentiable"
BATCH = 50
#: Chance that a stage applies its pick, at the start of the search (as DADA).
START_PROBABILITY = 0.5
TEST_SIZE = 1000


@dataclass(frozen=True)
class Settings:
    """Sizes of one run."""

    seeds: int
    train_size: int
    epochs: int  # of training from scratch
    search_epochs: int
    hidden: int = 256


FULL = Settings(seeds=5, train_size=200, epochs=300, search_epochs=60)
QUICK = Settings(seeds=1, train_size=100, epochs=40, search_epochs=6)


def splits(seed: int, train_size: int) -> tuple[dict, dict, dict]:
    """Train, validation (each ``train_size`` images) and the fixed test set."""
    d = load_digits()
    images = (d.images / 16.0).astype(np.float32)[..., None]
    labels = d.target.astype(np.int32)
    order = np.random.default_rng(0).permutation(len(labels))
    test, rest = order[:TEST_SIZE], order[TEST_SIZE:]
    rest = np.random.default_rng(seed + 1).permutation(rest)
    train, val = rest[:train_size], rest[train_size : 2 * train_size]

    def part(ids: np.ndarray) -> dict:
        return {"image": images[ids], "label": labels[ids]}

    return part(train), part(val), part(test)


#: The candidate operators of one policy stage, with their starting magnitudes.
CANDIDATES = (
    "rotate",
    "translate_x",
    "translate_y",
    "scale",
    "shear",
    "brightness",
    "contrast",
    "sharpness",
    "noise",
    "blur",
    "invert",
)


def candidate(name: str, seed: int) -> Operator:
    """One learnable candidate operator (magnitude ranges as ``nnx.Param`` s)."""
    rngs = nnx.Rngs(seed)
    geometric = {
        "rotate": dict(rotation=(-15.0, 15.0)),
        "translate_x": dict(translate_x=(-1.0, 1.0)),
        "translate_y": dict(translate_y=(-1.0, 1.0)),
        "scale": dict(scale=(0.85, 1.15)),
        "shear": dict(shear_x=(-15.0, 15.0)),
    }
    if name in geometric:
        return Affine(AffineConfig(**geometric[name], learnable=True), rngs=rngs)
    if name == "brightness":
        return Brightness(BrightnessConfig(factor=(0.7, 1.3), learnable=True), rngs=rngs)
    if name == "contrast":
        return Contrast(ContrastConfig(factor=(0.7, 1.3), learnable=True), rngs=rngs)
    if name == "sharpness":
        return Sharpness(SharpnessConfig(factor=(0.5, 1.5), learnable=True), rngs=rngs)
    if name == "noise":
        return GaussianNoise(GaussianNoiseConfig(sigma=(0.0, 0.15), learnable=True), rngs=rngs)
    if name == "blur":
        return GaussianBlur(GaussianBlurConfig(sigma=0.6, kernel_size=3, learnable=True))
    return Invert(InvertConfig())


def learnable_policy(seed: int, hard: bool = True) -> list[Operator]:
    """Two stages; each picks one candidate per record and applies it with a learned chance.

    ``hard=False`` blends the candidates instead (the relaxation itself: smooth, so
    its gradients can be checked against finite differences).
    """
    stages = []
    for stage in range(2):
        base = 1000 * seed + 100 * stage
        gated = [
            RelaxedApply(
                RelaxedApplyConfig(probability=START_PROBABILITY, hard=hard),
                operator=candidate(name, base + i),
                rngs=nnx.Rngs(base + 50 + i),
            )
            for i, name in enumerate(CANDIDATES)
        ]
        stages.append(
            RelaxedChoice(RelaxedChoiceConfig(hard=hard), operators=gated, rngs=nnx.Rngs(base + 99))
        )
    return stages


def randaugment(seed: int) -> list[Operator]:
    """torchvision's defaults (2 operations at magnitude 9 of 31), without colour (grey images)."""
    ops = tuple(op for op in AUGMENT_OPS if op != "color")
    return [RandAugment(RandAugmentConfig(ops=ops), rngs=nnx.Rngs(seed))]


def pipeline(data: dict, ops: Sequence[Operator], epochs: int | None) -> Pipeline:
    """Shuffled batches of ``data`` through ``ops``.

    The pipeline seed is the same for every seed of a run: what a seed changes is
    the split, the model's initialisation and the operators' own keys, so the
    compiled programs are shared by the seeds.
    """
    source = MemorySource(MemorySourceConfig(), data=data)
    p = from_source(source, BATCH, shuffle=True, seed=0, num_epochs=epochs)
    for op in ops:
        p = p >> OperatorNode(op)
    return p


class MLP(nnx.Module):
    def __init__(self, hidden: int, rngs: nnx.Rngs) -> None:
        self.hidden = nnx.Linear(64, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, 10, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(jax.nn.relu(self.hidden(x.reshape(x.shape[0], -1))))


def cross_entropy(model: MLP, images: jax.Array, labels: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(model(images), labels).mean()


MODEL_LR = 1e-3
#: Adam step of the policy (as DADA: small, so the search refines the uniform start).
POLICY_LR = 5e-3
#: The SGD step of the look-ahead model the policy is judged by.
LOOK_AHEAD_LR = 1e-2


@nnx.jit
def train_step(model: MLP, optimizer: nnx.Optimizer, images: jax.Array, labels: jax.Array):
    loss, grads = nnx.value_and_grad(cross_entropy)(model, images, labels)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def accuracy(model: MLP, images: jax.Array, labels: jax.Array) -> jax.Array:
    return jnp.mean(jnp.argmax(model(images), -1) == labels)


def train_from_scratch(
    train: dict, test: dict, ops: Sequence[Operator], seed: int, s: Settings
) -> tuple[float, float]:
    """Test accuracy of a model trained for ``s.epochs`` epochs on ``train`` through ``ops``."""
    model = MLP(s.hidden, nnx.Rngs(seed))
    optimizer = nnx.Optimizer(model, optax.adam(MODEL_LR), wrt=nnx.Param)
    start = time.perf_counter()
    for batch in pipeline(train, ops, s.epochs):
        train_step(model, optimizer, batch["image"], batch["label"])
    seconds = time.perf_counter() - start
    return float(accuracy(model, test["image"], test["label"])), seconds


def search(train: dict, val: dict, seed: int, s: Settings) -> tuple[list[Operator], float]:
    """The policy searched on ``train`` / ``val``, and the search's wall time (seconds)."""
    start = time.perf_counter()
    ops = learnable_policy(seed)
    reader = pipeline(train, [], s.search_epochs)
    transform = (reader >> OperatorNode(ops[0]) >> OperatorNode(ops[1])).transform()
    t_graph, alpha, t_rest = nnx.split(transform, nnx.Param, ...)
    m_graph, w = nnx.split(MLP(s.hidden, nnx.Rngs(seed)), nnx.Param)
    m_state, p_state = MODEL_TX.init(w), POLICY_TX.init(alpha)
    val_images, val_labels = jnp.asarray(val["image"]), jnp.asarray(val["label"])
    step = search_step(t_graph, m_graph)
    for raw in reader:
        w, alpha, m_state, p_state = step(
            (w, alpha, m_state, p_state),
            t_rest,
            dict(raw),
            raw.record_ids,
            raw.epoch,
            val_images,
            val_labels,
        )
    nnx.update(transform, alpha)  # the transform's operators are ``ops``
    jax.block_until_ready(alpha)
    return ops, time.perf_counter() - start


MODEL_TX, POLICY_TX = optax.adam(MODEL_LR), optax.adam(POLICY_LR)


@functools.cache
def search_step(t_graph: Any, m_graph: Any) -> Any:
    """One step of the search, compiled once for every seed (the graphs are alike)."""

    def train_loss(w: Any, alpha: Any, rest: Any, records: dict, ids: jax.Array, epoch: jax.Array):
        batch = nnx.merge(t_graph, alpha, rest)(records, ids, epoch)
        return cross_entropy(nnx.merge(m_graph, w), batch["image"], batch["label"])

    @jax.jit
    def step(state, rest, records, ids, epoch, val_images, val_labels):
        w, alpha, m_state, p_state = state

        # The policy: the validation loss after one SGD step of the model on its
        # augmented batch; that step's gradient also updates the model (with Adam).
        def look_ahead(alpha: Any) -> tuple[jax.Array, Any]:
            g = jax.grad(train_loss)(w, alpha, rest, records, ids, epoch)
            ahead = jax.tree_util.tree_map(lambda p, d: p - LOOK_AHEAD_LR * d, w, g)
            return cross_entropy(nnx.merge(m_graph, ahead), val_images, val_labels), g

        g_alpha, g_w = jax.grad(look_ahead, has_aux=True)(alpha)
        updates, p_state = POLICY_TX.update(g_alpha, p_state, alpha)
        alpha = optax.apply_updates(alpha, updates)
        updates, m_state = MODEL_TX.update(g_w, m_state, w)
        return optax.apply_updates(w, updates), alpha, m_state, p_state

    return step


def usage(ops: Sequence[Operator]) -> np.ndarray:
    """Per candidate: the chance a record goes through it, averaged over the two stages."""
    per_stage = [
        np.asarray(stage.weights()) * np.array([float(g.probability()) for g in stage.operators])
        for stage in ops
    ]
    return np.mean(per_stage, axis=0)


@dataclass
class SeedResult:
    accuracy: dict[str, float]
    train_seconds: dict[str, float]
    search_seconds: float
    usage: np.ndarray


def run_seed(seed: int, s: Settings) -> SeedResult:
    train, val, test = splits(seed, s.train_size)
    learned, search_seconds = search(train, val, seed, s)
    accuracy, seconds = {}, {}
    for name, ops in (("none", []), ("RandAugment", randaugment(seed)), ("learned", learned)):
        accuracy[name], seconds[name] = train_from_scratch(train, test, ops, seed, s)
    return SeedResult(accuracy, seconds, search_seconds, usage(learned))


def table(results: Sequence[SeedResult], s: Settings) -> str:
    """The Markdown tables of a run: accuracies (mean and std over the seeds), costs, the policy."""

    def stat(values: Sequence[float], scale: float = 1.0) -> str:
        v = np.asarray(values) * scale
        return f"{v.mean():.1f} ± {v.std():.1f}"

    def acc(name: str) -> np.ndarray:
        return np.array([r.accuracy[name] for r in results]) * 100

    lines = [
        f"Digits, {s.train_size} labelled training images (and as many for the search's "
        f"validation), {TEST_SIZE} test images, {len(results)} seeds; an MLP "
        f"(64-{s.hidden}-10) trained from scratch for {s.epochs} epochs (batch {BATCH}, Adam).",
        "",
        "| augmentation | test accuracy (%) | paired difference to none (points) |",
        "| --- | --- | --- |",
    ]
    for name in ("none", "RandAugment", "learned"):
        lines.append(f"| {name} | {stat(acc(name))} | {stat(acc(name) - acc('none'))} |")
    diff = acc("learned") - acc("RandAugment")
    later = results[1:] or results
    lines += [
        "",
        f"Learned minus RandAugment, paired by seed: {stat(diff)} points.",
        "",
        "| cost (wall time, s) | first seed (compiles) | later seeds (median) |",
        "| --- | --- | --- |",
        f"| policy search ({s.search_epochs} epochs) | {results[0].search_seconds:.1f} | "
        f"{np.median([r.search_seconds for r in later]):.1f} |",
    ]
    for name in ("none", "RandAugment", "learned"):
        first = results[0].train_seconds[name]
        median = np.median([r.train_seconds[name] for r in later])
        lines.append(f"| training with {name} ({s.epochs} epochs) | {first:.1f} | {median:.1f} |")
    lines += [
        "",
        f"The policy: {len(CANDIDATES)} candidates in each of 2 stages. The chance that a "
        "record goes through each candidate in a stage, learned, mean over the seeds "
        f"(at the start: {START_PROBABILITY / len(CANDIDATES):.3f} each):",
        "",
        "| candidate | learned chance per stage |",
        "| --- | --- |",
    ]
    mean_usage = np.mean([r.usage for r in results], axis=0)
    for name, value in sorted(zip(CANDIDATES, mean_usage, strict=True), key=lambda x: -x[1]):
        lines.append(f"| {name} | {value:.3f} |")
    return "\n".join(lines) + "\n"


def figure(results: Sequence[SeedResult], path: Path) -> None:
    """Accuracy per augmentation (mean and std) and the learned use of each candidate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ("none", "RandAugment", "learned")
    acc = np.array([[r.accuracy[n] * 100 for n in names] for r in results])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1, 2]})
    left.bar(names, acc.mean(0), yerr=acc.std(0), color=["#999999", "#6a8fc8", "#d9822b"])
    left.set_ylim(max(0.0, acc.min() - 5), min(100.0, acc.max() + 2))
    left.set_ylabel("test accuracy (%)")
    left.set_title("trained from scratch")
    use = np.array([r.usage for r in results])
    right.bar(CANDIDATES, use.mean(0), yerr=use.std(0), color="#d9822b")
    right.axhline(
        START_PROBABILITY / len(CANDIDATES), color="#555555", ls="--", lw=1, label="at the start"
    )
    right.set_ylabel("chance per record and stage")
    right.set_title("learned policy")
    right.tick_params(axis="x", rotation=45)
    right.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> list[SeedResult]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small seed (for the tests)")
    parser.add_argument("--out", type=Path, default=None, help=f"where to write (full: {OUT})")
    args = parser.parse_args(argv)
    s = QUICK if args.quick else FULL
    out = args.out if args.out is not None else (None if args.quick else OUT)
    results = []
    for seed in range(s.seeds):
        r = run_seed(seed, s)
        results.append(r)
        acc = ", ".join(f"{k} {100 * v:.1f}%" for k, v in r.accuracy.items())
        print(f"seed {seed}: {acc}; search {r.search_seconds:.1f} s", flush=True)
    text = table(results, s)
    print(text)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "learned_augmentation.md").write_text(
            "# Learned augmentation\n\nGenerated by "
            "`python examples/differentiable/learned_augmentation.py`.\n\n"
            + text
            + "\n![accuracy and learned policy](learned_augmentation.png)\n"
        )
        figure(results, out / "learned_augmentation.png")
    return results


if __name__ == "__main__":
    main()
