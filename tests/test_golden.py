"""Golden values: exact record orders, keys and first batches, stored in tests/golden/.

These values pin the streams: sampler orders (ShuffleSampler, WindowShuffleSampler,
FeistelPermutation), the key derivation (``mix64``, ``stream_id``, ``stream_key``,
``record_keys``) and the first batches of the ``augmented(...)`` pipeline of
tests/dag/pipelines.py (alone, with a ``ShuffleNode`` and with a ``RebatchNode``).
Any change to what a seed produces fails here on purpose: a user's seeded run must
keep its data order and augmentations across versions.

If a change is intended, regenerate and say so in the commit:

    JAX_PLATFORMS=cpu python tests/test_golden.py --regenerate

then review ``git diff tests/golden/streams.json``: only the cases you meant to
change may differ. Image hashes are of the float32 bytes computed on the CPU backend.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "dag"))

from pipelines import augmented, image_data  # noqa: E402

from datarax.core.rng import mix64, record_keys, stream_id, stream_key  # noqa: E402
from datarax.dag.nodes import RebatchNode, ShuffleNode  # noqa: E402
from datarax.samplers import (  # noqa: E402
    FeistelPermutation,
    SequentialSampler,
    SequentialSamplerConfig,
    ShuffleSampler,
    ShuffleSamplerConfig,
)
from datarax.samplers.window import WindowShuffleConfig, WindowShuffleSampler  # noqa: E402

GOLDEN_FILE = Path(__file__).parent / "golden" / "streams.json"
REGENERATE = "JAX_PLATFORMS=cpu python tests/test_golden.py --regenerate"

BIG_POSITIONS = [0, 1, 2, 3, 1023, 1024, 123_456, 500_000, 999_998, 999_999]


def ints(values) -> list[int]:
    return [int(v) for v in np.asarray(values).ravel()]


# --------------------------------------------------------------------------- samplers


def shuffle_order(n: int, seed: int, epoch: int, stop: int | None = None) -> list[int]:
    s = ShuffleSampler(ShuffleSamplerConfig(num_records=n, seed=seed))
    return ints(s.indices(epoch, 0, n if stop is None else stop))


def shuffle_at(n: int, seed: int, epoch: int) -> dict[str, list[int]]:
    s = ShuffleSampler(ShuffleSamplerConfig(num_records=n, seed=seed))
    return {"positions": BIG_POSITIONS, "ids": ints(s.permutation(epoch)(np.array(BIG_POSITIONS)))}


def window(n: int, buffer_size: int, seed: int, epoch: int, stop: int | None = None) -> dict:
    base = SequentialSampler(SequentialSamplerConfig(num_records=n))
    s = WindowShuffleSampler(WindowShuffleConfig(buffer_size=buffer_size, seed=seed), base=base)
    return {
        "phase": int(s.phase(epoch)),
        "order": ints(s.indices(epoch, 0, n if stop is None else stop)),
    }


MIX64_PARTS = [(), (0,), (1,), (0, 1), (1, 0), (-1,), (2**64 - 1,), (2**63, 5), (7, 0, 3, -1)]


def mix64_values() -> dict[str, int]:
    return {f"mix64({', '.join(map(str, parts))})": mix64(*parts) for parts in MIX64_PARTS}


def feistel(size: int, key: int, positions: list[int] | None = None) -> dict:
    pos = np.arange(size) if positions is None else np.array(positions)
    return {"positions": ints(pos), "images": ints(FeistelPermutation(size, key)(pos))}


FEISTEL_CASES = {
    "feistel/size10_key1234": (10, 1234, None),
    "feistel/size16_key0": (16, 0, None),
    "feistel/size100_key2**63+5": (100, 2**63 + 5, list(range(20))),
    "feistel/size1000000_key7": (10**6, 7, BIG_POSITIONS),
    "feistel/size2**32-1_key-3": (2**32 - 1, -3, [0, 1, 2**31, 2**32 - 2]),
}


# --------------------------------------------------------------------------- keys


def key_data(key: jax.Array) -> list[int]:
    return ints(jax.random.key_data(key))


def keys() -> dict[str, Any]:
    base = jax.random.key(7)
    stream = stream_key(base, "augment", 0)
    return {
        "stream_id": {name: stream_id(name) for name in ("augment", "default", "augmentations")},
        "stream_key(key(7), augment, seed 0)": key_data(stream),
        "stream_key(key(7), augment, seed 1)": key_data(stream_key(base, "augment", 1)),
        "record_keys(epoch 0, ids 0 1 2 99)": key_data(
            record_keys(stream, 0, np.array([0, 1, 2, 99]))
        ),
        "record_keys(epoch 1, ids 0 1 2 99)": key_data(
            record_keys(stream, 1, np.array([0, 1, 2, 99]))
        ),
    }


# --------------------------------------------------------------------------- pipelines


def describe(batch, data: dict[str, np.ndarray]) -> dict[str, Any]:
    """Epoch, record ids, which records are flipped, and the SHA-256 of the image bytes."""
    ids = np.asarray(batch["label"])
    images = np.asarray(batch["image"], np.float32)
    flipped = []
    for rid, image in zip(ids.tolist(), images, strict=True):
        plain = data["image"][rid] / np.float32(255.0)
        if np.allclose(image, plain):
            flipped.append(False)
        elif np.allclose(image, plain[:, ::-1]):
            flipped.append(True)
        else:
            raise AssertionError(f"record {rid} is neither the image nor its flip")
    return {
        "epoch": int(batch.epoch),
        "record_ids": ints(ids),
        "flipped": flipped,
        "image_sha256": hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest(),
    }


def first_batch(pipeline) -> dict[str, Any]:
    return describe(next(iter(pipeline)), image_data(100))


def with_window_shuffle(pipeline, buffer_size: int, seed: int):
    """``pipeline`` with a ShuffleNode inserted after its source and batching nodes."""
    nodes = pipeline.nodes
    chain = nodes[0] >> nodes[1] >> ShuffleNode(buffer_size, seed=seed)
    for node in nodes[2:]:
        chain = chain >> node
    return chain


def whole_stream(pipeline) -> dict[str, Any]:
    """Every batch of every epoch: the first batch of each epoch and one hash of it all."""
    digest = hashlib.sha256()
    firsts, count = {}, 0
    data = image_data(100)
    for batch in pipeline:
        d = describe(batch, data)
        firsts.setdefault(str(d["epoch"]), d["record_ids"])
        digest.update(json.dumps(d, sort_keys=True).encode())
        count += 1
    return {"batches": count, "first_ids_per_epoch": firsts, "sha256": digest.hexdigest()}


# --------------------------------------------------------------------------- registry


CASES: dict[str, Callable[[], Any]] = {}
# 2**64 - 1: the stream that seed -1 gave before seeds were checked to be in [0, 2**64).
for _n, _seed, _epoch in [(10, 0, 0), (10, 0, 1), (10, 1, 0), (10, 1, 1), (10, 2**64 - 1, 0)]:
    CASES[f"shuffle/n{_n}_seed{_seed}_epoch{_epoch}"] = lambda n=_n, seed=_seed, epoch=_epoch: (
        shuffle_order(n, seed, epoch)
    )
for _seed, _epoch in [(0, 0), (0, 1), (1, 0), (12345, 7)]:
    CASES[f"shuffle/n1000_seed{_seed}_epoch{_epoch}_first20"] = lambda seed=_seed, epoch=_epoch: (
        shuffle_order(1000, seed, epoch, stop=20)
    )
for _seed, _epoch in [(0, 0), (0, 1), (3, 0)]:
    CASES[f"shuffle/n1000000_seed{_seed}_epoch{_epoch}_at"] = lambda seed=_seed, epoch=_epoch: (
        shuffle_at(10**6, seed, epoch)
    )
for _seed, _epoch in [(0, 0), (0, 1), (1, 0), (1, 1)]:
    CASES[f"window/n20_buffer6_seed{_seed}_epoch{_epoch}"] = lambda seed=_seed, epoch=_epoch: (
        window(20, 6, seed, epoch)
    )
CASES["window/n1000_buffer64_seed3_epoch2_first40"] = lambda: window(1000, 64, 3, 2, stop=40)
CASES["mix64"] = mix64_values
for _name, (_size, _key, _pos) in FEISTEL_CASES.items():
    CASES[_name] = lambda size=_size, key=_key, pos=_pos: feistel(size, key, pos)
CASES["keys"] = keys
CASES["pipeline/augmented_seed0_first_batch"] = lambda: first_batch(augmented(seed=0))
CASES["pipeline/augmented_seed1_first_batch"] = lambda: first_batch(augmented(seed=1))
CASES["pipeline/augmented_seed0_sequential_first_batch"] = lambda: first_batch(
    augmented(seed=0, shuffle=False)
)
CASES["pipeline/augmented_seed0_window_shuffle16_seed11_first_batch"] = lambda: first_batch(
    with_window_shuffle(augmented(seed=0, shuffle=False), 16, seed=11)
)
CASES["pipeline/augmented_seed2_rebatch12_first_batch"] = lambda: first_batch(
    augmented(seed=2) >> RebatchNode(12)
)
CASES["pipeline/augmented_seed0_two_epochs"] = lambda: whole_stream(augmented(seed=0, num_epochs=2))


def compute(name: str) -> Any:
    """A case's value as it would be stored (a JSON round trip normalises tuples)."""
    return json.loads(json.dumps(CASES[name]()))


