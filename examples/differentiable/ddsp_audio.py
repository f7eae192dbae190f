"""DDSP audio: a harmonic oscillator bank, filtered noise and a reverb as pipeline operators.

The three operators are written here, as a user writes their own: each is a
:class:`~datarax.operators.Operator` that reads control fields of a record and
writes its ``audio``. A pipeline of them renders synthetic instrument notes with
known parameters (a fundamental, a harmonic spectrum that darkens as the note
decays, coloured noise, one room's reverb): that is the data set. A second
pipeline of the same operators, with a reverb impulse response to learn, is the
decoder of a DDSP autoencoder: a small network reads each frame of a note
(its spectrum and the fundamental) and returns the harmonic amplitudes and noise
band levels, the pipeline's transform renders them inside the training step, and
a multi-scale spectral loss compares the result with the note. Gradients reach
the network through the transform's records and the impulse response through the
reverb's ``nnx.Param``.

The baseline is a neural waveform decoder of similar size: the same per-frame
network, returning the frame's samples directly. Both are trained on 8 to 128
notes and measured on 64 held-out notes: spectral loss, and for DDSP the error
of the recovered harmonic spectrum.

Run it::

    python examples/differentiable/ddsp_audio.py            # full: 5 seeds
    python examples/differentiable/ddsp_audio.py --quick    # one small seed

The full run writes ``docs/differentiable/ddsp_audio.md`` and ``ddsp_audio.png``.
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

from datarax import from_source
from datarax.core.config import Config
from datarax.dag.nodes import OperatorNode
from datarax.dag.pipeline import Pipeline
from datarax.operators import Operator
from datarax.operators.audio import Spectrogram, SpectrogramConfig
from datarax.sources import MemorySource, MemorySourceConfig

OUT = Path(__file__).resolve().parents[2] / "docs" / "differentiable"
SAMPLE_RATE = 8000
SAMPLES = 2000  # a quarter of a second
FRAMES = 10  # control frames per note
HOP = SAMPLES // FRAMES
HARMONICS = 16
BANDS = 16
IMPULSE = 400  # samples of reverb (50 ms)
TEST_NOTES = 64
BATCH = 8
SCALES = (64, 128, 256, 512)


# -- the three operators ----------------------------------------------------------------
@dataclass(frozen=True)
class SynthConfig(Config):
    """Args:
    stream_name: Random stream (filtered noise).
    """

    stream_name: str | None = None


def upsample(frames: jax.Array, n: int) -> jax.Array:
    """``(B, F, C)`` frame values to ``(B, n, C)`` samples, linearly between frame centres."""
    f = frames.shape[1]
    t = np.clip((np.arange(n) + 0.5) * f / n - 0.5, 0, f - 1)
    i0 = np.floor(t).astype(np.int32)
    i1 = np.minimum(i0 + 1, f - 1)
    w = jnp.asarray(t - i0, frames.dtype)[None, :, None]
    return frames[:, i0] * (1 - w) + frames[:, i1] * w


class HarmonicOscillator(Operator):
    """Writes ``audio``: the harmonics of ``f0`` (Hz per frame) with ``harmonics`` amplitudes.

    Amplitudes ``(F, HARMONICS)`` per record are interpolated to samples; harmonics
    above the Nyquist frequency are silent. Differentiable in the amplitudes and f0.
    """

    config_type = SynthConfig
    differentiable_in = ("input",)

    def __init__(self, config: SynthConfig) -> None:
        super().__init__(config, stochastic=False, stream_name=None, rngs=None)

    def apply_batch(self, data, states, record_ids, epoch, seed):
        f0 = upsample(data["f0"][..., None], SAMPLES)[..., 0]
        amps = upsample(data["harmonics"], SAMPLES)
        k = jnp.arange(1, HARMONICS + 1, dtype=jnp.float32)
        phase = 2 * jnp.pi * jnp.cumsum(f0 / SAMPLE_RATE, axis=1)
        audible = f0[..., None] * k < SAMPLE_RATE / 2
        audio = jnp.sum(jnp.where(audible, amps, 0.0) * jnp.sin(phase[..., None] * k), axis=-1)
        return {**data, "audio": audio}, states


class FilteredNoise(Operator):
    """Adds to ``audio`` white noise shaped per frame by ``noise`` band levels ``(F, BANDS)``.

    The noise of a record comes from its own key, so a record sounds the same in
    any batch. Differentiable in the band levels.
    """

    config_type = SynthConfig
    differentiable_in = ("input",)

    def __init__(self, config: SynthConfig, *, rngs: nnx.Rngs) -> None:
        super().__init__(config, stochastic=True, stream_name=config.stream_name, rngs=rngs)

    def apply_batch(self, data, states, record_ids, epoch, seed):
        keys = self.keys_for(record_ids, epoch, seed)
        white = jax.vmap(lambda k: jax.random.uniform(k, (FRAMES, HOP), minval=-1.0, maxval=1.0))(
            keys
        )
        bins = HOP // 2 + 1
        # Band levels interpolated over the FFT bins of a frame.
        grid = np.linspace(0, BANDS - 1, bins)
        lo = np.floor(grid).astype(np.int32)
        hi = np.minimum(lo + 1, BANDS - 1)
        w = jnp.asarray(grid - lo, jnp.float32)
        levels = data["noise"][..., lo] * (1 - w) + data["noise"][..., hi] * w
        shaped = jnp.fft.irfft(jnp.fft.rfft(white, axis=-1) * levels, n=HOP, axis=-1)
        return {**data, "audio": data["audio"] + shaped.reshape(-1, SAMPLES)}, states


@dataclass(frozen=True)
class ReverbConfig(Config):
    """Args:
    learnable: Hold the impulse response in an ``nnx.Param``.
    """

    learnable: bool = True


class Reverb(Operator):
    """Adds to ``audio`` its convolution with an impulse response of ``IMPULSE`` samples.

    Differentiable in the input and, when learnable, in the impulse response.
    """

    config_type = ReverbConfig
    differentiable_in = ("input", "impulse")

    def __init__(self, config: ReverbConfig, *, impulse: np.ndarray) -> None:
        super().__init__(config, stochastic=False, stream_name=None, rngs=None)
        value = jnp.asarray(impulse, jnp.float32)
        self.impulse: Any = nnx.Param(value) if config.learnable else nnx.Variable(value)

    def apply_batch(self, data, states, record_ids, epoch, seed):
        size = 1 << int(np.ceil(np.log2(SAMPLES + IMPULSE)))
        audio = data["audio"]
        wet = jnp.fft.irfft(
            jnp.fft.rfft(audio, size, axis=-1) * jnp.fft.rfft(self.impulse[...], size), size
        )
        return {**data, "audio": audio + wet[:, :SAMPLES]}, states


def room(seed: int, decay_s: float, gain: float) -> np.ndarray:
    """An impulse response: exponentially decaying noise."""
    t = np.arange(IMPULSE) / SAMPLE_RATE
    noise = np.random.default_rng(seed).normal(size=IMPULSE)
    return (gain * noise * np.exp(-t / decay_s)).astype(np.float32)


def synth(ops_seed: int, impulse: np.ndarray, learnable: bool) -> list[Operator]:
    """The synthesiser: oscillators, noise, reverb."""
    return [
        HarmonicOscillator(SynthConfig()),
        FilteredNoise(SynthConfig(), rngs=nnx.Rngs(ops_seed)),
        Reverb(ReverbConfig(learnable=learnable), impulse=impulse),
    ]


def synth_pipeline(controls: dict, ops: Sequence[Operator]) -> Pipeline:
    source = MemorySource(MemorySourceConfig(), data=controls)
    p = from_source(source, BATCH, seed=0)
    for op in ops:
        p = p >> OperatorNode(op)
    return p


# -- the data ---------------------------------------------------------------------------
def notes(n: int, seed: int) -> dict[str, np.ndarray]:
    """Controls of ``n`` notes with known parameters."""
    rng = np.random.default_rng(seed)
    f0 = rng.uniform(110.0, 440.0, n)
    slope = rng.uniform(0.5, 2.0, n)  # harmonic k has amplitude k**-slope ...
    darken = rng.uniform(0.0, 2.0, n)  # ... and k**-(slope + darken * t) as the note decays
    decay = rng.uniform(2.0, 8.0, n)  # loudness exp(-decay * t)
    level = rng.uniform(0.005, 0.05, n)
    tilt = rng.uniform(0.0, 3.0, n)
    t = (np.arange(FRAMES) + 0.5) * HOP / SAMPLE_RATE
    k = np.arange(1, HARMONICS + 1)
    exponent = slope[:, None, None] + darken[:, None, None] * t[None, :, None]
    shape = k[None, None, :] ** -exponent
    shape /= shape.sum(-1, keepdims=True)
    loud = 0.5 * np.exp(-decay[:, None] * t[None, :])
    bands = np.exp(-tilt[:, None] * np.arange(BANDS)[None, :] / BANDS)
    return {
        "f0": np.repeat(f0[:, None], FRAMES, 1).astype(np.float32),
        "harmonics": (loud[..., None] * shape).astype(np.float32),
        "noise": (level[:, None, None] * bands[:, None, :] * np.ones((1, FRAMES, 1))).astype(
            np.float32
        ),
    }


TRUE_ROOM = room(1, decay_s=0.03, gain=0.05)


def render(controls: dict) -> np.ndarray:
    """The notes' audio, rendered by iterating the ground-truth pipeline."""
    p = synth_pipeline(controls, synth(7, TRUE_ROOM, learnable=False))
    return np.concatenate([np.asarray(b["audio"]) for b in p])


