"""Batches split over 8 simulated CPU devices: shapes, shardings and values.

JAX fixes the number of CPU devices when it starts, so the checks run in a process
started with ``--xla_force_host_platform_device_count=8`` (``sharded_checks.py``).
The meshes' own checks need one device and run here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import datarax.distributed
from datarax.core.errors import ConfigError
from datarax.sharding import ArraySharder, DeviceMesh, as_mesh

pytestmark = pytest.mark.slow  # run by the separate slow step of .ci/run

CHECKS = Path(__file__).with_name("sharded_checks.py")


def run_checks(*args: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, str(CHECKS), *args], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return {line.split()[1] for line in out.stdout.splitlines() if line.startswith("ok ")}


def test_eight_device_checks():
    assert run_checks() == {
        "sharded_equals_unsharded_device",
        "sharded_equals_unsharded_host",
        "fused_training",
        "model_axis",
        "fallback_nodes",
        "errors",
        "resume",
        "data_parallel",
        "prefetch",
        "make_mesh_equals_unsharded",
        "make_mesh_model_axis",
        "make_mesh_data_parallel",
        "make_mesh_helpers",
    }


def test_eight_device_make_mesh_short_batches_and_a_callers_mesh():
    assert run_checks("pending") == {"make_mesh_pending"}


def test_a_one_device_mesh_places_batches_on_it():
    sharder = ArraySharder(DeviceMesh({"data": -1}))
    placed = sharder.shard({"x": np.arange(8.0).reshape(4, 2)})
    assert placed["x"].sharding.spec == P("data")
    np.testing.assert_array_equal(np.asarray(placed["x"]), np.arange(8.0).reshape(4, 2))


def test_the_mesh_lives_in_sharding_and_distributed_re_exports_it():
    assert datarax.distributed.DeviceMesh is DeviceMesh
    assert datarax.distributed.as_mesh is as_mesh


def test_a_make_mesh_mesh_places_batches_with_their_sharding_in_their_type():
    mesh = jax.make_mesh((1,), ("data",))
    assert mesh.axis_types == (AxisType.Explicit,)
    for given in (mesh, NamedSharding(mesh, P("data"))):
        sharder = ArraySharder(given) if given is mesh else ArraySharder.from_sharding(given)
        assert sharder.output_mesh == mesh and sharder.mesh.axis_types == (AxisType.Auto,)
        assert sharder.mesh.devices.tolist() == mesh.devices.tolist()
        placed = sharder.shard({"x": np.arange(8.0).reshape(4, 2)})["x"]
        assert placed.sharding == NamedSharding(mesh, P("data", None))
        assert jax.typeof(placed).sharding.spec == P("data", None)
        computed = jax.jit(sharder.constrain)(np.arange(8.0).reshape(4, 2))
        assert computed.sharding == NamedSharding(mesh, P("data", None))
        np.testing.assert_array_equal(np.asarray(computed), np.arange(8.0).reshape(4, 2))
    assert ArraySharder(mesh).key() != ArraySharder(DeviceMesh({"data": -1})).key()


def test_device_mesh_takes_axis_types_and_a_mesh_s_devices():
    explicit = DeviceMesh({"data": -1}, axis_types="explicit")
    assert explicit.mesh.axis_types == (AxisType.Explicit,)
    assert "Explicit" in repr(explicit)
    grid = jax.make_mesh((1, 1), ("a", "b")).devices
    assert DeviceMesh({"data": 1}, devices=grid).mesh.axis_types == (AxisType.Auto,)
    for bad in ("manual", (AxisType.Manual,), (AxisType.Auto, AxisType.Auto), 3):
        with pytest.raises(ConfigError, match="invalid axis types"):
            DeviceMesh({"data": -1}, axis_types=bad)


@pytest.mark.parametrize(
    ("axis_types", "message"),
    [
        ((AxisType.Explicit, AxisType.Auto), "mix axis types; expected data and model axes"),
        ((AxisType.Auto, AxisType.Manual), "Manual axes"),
    ],
)
def test_meshes_that_cannot_place_batches_say_why(axis_types, message):
    mesh = jax.make_mesh((1, 1), ("data", "model"), axis_types=axis_types)
    with pytest.raises(ConfigError, match=message):
        ArraySharder(mesh, "data", "model")


def test_a_mesh_of_the_wrong_kind_says_what_it_found():
    with pytest.raises(ConfigError, match="ArraySharder: not a device mesh.*found tuple"):
        ArraySharder((8,))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="found AbstractMesh"):
        as_mesh(jax.make_mesh((1,), ("data",)).abstract_mesh)  # type: ignore[arg-type]


def test_mixed_axis_types_are_fine_when_the_placement_axes_agree():
    mesh = jax.make_mesh((1, 1), ("data", "model"), axis_types=(AxisType.Auto, AxisType.Explicit))
    sharder = ArraySharder(mesh, "data")
    placed = jax.jit(sharder.constrain)(np.ones((2, 3)))
    assert placed.sharding.mesh == mesh
    assert placed.sharding.is_equivalent_to(NamedSharding(mesh, P("data")), 2)
