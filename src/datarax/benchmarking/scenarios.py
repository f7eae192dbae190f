"""The benchmark scenarios: data, per-record transforms, batch sizes and passes.

Data is generated with ``numpy.random.default_rng(0)`` so every system starts from the
same host arrays. Each scenario gives its transform twice: per record in ``jax.numpy``
(vmapped by the JAX reference and by datarax) and per batch in NumPy (used by the
NumPy reference and by the host-side peers).

Example:
    >>> s = SCENARIOS["W1"]
    >>> data = s.make_data(64)
    >>> data["image"].shape, s.batch_size, s.epochs_per_pass
    ((64, 28, 28, 1), 32, 10)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

#: How a scenario's records are stored before the pipeline reads them.
Storage = Literal["arrays", "ragged", "array_record"]
#: What a scenario measures: a loader's batches, or a training loop fed by the loader.
Family = Literal["loader", "training"]

#: Token ids of the text scenarios: 0 pads, 1 is the mask token, words are >= 2.
PAD_ID, MASK_ID, VOCAB_SIZE = 0, 1, 32_000
#: Sequence length of W4 and MLM.
SEQUENCE_LENGTH = 128

#: One record (or one batch) as field name -> array.
Record = dict[str, Any]
#: The JAX transform of one record: ``(record, key) -> record``.
RecordFn = Callable[..., Record]
#: The NumPy transform of one batch: ``(batch, rng, stats) -> batch``.
NumpyFn = Callable[[dict[str, np.ndarray], np.random.Generator, Any], dict[str, np.ndarray]]


@dataclass(frozen=True)
class Scenario:
    """One benchmark scenario.

    Args:
        name: Short id (``"W1"``).
        title: One line saying what it measures.
        make_data: ``records -> host arrays`` (a dict of equal-length arrays; for
            ``"ragged"`` storage an object array of int32 arrays under ``"tokens"``).
        records: Records at the full size of BENCHMARKS.md.
        batch_size: Records per batch.
        epochs_per_pass: Epochs in one timed pass.
        shuffle: Global shuffle every epoch.
        record_fn: ``stats -> ((record dict, key) -> record dict)``: the JAX transform.
        numpy_fn: ``(batch dict, rng, stats) -> batch dict``: the vectorised NumPy one.
        stochastic: Whether the transform draws random numbers.
        storage: Where records live before reading (memory arrays, ragged lists, a file).
        stats: ``data -> statistics`` the transform needs, computed once outside timing.
        systems: The only systems with a row for it (``None``: every system). The
            operator scenarios (RA, MEL, PACK) name datarax and the libraries that do
            the same operation.
        family: ``"loader"`` (elements per second of materialised batches) or
            ``"training"`` (steps per second of a training loop the loader feeds; see
            :mod:`datarax.benchmarking.training`).
        workload: The loader workload whose data and per-record work it uses (default:
            its own name; the training scenarios name W1 or W2).
        model: The model a training scenario trains (a key of
            :data:`datarax.benchmarking.training.MODELS`).
        drop_remainder: Drop each epoch's short last batch (the training scenarios do,
            so the jitted train step sees one batch shape).
    """

    name: str
    title: str
    make_data: Callable[..., dict[str, np.ndarray]]
    records: int
    batch_size: int
    epochs_per_pass: int
    shuffle: bool
    record_fn: Callable[[Any], RecordFn]
    numpy_fn: NumpyFn
    stochastic: bool = True
    storage: Storage = "arrays"
    stats: Callable[[dict[str, np.ndarray]], Any] | None = field(default=None, repr=False)
    systems: tuple[str, ...] | None = None
    family: Family = "loader"
    workload: str = ""
    model: str | None = None
    drop_remainder: bool = False

    @property
    def work(self) -> str:
        """The workload whose data and per-record work this scenario uses."""
        return self.workload or self.name

    @property
    def steps_per_epoch(self) -> int:
        """Batches of one epoch (train steps, for a training scenario)."""
        full, short = divmod(self.records, self.batch_size)
        return full if self.drop_remainder else full + (short > 0)


def stats_for(scenario: Scenario, data: dict[str, np.ndarray]) -> Any:
    """Dataset statistics a transform needs (computed once, outside the timed passes)."""
    return scenario.stats(data) if scenario.stats is not None else None


def depth_step(i: int, score: Any) -> Any:
    """Operator ``i`` of the depth chains: a little arithmetic on a per-record score.

    Cheap, but not removable: the output depends on every operator of the chain.
    Works on NumPy, JAX, PyTorch and TensorFlow values alike.
    """
    return score * np.float32(0.999) + np.float32(i % 7)


def pad_records(tokens: Any, width: int = SEQUENCE_LENGTH) -> dict[str, np.ndarray]:
    """Truncate or zero-pad each token list to ``width`` in a Python loop; keep the lengths.

    Example:
        >>> out = pad_records([np.array([5, 6], np.int32)], width=3)
        >>> out["tokens"].tolist(), out["tokens_length"].tolist()
        ([[5, 6, 0]], [2])
    """
    out = np.zeros((len(tokens), width), np.int32)
    lengths = np.empty(len(tokens), np.int32)
    for i, record in enumerate(tokens):
        n = min(len(record), width)
        out[i, :n] = record[:n]
        lengths[i] = n
    return {"tokens": out, "tokens_length": lengths}


@dataclass(frozen=True)
class FlatTokens:
    """Token lists as one flat array and record offsets, for vectorised gathers.

    Example:
        >>> flat = FlatTokens.of([np.array([5, 6], np.int32), np.array([7], np.int32)])
        >>> flat.pad(np.array([1, 0]), width=3)["tokens"].tolist()
        [[7, 0, 0], [5, 6, 0]]
    """

    tokens: np.ndarray
    offsets: np.ndarray

    @classmethod
    def of(cls, token_lists: Any) -> FlatTokens:
        """Concatenate ``token_lists`` once (setup work, not per batch)."""
        lengths = np.fromiter((len(t) for t in token_lists), np.int64, len(token_lists))
        offsets = np.zeros(len(lengths) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(np.concatenate(list(token_lists)).astype(np.int32), offsets)

    def pad(self, idx: np.ndarray, width: int = SEQUENCE_LENGTH) -> dict[str, np.ndarray]:
        """The records ``idx`` truncated or zero-padded to ``width``, and their lengths."""
        start = self.offsets[idx]
        lengths = np.minimum(self.offsets[idx + 1] - start, width).astype(np.int32)
        positions = np.arange(width)
        valid = positions < lengths[:, None]
        gathered = self.tokens[np.where(valid, start[:, None] + positions, 0)]
        return {"tokens": np.where(valid, gathered, PAD_ID), "tokens_length": lengths}


# -- W1, W1s: small images --------------------------------------------------------------


def _w1_data(records: int = 1000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (records, 28, 28, 1)).astype(np.float32)
    label = rng.integers(0, 10, (records,)).astype(np.int32)
    return {"image": image, "label": label}


def _w1_record(_stats: Any) -> RecordFn:
    def fn(record: Record, key: jax.Array) -> Record:
        image = record["image"] / 255.0
        flip = jax.random.bernoulli(key, 0.5)
        return {**record, "image": jnp.where(flip, jnp.flip(image, axis=1), image)}

    return fn


def _w1_numpy(
    batch: dict[str, np.ndarray], rng: np.random.Generator, _stats: Any
) -> dict[str, np.ndarray]:
    image = batch["image"]  # a fresh copy (fancy-indexed), so in place is safe
    image *= np.float32(1.0 / 255.0)
    flip = rng.random(len(image)) < 0.5
    image[flip] = image[flip, :, ::-1]  # only the flipped records are rewritten
    return {**batch, "image": image}


# -- W2 and AR: CIFAR-sized images ------------------------------------------------------


def _w2_data(records: int = 50_000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (records, 32, 32, 3), dtype=np.uint8)
    label = rng.integers(0, 10, (records,)).astype(np.int32)
    return {"image": image, "label": label}


def _channel_stats(data: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    image = data["image"]
    # Histogram per channel: exact mean and std of uint8 data without a float copy.
    counts = np.stack(
        [np.bincount(image[..., c].ravel(), minlength=256) for c in range(image.shape[-1])]
    )
    values = np.arange(256, dtype=np.float64)
    n = counts.sum(1)
    mean = counts @ values / n
    std = np.sqrt(counts @ values**2 / n - mean**2)
    return mean.astype(np.float32), std.astype(np.float32)


def _w2_record(stats: Any) -> RecordFn:
    mean, std = (jnp.asarray(s) for s in stats)

    def fn(record: Record, key: jax.Array) -> Record:
        k_crop, k_flip = jax.random.split(key)
        image = (record["image"].astype(jnp.float32) - mean) / std
        padded = jnp.pad(image, ((4, 4), (4, 4), (0, 0)))
        offset = jax.random.randint(k_crop, (2,), 0, 9)
        image = jax.lax.dynamic_slice(padded, (offset[0], offset[1], 0), (32, 32, 3))
        flip = jax.random.bernoulli(k_flip, 0.5)
        return {**record, "image": jnp.where(flip, jnp.flip(image, axis=1), image)}

    return fn


def _w2_numpy(
    batch: dict[str, np.ndarray], rng: np.random.Generator, stats: Any
) -> dict[str, np.ndarray]:
    mean, std = stats
    image = (batch["image"].astype(np.float32) - mean) / std
    padded = np.pad(image, ((0, 0), (4, 4), (4, 4), (0, 0)))
    n = len(image)
    oy, ox = rng.integers(0, 9, n), rng.integers(0, 9, n)
    r = np.arange(32)
    rows = (oy[:, None] + r)[:, :, None]
    cols = (ox[:, None] + r)[:, None, :]
    image = padded[np.arange(n)[:, None, None], rows, cols]
    flip = rng.random(n) < 0.5
    image[flip] = image[flip, :, ::-1]
    return {**batch, "image": image}


# -- W3: tabular ----------------------------------------------------------------------


def _w3_data(records: int = 1_000_000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((records, 64), dtype=np.float32) * 3.0 + 1.0
    label = rng.integers(0, 2, (records,)).astype(np.int32)
    return {"x": x, "label": label}


def _column_stats(data: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    x = data["x"]
    return x.mean(0).astype(np.float32), x.std(0).astype(np.float32)


def _w3_record(stats: Any) -> RecordFn:
    mean, std = (jnp.asarray(s) for s in stats)

    def fn(record: Record, key: jax.Array | None = None) -> Record:
        return {**record, "x": (record["x"] - mean) / std}

    return fn


def _w3_numpy(
    batch: dict[str, np.ndarray], _rng: np.random.Generator, stats: Any
) -> dict[str, np.ndarray]:
    mean, std = stats
    return {**batch, "x": (batch["x"] - mean) / std}


# -- W4 and MLM: token sequences --------------------------------------------------------


def _token_lists(records: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    lengths = rng.integers(16, 513, records)
    flat = rng.integers(2, VOCAB_SIZE, int(lengths.sum()), dtype=np.int32)
    lists = np.empty(records, dtype=object)
    lists[:] = np.split(flat, np.cumsum(lengths)[:-1])
    return lists


def _w4_data(records: int = 20_000) -> dict[str, np.ndarray]:
    return {"tokens": _token_lists(records)}


def _w4_record(_stats: Any) -> RecordFn:
    def fn(record: Record, key: jax.Array | None = None) -> Record:
        return record  # the padding is the source's work in every system

    return fn


def _w4_numpy(
    batch: dict[str, np.ndarray], _rng: np.random.Generator, _stats: Any
) -> dict[str, np.ndarray]:
    return pad_records(batch["tokens"])


def _mlm_data(records: int = 20_000) -> dict[str, np.ndarray]:
    padded = pad_records(_token_lists(records))
    return {"tokens": padded["tokens"], "length": padded["tokens_length"]}


def _mlm_record(_stats: Any) -> RecordFn:
    """BERT-style dynamic masking of one padded sequence."""

    def fn(record: Record, key: jax.Array) -> Record:
        k_select, k_kind, k_word = jax.random.split(key, 3)
        tokens = record["tokens"]
        valid = jnp.arange(tokens.shape[0]) < record["length"]
        selected = valid & jax.random.bernoulli(k_select, 0.15, tokens.shape)
        kind = jax.random.uniform(k_kind, tokens.shape)
        words = jax.random.randint(k_word, tokens.shape, 2, VOCAB_SIZE, dtype=jnp.int32)
        replaced = jnp.where(kind < 0.8, MASK_ID, jnp.where(kind < 0.9, words, tokens))
        return {
            **record,
            "tokens": jnp.where(selected, replaced, tokens),
            "labels": jnp.where(selected, tokens, -100),
        }

    return fn


def _mlm_numpy(
    batch: dict[str, np.ndarray], rng: np.random.Generator, _stats: Any
) -> dict[str, np.ndarray]:
    tokens = batch["tokens"]
    valid = np.arange(tokens.shape[1]) < batch["length"][:, None]
    selected = valid & (rng.random(tokens.shape) < 0.15)
    kind = rng.random(tokens.shape)
    words = rng.integers(2, VOCAB_SIZE, tokens.shape, dtype=np.int32)
    replaced = np.where(kind < 0.8, MASK_ID, np.where(kind < 0.9, words, tokens))
    return {
        **batch,
        "tokens": np.where(selected, replaced, tokens).astype(np.int32),
        "labels": np.where(selected, tokens, -100).astype(np.int32),
    }


# -- Operator depth and the Advanced DAG (W1's data and batches) --------------------------


def _depth_data(records: int = 1000) -> dict[str, np.ndarray]:
    data = _w1_data(records)
    data["score"] = np.zeros(len(data["label"]), np.float32)
    return data


def _depth(n: int) -> tuple[Callable[[Any], RecordFn], NumpyFn]:
    def record(_stats: Any) -> RecordFn:
        def fn(record: Record, key: jax.Array | None = None) -> Record:
            score = record["score"]
            for i in range(n):
                score = depth_step(i, score)
            return {**record, "score": score}

        return fn

    def numpy_fn(
        batch: dict[str, np.ndarray], _rng: np.random.Generator, _stats: Any
    ) -> dict[str, np.ndarray]:
        score = batch["score"]
        for i in range(n):
            score = depth_step(i, score)
        return {**batch, "score": score}

    return record, numpy_fn


def _dag_record(_stats: Any) -> RecordFn:
    """The README's Advanced DAG per record: mean of normalised and inverted, then a branch."""

    def fn(record: Record, key: jax.Array) -> Record:
        x = record["image"]
        mean = (x / 255.0 + (1.0 - x)) / 2.0
        flip = jax.random.bernoulli(jax.random.split(key)[0], 0.5)
        augmented = jnp.where(flip, jnp.flip(mean, axis=1), mean)
        return {**record, "image": jnp.where(jnp.var(mean) > 0.1, augmented, mean / 255.0)}

    return fn


