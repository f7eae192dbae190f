"""compile(pipeline) -> Program, the program cache, and what running leaves unchanged."""

from __future__ import annotations

import io

import jax.numpy as jnp
import numpy as np
from flax import nnx
from pipelines import flip, image_data, normalize

from datarax import from_source
from datarax.dag import Program, compile
from datarax.dag.nodes import CacheNode, OperatorNode
from datarax.dag.program import PROGRAMS
from datarax.operators import ElementOperator, ElementOperatorConfig
from datarax.sources import MemorySource, MemorySourceConfig
from harness import snapshot


class Scale(ElementOperator):
    """Multiplies images by a learnable factor."""

    def __init__(self, factor: float) -> None:
        super().__init__(ElementOperatorConfig())
        self.factor = nnx.Param(jnp.float32(factor))

    def transform(self, element, key):
        return element.update_data({"image": element.data["image"] * self.factor[...]})


def scaled(factor: float = 2.0, placement: str = "device"):
    src = MemorySource(MemorySourceConfig(placement=placement), data=image_data(20))
    op = Scale(factor)
    return from_source(src, 4, batches_per_call=2) >> OperatorNode(op), op


def test_a_program_describes_the_chunks_it_computes():
    pipeline, _ = scaled()
    program = compile(pipeline)
    assert isinstance(program, Program)
    assert (program.rows, program.batch_size, program.batches_per_call) == (8, 4, 2)
    assert program.gather and program.layout is None and program.caches == ()
    assert program.geometry == pipeline.view.geometry
    assert len(program.runs) == 1 and program.plan.num_caches == 0
    ids = np.arange(8, dtype=np.int32)
    out = program.run(0, (program.gather_from, {}), ids, ids, 0, 8)
    assert len(out.batches) == 2 and out.cached == ()
    np.testing.assert_allclose(
        np.asarray(out.batches[1][0]["image"]), image_data(20)["image"][4:8] * 2.0
    )


def test_pipelines_built_alike_share_their_compiled_functions():
    a, _ = scaled(2.0)
    b, _ = scaled(3.0)  # other values, same structure
    pa, pb = compile(a), compile(b)
    assert pa.compiled is pb.compiled
    assert pa.state_leaves[0] != pb.state_leaves[0]
    # One jitted function serves every chunk size (XLA compiles once per shape); only
    # the cut into batches differs.
    other = compile(a, batches_per_call=1)
    assert other.rows == 4 and other.compiled is pa.compiled
    assert other.split is None and pa.split is PROGRAMS.splitter(2)


def test_the_staleness_rule_splits_again_only_after_a_reassignment():
    pipeline, op = scaled()
    split = PROGRAMS.operator_split(pipeline)
    op.factor[...] = jnp.float32(5.0)  # a value changed in place: same split, new values
    assert PROGRAMS.operator_split(pipeline) is split
    assert float(compile(pipeline).state_leaves[0]) == 5.0
    op.factor = nnx.Param(jnp.float32(7.0))  # an attribute reassigned: split again
    fresh = PROGRAMS.operator_split(pipeline)
    assert fresh is not split
    assert float(compile(pipeline).state_leaves[0]) == 7.0


def test_compiling_and_iterating_leave_the_pipeline_spec_unchanged():
    src = MemorySource(MemorySourceConfig(), data=image_data(100))
    norm = ElementOperator(ElementOperatorConfig(), fn=normalize)
    flipper = ElementOperator(
        ElementOperatorConfig(stochastic=True, stream_name="flip"), fn=flip, rngs=nnx.Rngs(0)
    )
    pipeline = (
        from_source(src, 8, shuffle=True, seed=1, num_epochs=2)
        >> OperatorNode(norm)
        >> CacheNode()
        >> OperatorNode(flipper)
    )
    before = (
        pipeline.fingerprint(),
        pipeline.records_digest(),
        pipeline.describe(file=io.StringIO()),
    )
    nodes, steps, spec = pipeline.nodes, pipeline.steps, pipeline.output_spec
    compile(pipeline)
    first = [snapshot(b) for b in pipeline]
    it = iter(pipeline)
    next(it)
    it.set_state(it.get_state())
    after = (
        pipeline.fingerprint(),
        pipeline.records_digest(),
        pipeline.describe(file=io.StringIO()),
    )
    assert after == before
    assert pipeline.nodes is nodes and pipeline.steps is steps and pipeline.output_spec is spec
    assert len(first) == 26


def test_two_iterators_of_one_pipeline_keep_their_own_positions():
    src = MemorySource(MemorySourceConfig(), data={"x": np.arange(12)})
    pipeline = from_source(src, 3, num_epochs=1)
    a, b = iter(pipeline), iter(pipeline)
    assert [next(a)["x"].tolist() for _ in range(2)] == [[0, 1, 2], [3, 4, 5]]
    assert next(b)["x"].tolist() == [0, 1, 2]  # b starts where it started, not after a
    assert a.get_state()["position"] == 6 and b.get_state()["position"] == 3
    assert a.cursor != b.cursor
    assert [x["x"].tolist() for x in a] == [[6, 7, 8], [9, 10, 11]]
    assert [x["x"].tolist() for x in b] == [[3, 4, 5], [6, 7, 8], [9, 10, 11]]
    # Documented sharing: the epoch a new loop starts at, in the pipeline's runtime.
    assert pipeline.runtime.epoch_cursor == 1 and iter(pipeline).cursor.epoch == 1


def test_a_restored_iterator_does_not_move_another_one():
    src = MemorySource(MemorySourceConfig(), data={"x": np.arange(12)})
    pipeline = from_source(src, 3, shuffle=True, seed=4)
    reference = [snapshot(x) for x in pipeline.with_options()]
    a, b = iter(pipeline), iter(pipeline)
    next(a), next(a), next(a)
    b.set_state(a.get_state())
    assert snapshot(next(b)) == reference[3]
    assert snapshot(next(a)) == reference[3]
    a.reset()
    assert snapshot(next(a)) == reference[0]
    assert next(b, None) is None  # b handed out the last batch; a's reset did not move it


def test_normalize_pipeline_output_is_read_from_the_program():
    src = MemorySource(MemorySourceConfig(placement="host"), data=image_data(8))
    op = ElementOperator(ElementOperatorConfig(), fn=normalize)
    program = compile(from_source(src, 4) >> OperatorNode(op))
    assert not program.gather and program.gather_from is None
