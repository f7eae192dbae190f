"""`DataSource`: random access to records, read a whole batch at a time.

A source knows its length and the shape and dtype of one record's fields, and
reads many records with one vectorised call. A source whose arrays live on a
device exposes them as :attr:`device_arrays`; the compiled pipeline then gathers
records itself and only indices cross from the host.
"""

from __future__ import annotations

import abc
from typing import Any

import jax
import numpy as np

from datarax.core.module import DataraxModule


class DataSource(DataraxModule, abc.ABC):
    """Base class of random-access sources."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of records."""

    @abc.abstractmethod
    def element_spec(self) -> dict[str, jax.ShapeDtypeStruct]:
        """Shape and dtype of one record's fields."""

    @abc.abstractmethod
    def read(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Fields of the records at ``indices``, stacked on axis 0, as host arrays."""

    def read_epoch(self, indices: np.ndarray, epoch: int) -> dict[str, np.ndarray]:
        """The records at ``indices`` in the pipeline's epoch ``epoch``.

        The same records in every epoch (:meth:`read`), unless a source moves on
        between epochs, as a :class:`~datarax.sources.MixedSource` does.
        """
        return self.read(indices)

    @property
    def device_arrays(self) -> dict[str, jax.Array] | None:
        """The fields as device arrays when the source lives on a device, else ``None``."""
        return None

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One record (a convenience; pipelines read whole batches with :meth:`read`)."""
        return {k: v[0] for k, v in self.read(np.asarray([index])).items()}

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this source's stream (compared when restoring state)."""
        spec = {k: [list(s.shape), str(s.dtype)] for k, s in self.element_spec().items()}
        return {"type": type(self).__name__, "length": len(self), "spec": spec}