def _dag_numpy(
    batch: dict[str, np.ndarray], rng: np.random.Generator, _stats: Any
) -> dict[str, np.ndarray]:
    x = batch["image"]
    mean = (x * np.float32(1 / 255) + (1 - x)) * np.float32(0.5)
    high = mean.reshape(len(mean), -1).var(axis=1) > 0.1
    flip = (rng.random(len(x)) < 0.5) & high
    mean[~high] *= np.float32(1 / 255)
    mean[flip] = mean[flip, :, ::-1]
    return {**batch, "image": mean}


# -- RA, MEL and PACK: the operator library against the libraries doing the same ---------


def _adapters_only(name: str) -> tuple[Callable[[Any], RecordFn], NumpyFn]:
    """Transforms of a scenario whose systems all build their own work (no references)."""

    def fail(*_args: Any) -> Any:
        raise ValueError(f"scenario {name} has no hand-written transform: see its systems")

    return fail, fail


#: RandAugment as torchvision's default: 2 operations per record, magnitude 9 of 31 bins.
RA_NUM_OPS, RA_MAGNITUDE, RA_NUM_BINS = 2, 9, 31

#: MEL's clips and features: 1 s at 16 kHz; 25 ms windows (400 samples) in 512-point
#: FFTs, 10 ms hops, 80 Slaney mel bands, power 2, centred frames (librosa's defaults).
MEL_SETTINGS: dict[str, Any] = {
    "sample_rate": 16_000,
    "n_fft": 512,
    "win_length": 400,
    "hop_length": 160,
    "n_mels": 80,
}
CLIP_SAMPLES = 16_000


