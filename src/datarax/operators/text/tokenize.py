"""`Tokenize`: a text field to fixed-length token ids on the host plane (HuggingFace tokenizers).

Tokenising is Python and Rust work, not XLA: ``Tokenize`` is a record function for a
:class:`~datarax.dag.nodes.HostOperator`, run on the pipeline's worker pool before
batching. It pickles as its config and the tokenizer's JSON, so it runs on worker
processes too. Needs the ``text`` extra (``pip install "datarax[text]"``).

Example:
    >>> from tokenizers import Tokenizer, models, pre_tokenizers
    >>> tok = Tokenizer(models.WordLevel({"[PAD]": 0, "a": 1, "b": 2}, unk_token="[PAD]"))
    >>> tok.pre_tokenizer = pre_tokenizers.Whitespace()
    >>> tokenize = Tokenize(TokenizeConfig(max_length=4), tokenizer=tok)
    >>> out = tokenize({"text": np.frombuffer(b"a b a", np.uint8)})
    >>> out["tokens"].tolist(), int(out["tokens_length"])
    ([1, 2, 1, 0], 3)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from datarax.core.config import Config, require_bool, require_positive
from datarax.core.digest import digest
from datarax.core.errors import ConfigError, SchemaError
from datarax.core.optional import require
from datarax.operators.text.fields import field_of, require_field_name, require_token_id


@dataclass(frozen=True)
class TokenizeConfig(Config):
    """Args:
    field: The text field: a ``str`` or ``bytes`` value (as record sources deliver
        text to host operators), or UTF-8 bytes as a 1-D ``uint8`` array per record
        (trailing zero bytes, the padding of fixed-width byte fields, are ignored).
    output: Where the ids go (``int32``, shape ``(max_length,)``); the number of ids
        kept goes to ``<output>_length`` (``int32``), as ``MemorySourceConfig(pad_to=)``
        names lengths.
    max_length: Ids per record: longer encodings are truncated (the first
        ``max_length`` ids are kept), shorter ones padded with ``pad_id``.
    pad_id: The padding id.
    add_special_tokens: Let the tokenizer's post-processor add its special tokens
        (``Tokenizer.encode(..., add_special_tokens=...)``).
    keep_text: Keep the text field in the record (off by default: texts of
        different lengths cannot be batched).
    """

    field: str = "text"
    output: str = "tokens"
    max_length: int = 128
    pad_id: int = 0
    add_special_tokens: bool = True
    keep_text: bool = False

    def validate(self) -> None:
        require_field_name(self, "field")
        require_field_name(self, "output")
        require_positive(self, "max_length")
        require_token_id(self, "pad_id")
        require_bool(self, "add_special_tokens")
        require_bool(self, "keep_text")
        if self.keep_text and self.field in (self.output, f"{self.output}_length"):
            raise ConfigError(
                "the text field would be overwritten",
                where="TokenizeConfig.output",
                expected=f"another name than the text field '{self.field}' with keep_text",
                found=repr(self.output),
            )


class Tokenize:
    """Tokenises ``config.field`` of a record into ``max_length`` ids and a length.

    The ids of a record are ``tokenizer.encode(text).ids``, truncated to
    ``max_length`` and padded with ``pad_id``. Deterministic: use it as
    ``HostOperator(Tokenize(config, tokenizer=tok))``.

    Args:
        config: What to read and write, lengths and padding.
        tokenizer: A ``tokenizers.Tokenizer``, or its JSON (``Tokenizer.to_str()``).

    Raises:
        MissingDependencyError: when ``tokenizers`` is not installed (extra ``text``).
    """

    reference = "tokenizers.Tokenizer.encode"
    differentiable_in: tuple[str, ...] = ()

    def __init__(self, config: TokenizeConfig, *, tokenizer: Any) -> None:
        if not isinstance(config, TokenizeConfig):
            raise ConfigError(
                "wrong config type",
                where="Tokenize",
                expected="TokenizeConfig",
                found=type(config).__name__,
            )
        tokenizers = _tokenizers()
        if isinstance(tokenizer, str):
            text = tokenizer
        elif isinstance(tokenizer, tokenizers.Tokenizer):
            text = tokenizer.to_str()
        else:
            raise ConfigError(
                "not a tokenizer",
                where="Tokenize(tokenizer=...)",
                expected="a tokenizers.Tokenizer or its JSON string",
                found=type(tokenizer).__name__,
            )
        self._setup(config, text)

    def _setup(self, config: TokenizeConfig, tokenizer_json: str) -> None:
        self.config = config
        self.tokenizer_json = tokenizer_json
        self._tokenizer: Any = None
        # A host operator's fingerprint names its function by ``__qualname__``: this
        # one includes the config and the tokenizer, so a state saved with another
        # tokenizer is not restored into this pipeline.
        self.__qualname__ = f"Tokenize[{digest([config.to_dict(), tokenizer_json])}]"
        self.__name__ = "Tokenize"

    @property
    def tokenizer(self) -> Any:
        """The ``tokenizers.Tokenizer`` (rebuilt from JSON once per process)."""
        if self._tokenizer is None:
            self._tokenizer = _tokenizers().Tokenizer.from_str(self.tokenizer_json)
        return self._tokenizer

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record with its text replaced by ids and their count."""
        config = self.config
        text = _text_of(field_of(record, config.field, "Tokenize"), config.field)
        encoding = self.tokenizer.encode(text, add_special_tokens=config.add_special_tokens)
        ids = np.asarray(encoding.ids[: config.max_length], np.int32)
        tokens = np.full(config.max_length, config.pad_id, np.int32)
        tokens[: ids.size] = ids
        out = (
            dict(record)
            if config.keep_text
            else {k: v for k, v in record.items() if k != config.field}
        )
        out[config.output] = tokens
        out[f"{config.output}_length"] = np.int32(ids.size)
        return out

    def __getstate__(self) -> dict[str, Any]:  # the tokenizer travels as its JSON
        return {"config": self.config, "tokenizer_json": self.tokenizer_json}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._setup(state["config"], state["tokenizer_json"])

    def __repr__(self) -> str:
        return f"Tokenize({self.config.field!r} -> {self.config.output!r})"


def _tokenizers() -> Any:
    return require("tokenizers", "text", "Tokenize")


def _text_of(value: Any, field: str) -> str:
    """A record's text: UTF-8 bytes in a ``uint8`` array (zero padding stripped) or a str."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.rstrip(b"\0").decode("utf-8")
    array = np.asarray(value)
    if array.ndim != 1 or array.dtype not in (np.uint8, np.int8):
        raise SchemaError(
            "text must be UTF-8 bytes",
            where=f"Tokenize, field '{field}'",
            expected="a 1-D uint8 array (or str) per record",
            found=f"{array.dtype}{tuple(array.shape)}",
        )
    return array.tobytes().rstrip(b"\0").decode("utf-8")
