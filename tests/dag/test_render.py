"""Seeing a pipeline: describe, Mermaid, DOT and PNG show every node."""

from __future__ import annotations

import io

import jax.numpy as jnp
import numpy as np
import pytest

from datarax import from_source
from datarax.dag.nodes import Branch, CacheNode, Merge, OperatorNode, RebatchNode, ShuffleNode
from datarax.dag.render import build_graph, layout
from datarax.operators import ElementOperator, ElementOperatorConfig
from datarax.sources import MemorySource, MemorySourceConfig


def op(name, fn):
    return ElementOperator(ElementOperatorConfig(), fn=fn, name=name)


def bright(e):
    return jnp.mean(e.data["image"]) > 0.5


@pytest.fixture
def pipeline():
    rng = np.random.default_rng(0)
    data = {
        "image": rng.uniform(size=(20, 4, 6, 1)).astype(np.float32),
        "label": np.arange(20, dtype=np.int32),
    }
    source = MemorySource(MemorySourceConfig(), data=data)
    half = op("half", lambda e: e.update_data({"image": e.data["image"] / 2}))
    inv = op("invert", lambda e: e.update_data({"image": 1 - e.data["image"]}))
    return (
        from_source(source, 4)
        >> ShuffleNode(8, seed=1)
        >> OperatorNode(half)
        >> CacheNode()
        >> (OperatorNode(half) | OperatorNode(inv))
        >> Merge("concat", axis=-1)
        >> Branch(bright, OperatorNode(inv), None)
        >> RebatchNode(8)
    )


def test_describe_lists_every_node_with_its_output(pipeline):
    out = io.StringIO()
    text = pipeline.describe(file=out)
    assert out.getvalue().strip() == text
    lines = text.splitlines()
    assert lines[0] == f"Pipeline {pipeline.fingerprint_digest()}"
    expected_order = [
        "MemorySource[20, sequential, seed=0]",
        "Batch(4)",
        "Shuffle(buffer=8, seed=1)",
        "OperatorNode(half)",
        "Cache(all)",
        "Parallel(2 branches)",
        "[0] OperatorNode(half)",
        "[1] OperatorNode(invert)",
        "Merge(concat, axis=-1)",
        "Branch(bright)",
        "[true] OperatorNode(invert)",
        "[false] Identity",
        "Rebatch(8)",
    ]
    positions = [next(i for i, line in enumerate(lines) if name in line) for name in expected_order]
    assert positions == sorted(positions)
    merge_line = next(line for line in lines if "Merge(concat" in line)
    assert "image: float32[4, 6, 2]" in merge_line and "label: int32[]" in merge_line
    assert "Rebatch(8)" in lines[-2] and "(batch 8)" in lines[-2]
    assert lines[-1] == "output: batches of 8, 196 bytes per record"


def test_graph_fans_out_and_joins(pipeline):
    graph = build_graph(pipeline)
    labels = [v.label for v in graph.vertices]
    assert labels[:3] == [
        "MemorySource[20, sequential, seed=0]",
        "Batch(4)",
        "Shuffle(buffer=8, seed=1)",
    ]
    by_label = {v.label: v.id for v in graph.vertices}
    merge = by_label["Merge(concat, axis=-1)"]
    assert sorted(lab for _, b, lab in graph.edges if b == merge) == ["", ""]
    assert len([a for a, b, _ in graph.edges if b == merge]) == 2
    decision = next(v.id for v in graph.vertices if v.kind == "decision")
    assert sorted(lab for a, _, lab in graph.edges if a == decision) == ["false", "true"]
    pos = layout(graph)
    for a, b, _ in graph.edges:
        assert pos[b][1] < pos[a][1]  # every edge points down


def test_mermaid_and_dot_name_every_vertex_and_edge(pipeline):
    graph = build_graph(pipeline)
    mermaid, dot = pipeline.to_mermaid(), pipeline.to_dot()
    assert mermaid.startswith("flowchart TD")
    assert dot.startswith("digraph pipeline {") and dot.endswith("}")
    for v in graph.vertices:
        assert f'"{v.label}"' in mermaid and f'label="{v.label}"' in dot
    assert mermaid.count("-->") == dot.count("->") == len(graph.edges)
    assert "-->|true|" in mermaid and '[label="false"]' in dot


def test_plot_writes_a_png(pipeline, tmp_path):
    path = tmp_path / "dag.png"
    pipeline.plot(str(path))
    header = path.read_bytes()[:8]
    assert header == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 5_000


def test_plot_without_matplotlib_names_the_extra(pipeline, tmp_path, monkeypatch):
    import builtins

    from datarax.core.errors import DataraxError

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(DataraxError, match=r"datarax\[viz\]"):
        pipeline.plot(str(tmp_path / "x.png"))
