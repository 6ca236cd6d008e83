"""Criteo's click-log text -> HugeCTR Parquet, Norm or Raw files, as HugeCTR's preprocessing tools make them.

``convert_criteo(train_files, CriteoConversion(...), eval_files)`` streams the text a chunk at a time
(``criteo_text``) and writes the samples with the generator's writers. Rules:

* dense ``I1..I13``: a missing value becomes ``dense_fill``; with ``log_dense`` negatives are clipped to
  0, then log(x + 1) (as DLRM's preprocessing; computed in float64, stored float32).
* categorical ``C1..C26``, per slot: id 0 = missing. ``categorical="hash"``: value v -> 1 + v % hash_size
  (slot size hash_size + 1). ``"vocabulary"``: a first pass counts every value of the training lines;
  values seen at least ``min_frequency`` times get ids 2, 3, ... by descending count (ties: smaller value
  first); the others, and eval values never seen in training, get id 1 (out of vocabulary). Slot size =
  kept values + 2; the kept values are saved in id order in ``vocabulary.npz``.
* keys: Parquet stores slot-local ids (its reader adds the ``slot_size_array`` offsets); Norm and Raw
  store ids + sum(slot_size_array[:slot]) (their readers use keys as written), uint32 or int64.
* split: ``train_lines`` sends the first N lines of the training files to train and the rest to eval;
  ``eval_files`` are eval data too.

Output in ``output_dir``, laid out as ``DataGenerator`` lays out its own datasets: Parquet and Norm write
``train/gen_<k>`` and ``val/gen_<k>`` files of ``rows_per_file`` samples (the last one fewer), file lists
``file_list.txt`` / ``file_list_test.txt`` and, for Parquet, a ``_metadata.json`` in each data folder
(columns ``label0``, ``C1..C13`` float32, ``C14..C39`` keys); Raw writes ``train_data.bin`` /
``test_data.bin`` (float32 label and dense, or int32 with ``float_label_dense=False``, then one 4-byte
key per slot). ``slot_size_array.json`` records the slot sizes, sample counts and the settings.
"""

from __future__ import annotations

import json
import numbers
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .._checks import require_bool, require_int, require_number, require_str
from ..enums import Check_t, DataReaderType_t, coerce
from .criteo_output import SplitWriter
from .criteo_text import NUM_SLOT, TextChunk, read_text

MISSING_ID, OOV_ID = 0, 1
SUMMARY_FILE = "slot_size_array.json"
Progress = Callable[[str, int, int, int], None]   # (stage, bytes done, bytes in all, lines done)
_FORMATS = (DataReaderType_t.Parquet, DataReaderType_t.Norm, DataReaderType_t.Raw)
_MERGE_AT = 1 << 22        # vocabulary: (value, count) pairs pending before they are merged


