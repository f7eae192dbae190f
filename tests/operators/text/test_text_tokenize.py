"""Tokenize: ids equal ``tokenizers.Tokenizer.encode`` per record, in pipelines and workers.

The tokenizer is a BPE model trained offline on the corpus shipped beside these
tests; the reference is ``tokenizer.encode(text).ids`` truncated to ``max_length``
and padded with ``pad_id``, compared exactly.
"""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from text_data import corpus, text_records, tokenizer

from datarax import from_source
from datarax.core.errors import ConfigError, RecordError, SchemaError
from datarax.core.optional import MissingDependencyError
from datarax.dag.nodes import HostOperator
from datarax.operators.text.tokenize import Tokenize, TokenizeConfig
from datarax.sources.record import SequenceSource


def reference(tok, text, max_length, pad_id=0, add_special_tokens=True):
    ids = tok.encode(text, add_special_tokens=add_special_tokens).ids[:max_length]
    return np.array(ids + [pad_id] * (max_length - len(ids)), np.int32), len(ids)


@pytest.mark.parametrize("max_length", [4, 12, 64])
def test_every_line_equals_encode(max_length):
    tok = tokenizer()
    op = Tokenize(TokenizeConfig(max_length=max_length, pad_id=7), tokenizer=tok)
    for record in text_records():
        out = op(record)
        text = record["text"].tobytes().decode()
        want, length = reference(tok, text, max_length, pad_id=7)
        np.testing.assert_array_equal(out["tokens"], want)
        assert out["tokens"].dtype == np.int32 and out["tokens_length"] == length
        assert out["tokens_length"].dtype == np.int32
        assert set(out) == {"tokens", "tokens_length", "label"}  # the text is dropped


WORDS = sorted({w for line in corpus() for w in line.split()})


@given(
    words=st.lists(st.sampled_from(WORDS + ["zebra", "ünïcödé", "?!"]), max_size=30),
    max_length=st.integers(1, 40),
    special=st.booleans(),
)
@settings(max_examples=25, deadline=None)
def test_random_texts_equal_encode(words, max_length, special):
    tok = tokenizer()
    text = " ".join(words)
    config = TokenizeConfig(
        field="caption",
        output="ids",
        max_length=max_length,
        add_special_tokens=special,
        keep_text=True,
    )
    op = Tokenize(config, tokenizer=tok)
    # Fixed-width byte fields are padded with zero bytes: they are not text.
    raw = np.frombuffer(text.encode().ljust(len(text.encode()) + 5, b"\0"), np.uint8)
    out = op({"caption": raw})
    want, length = reference(tok, text, max_length, add_special_tokens=special)
    np.testing.assert_array_equal(out["ids"], want)
    assert out["ids_length"] == length
    assert out["caption"] is raw  # keep_text
    assert op({"caption": text})["ids"].tolist() == want.tolist()  # a str directly


def _pipeline(op, workers=0, mode="thread"):
    source = SequenceSource(text_records())
    return from_source(
        source, 8, shuffle=True, seed=1, workers=workers, worker_mode=mode
    ) >> HostOperator(op)


@pytest.mark.parametrize("workers,mode", [(0, "thread"), (2, "thread"), (2, "process")])
def test_in_a_pipeline_on_workers(workers, mode):
    tok = tokenizer()
    op = Tokenize(TokenizeConfig(max_length=16), tokenizer=tok)
    lines = corpus()
    seen = set()
    for batch in _pipeline(op, workers, mode):
        tokens, lengths = np.asarray(batch["tokens"]), np.asarray(batch["tokens_length"])
        assert tokens.shape[1:] == (16,) and tokens.dtype == np.int32
        for row, rid in enumerate(np.asarray(batch.record_ids).tolist()):
            want, length = reference(tok, lines[rid], 16)
            np.testing.assert_array_equal(tokens[row], want)
            assert lengths[row] == length and batch["label"][row] == rid
            seen.add(rid)
    assert seen == set(range(len(lines)))


def test_pickles_as_json_and_fingerprints_follow_the_tokenizer():
    op = Tokenize(TokenizeConfig(max_length=8), tokenizer=tokenizer())
    copy = pickle.loads(pickle.dumps(op))
    assert copy.tokenizer_json == op.tokenizer_json and copy._tokenizer is None
    record = text_records()[3]
    np.testing.assert_array_equal(copy(record)["tokens"], op(record)["tokens"])
    assert len(pickle.dumps(op)) < len(op.tokenizer_json) + 2000  # no Rust object inside
    same = HostOperator(Tokenize(TokenizeConfig(max_length=8), tokenizer=op.tokenizer_json))
    other_tok = HostOperator(Tokenize(TokenizeConfig(max_length=8), tokenizer=tokenizer(300)))
    other_len = HostOperator(Tokenize(TokenizeConfig(max_length=9), tokenizer=tokenizer()))
    mine = HostOperator(op).fingerprint()
    assert mine == same.fingerprint()
    assert mine != other_tok.fingerprint() and mine != other_len.fingerprint()
    assert HostOperator(op).name == "HostOperator(Tokenize)"


def test_config_errors():
    with pytest.raises(
        ConfigError, match=r"TokenizeConfig.max_length: .*expected an int > 0, found 0"
    ):
        TokenizeConfig(max_length=0)
    with pytest.raises(ConfigError, match=r"TokenizeConfig.pad_id: must be a token id"):
        TokenizeConfig(pad_id=2**40)
    with pytest.raises(ConfigError, match=r"TokenizeConfig.field: must be a field name"):
        TokenizeConfig(field="")
    with pytest.raises(ConfigError, match=r"TokenizeConfig.add_special_tokens: must be a bool"):
        TokenizeConfig(add_special_tokens="yes")
    with pytest.raises(ConfigError, match=r"TokenizeConfig.output: the text field would be"):
        TokenizeConfig(field="text", output="text", keep_text=True)
    with pytest.raises(
        ConfigError, match=r"Tokenize\(tokenizer=...\): not a tokenizer; .*found dict"
    ):
        Tokenize(TokenizeConfig(), tokenizer={})
    with pytest.raises(ConfigError, match=r"Tokenize: wrong config type"):
        Tokenize(object(), tokenizer=tokenizer())


def test_schema_errors():
    op = Tokenize(TokenizeConfig(), tokenizer=tokenizer())
    with pytest.raises(
        SchemaError, match=r"Tokenize: field missing; expected a field 'text' among \['x'\]"
    ):
        op({"x": np.zeros(3, np.uint8)})
    with pytest.raises(
        SchemaError,
        match=r"Tokenize, field 'text': text must be UTF-8 bytes; .*found float32\(3,\)",
    ):
        op({"text": np.zeros(3, np.float32)})


def test_invalid_utf8_names_the_record():
    records = text_records()
    records[5] = {"text": np.array([0xFF, 0xFE, 0x41], np.uint8), "label": np.int32(5)}
    op = Tokenize(TokenizeConfig(max_length=8), tokenizer=tokenizer())
    pipeline = from_source(SequenceSource(records), 8) >> HostOperator(op)
    with pytest.raises(
        RecordError,
        match=(
            r"record 5, HostOperator\(Tokenize\): the host operator raised; "
            r".*UnicodeDecodeError"
        ),
    ):
        list(pipeline)


def test_missing_tokenizers_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # import fails as if not installed
    with pytest.raises(
        MissingDependencyError,
        match=r'Tokenize: .*install datarax\[text\]: pip install "datarax\[text\]"',
    ):
        Tokenize(TokenizeConfig(), tokenizer="{}")
