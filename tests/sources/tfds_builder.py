"""A tiny TFDS dataset for the TFDS source tests, prepared in two file formats.

40 records of an (8, 8, 3) uint8 image, an int64 label, a float32 score and the
record's generator ``index`` (TFDS stores records in a hashed order, so tests find
the generator record of a stored one by its ``index``). Prepared in two shards,
once as ArrayRecord files (random access) and once as TFRecord files (streaming).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

NAME = "datarax_tiny_images"
NUM_RECORDS = 40
FORMATS = ("array_record", "tfrecord")


def record(i: int) -> dict[str, np.ndarray]:
    """The generator's record ``i``, with the dtypes TFDS stores."""
    rng = np.random.default_rng(i)
    return {
        "image": rng.integers(0, 256, (8, 8, 3), dtype=np.uint8),
        "label": np.int64(i % 7),
        "score": np.float32(i) / np.float32(4),
        "index": np.int64(i),
    }


class DataraxTinyImages(tfds.core.GeneratorBasedBuilder):
    """Registered by TFDS as ``datarax_tiny_images``."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(8, 8, 3)),
                    "label": tfds.features.Scalar(np.int64),
                    "score": tfds.features.Scalar(np.float32),
                    "index": tfds.features.Scalar(np.int64),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(NUM_RECORDS):
            yield i, record(i)


def prepare(root: str) -> dict[str, str]:
    """Prepare the dataset under ``root/<format>`` for each format; the data dirs by format."""
    data_dirs = {}
    for file_format in FORMATS:
        data_dir = os.path.join(root, file_format)
        builder = DataraxTinyImages(data_dir=data_dir, file_format=file_format)
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(num_shards=2),
        )
        data_dirs[file_format] = data_dir
    return data_dirs