@dataclass(frozen=True)
class CriteoConversion:
    """How to convert: output folder and format, categorical ids, dense values, split, files, key width.

    >>> CriteoConversion("out", categorical="hash", hash_size=100).slot_hash_sizes()[:3].tolist()
    [100, 100, 100]
    """

    output_dir: str
    format: DataReaderType_t = DataReaderType_t.Parquet
    categorical: str = "vocabulary"        # "hash" or "vocabulary"
    hash_size: int | tuple[int, ...] | None = None
    min_frequency: int = 1
    dense_fill: float = 0.0
    log_dense: bool = True
    i64_input_key: bool = False
    rows_per_file: int = 1 << 20
    train_lines: int | None = None
    check_type: Check_t = Check_t.Sum      # Norm framing
    float_label_dense: bool = True         # Raw: float32 label / dense, else int32 (the reader takes the log)
    block_size: int = 1 << 24              # bytes of text parsed at a time

    def __post_init__(self) -> None:
        owner = "CriteoConversion"
        fmt = coerce(DataReaderType_t, self.format, f"{owner}: format")
        if fmt not in _FORMATS:
            raise ValueError(f"{owner}: format must be one of {[f.name for f in _FORMATS]}, got {fmt.name}")
        object.__setattr__(self, "format", fmt)
        object.__setattr__(self, "check_type", coerce(Check_t, self.check_type, f"{owner}: check_type"))
        if self.categorical not in ("hash", "vocabulary"):
            raise ValueError(f"{owner}: categorical must be 'hash' or 'vocabulary', got {self.categorical!r}")
        if self.categorical == "hash":
            self.slot_hash_sizes()
        for name, minimum in (("min_frequency", 1), ("rows_per_file", 1), ("block_size", 1024)):
            require_int(owner, name, getattr(self, name), minimum=minimum)
        if self.train_lines is not None:
            require_int(owner, "train_lines", self.train_lines, minimum=0)
        for name in ("log_dense", "i64_input_key", "float_label_dense"):
            object.__setattr__(self, name, require_bool(owner, name, getattr(self, name)))
        require_str(owner, "output_dir", self.output_dir, allow_empty=False)
        fill = require_number(owner, "dense_fill", self.dense_fill)
        if self.format is DataReaderType_t.Raw and not self.float_label_dense and (
                not self.log_dense or not fill.is_integer()):
            raise ValueError(f"{owner}: float_label_dense=False writes int dense values that the Raw reader turns "
                             "into log(x + 1) itself: it needs log_dense=True and an integer dense_fill, got "
                             f"log_dense={self.log_dense}, dense_fill={self.dense_fill}")

    def slot_hash_sizes(self) -> np.ndarray:
        """(26,) int64 hash sizes: ``hash_size`` for every slot, or one per slot."""
        given = self.hash_size if isinstance(self.hash_size, (list, tuple)) else [self.hash_size]
        sizes = np.array([int(v) if isinstance(v, numbers.Integral) and not isinstance(v, bool) else 0
                          for v in given], np.int64)
        sizes = np.broadcast_to(sizes, (NUM_SLOT,)) if sizes.size == 1 else sizes
        if sizes.shape != (NUM_SLOT,) or (sizes < 1).any():
            raise ValueError(f"CriteoConversion: categorical='hash' needs hash_size, one int >= 1 or {NUM_SLOT} "
                             f"(one per slot), got {self.hash_size!r}")
        return sizes.copy()


@dataclass(frozen=True)
class ConversionResult:
    """What was written: the slot sizes, the sample counts and the sources to give ``DataReaderParams``."""

    slot_size_array: list[int]
    num_samples: int
    eval_num_samples: int
    source: str | None
    eval_source: str | None
    summary: str


class HashIds:
    """Categorical ids by hashing: 0 for missing, 1 + value % hash_size[slot] otherwise."""

    def __init__(self, sizes: np.ndarray):
        self.sizes = sizes.astype(np.int64)
        self.slot_size_array = (self.sizes + 1).tolist()

    def encode(self, values: np.ndarray, present: np.ndarray) -> np.ndarray:
        """(n, 26) int64 slot-local ids of (n, 26) values."""
        return np.where(present, 1 + values.astype(np.int64) % self.sizes[None, :], MISSING_ID)


