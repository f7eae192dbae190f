"""One process of a multi-process run (started by datarax.distributed.launch).

Usage: mp_child.py OUT_DIR [--save-after K] [--restore STATE_FILE] [--die-after K]

Checks every global batch against the one-process stream computed here, writes the
record ids this process read (``ids-<process>.json``), and optionally saves or
restores the iterator state, or kills itself mid-stream.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "dag"))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from datarax.distributed import initialize  # noqa: E402

initialize()

from pipelines import augmented  # noqa: E402

from datarax.dag.nodes import SharderNode  # noqa: E402
from datarax.sharding import JaxProcessSharder  # noqa: E402

N, BATCH = 70, 16  # four full global batches per epoch; 6 records dropped


def build(sharded: bool):
    pipeline = augmented(N, BATCH, drop_remainder=True, num_epochs=2, placement="host")
    return pipeline >> SharderNode(JaxProcessSharder()) if sharded else pipeline


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--save-after", type=int)
    parser.add_argument("--restore")
    parser.add_argument("--die-after", type=int)
    args = parser.parse_args()
    p = jax.process_index()
    sharded = iter(build(True))
    reference = iter(build(False))
    if args.restore:
        with open(args.restore) as f:
            state = json.load(f)
        sharded.set_state(state)
        reference.set_state(state)
    epochs = set()
    for step, (got, want) in enumerate(zip(sharded, reference, strict=True)):
        if args.die_after is not None and step == args.die_after and p == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        epochs.add(got.epoch)
        image = got["image"]
        assert image.shape == want["image"].shape, (image.shape, want["image"].shape)
        assert image.sharding.spec[0] == "data"
        np.testing.assert_array_equal(got.record_ids, want.record_ids)
        for shard in image.addressable_shards:
            rows = shard.index[0]
            np.testing.assert_array_equal(np.asarray(shard.data), np.asarray(want["image"])[rows])
        if args.save_after is not None and step + 1 == args.save_after and p == 0:
            with open(os.path.join(args.out, "state.json"), "w") as f:
                json.dump(sharded.get_state(), f)
    sampler = sharded.pipeline.sampler  # this process's positions only
    read = {e: sampler.indices(e, 0, len(sampler)).tolist() for e in sorted(epochs)}
    with open(os.path.join(args.out, f"ids-{p}.json"), "w") as f:
        json.dump({"processes": jax.process_count(), "read": read}, f)
    print("ok", p, flush=True)


if __name__ == "__main__":
    main()