def load() -> dict[str, Any]:
    return json.loads(GOLDEN_FILE.read_text())["cases"]


def dump(value: Any, level: int = 0) -> str:
    """JSON with one line per case field: lists of numbers stay on one line."""
    pad = " " * (level + 1)
    if isinstance(value, dict):
        items = [f"{pad}{json.dumps(k)}: {dump(value[k], level + 1)}" for k in sorted(value)]
        return "{\n" + ",\n".join(items) + "\n" + " " * level + "}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        items = [pad + dump(v, level + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * level + "]"
    return json.dumps(value)


def regenerate() -> None:
    """Recompute every case and rewrite the golden file (run by hand, never by pytest)."""
    cases = {name: compute(name) for name in CASES}
    GOLDEN_FILE.parent.mkdir(exist_ok=True)
    document = {"regenerate": REGENERATE, "cases": cases}
    GOLDEN_FILE.write_text(dump(document) + "\n")
    print(f"wrote {len(cases)} cases to {GOLDEN_FILE}")


# --------------------------------------------------------------------------- tests


def test_every_case_is_stored_and_every_stored_value_has_a_case():
    assert sorted(load()) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_stream_matches_golden(name):
    expected = load()[name]
    assert compute(name) == expected, f"{name} changed; if intended, run: {REGENERATE}"


@pytest.mark.parametrize("name", sorted(FEISTEL_CASES))
def test_jax_feistel_matches_the_numpy_golden(name):
    size, key, _ = FEISTEL_CASES[name]
    stored = load()[name]
    got = FeistelPermutation(size, key).jax(np.array(stored["positions"], np.uint32))
    # jax returns int32: compare modulo 2**32 for the largest domain.
    assert [int(v) & 0xFFFFFFFF for v in np.asarray(got)] == stored["images"]


@pytest.mark.parametrize("seed,epoch", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_jax_shuffle_indices_match_the_golden(seed, epoch):
    s = ShuffleSampler(ShuffleSamplerConfig(num_records=10, seed=seed))
    got = ints(s.indices_jax(epoch, np.arange(10)))
    assert got == load()[f"shuffle/n10_seed{seed}_epoch{epoch}"]


if __name__ == "__main__":
    if sys.argv[1:] != ["--regenerate"]:
        sys.exit(f"usage: {REGENERATE}")
    jax.config.update("jax_platforms", "cpu")
    regenerate()