class KeyIndex:
    """Row of each of a set of distinct uint64 keys: open addressing in NumPy, built once, probed in rounds.

    A sorted array and ``np.searchsorted`` cost ~log2(V) cache misses a lookup (20x slower for Criteo's
    10M-value slots); here a lookup is ~2 probes. Slots hold keys at a load of at most 1/2, multiplicative
    hashing (top bits of key * 2^64/phi), linear probing; ``rounds`` bounds every probe run.

    >>> KeyIndex(np.array([10, 3, 77], np.uint64)).find(np.array([77, 5, 10], np.uint64)).tolist()
    [2, -1, 0]
    """

    def __init__(self, keys: np.ndarray):
        keys = np.asarray(keys, np.uint64)
        bits = max(4, keys.size.bit_length() + 1)
        self.mask, self.shift = np.uint64((1 << bits) - 1), np.uint64(64 - bits)
        self.slot_key = np.zeros(1 << bits, np.uint64)
        self.slot_row = np.full(1 << bits, -1, np.int32 if keys.size < 2**31 else np.int64)
        pending, position, self.rounds = np.arange(keys.size), self._home(keys), 0
        while pending.size:   # each round every unplaced key tries its next slot; one of a clash wins
            free = self.slot_row[position] < 0
            candidates, slots = pending[free], position[free]
            self.slot_row[slots] = candidates
            won = self.slot_row[slots] == candidates
            self.slot_key[slots[won]] = keys[candidates[won]]
            placed = np.zeros(keys.size, bool)
            placed[candidates[won]] = True
            left = ~placed[pending]
            pending, position = pending[left], (position[left] + np.uint64(1)) & self.mask
            self.rounds += 1

    def _home(self, keys: np.ndarray) -> np.ndarray:
        return (keys * np.uint64(0x9E3779B97F4A7C15)) >> self.shift     # wraps modulo 2^64 on purpose

    def find(self, keys: np.ndarray) -> np.ndarray:
        """(n,) int64 rows of ``keys`` (n,) uint64; -1 for a key not in the set."""
        keys = np.asarray(keys, np.uint64)
        out = np.full(keys.size, -1, np.int64)
        index, position = np.arange(keys.size), self._home(keys)
        for _ in range(self.rounds):
            row = self.slot_row[position]
            occupied = row >= 0
            hit = occupied & (self.slot_key[position] == keys[index])
            out[index[hit]] = row[hit]
            going = occupied & ~hit                       # an empty slot ends a key's probe run
            index, position = index[going], (position[going] + np.uint64(1)) & self.mask
            if not index.size:
                break
        return out


