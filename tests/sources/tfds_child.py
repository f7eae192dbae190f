"""TFDS pipelines built alike in the tests and in the fresh process they start.

Run as a script, it reads ``{"data_dirs": ..., "cases": [[kind, state], ...]}`` from
stdin (the ``"eager"`` cases first), restores each state into a freshly built
pipeline and prints, as JSON, the digest of each rest of the stream, the TensorFlow and
TFDS modules that importing datarax brought in, and whether TensorFlow had been
imported once the random-access (``"eager"``) pipelines had run. It never imports the builder class:
the sources find the prepared dataset by its name and data dir.
"""

from __future__ import annotations

import json
import sys

from datarax import from_source
from datarax.dag import ShuffleNode
from datarax.sources import (
    TFDSSource,
    TFDSSourceConfig,
    TFDSStreamingSource,
    TFDSStreamingSourceConfig,
)
from harness import stream_digest as digest

# What importing datarax and its TFDS sources brought in (reported when run as a script).
TF_MODULES_AT_IMPORT = sorted(
    m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tensorflow_datasets")
)
NAME = "datarax_tiny_images"


def build(
    kind: str,
    data_dirs: dict[str, str],
    *,
    split: str = "train",
    batch_size: int = 8,
    num_epochs: int = 3,
):
    """A pipeline over the tiny dataset: ``"eager"`` shuffles globally, ``"stream"`` in windows."""
    if kind == "eager":
        config = TFDSSourceConfig(NAME, split=split, data_dir=data_dirs["array_record"])
        source = TFDSSource(config)
        return from_source(source, batch_size, shuffle=True, seed=3, num_epochs=num_epochs)
    config = TFDSStreamingSourceConfig(NAME, split=split, data_dir=data_dirs["tfrecord"])
    stream = from_source(TFDSStreamingSource(config), batch_size, num_epochs=num_epochs)
    return stream >> ShuffleNode(16, seed=5)


def rest_digest(kind: str, data_dirs: dict[str, str], state: dict) -> str:
    it = iter(build(kind, data_dirs))
    it.set_state(state)
    return digest(it)


def main() -> None:
    request = json.loads(sys.stdin.read())
    digests, tensorflow_after_eager = [], None
    for kind, state in request["cases"]:  # the eager cases come first
        if kind != "eager" and tensorflow_after_eager is None:
            tensorflow_after_eager = "tensorflow" in sys.modules
        digests.append(rest_digest(kind, request["data_dirs"], state))
    reply = {
        "digests": digests,
        "tf_modules_at_import": TF_MODULES_AT_IMPORT,
        "tensorflow_after_eager": tensorflow_after_eager,
    }
    print(json.dumps(reply))


if __name__ == "__main__":
    main()
