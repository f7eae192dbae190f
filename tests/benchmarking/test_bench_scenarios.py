"""Scenario data and helpers: the same records reach every system the same way."""

from __future__ import annotations

import numpy as np

from datarax.benchmarking.records_file import (
    decode_batch,
    decode_record,
    open_records,
    write_records,
)
from datarax.benchmarking.runner import materialise
from datarax.benchmarking.scenarios import SCENARIOS, FlatTokens, pad_records, stats_for


def test_w4_padding_agrees_between_the_loop_and_the_vectorised_gather():
    tokens = SCENARIOS["W4"].make_data(300)["tokens"]
    lengths = np.array([len(t) for t in tokens])
    assert lengths.min() >= 16 and lengths.max() <= 512 and tokens[0].dtype == np.int32
    idx = np.array([5, 0, 299, 17])
    loop = pad_records(tokens[idx])
    flat = FlatTokens.of(tokens).pad(idx)
    np.testing.assert_array_equal(loop["tokens"], flat["tokens"])
    np.testing.assert_array_equal(loop["tokens_length"], np.minimum(lengths[idx], 128))


def test_mlm_masks_only_real_tokens_and_labels_what_it_selected():
    s = SCENARIOS["MLM"]
    data = s.make_data(256)
    out = s.numpy_fn(dict(data), np.random.default_rng(0), None)
    selected = out["labels"] != -100
    positions = np.arange(128)[None, :]
    assert not (selected & (positions >= data["length"][:, None])).any()
    np.testing.assert_array_equal(out["labels"][selected], data["tokens"][selected])
    rate = selected.sum() / data["length"].sum()
    assert 0.13 < rate < 0.17
    masked = (out["tokens"] == 1)[selected].mean()
    assert 0.75 < masked < 0.85


def test_array_record_files_round_trip(tmp_path):
    s = SCENARIOS["AR"]
    data = s.make_data(40)
    reader = open_records(write_records(tmp_path / "r.array_record", data))
    assert len(reader) == 40
    batch = decode_batch(reader.__getitems__([3, 39, 0]))
    np.testing.assert_array_equal(batch["image"], data["image"][[3, 39, 0]])
    np.testing.assert_array_equal(batch["label"], data["label"][[3, 39, 0]])
    assert int(decode_record(reader[7])["label"]) == int(data["label"][7])
    mean, std = stats_for(s, data)
    assert mean.shape == std.shape == (3,)


def test_materialise_counts_records_of_every_kind_of_batch():
    import jax.numpy as jnp

    assert materialise({"x": np.zeros((3, 2)), "y": np.zeros(3)}) == 3
    assert materialise({"x": jnp.zeros((5, 2))}) == 5
