"""``InferenceParams`` (HugeCTR <= 23.08's ``hugectr.inference``): what an inference model loads and how.

The keywords, their order and defaults are HugeCTR's (reference section 1.8). What a prediction needs
is used: the batch size, the model files, the device, the key width, mixed precision and the value of
unknown keys. The rest tunes HugeCTR's parameter server and its GPU embedding cache (hit rates, pools,
databases, refresh); here the whole tables sit on the device, so those are checked and kept only.
"""

from __future__ import annotations

from .._checks import bind_arguments, require_bool, require_int, require_number, require_str

_NAMES = [
    "model_name", "max_batchsize", "hit_rate_threshold", "dense_model_file", "sparse_model_files", "device_id",
    "use_gpu_embedding_cache", "cache_size_percentage", "i64_input_key", "use_mixed_precision", "scaler",
    "use_algorithm_search", "use_cuda_graph", "number_of_worker_buffers_in_pool", "number_of_refresh_buffers_in_pool",
    "thread_pool_size", "cache_refresh_percentage_per_iteration", "deployed_devices", "default_value_for_each_table",
    "volatile_db", "persistent_db", "update_source", "maxnum_des_feature_per_sample", "refresh_delay",
    "refresh_interval", "maxnum_catfeature_query_per_table_per_sample", "embedding_vecsize_per_table",
    "embedding_table_names", "network_file", "label_dim", "slot_num", "non_trainable_params_file", "use_static_table",
    "embedding_cache_type", "use_context_stream", "fuse_embedding_table", "use_hctr_cache_implementation", "init_ec",
    "enable_pagelock", "fp8_quant",
]
# Required (no default): model_name, max_batchsize, hit_rate_threshold, dense_model_file, sparse_model_files,
# use_gpu_embedding_cache, cache_size_percentage, i64_input_key.
_DEFAULTS = {
    "device_id": 0, "use_mixed_precision": False, "scaler": 1.0, "use_algorithm_search": True, "use_cuda_graph": True,
    "number_of_worker_buffers_in_pool": 2, "number_of_refresh_buffers_in_pool": 1, "thread_pool_size": 16,
    "cache_refresh_percentage_per_iteration": 0.0, "deployed_devices": lambda: [0],
    "default_value_for_each_table": lambda: [0.0], "volatile_db": None, "persistent_db": None, "update_source": None,
    "maxnum_des_feature_per_sample": 26, "refresh_delay": 0.0, "refresh_interval": 0.0,
    "maxnum_catfeature_query_per_table_per_sample": lambda: [26], "embedding_vecsize_per_table": lambda: [128],
    "embedding_table_names": lambda: [""], "network_file": "", "label_dim": 1, "slot_num": 10,
    "non_trainable_params_file": "", "use_static_table": False, "embedding_cache_type": None,
    "use_context_stream": True, "fuse_embedding_table": False, "use_hctr_cache_implementation": True, "init_ec": True,
    "enable_pagelock": False, "fp8_quant": False,
}


class InferenceParams:
    """HugeCTR's inference parameters; every keyword is an attribute.

    >>> p = InferenceParams(model_name="wdl", max_batchsize=64, hit_rate_threshold=1.0,
    ...                     dense_model_file="wdl_dense_2000.model", sparse_model_files=["wdl0_sparse_2000.model"],
    ...                     use_gpu_embedding_cache=False, cache_size_percentage=1.0, i64_input_key=False)
    >>> p.max_batchsize, p.deployed_devices, p.default_value_for_each_table
    (64, [0], [0.0])
    """

    def __init__(self, *args, **kwargs):
        owner = "InferenceParams"
        b = bind_arguments(owner, _NAMES, args, kwargs, _DEFAULTS)
        self.__dict__.update(b)
        self.model_name = require_str(owner, "model_name", b["model_name"])
        self.max_batchsize = require_int(owner, "max_batchsize", b["max_batchsize"], minimum=1)
        self.dense_model_file = require_str(owner, "dense_model_file", b["dense_model_file"], allow_empty=False)
        files = b["sparse_model_files"]
        if isinstance(files, str) or not all(isinstance(f, str) and f for f in files):
            raise TypeError(f"{owner}: sparse_model_files must be a list of paths (one per embedding), got {files!r}")
        self.sparse_model_files = list(files)
        self.device_id = require_int(owner, "device_id", b["device_id"], minimum=0)
        self.deployed_devices = [require_int(owner, "deployed_devices", d, minimum=0) for d in b["deployed_devices"]]
        for name in ("use_gpu_embedding_cache", "i64_input_key", "use_mixed_precision", "use_cuda_graph",
                     "use_algorithm_search", "use_static_table", "use_context_stream", "fuse_embedding_table",
                     "use_hctr_cache_implementation", "init_ec", "enable_pagelock", "fp8_quant"):
            setattr(self, name, require_bool(owner, name, b[name]))
        for name in ("hit_rate_threshold", "cache_size_percentage", "scaler", "cache_refresh_percentage_per_iteration",
                     "refresh_delay", "refresh_interval"):
            setattr(self, name, require_number(owner, name, b[name]))
        self.default_value_for_each_table = [require_number(owner, "default_value_for_each_table", v)
                                             for v in b["default_value_for_each_table"]]
        if any(value != 0.0 for value in self.default_value_for_each_table):
            # A key the tables do not hold adds nothing to its bag here (training's evaluation does the same).
            raise ValueError(f"{owner}: default_value_for_each_table {self.default_value_for_each_table}: only 0.0 "
                             "is supported (an unknown key adds nothing to its bag)")
