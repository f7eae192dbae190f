"""In a fresh process: restore a checkpoint and a JSON state, write the rest of the streams.

Usage: ``python ckpt_child.py CHECKPOINT_DIR STATE_JSON OUT_NPZ``. The Orbax
checkpoint (latest step) is restored into a newly built pipeline whose scale
starts at 1.0; the JSON state is then loaded into a second iterator of the same
(now restored) pipeline.
"""

from __future__ import annotations

import sys

import numpy as np
import orbax.checkpoint as ocp
from ckpt_pipelines import learnable, rest, scale_of

from datarax.checkpoint import NNXCheckpointRestore, load_iterator_state

if __name__ == "__main__":
    checkpoint_dir, state_json, out = sys.argv[1:4]
    pipeline = learnable()
    before = scale_of(pipeline)
    it = iter(pipeline)
    with ocp.CheckpointManager(checkpoint_dir) as manager:
        step = manager.latest_step()
        manager.restore(step, args=ocp.args.Composite(data=NNXCheckpointRestore(it)))
    orbax_rest = rest(it)
    json_it = iter(pipeline)
    load_iterator_state(state_json, json_it)
    json_rest = rest(json_it)
    np.savez(
        out,
        scale_before=before,
        scale=scale_of(pipeline),
        **{f"orbax_{k}": v for k, v in orbax_rest.items()},
        **{f"json_{k}": v for k, v in json_rest.items()},
    )
    print("ok", step)
