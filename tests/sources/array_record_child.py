"""Run in a fresh process: rebuild an ArrayRecord pipeline, restore a state, digest the rest.

Reads ``{"path": ..., "states": [...]}`` as JSON on stdin and prints, as a JSON list,
the digest of the stream that follows each restored state.
"""

from __future__ import annotations

import json
import sys

from datarax import from_source
from datarax.sources import ArrayRecordSource, ArrayRecordSourceConfig
from harness import stream_digest as digest

BATCH_SIZE = 6
SEED = 11
EPOCHS = 3


def pipeline(path: str):
    """The pipeline the test and this process both build over the file at ``path``."""
    source = ArrayRecordSource(ArrayRecordSourceConfig(paths=path))
    return from_source(source, BATCH_SIZE, shuffle=True, seed=SEED, num_epochs=EPOCHS)


if __name__ == "__main__":
    request = json.loads(sys.stdin.read())
    digests = []
    for state in request["states"]:
        it = iter(pipeline(request["path"]))
        it.set_state(state)
        digests.append(digest(it))
    print(json.dumps(digests))
