"""Run in a fresh process: rebuild HuggingFace pipelines, restore states, digest the rest.

The test module builds its datasets and pipelines with the functions here too. As a
script it reads ``{"root": ..., "requests": [{"kind": ..., "states": [...]}]}`` as
JSON on stdin and prints, as a JSON list of lists, the digest of the stream that
follows each restored state.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import datasets  # noqa: E402
import numpy as np  # noqa: E402

from datarax import from_source  # noqa: E402
from datarax.dag.host import ShuffleNode  # noqa: E402
from datarax.sources import (  # noqa: E402
    HFSource,
    HFSourceConfig,
    HFStreamingSource,
    HFStreamingSourceConfig,
)
from harness import stream_digest as digest  # noqa: E402

N = 30
BATCH_SIZE = 8
SEED = 11
EPOCHS = 3
BUFFER = 12
FEATURES = datasets.Features(
    {
        "image": datasets.Array3D((4, 5, 3), "uint8"),
        "label": datasets.Value("int64"),
        "score": datasets.Value("float64"),
    }
)
EAGER = ("memory", "disk", "parquet", "json")
STREAMING = ("disk-stream", "parquet-stream", "json-stream")


def columns(n: int = N) -> dict[str, np.ndarray]:
    """The written records: images, labels equal to the record id, scores."""
    rng = np.random.default_rng(0)
    return {
        "image": rng.integers(0, 256, (n, 4, 5, 3), dtype=np.uint8),
        "label": np.arange(n, dtype=np.int64),
        "score": rng.normal(size=n),
    }


def write_files(root: Path, n: int = N) -> None:
    """The records saved under ``root``: an Arrow dataset folder, Parquet and JSON lines."""
    data = columns(n)
    dataset = datasets.Dataset.from_dict(data, features=FEATURES)
    dataset.save_to_disk(str(root / "saved"), num_shards=3)  # three Arrow chunks
    dataset.to_parquet(str(root / "data.parquet"))
    with open(root / "data.jsonl", "w") as f:  # Dataset.to_json mangles Array3D columns
        for i in range(n):
            row = {"image": data["image"][i].tolist(), "label": int(data["label"][i])}
            f.write(json.dumps({**row, "score": float(data["score"][i])}) + "\n")


def load(kind: str, root: Path):
    """The dataset of ``kind`` over the files under ``root`` (see ``EAGER``, ``STREAMING``)."""
    if kind == "memory":
        return datasets.Dataset.from_dict(columns(), features=FEATURES)
    if kind in ("disk", "disk-stream"):
        saved = datasets.load_from_disk(str(root / "saved"))
        return saved.to_iterable_dataset(num_shards=3) if kind == "disk-stream" else saved
    builder, path = ("parquet", "data.parquet") if "parquet" in kind else ("json", "data.jsonl")
    return datasets.load_dataset(
        builder,
        data_files=str(root / path),
        split="train",
        features=FEATURES,
        cache_dir=str(root / "cache"),
        streaming=kind.endswith("-stream"),
    )


def source(kind: str, root: Path, **config):
    """An HFSource or HFStreamingSource over the dataset of ``kind``."""
    if kind in STREAMING:
        return HFStreamingSource(HFStreamingSourceConfig(**config), dataset=load(kind, root))
    return HFSource(HFSourceConfig(**config), dataset=load(kind, root))


def pipeline(kind: str, root: Path, n_epochs: int = EPOCHS, batch_size: int = BATCH_SIZE):
    """Shuffled batches: a global permutation when eager, windows when streaming."""
    src = source(kind, root)
    if kind in STREAMING:
        batches = from_source(src, batch_size, seed=SEED, num_epochs=n_epochs)
        return batches >> ShuffleNode(BUFFER, seed=SEED)
    return from_source(src, batch_size, shuffle=True, seed=SEED, num_epochs=n_epochs)


if __name__ == "__main__":
    request = json.loads(sys.stdin.read())
    root = Path(request["root"])
    out = []
    for item in request["requests"]:
        digests = []
        for state in item["states"]:
            it = iter(pipeline(item["kind"], root))
            it.set_state(state)
            digests.append(digest(it))
        out.append(digests)
    print(json.dumps(out))
