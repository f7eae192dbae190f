"""Seeing a pipeline: a table of nodes with their outputs, Mermaid, DOT and a PNG.

All views are built from one graph of vertices (nodes) and edges, so they show the
same thing: the source, the host-plane nodes, then the device plane with parallel
branches fanning out to their ``Merge`` and ``Branch`` paths joining again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from datarax.core.errors import DataraxError, written
from datarax.dag.base import Fanout, Node, OperatorNode, Sequential
from datarax.dag.branch import Branch, Switch
from datarax.dag.cache import CacheNode
from datarax.dag.combine import Merge, Parallel
from datarax.dag.inference import infer_spec
from datarax.dag.rebatch import RebatchNode

if TYPE_CHECKING:
    from datarax.dag.pipeline import Pipeline


class VisualisationError(DataraxError, ImportError):
    """Drawing needs an optional package that is not installed."""


@dataclass
class Vertex:
    """One box of the drawing."""

    id: str
    label: str
    kind: str  # source | host | operator | merge | decision | join | cache | rebatch


@dataclass
class Graph:
    """Vertices in topological order and labelled edges between them."""

    vertices: list[Vertex] = field(default_factory=list)
    edges: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, label: str, kind: str, preds: list[tuple[str, str]]) -> str:
        vid = f"n{len(self.vertices)}"
        self.vertices.append(Vertex(vid, label, kind))
        self.edges.extend((p, vid, edge_label) for p, edge_label in preds)
        return vid


def build_graph(pipeline: Pipeline) -> Graph:
    """The pipeline as a graph of vertices and edges."""
    graph = Graph()
    tail = [(graph.add(repr(pipeline.source_node), "source", []), "")]
    for node in pipeline.nodes[1:]:
        if not node.device:
            tail = [(graph.add(repr(node), "host", tail), "")]
    for node in pipeline.device_nodes:
        tail = _add(graph, node, tail)
    return graph


def _add(graph: Graph, node: Node, preds: list[tuple[str, str]]) -> list[tuple[str, str]]:
    if isinstance(node, Sequential):
        for child in node.nodes:
            preds = _add(graph, child, preds)
        return preds
    if isinstance(node, Parallel):
        tails: list[tuple[str, str]] = []
        for i, branch in enumerate(node.branches):
            labelled = [(p, lab or f"branch {i}") for p, lab in preds]
            tails.extend(_add(graph, branch, labelled) if _nonempty(branch) else labelled)
        return tails
    if isinstance(node, Switch):
        name = getattr(node.selector, "__name__", "selector")
        mode = "per batch" if node.per_batch else "per record"
        decision = graph.add(f"{type(node).__name__}: {name} ({mode})", "decision", preds)
        names = ["true", "false"] if isinstance(node, Branch) else None
        tails = []
        for i, path in enumerate(node.paths):
            lab = names[i] if names else str(i)
            tails.extend(
                _add(graph, path, [(decision, lab)]) if _nonempty(path) else [(decision, lab)]
            )
        return [(graph.add("select" if not node.per_batch else "switch", "join", tails), "")]
    kind = {
        OperatorNode: "operator",
        Merge: "merge",
        CacheNode: "cache",
        RebatchNode: "rebatch",
    }.get(type(node), "operator")
    label = node.operator.name if isinstance(node, OperatorNode) else repr(node)
    return [(graph.add(label, kind, preds), "")]


def _nonempty(node: Node) -> bool:
    return not (isinstance(node, Sequential) and not node.nodes)


# -- text --------------------------------------------------------------------------------
def describe(pipeline: Pipeline) -> str:
    """One line per node: its name, and the fields it outputs per record."""
    seed = pipeline.source_node.seed
    lines = [f"Pipeline {pipeline.fingerprint_digest()}"]
    source_spec: tuple[dict[str, Any], dict[str, Any]] = (dict(pipeline.source.element_spec()), {})
    lines.append(_line(0, repr(pipeline.source_node), source_spec))
    size = pipeline.batch_node.batch_size
    for node in pipeline.nodes[1:]:
        if not node.device:
            extra = f"batch {node.batch_size}" if node is pipeline.batch_node else ""
            lines.append(_line(0, repr(node), None, extra))
    spec: Any = source_spec
    for step in pipeline.steps:
        node = step.node
        if isinstance(node, (CacheNode, RebatchNode)):
            size = step.batch_size
            lines.append(_line(0, repr(node), step.spec, f"batch {size}"))
        else:
            _describe_node(lines, node, spec, size, seed, 0, infer_spec)
        spec = step.spec
    lines.append(f"output: batches of {pipeline.batch_size}, {_bytes(pipeline.record_bytes())}")
    return "\n".join(lines)


def _describe_node(
    lines: list[str],
    node: Node,
    spec: Any,
    size: int,
    seed: int,
    depth: int,
    infer: Callable[[Node, Any, int, int], Any],
    prefix: str = "",
) -> Any:
    out = infer(node, spec, size, seed)
    if isinstance(node, Sequential) and node.nodes:
        for child in node.nodes:
            spec = _describe_node(lines, child, spec, size, seed, depth, infer, prefix)
            prefix = ""
        return out
    lines.append(_line(depth, prefix + _short(node), out))
    if isinstance(node, Parallel):
        for i, branch in enumerate(node.branches):
            _describe_node(lines, branch, spec, size, seed, depth + 1, infer, f"[{i}] ")
    elif isinstance(node, Switch):
        names = ["true", "false"] if isinstance(node, Branch) else None
        for i, path in enumerate(node.paths):
            label = f"[{names[i] if names else i}] "
            _describe_node(lines, path, spec, size, seed, depth + 1, infer, label)
    return out


def _short(node: Node) -> str:
    if isinstance(node, Parallel):
        return f"Parallel({len(node.branches)} branches)"
    if isinstance(node, Switch):
        name = getattr(node.selector, "__name__", "selector")
        mode = ", per batch" if node.per_batch else ""
        return f"{type(node).__name__}({name}{mode})"
    return repr(node)


def _line(depth: int, name: str, spec: Any, extra: str = "") -> str:
    left = "  " * (depth + 1) + name
    right = _spec_text(spec) if spec is not None else ""
    if extra:
        right = f"{right}  ({extra})" if right else f"({extra})"
    return f"{left:<56} {right}".rstrip()


def _spec_text(spec: Any) -> str:
    if isinstance(spec, Fanout):
        return " | ".join("{" + _spec_text(s) + "}" for s in spec)
    data, states = spec
    parts = [f"{k}: {_leaf(v)}" for k, v in data.items()]
    parts += [f"state:{k}: {_leaf(v)}" for k, v in states.items()]
    return ", ".join(parts)


def _leaf(value: Any) -> str:
    leaves = jax.tree_util.tree_leaves(value)
    if len(leaves) == 1 and leaves[0] is value:
        return f"{np.dtype(value.dtype).name}{list(value.shape)}"
    return "{" + ", ".join(_leaf(v) for v in leaves) + "}"


def _bytes(n: int) -> str:
    return f"{n} bytes per record" if n < 10_000 else f"{n / 1024:.1f} KiB per record"


# -- Mermaid and DOT ------------------------------------------------------------------------
_MERMAID_SHAPES = {
    "source": ("[(", ")]"),
    "decision": ("{", "}"),
    "join": ("((", "))"),
    "merge": ("[/", "\\]"),
    "cache": ("[(", ")]"),
}


def to_mermaid(pipeline: Pipeline) -> str:
    """A Mermaid ``flowchart TD`` of the pipeline."""
    graph = build_graph(pipeline)
    lines = ["flowchart TD"]
    for v in graph.vertices:
        left, right = _MERMAID_SHAPES.get(v.kind, ("[", "]"))
        lines.append(f'    {v.id}{left}"{_escape(v.label)}"{right}')
    for a, b, label in graph.edges:
        lines.append(f"    {a} -->|{_escape(label)}| {b}" if label else f"    {a} --> {b}")
    return "\n".join(lines)


_DOT_SHAPES = {
    "source": "cylinder",
    "decision": "diamond",
    "join": "circle",
    "merge": "trapezium",
    "cache": "cylinder",
    "host": "box",
    "rebatch": "box",
    "operator": "box",
}


def to_dot(pipeline: Pipeline) -> str:
    """The pipeline in Graphviz DOT (``dot -Tpng`` draws it)."""
    graph = build_graph(pipeline)
    lines = ["digraph pipeline {", "    rankdir=TB;", '    node [fontname="Helvetica"];']
    for v in graph.vertices:
        style = ', style=filled, fillcolor="#dde8f5"' if v.kind == "operator" else ""
        shape = _DOT_SHAPES.get(v.kind, "box")
        lines.append(f'    {v.id} [label="{_escape(v.label)}", shape={shape}{style}];')
    for a, b, label in graph.edges:
        lines.append(f'    {a} -> {b} [label="{_escape(label)}"];' if label else f"    {a} -> {b};")
    lines.append("}")
    return "\n".join(lines)


def _escape(text: str) -> str:
    return text.replace('"', "'")


# -- PNG ------------------------------------------------------------------------------------
_COLOURS = {
    "source": "#f4d58d",
    "host": "#e6e6e6",
    "operator": "#cfe2f3",
    "merge": "#d9ead3",
    "decision": "#f9cb9c",
    "join": "#f9cb9c",
    "cache": "#d5a6bd",
    "rebatch": "#e6e6e6",
}


def layout(graph: Graph) -> dict[str, tuple[float, float]]:
    """``(x, y)`` per vertex: one row per longest-path depth, rows centred."""
    depth: dict[str, int] = {}
    preds: dict[str, list[str]] = {v.id: [] for v in graph.vertices}
    for a, b, _ in graph.edges:
        preds[b].append(a)
    rows: dict[int, list[str]] = {}
    for v in graph.vertices:  # vertices are in topological order
        depth[v.id] = 1 + max((depth[p] for p in preds[v.id]), default=-1)
        rows.setdefault(depth[v.id], []).append(v.id)
    pos = {}
    for d, ids in rows.items():
        for i, vid in enumerate(ids):
            pos[vid] = (i - (len(ids) - 1) / 2, -float(d))
    return pos


def plot(pipeline: Pipeline, path: str) -> None:
    """Draw the pipeline's graph into a PNG file at ``path``."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise VisualisationError(
            "drawing a pipeline needs matplotlib",
            where="Pipeline.plot",
            expected="matplotlib installed (pip install 'datarax[viz]')",
            found="no module named matplotlib",
        ) from exc
    graph = build_graph(pipeline)
    pos = layout(graph)
    width = max(len([p for p in pos.values() if p[1] == y]) for y in {p[1] for p in pos.values()})
    height = 1 + max(-p[1] for p in pos.values())
    fig, ax = plt.subplots(figsize=(max(4.0, 3.2 * width), max(3.0, 0.9 * height + 0.5)))
    ax.set_axis_off()
    scale_x = 3.0
    for a, b, label in graph.edges:
        (xa, ya), (xb, yb) = pos[a], pos[b]
        ax.annotate(
            "",
            xy=(xb * scale_x, yb + 0.18),
            xytext=(xa * scale_x, ya - 0.18),
            arrowprops={"arrowstyle": "->", "color": "#555555"},
        )
        if label:
            ax.text((xa + xb) / 2 * scale_x, (ya + yb) / 2, label, fontsize=7, color="#333333")
    for v in graph.vertices:
        x, y = pos[v.id]
        box = "round,pad=0.3" if v.kind != "decision" else "darrow,pad=0.3"
        ax.text(
            x * scale_x,
            y,
            v.label if len(v.label) <= 44 else v.label[:41] + "...",
            ha="center",
            va="center",
            fontsize=8,
            bbox={"boxstyle": box, "facecolor": _COLOURS.get(v.kind, "white"), "ec": "#444444"},
        )
    xs = [p[0] * scale_x for p in pos.values()]
    ax.set_xlim(min(xs) - 2.0, max(xs) + 2.0)
    ax.set_ylim(-height + 0.4, 0.6)
    fig.tight_layout()
    try:
        with written(path, "write the drawing"):
            fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
