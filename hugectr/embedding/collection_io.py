"""``Model.embedding_dump`` / ``embedding_load``: the embedding collection's files, HugeCTR's layout (reference 3.6).

``<path>/embedding_collection_<c>/`` for collection c (its index in add order):

* ``meta_data``: int32[5] ``{num_tables, key_type (0 uint32, 1 int64), value_type (0 fp32), 0, 0}``, then
  int32 ``table_id[n]``, uint64 ``key_num[n]``, int32 ``ev_len[n]`` (tables in ascending id order; a
  table's id is its place among the collection's tables in first-lookup order);
* per table, ``key<table_id>`` and ``weight<table_id>``: a 128-byte header (int32[32]: ``[0]`` file type,
  1 key / 2 weight; ``[1]`` the table id; the rest 0), then the raw keys (``key_type``) or the float32
  vectors ``[key_num, ev]``. Static tables write every key 0..vocab-1, dynamic ones their keys in row
  (first-seen) order. Keys are int64 with ``i64_input_key``, uint32 otherwise.

Loading overwrites the vectors of the file's keys (a dynamic table inserts new ones); other rows keep
theirs. On several ranks every rank exports (model-parallel tables are gathered from their holder),
rank 0 writes the same files one device writes, and on load every rank reads the files and keeps
the tables it holds, so a dump moves between any numbers of ranks. Optimizer states are not part of the layout (HugeCTR writes none either).

Two deliberate differences from HugeCTR 25.03: it deletes and recreates the whole ``path`` folder (and
again per collection, wiping the ones before); here each ``embedding_collection_<c>`` folder is written
under a temporary name and swapped in, and nothing else in ``path`` is touched. With a subset of
``table_names`` it names the files by position in the subset while ``meta_data`` and the loader use the
table ids; here the files carry the table ids, so a subset dump loads back.
"""

from __future__ import annotations

import numpy as np
import torch

from ..distributed import data_parallel, env
from ..io import fs
from ..io.files import atomic_write_folder, read_array

HEADER_INTS = 32                  # 128 bytes
KEY_FILE, WEIGHT_FILE = 1, 2
_KEY_TYPES = {0: np.dtype(np.uint32), 1: np.dtype(np.int64)}


def selected_tables(collections, table_names, what: str) -> dict[int, list[int]]:
    """``{collection index: sorted table ids}`` for ``table_names`` (empty: every table)."""
    ids = {name: (c, t) for c, collection in enumerate(collections) for t, name in enumerate(collection.table_names)}
    if not ids:
        raise ValueError(f"Model.{what}: the model has no embedding collection (Model.add(EmbeddingCollectionConfig))")
    names = [table_names] if isinstance(table_names, str) else list(table_names or [])
    unknown = [name for name in names if name not in ids]
    if unknown:
        raise ValueError(f"Model.{what}: no embedding collection table named {', '.join(map(repr, unknown))}; "
                         f"tables: {', '.join(ids)}")
    chosen: dict[int, set[int]] = {}
    for name in names or ids:
        collection, table = ids[name]
        chosen.setdefault(collection, set()).add(table)
    return {c: sorted(tables) for c, tables in sorted(chosen.items())}


def _header(kind: int, table_id: int) -> np.ndarray:
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[0], header[1] = kind, table_id
    return header


def _with_header(header: np.ndarray, data: np.ndarray) -> np.ndarray:
    return np.concatenate([header.view(np.uint8), np.ascontiguousarray(data).reshape(-1).view(np.uint8)])


