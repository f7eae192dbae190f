"""What the text tests share: the corpus shipped beside them and a BPE tokenizer trained on it."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# The operator checks shared by every operator test live one folder up.
sys.path.insert(0, str(HERE.parent))

from in_pipeline import assert_operator_in_pipeline  # noqa: E402

__all__ = ["SPECIALS", "assert_operator_in_pipeline", "corpus", "text_records", "tokenizer"]

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0..4


@functools.cache
def corpus() -> tuple[str, ...]:
    """The lines of ``corpus.txt`` (written for these tests)."""
    return tuple(line for line in (HERE / "corpus.txt").read_text("utf-8").splitlines() if line)


@functools.cache
def _trained(vocab_size: int, special: bool) -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    if special:
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
        )
    return tok.to_str()


def tokenizer(vocab_size: int = 400, *, special: bool = True):
    """A BPE tokenizer trained offline on the corpus (``[CLS] text [SEP]`` when ``special``)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_str(_trained(vocab_size, special))


def text_records(lines=None) -> list[dict[str, np.ndarray]]:
    """One record per line: its UTF-8 bytes (``uint8``) and its index as a label."""
    lines = corpus() if lines is None else lines
    return [
        {"text": np.frombuffer(line.encode("utf-8"), np.uint8), "label": np.int32(i)}
        for i, line in enumerate(lines)
    ]
