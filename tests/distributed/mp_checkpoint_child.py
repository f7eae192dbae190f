"""One process of a multi-process checkpoint run (started by datarax.distributed.launch).

Usage: mp_checkpoint_child.py CHECKPOINT_DIR OUT_DIR (save K | restore)

``save K``: iterate K global batches, save with an Orbax CheckpointManager (every
process writes its own iterator files), then write the rest of the stream's record
ids. ``restore``: restore the latest checkpoint and write the rest of the stream.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "dag"))

import jax  # noqa: E402

from datarax.distributed import initialize  # noqa: E402

initialize()

import orbax.checkpoint as ocp  # noqa: E402
from pipelines import augmented  # noqa: E402

from datarax.checkpoint import NNXCheckpointRestore, NNXCheckpointSave  # noqa: E402
from datarax.dag.nodes import SharderNode  # noqa: E402
from datarax.sharding import JaxProcessSharder  # noqa: E402


def main() -> None:
    directory, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    pipeline = augmented(70, 16, drop_remainder=True, num_epochs=2, placement="host")
    iterator = iter(pipeline >> SharderNode(JaxProcessSharder()))
    manager = ocp.CheckpointManager(directory)
    if mode == "save":
        for _ in range(int(sys.argv[4])):
            next(iterator)
        manager.save(1, args=ocp.args.Composite(data=NNXCheckpointSave(iterator)))
        manager.wait_until_finished()
    else:
        manager.restore(
            manager.latest_step(), args=ocp.args.Composite(data=NNXCheckpointRestore(iterator))
        )
    rest = [[int(b.epoch), [int(i) for i in b.record_ids]] for b in iterator]
    with open(
        os.path.join(out, f"rest-{jax.process_count()}-{jax.process_index()}.json"), "w"
    ) as f:
        json.dump(rest, f)


if __name__ == "__main__":
    main()