def _mel_data(records: int = 2048) -> dict[str, np.ndarray]:
    """A tone of a random pitch in white noise per clip, float32 in about [-0.7, 0.7]."""
    rng = np.random.default_rng(0)
    t = np.arange(CLIP_SAMPLES, dtype=np.float32) / np.float32(MEL_SETTINGS["sample_rate"])
    pitch = rng.uniform(100.0, 4000.0, (records, 1)).astype(np.float32)
    audio = rng.standard_normal((records, CLIP_SAMPLES), dtype=np.float32)
    audio *= np.float32(0.05)
    audio += np.float32(0.5) * np.sin(np.float32(2 * np.pi) * pitch * t)
    return {"audio": audio}


def _mel_constants(_data: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The mel filterbank ``(80, 257)`` and the analysis window ``(512,)``, float32."""
    from datarax.operators.audio.filters import mel_filterbank
    from datarax.operators.audio.spectral import fft_window

    m = MEL_SETTINGS
    bank = mel_filterbank(m["sample_rate"], m["n_fft"], m["n_mels"])
    window = fft_window("hann", m["win_length"], m["n_fft"])
    return bank.astype(np.float32), window.astype(np.float32)


def _mel_record(stats: Any) -> RecordFn:
    bank, window = (jnp.asarray(s) for s in stats)
    n_fft, hop = MEL_SETTINGS["n_fft"], MEL_SETTINGS["hop_length"]
    n_frames = 1 + CLIP_SAMPLES // hop
    index = jnp.asarray(np.arange(n_frames)[:, None] * hop + np.arange(n_fft)[None, :])

    def fn(record: Record, key: jax.Array | None = None) -> Record:
        padded = jnp.pad(record["audio"], (n_fft // 2, n_fft // 2))
        spectrum = jnp.fft.rfft(padded[index] * window, axis=-1)  # (frames, bins)
        power = jnp.square(spectrum.real) + jnp.square(spectrum.imag)
        return {"mel": bank @ power.T}

    return fn


def _mel_numpy(
    batch: dict[str, np.ndarray], _rng: np.random.Generator, stats: Any
) -> dict[str, np.ndarray]:
    bank, window = stats
    n_fft, hop = MEL_SETTINGS["n_fft"], MEL_SETTINGS["hop_length"]
    padded = np.pad(batch["audio"], ((0, 0), (n_fft // 2, n_fft // 2)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=1)[:, ::hop]
    spectrum = np.fft.rfft(frames * window, axis=-1)  # (batch, frames, bins)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    # (frames, bins) @ (bins, mels) per clip is one BLAS call; bank @ power.T per clip
    # took NumPy's slow non-BLAS path (300x slower here).
    return {"mel": np.ascontiguousarray((power @ bank.T).transpose(0, 2, 1))}


#: PACK: W4's sequences packed first-fit into rows of this many tokens.
PACK_SEQ_LEN = 1024
#: PACK: records per batch read from the source before packing, and batches packed together.
PACK_READ_BATCH, PACK_WINDOW_BATCHES = 64, 4

_RA_SYSTEMS = ("datarax", "dm_pix", "augmax", "torchvision")
_MEL_SYSTEMS = ("numpy", "jax", "datarax", "librosa", "librosa-clip", "torchaudio")
_PACK_SYSTEMS = ("datarax", "grain")

#: Operators per chain of the depth scenarios.
DEPTHS = {"D1": 1, "D10": 10, "D100": 100}

#: The systems of the training scenarios: datarax per batch, fused, and the peer loaders.
TRAINING_SYSTEMS = ("datarax", "datarax-fused", "grain", "torch", "torch-2w", "tfdata")

_IMAGE_FLIP = "/255, random horizontal flip"
_W2_WORK = "to float, normalise, pad 4 + random 32x32 crop, random flip"


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            "W1",
            f"28x28x1 float images; {_IMAGE_FLIP}",
            _w1_data,
            1000,
            32,
            10,
            False,
            _w1_record,
            _w1_numpy,
        ),
        Scenario(
            "W1s",
            "W1 with a global shuffle every epoch",
            _w1_data,
            1000,
            32,
            10,
            True,
            _w1_record,
            _w1_numpy,
        ),
        Scenario(
            "W2",
            f"32x32x3 uint8 images; {_W2_WORK}",
            _w2_data,
            50_000,
            256,
            1,
            True,
            _w2_record,
            _w2_numpy,
            stats=_channel_stats,
        ),
        Scenario(
            "W3",
            "64 float columns; standardise per column",
            _w3_data,
            1_000_000,
            1024,
            1,
            True,
            _w3_record,
            _w3_numpy,
            stochastic=False,
            stats=_column_stats,
        ),
        Scenario(
            "W4",
            "int32 token lists of 16-512; truncate/pad to 128, keep the length",
            _w4_data,
            20_000,
            64,
            1,
            False,
            _w4_record,
            _w4_numpy,
            stochastic=False,
            storage="ragged",
        ),
        Scenario(
            "AR",
            f"W2 records in an ArrayRecord file: read, decode, then {_W2_WORK}",
            _w2_data,
            50_000,
            256,
            1,
            True,
            _w2_record,
            _w2_numpy,
            stats=_channel_stats,
            storage="array_record",
        ),
        Scenario(
            "MLM",
            "W4 sequences padded to 128; BERT-style dynamic masking (15%, 80/10/10)",
            _mlm_data,
            20_000,
            64,
            1,
            True,
            _mlm_record,
            _mlm_numpy,
        ),
        *(
            Scenario(
                name,
                f"W1's data; a chain of {n} small element operators",
                _depth_data,
                1000,
                32,
                10,
                False,
                *_depth(n),
                stochastic=False,
            )
            for name, n in DEPTHS.items()
        ),
        Scenario(
            "DAG",
            "W1's data; the README's Advanced DAG (parallel, merge, branch)",
            _w1_data,
            1000,
            32,
            10,
            False,
            _dag_record,
            _dag_numpy,
        ),
        Scenario(
            "RA",
            f"W2's uint8 images; RandAugment, {RA_NUM_OPS} operations of magnitude {RA_MAGNITUDE}",
            _w2_data,
            50_000,
            256,
            1,
            True,
            *_adapters_only("RA"),
            systems=_RA_SYSTEMS,
        ),
        Scenario(
            "MEL",
            "1 s float32 clips at 16 kHz; 80-band mel spectrogram (n_fft 512, window 400, hop 160)",
            _mel_data,
            2048,
            64,
            1,
            False,
            _mel_record,
            _mel_numpy,
            stochastic=False,
            stats=_mel_constants,
            systems=_MEL_SYSTEMS,
        ),
        Scenario(
            "PACK",
            f"W4's token lists; first-fit packing into rows of {PACK_SEQ_LEN} tokens, 16 a batch",
            _w4_data,
            20_000,
            16,
            1,
            False,
            *_adapters_only("PACK"),
            stochastic=False,
            storage="ragged",
            systems=_PACK_SYSTEMS,
        ),
    ]
}


def _training(base: str, name: str, title: str, model: str, bound: str = "") -> Scenario:
    """A training scenario: ``model`` trained with Adam on the data and per-record work
    of the loader scenario ``base``, its short last batches dropped."""
    work = SCENARIOS[base].title.split("; ")[1]
    return replace(
        SCENARIOS[base],
        name=name,
        title=f"training: {title} + Adam on {base} ({work}){bound}",
        systems=TRAINING_SYSTEMS,
        family="training",
        workload=base,
        model=model,
        drop_remainder=True,
    )


# -- T16, T256, TCNN: a Flax NNX model trained with Adam, fed by each loader --------
SCENARIOS.update(
    (s.name, s)
    for s in (
        _training("W1", "T16", "MLP 784-16-10", "mlp16", "; dispatch-bound"),
        _training("W1", "T256", "MLP 784-256-10", "mlp256"),
        _training("W2", "TCNN", "CNN (conv 16, conv 32, dense 128)", "cnn", "; compute-bound"),
    )
)