def features(audio: jax.Array, f0: jax.Array) -> jax.Array:
    """Per frame: the log magnitude spectrum of the note's samples and f0 / 500."""
    frames = audio.reshape(audio.shape[0], FRAMES, HOP)
    spectrum = jnp.log(1e-4 + jnp.abs(jnp.fft.rfft(frames, axis=-1)))
    return jnp.concatenate([spectrum, f0[..., None] / 500.0], axis=-1)


FEATURES = HOP // 2 + 2


# -- the models -------------------------------------------------------------------------
class FrameNet(nnx.Module):
    """The per-frame network both decoders share: features -> hidden -> hidden -> outputs."""

    def __init__(self, outputs: int, hidden: int, rngs: nnx.Rngs) -> None:
        self.a = nnx.Linear(FEATURES, hidden, rngs=rngs)
        self.b = nnx.Linear(hidden, hidden, rngs=rngs)
        self.c = nnx.Linear(hidden, outputs, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.c(jax.nn.relu(self.b(jax.nn.relu(self.a(x)))))


def exp_sigmoid(x: jax.Array) -> jax.Array:
    """DDSP's positive scaling: ``2 * sigmoid(x) ** log(10) + 1e-7``."""
    return 2.0 * jax.nn.sigmoid(x) ** np.log(10.0) + 1e-7


def ddsp_controls(net: FrameNet, feats: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Harmonic amplitudes ``(B, F, H)`` and noise levels ``(B, F, BANDS)`` from features."""
    out = net(feats)
    amplitude = exp_sigmoid(out[..., :1])
    distribution = jax.nn.softmax(out[..., 1 : 1 + HARMONICS], axis=-1)
    return amplitude * distribution, 0.1 * exp_sigmoid(out[..., 1 + HARMONICS :])


def spectral_loss(audio: jax.Array, target: jax.Array) -> jax.Array:
    """Multi-scale spectral loss: linear and log magnitude L1 at FFT sizes 64 to 512."""
    total = 0.0
    for n_fft in SCALES:
        spec = _spectrogram(n_fft)
        a = jnp.sqrt(spec.spectrogram(audio) + 1e-7)
        b = jnp.sqrt(spec.spectrogram(target) + 1e-7)
        total = total + jnp.mean(jnp.abs(a - b)) + jnp.mean(jnp.abs(jnp.log(a) - jnp.log(b)))
    return total / len(SCALES)


@functools.cache
def _spectrogram(n_fft: int) -> Spectrogram:
    return Spectrogram(SpectrogramConfig(n_fft=n_fft, hop_length=n_fft // 4))


# -- training ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    seeds: int
    sizes: tuple[int, ...]
    steps: int
    hidden: int = 128


FULL = Settings(seeds=5, sizes=(8, 32, 128), steps=600)
QUICK = Settings(seeds=1, sizes=(8, 32), steps=60)
TX = optax.adam(2e-3)


@dataclass
class Trained:
    loss: float
    recovery: float | None
    params: int
    seconds: float


def count(module: Any) -> int:
    return sum(
        int(np.prod(v.shape)) for v in jax.tree_util.tree_leaves(nnx.state(module, nnx.Param))
    )


def train_ddsp(data: dict, test: dict, ids: np.ndarray, seed: int, s: Settings) -> Trained:
    """DDSP: the network's controls rendered by the learnable pipeline's transform."""
    start = time.perf_counter()
    ops = synth(100 + seed, room(50 + seed, decay_s=0.02, gain=0.01), learnable=True)
    transform = synth_pipeline(data["controls"], ops).transform()
    net = FrameNet(1 + HARMONICS + BANDS, s.hidden, nnx.Rngs(seed))
    model = nnx.List([net, transform])
    optimizer = nnx.Optimizer(model, TX, wrt=nnx.Param)
    rng = np.random.default_rng(seed)
    for _ in range(s.steps):
        batch = rng.choice(ids, BATCH, replace=ids.size < BATCH)
        ddsp_step(model, optimizer, data["f0"][batch], data["audio"][batch], batch)
    test_ids = np.arange(TEST_NOTES)
    test_transform = synth_pipeline(test["controls"], ops).transform()
    loss, error = ddsp_eval(
        net, test_transform, test["f0"], test["audio"], test["harmonics"], test_ids
    )
    jax.block_until_ready(loss)
    return Trained(float(loss), float(error), count(model), time.perf_counter() - start)


@nnx.jit
def ddsp_step(model, optimizer, f0, target, ids):
    def loss_fn(model):
        net, transform = model
        harmonics, noise = ddsp_controls(net, features(target, f0))
        audio = transform({"f0": f0, "harmonics": harmonics, "noise": noise}, ids)["audio"]
        return spectral_loss(audio, target)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def ddsp_eval(net, transform, f0, target, true_harmonics, ids):
    harmonics, noise = ddsp_controls(net, features(target, f0))
    audio = transform({"f0": f0, "harmonics": harmonics, "noise": noise}, ids)["audio"]
    shape = harmonics / harmonics.sum(-1, keepdims=True)
    true_shape = true_harmonics / true_harmonics.sum(-1, keepdims=True)
    return spectral_loss(audio, target), jnp.mean(jnp.sum(jnp.abs(shape - true_shape), -1))


def train_baseline(data: dict, test: dict, ids: np.ndarray, seed: int, s: Settings) -> Trained:
    """The neural waveform decoder: each frame's samples straight from the network."""
    start = time.perf_counter()
    net = FrameNet(HOP, s.hidden, nnx.Rngs(seed))
    optimizer = nnx.Optimizer(net, TX, wrt=nnx.Param)
    rng = np.random.default_rng(seed)
    for _ in range(s.steps):
        batch = rng.choice(ids, BATCH, replace=ids.size < BATCH)
        baseline_step(net, optimizer, data["f0"][batch], data["audio"][batch])
    loss = baseline_eval(net, test["f0"], test["audio"])
    return Trained(float(loss), None, count(net), time.perf_counter() - start)


def waveform(net: FrameNet, f0: jax.Array, target: jax.Array) -> jax.Array:
    return net(features(target, f0)).reshape(target.shape[0], SAMPLES)


@nnx.jit
def baseline_step(net, optimizer, f0, target):
    loss, grads = nnx.value_and_grad(lambda n: spectral_loss(waveform(n, f0, target), target))(net)
    optimizer.update(net, grads)
    return loss


@nnx.jit
def baseline_eval(net, f0, target):
    return spectral_loss(waveform(net, f0, target), target)


def data_set(seed: int, size: int) -> tuple[dict, dict]:
    """The training notes (``size``) and the fixed test notes, with their audio."""
    train_c, test_c = notes(size, 1000 + seed), notes(TEST_NOTES, 1)

    def pack(c: dict) -> dict:
        return {"controls": c, "f0": c["f0"], "harmonics": c["harmonics"], "audio": render(c)}

    return pack(train_c), pack(test_c)


# -- the run ----------------------------------------------------------------------------
@dataclass
class SeedResult:
    ddsp: dict[int, Trained]
    baseline: dict[int, Trained]


def run_seed(seed: int, s: Settings) -> SeedResult:
    ddsp, baseline = {}, {}
    for size in s.sizes:
        train, test = data_set(seed, size)
        ids = np.arange(size)
        ddsp[size] = train_ddsp(train, test, ids, seed, s)
        baseline[size] = train_baseline(train, test, ids, seed, s)
    return SeedResult(ddsp, baseline)


def needed_size(curve: dict[int, float], loss: float) -> str:
    """The smallest training-set size whose loss is at most ``loss`` (or more than measured)."""
    for size in sorted(curve):
        if curve[size] <= loss:
            return str(size)
    return f"> {max(curve)}"


def table(results: Sequence[SeedResult], s: Settings) -> str:
    """The Markdown tables of a run (mean and standard deviation over the seeds)."""

    def stat(values: Sequence[float], digits: int = 3) -> str:
        v = np.asarray(values)
        return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}"

    first = results[0]
    lines = [
        f"Synthetic notes at {SAMPLE_RATE} Hz ({SAMPLES} samples), {TEST_NOTES} test notes, "
        f"{len(results)} seeds, {s.steps} Adam steps of {BATCH} notes. Parameters: DDSP "
        f"{first.ddsp[s.sizes[0]].params} (network and impulse response), waveform decoder "
        f"{first.baseline[s.sizes[0]].params}.",
        "",
        "| training notes | DDSP spectral loss | waveform decoder spectral loss | "
        "DDSP harmonic-spectrum error (L1) |",
        "| --- | --- | --- | --- |",
    ]
    for size in s.sizes:
        d = stat([r.ddsp[size].loss for r in results])
        b = stat([r.baseline[size].loss for r in results])
        e = stat([r.ddsp[size].recovery for r in results])
        lines.append(f"| {size} | {d} | {b} | {e} |")
    ddsp_curve = {n: float(np.mean([r.ddsp[n].loss for r in results])) for n in s.sizes}
    base_curve = {n: float(np.mean([r.baseline[n].loss for r in results])) for n in s.sizes}
    best_baseline = min(base_curve.values())
    ddsp_small = ddsp_curve[min(s.sizes)]
    lines += [
        "",
        f"Training notes needed to reach the waveform decoder's best loss "
        f"({best_baseline:.3f}): DDSP {needed_size(ddsp_curve, best_baseline)}, waveform "
        f"decoder {needed_size(base_curve, best_baseline)}. To reach DDSP's loss with "
        f"{min(s.sizes)} notes ({ddsp_small:.3f}): DDSP {min(s.sizes)}, waveform decoder "
        f"{needed_size(base_curve, ddsp_small)}.",
        "",
        "The harmonic-spectrum error is the L1 distance between the true and the recovered "
        "harmonic distributions (amplitudes normalised to sum 1, per frame; 0 is exact, 2 "
        "the most apart); the waveform decoder has no such parameters.",
    ]
    return "\n".join(lines) + "\n"


def figure(results: Sequence[SeedResult], s: Settings, path: Path) -> None:
    """Spectral loss against training-set size, and one test note's spectrograms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6), gridspec_kw={"width_ratios": [1.4, 1, 1, 1]})
    sizes = np.array(s.sizes)
    for key, label, colour in (
        ("ddsp", "DDSP", "#d9822b"),
        ("baseline", "waveform decoder", "#6a8fc8"),
    ):
        losses = np.array([[getattr(r, key)[n].loss for n in s.sizes] for r in results])
        axes[0].errorbar(
            sizes,
            losses.mean(0),
            yerr=losses.std(0),
            label=label,
            color=colour,
            marker="o",
            capsize=3,
        )
    axes[0].set_xscale("log", base=2)
    axes[0].set_xlabel("training notes")
    axes[0].set_ylabel("test spectral loss")
    axes[0].legend()
    # One test note, rendered by each model trained on the most notes of seed 0.
    size = max(s.sizes)
    train, test = data_set(0, size)
    spec = _spectrogram(256)
    shown = {"target": test["audio"][:1]}
    shown["DDSP"], shown["waveform decoder"] = example_outputs(train, test, size, s)
    for ax, (title, audio) in zip(axes[1:], shown.items(), strict=True):
        power = np.asarray(spec.spectrogram(jnp.asarray(audio)))[0]
        ax.imshow(
            10 * np.log10(power + 1e-8),
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=-60,
            vmax=30,
        )
        ax.set_title(title)
        ax.set_xlabel("frame")
    axes[1].set_ylabel("frequency bin")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def example_outputs(
    train: dict, test: dict, size: int, s: Settings
) -> tuple[np.ndarray, np.ndarray]:
    """The first test note as DDSP and the waveform decoder (seed 0) render it."""
    ids = np.arange(size)
    ops = synth(100, room(50, decay_s=0.02, gain=0.01), learnable=True)
    transform = synth_pipeline(train["controls"], ops).transform()
    net = FrameNet(1 + HARMONICS + BANDS, s.hidden, nnx.Rngs(0))
    model = nnx.List([net, transform])
    optimizer = nnx.Optimizer(model, TX, wrt=nnx.Param)
    rng = np.random.default_rng(0)
    for _ in range(s.steps):
        batch = rng.choice(ids, BATCH, replace=ids.size < BATCH)
        ddsp_step(model, optimizer, train["f0"][batch], train["audio"][batch], batch)
    f0, target = test["f0"][:BATCH], test["audio"][:BATCH]
    harmonics, noise = ddsp_controls(net, features(target, f0))
    test_transform = synth_pipeline(test["controls"], ops).transform()
    ddsp = test_transform({"f0": f0, "harmonics": harmonics, "noise": noise}, np.arange(BATCH))
    base = FrameNet(HOP, s.hidden, nnx.Rngs(0))
    base_opt = nnx.Optimizer(base, TX, wrt=nnx.Param)
    rng = np.random.default_rng(0)
    for _ in range(s.steps):
        batch = rng.choice(ids, BATCH, replace=ids.size < BATCH)
        baseline_step(base, base_opt, train["f0"][batch], train["audio"][batch])
    return np.asarray(ddsp["audio"][:1]), np.asarray(waveform(base, f0, target)[:1])


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
        losses = ", ".join(
            f"{n}: DDSP {r.ddsp[n].loss:.3f} / decoder {r.baseline[n].loss:.3f}" for n in s.sizes
        )
        print(f"seed {seed}: {losses}", flush=True)
    text = table(results, s)
    print(text)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "ddsp_audio.md").write_text(
            "# DDSP audio\n\nGenerated by `python examples/differentiable/ddsp_audio.py`.\n\n"
            + text
            + "\n![spectral loss and spectrograms](ddsp_audio.png)\n"
        )
        figure(results, s, out / "ddsp_audio.png")
    return results


if __name__ == "__main__":
    main()