class Vocabulary:
    """Categorical ids from value counts: ``add`` every training chunk, ``finish``, then ``encode``.

    A value is keyed as slot << 32 | value, so every slot is counted and looked up in one array.

    >>> vocabulary = Vocabulary(min_frequency=2, slots=1)
    >>> vocabulary.add(np.array([[5], [7], [7], [9], [5], [7]], np.uint32), np.ones((6, 1), bool))
    >>> vocabulary.finish().slot_size_array
    [4]
    >>> vocabulary.encode(np.array([[7], [5], [9], [3]], np.uint32), np.array([[1], [1], [1], [0]], bool)).ravel()
    array([2, 3, 1, 0])
    """

    def __init__(self, min_frequency: int, slots: int = NUM_SLOT):
        self.min_frequency, self.slots = min_frequency, slots
        self._slot_bits = np.arange(slots, dtype=np.uint64) << np.uint64(32)
        self._keys, self._counts = np.zeros(0, np.uint64), np.zeros(0, np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.slot_size_array: list[int] = []

    def add(self, values: np.ndarray, present: np.ndarray) -> None:
        keys, counts = np.unique((self._slot_bits[None, :] | values)[present], return_counts=True)
        self._pending.append((keys, counts))
        # Merge when the pending pairs outgrow the running table: each pair is merged O(log) times.
        if sum(k.size for k, _ in self._pending) > max(self._keys.size, _MERGE_AT):
            self._merge()

    def _merge(self) -> None:
        keys = np.concatenate([self._keys, *(k for k, _ in self._pending)])
        counts = np.concatenate([self._counts, *(c for _, c in self._pending)])
        self._keys, inverse = np.unique(keys, return_inverse=True)
        self._counts = np.bincount(inverse, weights=counts, minlength=self._keys.size).astype(np.int64)
        self._pending = []

    def finish(self) -> Vocabulary:
        """Drop the rare values and number the rest per slot by descending count."""
        self._merge()
        kept = self._counts >= self.min_frequency
        keys, counts = self._keys[kept], self._counts[kept]
        slot = (keys >> np.uint64(32)).astype(np.int64)
        order = np.lexsort((keys, -counts, slot))             # by slot, then count down, then value up
        per_slot = np.bincount(slot, minlength=self.slots)
        first = np.concatenate([[0], np.cumsum(per_slot)[:-1]])
        ids = np.empty(keys.size, np.int64)
        ids[order] = np.arange(keys.size) - np.repeat(first, per_slot) + OOV_ID + 1
        self.ranked_keys = keys[order]                          # kept values in id order, slot after slot
        self._index, self._ids = KeyIndex(keys), ids
        self.slot_size_array = (per_slot + 2).tolist()
        return self

    def encode(self, values: np.ndarray, present: np.ndarray) -> np.ndarray:
        """(n, 26) int64 slot-local ids of (n, 26) values."""
        rows = self._index.find((self._slot_bits[None, :] | values).ravel()).reshape(values.shape)
        ids = np.where(rows >= 0, self._ids[np.maximum(rows, 0)] if self._ids.size else OOV_ID, OOV_ID)
        return np.where(present, ids, MISSING_ID)

    def save(self, path: str) -> None:
        """The kept values of each slot in id order (id = 2 + position) as ``C1..C26`` arrays of a .npz."""
        slot = (self.ranked_keys >> np.uint64(32)).astype(np.int64)
        values = (self.ranked_keys & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        np.savez(path, **{f"C{s + 1}": values[slot == s] for s in range(self.slots)})


def convert_criteo(train_files: Sequence[str], config: CriteoConversion, eval_files: Sequence[str] = (),
                   progress: Progress | None = None) -> ConversionResult:
    """Convert Criteo text files (train, and eval) as ``config`` says; returns what was written.

    Vocabulary mode reads the training lines twice (count, then write); hashing reads them once.
    """
    train_files, eval_files = _paths("train_files", train_files), _paths("eval_files", eval_files, allow_empty=True)
    if not train_files:
        raise ValueError("convert_criteo: train_files is empty; give at least one Criteo text file")
    ids = HashIds(config.slot_hash_sizes()) if config.categorical == "hash" else _count(train_files, config, progress)
    _check_key_range(config, ids.slot_size_array)
    os.makedirs(config.output_dir, exist_ok=True)
    writers = {split: SplitWriter(config, split, ids.slot_size_array) for split in ("train", "val")}
    try:
        for split, chunk in _chunks(train_files, eval_files, config, "convert", progress):
            writers[split].write(*_samples(chunk, config, ids))
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    sources = {split: writer.close() for split, writer in writers.items()}
    result = ConversionResult(ids.slot_size_array, sum(writers["train"].rows), sum(writers["val"].rows),
                              sources["train"], sources["val"], os.path.join(config.output_dir, SUMMARY_FILE))
    if isinstance(ids, Vocabulary):
        ids.save(os.path.join(config.output_dir, "vocabulary.npz"))
    _write_summary(config, result)
    return result


def _paths(name: str, paths: Sequence[str], allow_empty: bool = False) -> list[str]:
    if isinstance(paths, str) or not all(isinstance(p, str) and p for p in paths):
        raise TypeError(f"convert_criteo: {name} must be a list of file paths, got {paths!r}")
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise ValueError(f"convert_criteo: {name}: file(s) not found: {missing} (working directory: {os.getcwd()})")
    return list(paths)


def _count(train_files: list[str], config: CriteoConversion, progress: Progress | None) -> Vocabulary:
    """The first pass: the vocabulary of the training lines."""
    vocabulary = Vocabulary(config.min_frequency)
    for _, chunk in _chunks(train_files, [], config, "count", progress, train_only=True):
        vocabulary.add(chunk.values, chunk.present)
    return vocabulary.finish()


def _chunks(train_files: list[str], eval_files: list[str], config: CriteoConversion, stage: str,
            progress: Progress | None, train_only: bool = False):
    """(split, chunk) over the train files then the eval files; ``train_lines`` moves lines to 'val'."""
    files = [(p, "train") for p in train_files] + ([] if train_only else [(p, "val") for p in eval_files])
    total, before, lines = sum(os.path.getsize(p) for p, _ in files), 0, 0
    for path, split in files:
        for chunk, position in read_text(path, config.block_size):
            if split == "train" and config.train_lines is not None:
                cut = min(max(config.train_lines - lines, 0), chunk.rows)    # lines left for train
                if cut:
                    yield "train", chunk.slice(0, cut)
                if cut < chunk.rows:
                    if train_only:
                        return
                    yield "val", chunk.slice(cut, chunk.rows)
            else:
                yield split, chunk
            lines += chunk.rows
            if progress is not None:
                progress(stage, before + position, total, lines)
        before += os.path.getsize(path)


def _samples(chunk: TextChunk, config: CriteoConversion, ids) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n,) labels, (n, 13) dense values and (n, 26) slot-local ids of a chunk, by the config's rules."""
    dense = np.where(np.isnan(chunk.dense), config.dense_fill, chunk.dense)       # (n, 13) float64
    if config.log_dense:
        dense = np.maximum(dense, 0.0)
    keys = ids.encode(chunk.values, chunk.present)
    if config.format is DataReaderType_t.Raw and not config.float_label_dense:   # the reader takes log(x + 1)
        too_big = np.flatnonzero((dense > np.iinfo(np.int32).max).any(axis=1))
        if too_big.size:
            raise ValueError(f"Criteo: '{chunk.path}', line {chunk.first_line + int(too_big[0])}: a dense value "
                             "does not fit the int32 dense values of Raw with float_label_dense=False; write "
                             "float32 (float_label_dense=True)")
        return chunk.label.astype(np.int32), dense.astype(np.int32), keys
    if config.log_dense:
        dense = np.log1p(dense)
    return chunk.label, dense.astype(np.float32), keys


def _check_key_range(config: CriteoConversion, slot_size_array: list[int]) -> None:
    """Keys must fit their width (and stay below uint32's empty-key sentinel 0xFFFFFFFF)."""
    global_keys = config.format is not DataReaderType_t.Parquet
    largest = (sum(slot_size_array) if global_keys else max(slot_size_array)) - 1
    raw_int32 = config.format is DataReaderType_t.Raw and config.i64_input_key
    limit = (1 << 31) - 1 if raw_int32 else (1 << 63) - 1 if config.i64_input_key else (1 << 32) - 2
    if largest >= limit:
        what = "int32 (Raw keys are 4 bytes)" if raw_int32 else "int64" if config.i64_input_key else "uint32"
        raise ValueError(f"CriteoConversion: the largest key would be {largest} (slot_size_array {slot_size_array}"
                         f"{', offset per slot' if global_keys else ''}), too large for {what} keys; use smaller "
                         "hash sizes, a higher min_frequency" + ("" if config.i64_input_key else
                                                                  ", or i64_input_key=True"))


def _write_summary(config: CriteoConversion, result: ConversionResult) -> None:
    settings = {key: (value.name if hasattr(value, "name") else list(value) if isinstance(value, tuple) else value)
                for key, value in asdict(config).items()}
    if config.categorical == "hash":
        settings["hash_size"] = config.slot_hash_sizes().tolist()
    summary = {**asdict(result), "label_dim": 1, "dense_dim": 13, "missing_id": MISSING_ID,
               "oov_id": OOV_ID if config.categorical == "vocabulary" else None,
               "keys": "slot-local" if config.format is DataReaderType_t.Parquet else "offset per slot",
               "settings": settings}
    text = "{\n" + ",\n".join(f" {json.dumps(key)}: {json.dumps(value)}" for key, value in summary.items()) + "\n}\n"
    with open(f"{result.summary}.tmp", "w", encoding="utf-8") as stream:
        stream.write(text)     # one line per entry: slot_size_array reads at a glance
    os.replace(f"{result.summary}.tmp", result.summary)
