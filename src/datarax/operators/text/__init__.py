"""Text operators: tokenising on the host, packing and bucketing plans, LM targets on the device.

- :class:`Tokenize` (host plane, for a ``HostOperator``): text to fixed-length ids
  with a HuggingFace tokenizer (extra ``text``);
- :func:`pack_sequences` / :class:`PackConfig` and :func:`plan_buckets` /
  :class:`BucketConfig`: the NumPy plans that :class:`datarax.dag.packing.PackedPipeline`
  and :class:`datarax.dag.bucketing.BucketedPipeline` run over a pipeline's stream;
- :class:`MaskedLM` (BERT masking) and :class:`CausalLMShift` (next-token targets):
  device-plane operators.
"""

from datarax.operators.text.bucketing import BucketConfig, plan_buckets
from datarax.operators.text.causal import CausalLMShift, CausalLMShiftConfig
from datarax.operators.text.masking import MaskedLM, MaskedLMConfig
from datarax.operators.text.packing import PackConfig, PackedRows, pack_sequences
from datarax.operators.text.tokenize import Tokenize, TokenizeConfig

__all__ = [
    "BucketConfig",
    "CausalLMShift",
    "CausalLMShiftConfig",
    "MaskedLM",
    "MaskedLMConfig",
    "PackConfig",
    "PackedRows",
    "Tokenize",
    "TokenizeConfig",
    "pack_sequences",
    "plan_buckets",
]
