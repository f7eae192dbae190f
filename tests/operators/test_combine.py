"""The shared combining functions (merge, per-record select, operators in order).

``Merge``, ``Switch`` and ``CompositeOperator`` all go through these, so they are
checked here against NumPy; the operators package imports neither ``datarax.dag``
nor ``datarax.control``.
"""

from __future__ import annotations

import ast
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from datarax.core.element import Element
from datarax.core.errors import PipelineBuildError
from datarax.operators import CompositeOperator, CompositeOperatorConfig
from datarax.operators.base import apply_in_order, fusion_runs
from datarax.operators.combine import (
    MERGE_STRATEGIES,
    choose_path,
    choose_per_record,
    default_axis,
    merge_outputs,
    run_per_record,
    select_per_record,
)
from datarax.operators.element import ElementOperator, ElementOperatorConfig
from datarax.operators.image import (
    Normalize,
    NormalizeConfig,
    RandomCrop,
    RandomCropConfig,
    RandomFlip,
    RandomFlipConfig,
)

OPERATORS_DIR = pathlib.Path(__file__).parents[2] / "src" / "datarax" / "operators"


def outputs():
    rng = np.random.default_rng(0)
    return [
        (
            {
                "x": jnp.asarray(rng.normal(size=(4, 2, 3)), jnp.float32),
                "n": jnp.asarray(rng.integers(0, 9, size=(4,)), jnp.int32),
            },
            {"s": jnp.full((4, 2), float(i), jnp.float32)},
        )
        for i in range(3)
    ]


@pytest.mark.parametrize(
    ("strategy", "reference"),
    [
        ("mean", lambda xs: sum(xs) / np.float32(len(xs))),
        ("sum", lambda xs: sum(xs)),
        ("max", lambda xs: np.maximum.reduce(xs)),
        ("min", lambda xs: np.minimum.reduce(xs)),
        ("concat", lambda xs: np.concatenate(xs, axis=-1)),
        ("stack", lambda xs: np.stack(xs, axis=1)),
    ],
)
def test_merge_outputs_equals_numpy(strategy, reference):
    outs = outputs()
    data, states = merge_outputs(outs, strategy)
    xs = [np.asarray(d["x"]) for d, _ in outs]
    np.testing.assert_allclose(data["x"], reference(xs), rtol=1e-6)
    np.testing.assert_array_equal(data["n"], outs[0][0]["n"])  # not floating: first branch
    assert states["s"].shape[0] == 4


def test_weighted_integer_fields_are_combined_in_float32_and_rounded_back():
    outs = outputs()
    data, _ = merge_outputs(outs, "weighted", fields=["n"], weights=(0.5, 0.25, 0.25))
    ns = [np.asarray(d["n"], np.float32) for d, _ in outs]
    expected = np.round(0.5 * ns[0] + 0.25 * ns[1] + 0.25 * ns[2]).astype(np.int32)
    assert data["n"].dtype == jnp.int32
    np.testing.assert_array_equal(data["n"], expected)
    np.testing.assert_array_equal(data["x"], outs[0][0]["x"])  # not named: first branch


def test_default_axes():
    assert [default_axis(s) for s in MERGE_STRATEGIES] == [None] * 5 + [-1, 0]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"strategy": "median"}, r"unknown merge strategy"),
        ({"strategy": "weighted"}, r"needs weights"),
        ({"strategy": "weighted", "weights": (1.0,)}, r"one weight per branch is needed"),
        ({"strategy": "concat", "axis": 2}, r"axis out of range for concat"),
        ({"strategy": "mean", "fields": ["y"]}, r"unknown field to merge"),
    ],
)
def test_bad_merges_name_the_place(kw, match):
    with pytest.raises(PipelineBuildError, match=r"^here.*" + match):
        merge_outputs(outputs(), kw.pop("strategy"), where="here", **kw)


def test_branches_with_different_dtypes_are_rejected():
    outs = outputs()
    outs[1] = ({**outs[1][0], "x": outs[1][0]["x"].astype(jnp.float16)}, outs[1][1])
    with pytest.raises(PipelineBuildError, match=r"field 'x': branches produce different dtypes"):
        merge_outputs(outs, "mean", where="here")


def test_select_per_record_takes_each_records_own_path():
    outs = outputs()
    labels = {"n": jnp.asarray([0, 4, 8, 5], jnp.int32)}
    index = choose_per_record(
        lambda e: choose_path(e.data["n"] % 3, len(outs), "here"), labels, {}, jnp.arange(4), "here"
    )
    np.testing.assert_array_equal(index, [0, 1, 2, 2])
    data, states = select_per_record(index, outs, "here")
    for row, path in enumerate(np.asarray(index)):
        np.testing.assert_array_equal(data["x"][row], outs[path][0]["x"][row])
        np.testing.assert_array_equal(states["s"][row], outs[path][1]["s"][row])


