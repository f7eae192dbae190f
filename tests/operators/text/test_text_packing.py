"""Sequence packing against a plain-Python first-fit / best-fit model, and as a pipeline stage.

The model places sequences (or their pieces) one by one into a list of rows, the
textbook way; ``pack_sequences`` must give the same rows, segment ids, positions
and first records exactly. Properties hold for any lengths: every token appears
exactly once, segments stay inside rows and positions restart per segment. The
packed stream of a pipeline equals the model applied window by window, and resumes
exactly from a state saved before any step.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from text_data import corpus, text_records, tokenizer

from datarax import from_source
from datarax.core.errors import (
    ConfigError,
    PipelineBuildError,
    RecordError,
    SchemaError,
    StateError,
)
from datarax.dag.nodes import HostOperator
from datarax.dag.packing import PackedPipeline
from datarax.operators.text.packing import PackConfig, pack_sequences
from datarax.operators.text.tokenize import Tokenize, TokenizeConfig
from datarax.sources import MemorySource, MemorySourceConfig
from datarax.sources.record import SequenceSource
from harness import assert_resumes_at_every_step

# --------------------------------------------------------------------------- the model


def model_rows(sequences, seq_len, algorithm, long_sequences):
    """Rows as lists of (record, tokens) segments, placed one piece at a time."""
    pieces = []
    for r, seq in enumerate(sequences):
        if long_sequences == "truncate":
            parts = [seq[:seq_len]] if seq else []
        else:
            parts = [seq[i : i + seq_len] for i in range(0, len(seq), seq_len)]
        pieces += [(r, part) for part in parts]
    rows = []
    for r, part in pieces:
        room = [seq_len - sum(len(p) for _, p in row) for row in rows]
        fits = [i for i, free in enumerate(room) if free >= len(part)]
        if not fits:
            rows.append([])
            target = len(rows) - 1
        elif algorithm == "first_fit":
            target = fits[0]
        else:
            target = min(fits, key=lambda i: (room[i], i))
        rows[target].append((r, part))
    return rows


def model_arrays(sequences, record_ids, seq_len, algorithm, long_sequences, pad_id=0):
    rows = model_rows(sequences, seq_len, algorithm, long_sequences)
    tokens = np.full((len(rows), seq_len), pad_id, np.int32)
    segments = np.zeros((len(rows), seq_len), np.int32)
    positions = np.zeros((len(rows), seq_len), np.int32)
    firsts = np.zeros(len(rows), np.int32)
    for i, row in enumerate(rows):
        col = 0
        firsts[i] = record_ids[row[0][0]]
        for s, (_, part) in enumerate(row):
            for p, token in enumerate(part):
                tokens[i, col], segments[i, col], positions[i, col] = token, s + 1, p
                col += 1
    return tokens, segments, positions, firsts


def unique_sequences(lengths, width):
    """Record r's token p is ``1 + 1000 r + p``: every token of the input is distinct."""
    seqs = [[1 + 1000 * r + p for p in range(n)] for r, n in enumerate(lengths)]
    padded = np.zeros((len(lengths), width), np.int32)
    for r, seq in enumerate(seqs):
        padded[r, : len(seq)] = seq
    return seqs, padded


# --------------------------------------------------------------------------- pack_sequences

#: Widest sequence of the generated cases.
CASE_WIDTH = 240

# Short pieces (tokens gathered one by one) and long ones (copied a slice at a time).
cases = st.one_of(
    st.fixed_dictionaries(
        {
            "lengths": st.lists(st.integers(0, 24), min_size=1, max_size=40),
            "seq_len": st.integers(1, 16),
            "algorithm": st.sampled_from(["first_fit", "best_fit"]),
            "long_sequences": st.sampled_from(["split", "truncate"]),
        }
    ),
    st.fixed_dictionaries(
        {
            "lengths": st.lists(st.integers(60, CASE_WIDTH), min_size=1, max_size=12),
            "seq_len": st.integers(100, 300),
            "algorithm": st.sampled_from(["first_fit", "best_fit"]),
            "long_sequences": st.sampled_from(["split", "truncate"]),
        }
    ),
)