def dump(path: str, collections, table_names, *, i64_keys: bool, data_source_params=None) -> None:
    """Write the chosen tables of every collection under ``path``."""
    key_type = 1 if i64_keys else 0
    key_dtype = _KEY_TYPES[key_type].newbyteorder("<")
    for c, table_ids in selected_tables(collections, table_names, "embedding_dump").items():
        collection, files, key_nums, evs = collections[c], {}, [], []
        for t in table_ids:
            name = collection.table_names[t]
            keys, vectors = collection.export(name)
            keys = keys.cpu().numpy().astype(key_dtype)
            vectors = vectors.cpu().numpy().astype("<f4")
            files[f"key{t}"] = _with_header(_header(KEY_FILE, t), keys)
            files[f"weight{t}"] = _with_header(_header(WEIGHT_FILE, t), vectors)
            key_nums.append(keys.size)
            evs.append(vectors.shape[1])
        meta = [np.array([len(table_ids), key_type, 0, 0, 0], "<i4"), np.array(table_ids, "<i4"),
                np.array(key_nums, "<u8"), np.array(evs, "<i4")]
        files["meta_data"] = np.concatenate([part.view(np.uint8) for part in meta])
        if env.rank() == 0:            # export gathered every table on every rank; one writer
            atomic_write_folder(fs.join(path, f"embedding_collection_{c}"), files, data_source_params)
    data_parallel.barrier()            # no rank reads the folder before it is written


def _read_meta(folder: str, data_source_params) -> tuple[np.dtype, dict[int, int]]:
    """``(key dtype, {table id: ev})`` of a dump folder's ``meta_data``."""
    raw = read_array(fs.join(folder, "meta_data"), np.uint8, "embedding_load", data_source_params=data_source_params)
    head = raw[:20].view("<i4") if raw.size >= 20 else np.zeros(0, "<i4")
    n = int(head[0]) if head.size else -1
    if n < 0 or raw.size != 20 + n * 16 or int(head[1]) not in _KEY_TYPES:
        raise ValueError(f"embedding_load: '{fs.join(folder, 'meta_data')}' is not an embedding collection "
                         f"meta_data file ({raw.size} bytes)")
    ids = raw[20:20 + 4 * n].view("<i4")
    evs = raw[20 + 12 * n:].view("<i4")
    return _KEY_TYPES[int(head[1])].newbyteorder("<"), dict(zip(ids.tolist(), evs.tolist()))


def _read_table_file(file: str, kind: int, table_id: int, dtype, data_source_params) -> np.ndarray:
    raw = read_array(file, np.uint8, "embedding_load", data_source_params=data_source_params)
    body = raw[HEADER_INTS * 4:]
    if raw.size < HEADER_INTS * 4 or body.size % np.dtype(dtype).itemsize:
        raise ValueError(f"embedding_load: '{file}' has {raw.size} bytes: not a 128-byte header followed by "
                         f"{np.dtype(dtype).name} values")
    header = raw[:HEADER_INTS * 4].view("<i4")
    if int(header[0]) != kind or int(header[1]) != table_id:
        raise ValueError(f"embedding_load: '{file}' has header (type {int(header[0])}, table {int(header[1])}); "
                         f"expected type {kind} ({'key' if kind == KEY_FILE else 'weight'}) of table {table_id}")
    return body.view(dtype)


def load(path: str, collections, table_names, *, data_source_params=None) -> None:
    """Read the chosen tables of every collection from a dump under ``path``."""
    for c, table_ids in selected_tables(collections, table_names, "embedding_load").items():
        collection = collections[c]
        folder = fs.join(path, f"embedding_collection_{c}")
        key_dtype, evs = _read_meta(folder, data_source_params)
        for t in table_ids:
            name = collection.table_names[t]
            ev = collection.config.tables[name].ev_size
            if t not in evs:
                raise ValueError(f"embedding_load: the dump in '{folder}' has no table {t} ('{name}'); it holds "
                                 f"table ids {sorted(evs)}")
            if evs[t] != ev:
                raise ValueError(f"embedding_load: table '{name}' has ev_size {ev} but the dump in '{folder}' "
                                 f"has vectors of {evs[t]}")
            keys = _read_table_file(fs.join(folder, f"key{t}"), KEY_FILE, t, key_dtype, data_source_params)
            weights = _read_table_file(fs.join(folder, f"weight{t}"), WEIGHT_FILE, t, np.dtype("<f4"),
                                       data_source_params)
            if weights.size != keys.size * ev:
                raise ValueError(f"embedding_load: '{folder}' table '{name}': {keys.size} keys but "
                                 f"{weights.size} weight values; expected {keys.size} x ev_size {ev}")
            collection.load(name, torch.from_numpy(keys.astype(np.int64)),
                            torch.from_numpy(weights.astype(np.float32).reshape(-1, ev)), f"'{folder}/key{t}'")