def test_choose_path_clips_and_rejects_floats():
    assert choose_path(jnp.int32(7), 3, "here") == 2
    assert choose_path(jnp.int32(-1), 3, "here") == 0
    with pytest.raises(PipelineBuildError, match=r"here: the selector must return an integer"):
        choose_path(jnp.float32(1.0), 3, "here")


def test_select_rejects_paths_with_different_outputs():
    outs = outputs()
    outs[2] = ({"x": outs[2][0]["x"]}, outs[2][1])
    with pytest.raises(PipelineBuildError, match=r"here: paths produce different outputs"):
        select_per_record(jnp.zeros(4, jnp.int32), outs, "here")


def _scaled_paths(calls):
    """Three paths that scale ``x``, add the record id and count their states; each
    notes the batch sizes it was traced with."""

    def path(k):
        def run(data, states, rows):
            calls.append((k, data["x"].shape[0]))
            ids, offset = rows
            x = data["x"] * (k + 1.0) + ids[:, None] + offset[:, None]
            return {**data, "x": x}, {"s": states["s"] + k}

        return run

    return [path(k) for k in range(3)]


@pytest.mark.parametrize("dispatch", ["switch", "select", "auto"])
def test_run_per_record_gives_each_record_only_its_own_path(dispatch):
    n = 7
    index = jnp.asarray([2, 0, 1, 1, 2, 0, 2], jnp.int32)
    data = {"x": jnp.arange(n * 3, dtype=jnp.float32).reshape(n, 3), "y": jnp.arange(n)}
    states = {"s": jnp.zeros(n, jnp.int32)}
    ids, offset = jnp.arange(n) * 10, jnp.full(n, 0.5)
    calls = []
    out, out_states = run_per_record(
        index, _scaled_paths(calls), data, states, (ids, offset), where="here", dispatch=dispatch
    )
    k = np.asarray(index)
    x = np.asarray(data["x"])
    want = x * (k[:, None] + 1.0) + np.asarray(ids)[:, None] + 0.5
    np.testing.assert_array_equal(out["x"], want)
    np.testing.assert_array_equal(out["y"], data["y"])
    np.testing.assert_array_equal(out_states["s"], k)
    # select: every path traced on the whole batch; switch (auto on CPU): on one record
    sizes = {size for _, size in calls}
    assert sizes == ({n} if dispatch == "select" else {1})


@pytest.mark.parametrize("dispatch", ["switch", "select"])
def test_run_per_record_rejects_paths_with_different_outputs(dispatch):
    def wide(data, states, rows):
        return {"x": jnp.concatenate([data["x"], data["x"]], axis=1)}, states

    data, index = {"x": jnp.ones((3, 2))}, jnp.zeros(3, jnp.int32)
    same = lambda d, s, r: (d, s)  # noqa: E731
    with pytest.raises(PipelineBuildError, match=r"here: paths produce different outputs"):
        run_per_record(index, [same, wide], data, {}, None, where="here", dispatch=dispatch)


def test_apply_in_order_fuses_geometric_runs_and_equals_one_by_one():
    ops = [
        RandomCrop(RandomCropConfig(size=(6, 5), padding=2), rngs=nnx.Rngs(1)),
        RandomFlip(RandomFlipConfig(), rngs=nnx.Rngs(2)),
        Normalize(NormalizeConfig(mean=0.5, std=2.0)),
        RandomFlip(RandomFlipConfig(direction="vertical"), rngs=nnx.Rngs(3)),
    ]
    assert [len(run) for run in fusion_runs(ops)] == [2, 1, 1]
    images = jnp.asarray(np.random.default_rng(0).normal(size=(6, 8, 9, 2)), jnp.float32)
    ids, epoch = jnp.arange(10, 16), jnp.uint32(2)
    fused, _ = apply_in_order(ops, {"image": images}, {}, ids, epoch, 7)
    data = {"image": images}
    for op in ops:
        data, _ = op.apply_batch(data, {}, ids, epoch, 7)
    np.testing.assert_allclose(fused["image"], data["image"], rtol=1e-6)
    comp = CompositeOperator(CompositeOperatorConfig(operators=ops))
    composed, _ = comp.apply_batch({"image": images}, {}, ids, epoch, 7)
    np.testing.assert_array_equal(composed["image"], fused["image"])


def test_composite_errors_name_the_composite():
    keep = ElementOperator(ElementOperatorConfig(), fn=lambda e: e)
    drop = ElementOperator(ElementOperatorConfig(), fn=lambda e: Element({}, e.state))
    comp = CompositeOperator(
        CompositeOperatorConfig(strategy="branching", operators=[keep, drop], router=lambda e: 0)
    )
    with pytest.raises(PipelineBuildError, match=r"^Composite\(branching\): paths produce"):
        comp.apply_batch({"x": jnp.ones(2)}, {}, jnp.arange(2), 0, 0)


def test_operators_package_imports_neither_dag_nor_control():
    above = ("datarax.dag", "datarax.control")
    for path in sorted(OPERATORS_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            bad = [n for n in names if n.startswith(above)]
            assert not bad, f"{path.relative_to(OPERATORS_DIR)} imports {bad}"