@given(case=cases)
@settings(max_examples=25, deadline=None)
def test_equals_the_model(case):
    seqs, padded = unique_sequences(case["lengths"], CASE_WIDTH)
    ids = np.arange(len(seqs)) * 3 + 5
    config = PackConfig(
        seq_len=case["seq_len"],
        algorithm=case["algorithm"],
        long_sequences=case["long_sequences"],
        pad_id=-1,
    )
    got = pack_sequences(padded, np.array(case["lengths"]), ids, config)
    want = model_arrays(
        seqs, ids, case["seq_len"], case["algorithm"], case["long_sequences"], pad_id=-1
    )
    for name, array, expected in zip(
        ("tokens", "segment_ids", "positions", "record_ids"),
        (got.tokens, got.segment_ids, got.positions, got.record_ids),
        want,
        strict=True,
    ):
        np.testing.assert_array_equal(array, expected, err_msg=name)
        assert array.dtype == np.int32


@given(case=cases)
@settings(max_examples=25, deadline=None)
def test_properties(case):
    lengths, seq_len = case["lengths"], case["seq_len"]
    seqs, padded = unique_sequences(lengths, CASE_WIDTH)
    config = PackConfig(
        seq_len=seq_len, algorithm=case["algorithm"], long_sequences=case["long_sequences"]
    )
    rows = pack_sequences(padded, np.array(lengths), np.arange(len(seqs)), config)
    real = rows.segment_ids > 0
    # Every token (of the truncated sequences) appears exactly once.
    kept = seqs if case["long_sequences"] == "split" else [s[:seq_len] for s in seqs]
    expected = sorted(t for s in kept for t in s)
    assert sorted(rows.tokens[real].tolist()) == expected
    assert np.all(rows.tokens[~real] == 0) and np.all(rows.positions[~real] == 0)
    for tokens, segments, positions in zip(
        rows.tokens, rows.segment_ids, rows.positions, strict=True
    ):
        used = int(np.count_nonzero(segments))
        assert np.all(segments[:used] > 0) and np.all(segments[used:] == 0)  # padding at the end
        assert np.all(np.diff(segments[:used]) >= 0) and np.all(np.diff(segments[:used]) <= 1)
        assert used == 0 or segments[0] == 1
        for s in range(1, int(segments.max()) + 1):  # a segment: consecutive tokens of one record
            seg = tokens[segments == s]
            assert positions[segments == s].tolist() == list(range(seg.size))
            assert np.all(np.diff(seg) == 1) and len({(t - 1) // 1000 for t in seg}) == 1
    # A row opens only when nothing fits: its first segment fits in no older row.
    used = np.count_nonzero(rows.segment_ids, axis=1)
    for k in range(1, rows.num_rows):
        head = int(np.count_nonzero(rows.segment_ids[k] == 1))
        assert np.all(seq_len - used[:k] < head)


def test_first_fit_and_best_fit_differ_as_documented():
    # seq_len 6: [3] leaves room 3, the 4 opens a second row (room 2); then a 2 fits both.
    _, padded = unique_sequences([3, 4, 2], 8)
    lengths, ids = np.array([3, 4, 2]), np.arange(3)
    first = pack_sequences(padded, lengths, ids, PackConfig(seq_len=6))
    best = pack_sequences(padded, lengths, ids, PackConfig(seq_len=6, algorithm="best_fit"))
    assert first.segment_ids.tolist() == [[1, 1, 1, 2, 2, 0], [1, 1, 1, 1, 0, 0]]  # oldest row
    assert best.segment_ids.tolist() == [[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 2, 2]]  # fullest row
    assert first.positions.tolist()[0] == [0, 1, 2, 0, 1, 0]
    assert first.tokens.tolist()[0] == [1, 2, 3, 2001, 2002, 0]
    # A sequence longer than seq_len: pieces of seq_len, each its own segment.
    _, padded = unique_sequences([7], 8)
    split = pack_sequences(padded, np.array([7]), np.array([9]), PackConfig(seq_len=3))
    assert split.tokens.tolist() == [[1, 2, 3], [4, 5, 6], [7, 0, 0]]
    assert split.positions.tolist() == [[0, 1, 2], [0, 1, 2], [0, 0, 0]]
    assert split.record_ids.tolist() == [9, 9, 9]
    cut = pack_sequences(
        padded, np.array([7]), np.array([9]), PackConfig(seq_len=3, long_sequences="truncate")
    )
    assert cut.tokens.tolist() == [[1, 2, 3]]


def test_bad_lengths_name_the_record():
    with pytest.raises(
        RecordError,
        match=(
            r"packing, record 11, field 'tokens_length': sequence length out "
            r"of range; expected a length in \[0, 4\], found 5"
        ),
    ):
        pack_sequences(
            np.zeros((2, 4), np.int32), np.array([1, 5]), np.array([10, 11]), PackConfig()
        )


def test_config_errors():
    with pytest.raises(
        ConfigError,
        match=(
            r"PackConfig.algorithm: unknown algorithm; expected "
            r"'first_fit' or 'best_fit', found 'next_fit'"
        ),
    ):
        PackConfig(algorithm="next_fit")
    with pytest.raises(ConfigError, match=r"PackConfig.long_sequences: unknown long sequences"):
        PackConfig(long_sequences="drop")
    with pytest.raises(ConfigError, match=r"PackConfig.seq_len: must be a positive integer"):
        PackConfig(seq_len=0)
    with pytest.raises(ConfigError, match=r"PackConfig: output fields must have distinct names"):
        PackConfig(segment_field="tokens")
    with pytest.raises(ConfigError, match=r"PackConfig.length_field: must be a field name"):
        PackConfig(length_field="")


# --------------------------------------------------------------------------- in a pipeline

WIDTH = 12
LENGTHS = np.random.default_rng(0).integers(0, WIDTH + 6, 45)  # some longer than the width


def _source():
    seqs, _ = unique_sequences(LENGTHS.tolist(), WIDTH + 6)
    rows = [np.asarray(s, np.int32) for s in seqs]
    return MemorySource(
        MemorySourceConfig(pad_to={"tokens": WIDTH}), data={"tokens": rows, "label": np.arange(45)}
    )


def _packed(config, num_epochs=2, batch_size=8):
    pipeline = from_source(_source(), batch_size, shuffle=True, seed=4, num_epochs=num_epochs)
    return PackedPipeline(pipeline, config)


def _expected_stream(config, num_epochs=2, batch_size=8):
    """The model applied to windows of the upstream stream, rows cut into batches per epoch."""
    upstream = list(from_source(_source(), batch_size, shuffle=True, seed=4, num_epochs=num_epochs))
    out = []
    for epoch in sorted({int(b.epoch) for b in upstream}):
        batches = [b for b in upstream if int(b.epoch) == epoch]
        rows = []
        for w in range(0, len(batches), config.window_batches):
            window = batches[w : w + config.window_batches]
            ids = np.concatenate([np.asarray(b.record_ids) for b in window])
            lengths = np.concatenate([np.asarray(b["tokens_length"]) for b in window])
            tokens = np.concatenate([np.asarray(b["tokens"]) for b in window])
            seqs = [tokens[i, :n].tolist() for i, n in enumerate(lengths)]
            t, s, p, f = model_arrays(
                seqs, ids, config.seq_len, config.algorithm, config.long_sequences
            )
            rows += list(zip(t, s, p, f, strict=True))
        for start in range(0, len(rows), config.batch_size):
            chunk = rows[start : start + config.batch_size]
            pad = config.batch_size - len(chunk)
            t = np.stack([r[0] for r in chunk] + [np.zeros(config.seq_len, np.int32)] * pad)
            s = np.stack([r[1] for r in chunk] + [np.zeros(config.seq_len, np.int32)] * pad)
            p = np.stack([r[2] for r in chunk] + [np.zeros(config.seq_len, np.int32)] * pad)
            f = np.array([r[3] for r in chunk] + [-1] * pad, np.int32)
            out.append((epoch, t, s, p, f))
    return out


@pytest.mark.parametrize(
    "config",
    [
        PackConfig(seq_len=16, batch_size=4, window_batches=2),
        PackConfig(seq_len=8, batch_size=3, window_batches=3, algorithm="best_fit"),
        PackConfig(seq_len=5, batch_size=4, window_batches=1, long_sequences="truncate"),
    ],
)
def test_stream_equals_the_model_window_by_window(config):
    got = list(_packed(config))
    want = _expected_stream(config)
    assert len(got) == len(want)
    for batch, (epoch, t, s, p, f) in zip(got, want, strict=True):
        assert batch.epoch == epoch
        np.testing.assert_array_equal(batch["tokens"], t)
        np.testing.assert_array_equal(batch["segment_ids"], s)
        np.testing.assert_array_equal(batch["positions"], p)
        np.testing.assert_array_equal(batch.record_ids, f)
        assert set(batch.data) == {"tokens", "segment_ids", "positions"}
    # Each epoch holds every token kept by the source exactly once.
    for epoch in (0, 1):
        tokens = np.concatenate(
            [b["tokens"][b["segment_ids"] > 0] for b in got if b.epoch == epoch]
        )
        kept = [min(n, WIDTH) for n in LENGTHS]
        if config.long_sequences == "truncate":
            kept = [min(n, config.seq_len) for n in kept]
        assert sorted(tokens.tolist()) == sorted(
            1 + 1000 * r + q for r, n in enumerate(kept) for q in range(n)
        )


@pytest.mark.parametrize(
    "config",
    [
        PackConfig(seq_len=16, batch_size=4, window_batches=2),
        PackConfig(seq_len=8, batch_size=5, window_batches=3, algorithm="best_fit"),
    ],
)
def test_resumes_exactly_at_every_step(config):
    stream = assert_resumes_at_every_step(lambda: _packed(config))
    assert len(stream) > 6


def test_state_of_another_stage_is_refused():
    it = iter(_packed(PackConfig(seq_len=16, batch_size=4)))
    next(it)
    state = it.get_state()
    other = iter(_packed(PackConfig(seq_len=16, batch_size=4, algorithm="best_fit")))
    with pytest.raises(
        StateError, match=r"PackedPipeline.set_state: the state was saved by another stage"
    ):
        other.set_state(state)
    with pytest.raises(StateError, match=r"not a windowed stage state"):
        other.set_state({"epoch": 0})
    bad = json.loads(json.dumps(state))
    bad["taken"] = 10_000
    again = iter(_packed(PackConfig(seq_len=16, batch_size=4)))
    again.set_state(bad)
    with pytest.raises(StateError, match=r"state out of range; expected 'taken' <= \d+"):
        next(again)


def test_reset_replays():
    it = iter(_packed(PackConfig(seq_len=16, batch_size=4), num_epochs=1))
    first = [np.asarray(b["tokens"]) for b in it]
    it.reset()
    again = [np.asarray(b["tokens"]) for b in it]
    assert len(first) == len(again) and all(
        np.array_equal(a, b) for a, b in zip(first, again, strict=True)
    )


def test_build_errors():
    pipeline = from_source(_source(), 8)
    with pytest.raises(
        SchemaError,
        match=(
            r"PackedPipeline: field missing; expected a field 'words' "
            r"among \['label', 'tokens', 'tokens_length'\]"
        ),
    ):
        PackedPipeline(pipeline, PackConfig(field="words"))
    with pytest.raises(
        SchemaError,
        match=(
            r"PackedPipeline, field 'label': not a sequence field; expected "
            r"integers of shape \(width,\) per record, found int32\(\)"
        ),
    ):
        PackedPipeline(pipeline, PackConfig(field="label", length_field="tokens_length"))
    with pytest.raises(SchemaError, match=r"field 'tokens': not a length field"):
        PackedPipeline(pipeline, PackConfig(length_field="tokens"))
    with pytest.raises(PipelineBuildError, match=r"PackedPipeline: wrong config type"):
        PackedPipeline(pipeline, object())
    with pytest.raises(PipelineBuildError, match=r"not a pipeline"):
        PackedPipeline([1, 2], PackConfig())


def test_a_tokenised_corpus_packs_every_id_once():
    tok = tokenizer()
    tokenize = Tokenize(TokenizeConfig(max_length=64), tokenizer=tok)
    pipeline = from_source(SequenceSource(text_records()), 8, shuffle=True, seed=0) >> (
        HostOperator(tokenize)
    )
    config = PackConfig(seq_len=24, batch_size=4, algorithm="best_fit")
    batches = list(PackedPipeline(pipeline, config))
    packed = np.concatenate([b["tokens"][b["segment_ids"] > 0] for b in batches])
    ids = [i for line in corpus() for i in tok.encode(line).ids[:64]]
    assert sorted(packed.tolist()) == sorted(ids)
    assert max(len(tok.encode(line).ids) for line in corpus()) > 24  # some lines are split
