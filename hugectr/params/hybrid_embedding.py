"""``HybridEmbeddingParam``: the tuning of HugeCTR's (<= v23.08) hybrid embedding.

Hybrid embedding was a way to move a one-hot embedding's traffic between GPUs: frequent categories
data-parallel, the rest model-parallel. It changes where rows live and how they travel, not what a
step computes, so a ``HybridSparseEmbedding`` trains as a Distributed one here and these numbers are
checked and kept (scripts that pass them run unchanged) but steer nothing.
"""

from __future__ import annotations

from .._checks import bind_arguments, require_int, require_number
from ..enums import CommunicationType, HybridEmbeddingType, coerce

_NAMES = ["max_num_frequent_categories", "max_num_infrequent_samples", "p_dup_max", "max_all_reduce_bandwidth",
          "max_all_to_all_bandwidth", "efficiency_bandwidth_ratio", "communication_type", "hybrid_embedding_type"]


class HybridEmbeddingParam:
    """HugeCTR's eight arguments, all required, in its order.

    >>> p = HybridEmbeddingParam(2, -1, 0.01, 1.3e11, 1.9e11, 1.0, CommunicationType.IB_NVLink_Hier,
    ...                          HybridEmbeddingType.Distributed)
    >>> p.max_num_infrequent_samples, p.communication_type
    (-1, CommunicationType.IB_NVLink_Hier)
    """

    def __init__(self, *args, **kwargs):
        owner = "HybridEmbeddingParam"
        b = bind_arguments(owner, _NAMES, args, kwargs, {})
        self.max_num_frequent_categories = require_int(owner, "max_num_frequent_categories",
                                                       b["max_num_frequent_categories"])
        self.max_num_infrequent_samples = require_int(owner, "max_num_infrequent_samples",
                                                      b["max_num_infrequent_samples"], minimum=-1)
        for name in ("p_dup_max", "max_all_reduce_bandwidth", "max_all_to_all_bandwidth",
                     "efficiency_bandwidth_ratio"):
            setattr(self, name, require_number(owner, name, b[name]))
        self.communication_type = coerce(CommunicationType, b["communication_type"], f"{owner}: communication_type")
        self.hybrid_embedding_type = coerce(HybridEmbeddingType, b["hybrid_embedding_type"],
                                            f"{owner}: hybrid_embedding_type")
