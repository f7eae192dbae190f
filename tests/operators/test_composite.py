"""CompositeOperator: each strategy equals the same graph built from DAG nodes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from datarax import from_source
from datarax.core.errors import ConfigError
from datarax.dag.nodes import Merge, OperatorNode, Switch
from datarax.operators import (
    CompositeOperator,
    CompositeOperatorConfig,
    ElementOperator,
    ElementOperatorConfig,
)
from datarax.sources import MemorySource, MemorySourceConfig

N = 40


def data():
    rng = np.random.default_rng(0)
    return {
        "x": rng.normal(size=(N, 3)).astype(np.float32),
        "label": np.arange(N, dtype=np.int32),
    }


def affine(scale, shift):
    return ElementOperator(
        ElementOperatorConfig(),
        fn=lambda e: e.update_data({"x": e.data["x"] * scale + shift}),
        name=f"affine({scale},{shift})",
    )


def noisy():
    def fn(e, key):
        return e.update_data({"x": e.data["x"] + jax.random.normal(key, e.data["x"].shape)})

    return ElementOperator(
        ElementOperatorConfig(stochastic=True, stream_name="noise"), fn=fn, rngs=nnx.Rngs(5)
    )


def run(tail, batch_size=8):
    source = MemorySource(MemorySourceConfig(), data=data())
    pipeline = from_source(source, batch_size, shuffle=True, seed=3, num_epochs=2)
    for node in tail:
        pipeline = pipeline >> node
    out = [(b.epoch, np.asarray(b.record_ids), np.asarray(b["x"])) for b in pipeline]
    return out


def composite(strategy, operators, **kw):
    return OperatorNode(
        CompositeOperator(CompositeOperatorConfig(strategy=strategy, operators=operators, **kw))
    )


def assert_same(a, b):
    assert len(a) == len(b)
    for (e1, i1, x1), (e2, i2, x2) in zip(a, b, strict=True):
        assert e1 == e2
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_allclose(x1, x2, rtol=1e-6, atol=1e-6)


def test_sequential_equals_chaining_the_operators():
    a, b = affine(2.0, 1.0), noisy()
    assert_same(run([composite("sequential", [a, b])]), run([OperatorNode(a), OperatorNode(b)]))


@pytest.mark.parametrize(
    ("strategy", "kw", "merge"),
    [
        ("parallel", {"merge": "concat"}, Merge("concat", axis=-1)),
        ("parallel", {"merge": "stack", "axis": 0}, Merge("stack", axis=0)),
        ("ensemble", {"reduction": "mean"}, Merge("mean")),
        ("ensemble", {"reduction": "max"}, Merge("max")),
        ("merging", {"weights": (0.25, 0.75)}, Merge("weighted", weights=(0.25, 0.75))),
    ],
)
def test_combining_strategies_equal_parallel_then_merge(strategy, kw, merge):
    a, b = affine(2.0, 1.0), noisy()
    expected = run([OperatorNode(a) | OperatorNode(b), merge])
    assert_same(run([composite(strategy, [a, b], **kw)]), expected)


def test_ensemble_equals_the_numpy_mean_of_the_operators():
    a, b = affine(2.0, 1.0), affine(-1.0, 3.0)
    out = run([composite("ensemble", [a, b])])
    x = data()["x"]
    for _, ids, values in out:
        expected = ((x[ids] * 2 + 1) + (x[ids] * -1 + 3)) / np.float32(2)
        np.testing.assert_allclose(values, expected, rtol=1e-6)


def test_branching_routes_each_record_like_a_switch():
    def router(e):
        return e.data["label"] % 3

    ops = [affine(1.0, 10.0), affine(1.0, 20.0), noisy()]
    out = run([composite("branching", ops, router=router)])
    assert_same(out, run([Switch(router, [OperatorNode(op) for op in ops])]))
    x = data()["x"]
    for _, ids, values in out:
        for rid, row in zip(ids, values, strict=True):
            if rid % 3 < 2:
                np.testing.assert_allclose(row, x[rid] + (10.0, 20.0)[rid % 3], rtol=1e-6)


def test_a_composite_of_a_random_operator_is_stochastic_and_keeps_its_keys():
    op = noisy()
    comp = CompositeOperator(CompositeOperatorConfig(operators=[op]))
    assert comp.stochastic
    assert_same(run([OperatorNode(comp)]), run([OperatorNode(op)]))


def test_learnable_merging_weights_receive_gradients():
    a, b = affine(2.0, 0.0), affine(0.0, 1.0)
    comp = CompositeOperator(
        CompositeOperatorConfig(strategy="merging", operators=[a, b], learnable_weights=True)
    )
    x = jnp.arange(6.0).reshape(2, 3)

    def loss(module):
        out, _ = module.apply_batch({"x": x}, {}, jnp.arange(2), jnp.uint32(0), 0)
        return jnp.sum(out["x"])

    grads = nnx.grad(loss)(comp)
    # d/dw0 sum(w0 * 2x + w1 * 1) = sum(2x) = 30; d/dw1 = number of entries = 6.
    np.testing.assert_allclose(grads["weights"][...], [30.0, 6.0])


def test_composite_fingerprint_names_its_operators_and_strategy():
    comp = CompositeOperator(
        CompositeOperatorConfig(strategy="ensemble", operators=[affine(1.0, 0.0), noisy()])
    )
    fp = comp.fingerprint()
    assert fp["strategy"] == "ensemble"
    assert [o["name"] for o in fp["operators"]] == ["affine(1.0,0.0)", "ElementOperator(fn)"]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"strategy": "shuffle"}, r"strategy: unknown strategy; expected one of sequential"),
        ({"operators": []}, r"operators must be datarax operators.*found none"),
        ({"operators": ["not an op"]}, r"expected a non-empty sequence.*found str"),
        ({"strategy": "ensemble", "reduction": "median"}, r"reduction: unknown reduction"),
        ({"strategy": "parallel", "merge": "mean"}, r"merge: unknown merge"),
        ({"strategy": "ensemble", "n": 1}, r"combines several operators; expected at least 2"),
        ({"strategy": "merging", "weights": (1.0,)}, r"weights go with the merging strategy"),
        ({"strategy": "branching"}, r"a router goes with the branching strategy"),
        ({"strategy": "sequential", "router": len}, r"a router goes with the branching"),
    ],
)
def test_bad_configs_are_rejected(kw, match):
    n = kw.pop("n", 2)
    kw.setdefault("operators", [affine(1.0, float(i)) for i in range(n)])
    with pytest.raises(ConfigError, match=match):
        CompositeOperatorConfig(**kw)
