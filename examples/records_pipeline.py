"""Records from files, decoded and tokenised on host workers, then augmented on the device.

Writes a small ArrayRecord dataset (zlib-compressed images, a caption as bytes and a
label per record; one record is deliberately corrupt), then reads it shuffled with
two worker threads: a host operator tokenises each caption into 16 byte-level ids,
bad records are skipped within a budget, and the images are normalised and flipped
on the device. Run it as a script; ``main(path, workers)`` returns what it printed.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from flax import nnx

from datarax import from_source
from datarax.control import BadRecordPolicy
from datarax.dag.nodes import HostOperator, OperatorNode
from datarax.operators.image import Normalize, NormalizeConfig, RandomFlip, RandomFlipConfig
from datarax.sources import ArrayRecordSource, ArrayRecordSourceConfig, write_array_record

MAX_TOKENS = 16
WORDS = ["a", "small", "red", "blue", "square", "circle", "on", "the", "left", "right"]


def tokenize(record: dict) -> dict:
    """Caption bytes -> 16 token ids (bytes + 1, 0 pads) and the number kept."""
    ids = np.frombuffer(record.pop("caption").tobytes(), np.uint8)[:MAX_TOKENS] + 1
    tokens = np.zeros(MAX_TOKENS, np.int32)
    tokens[: ids.size] = ids
    return {**record, "tokens": tokens, "length": np.int32(ids.size)}


def write_dataset(path: Path, n: int = 200, seed: int = 0) -> None:
    """``n`` records; record 17 has a caption of another length field (a bad record)."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        caption = " ".join(rng.choice(WORDS, 3)).encode().ljust(24)[:24]
        records.append(
            {
                "image": rng.integers(0, 256, (16, 16, 3), dtype=np.uint8),
                "caption": np.frombuffer(caption, np.uint8),
                "label": np.int32(i % 10),
            }
        )
    records[17]["image"] = records[17]["image"][:8]  # the wrong shape: skipped
    write_array_record(path, records, compress=("image",))


def build(path: Path, workers: int):
    source = ArrayRecordSource(ArrayRecordSourceConfig(paths=str(path)))
    return (
        from_source(
            source,
            32,
            shuffle=True,
            seed=0,
            num_epochs=2,
            workers=workers,
            bad_records=BadRecordPolicy("skip", max_skipped=2),
        )
        >> HostOperator(tokenize)
        >> OperatorNode(Normalize(NormalizeConfig(std=255.0)))
        >> OperatorNode(RandomFlip(RandomFlipConfig(), rngs=nnx.Rngs(0)))
    )


def main(path: Path, workers: int = 2) -> list[str]:
    lines = []
    iterator = iter(build(path, workers))
    for batch in iterator:
        if batch.valid is not None:
            lines.append(f"epoch {batch.epoch}: skipped records {batch.skipped.tolist()}")
    first = next(iter(build(path, workers)))
    lines.append(
        f"batch: image {first['image'].shape} {first['image'].dtype}, "
        f"tokens {first['tokens'].shape}, mean caption length "
        f"{float(np.mean(first['length'])):.1f}"
    )
    lines.append(f"skipped in total: {iterator.metrics()['skipped_total']}")
    return lines


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "captions.arrayrecord"
        write_dataset(file)
        for line in main(file, workers=int(sys.argv[1]) if len(sys.argv) > 1 else 2):
            print(line)
