"""Norm records decoded in bulk with NumPy: a window of file bytes -> record positions, nnz, keys.

A Norm record (after the header) is ``float32 label_dim + dense_dim``, then for every slot ``int32 nnz``
and ``nnz`` keys (uint32, or int64 with ``i64_input_key``). ``Check_t.Sum`` frames each record as
``int32 L``, ``L`` payload bytes and an ``int8`` checksum (the wrapping sum of the payload bytes).

Where a record starts depends on every nnz before it, a serial chain. Two vectorised ways through it:

* **Fixed layout** (HugeCTR's generator writes exactly ``nnz_array[k]`` keys; one-hot data always): the
  first record's length ``R`` predicts record ``i`` at ``i * R``; every predicted nnz (and ``L``) is
  checked against the first record's at once, and every field is then a strided view of the window.
* **Variable nnz**: every position of the window that could start a record is tested at once (its
  ``L`` and nnz walk stay in bounds and add up), which gives each candidate's successor; the chain
  from the first record is then followed by pointer doubling (``log2(records)`` vectorised rounds
  over the candidates) instead of one Python step per record.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_FOUR = np.arange(4)
# Bytes searched at once for variable-length records: the search holds ~40 bytes per window byte.
VARIABLE_WINDOW = 1 << 21


@dataclass(frozen=True)
class NormLayout:
    """The shape of one record: label and dense widths, total slots, key width, framing."""

    label_dim: int
    dense_dim: int
    slots: int
    key_bytes: int          # 4 (uint32) or 8 (int64)
    checksum: bool          # Check_t.Sum framing
    max_nnz: int = 1 << 20  # a slot with more keys is taken for a broken record (bounds the candidate search)

    @property
    def floats(self) -> int:
        return self.label_dim + self.dense_dim

    @property
    def prefix(self) -> int:
        """Bytes before the payload (the record length L under Check_t.Sum)."""
        return 4 if self.checksum else 0

    @property
    def suffix(self) -> int:
        """Bytes after the payload (the checksum under Check_t.Sum)."""
        return 1 if self.checksum else 0

    @property
    def key_dtype(self) -> np.dtype:
        return np.dtype("<i8" if self.key_bytes == 8 else "<u4")

    def record_bytes(self, nnz_total: int) -> int:
        return self.prefix + 4 * (self.floats + self.slots) + self.key_bytes * nnz_total + self.suffix


@dataclass
class Walk:
    """The records found at the start of a window (positions relative to it).

    ``starts`` (m,) record starts, ``nnz`` (m, slots), ``key_starts`` (m, slots) byte position of each
    slot's first key (a fixed layout keeps only record 0's, (1, slots): the others are the same
    offsets from their record's start), ``good`` (m,) False where the checksum failed. ``stop`` is where reading goes on
    (the byte after the last record) and ``broken`` says why the record at ``stop`` cannot be read
    ("" when it merely did not fit in the window, or ``limit`` records were found).
    """

    starts: np.ndarray
    nnz: np.ndarray
    key_starts: np.ndarray
    good: np.ndarray
    stop: int
    broken: str = ""
    length: int = 0         # every record has this many bytes (fixed layout), 0 if they vary

    @property
    def count(self) -> int:
        return int(self.starts.size)


def int32_at(buf: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Little-endian int32 values starting at byte ``positions`` of ``buf`` (each with 4 bytes in bounds).

    >>> int32_at(np.array([1, 0, 0, 0, 255, 255, 255, 255], np.uint8), np.array([0, 4, 1])).tolist()
    [1, -1, -16777216]
    """
    return np.ascontiguousarray(buf[positions[..., None] + _FOUR]).view("<i4")[..., 0]


def walk(buf: np.ndarray, layout: NormLayout, limit: int) -> Walk:
    """At most ``limit`` records from the start of ``buf`` (a record start): the fixed layout when it holds."""
    first = _first_record(buf, layout)
    if isinstance(first, str):
        return _empty(first)
    if first is None:
        return _empty("")
    nnz, length = first
    count = min(limit, buf.size // length)
    found = _walk_fixed(buf, layout, nnz, length, count)
    if found is not None:
        return found
    return _walk_variable(buf[:max(VARIABLE_WINDOW, 4 * length)], layout, limit)   # bounded memory


def _empty(broken: str) -> Walk:
    none = np.zeros((0, 0), np.int64)
    return Walk(np.zeros(0, np.int64), none, none, np.zeros(0, bool), 0, broken)


def _first_record(buf: np.ndarray, layout: NormLayout):
    """(nnz (slots,), record length) of the record at 0; None if it does not fit, or why it is broken.

    A loop over the slots of ONE record (the seed of the fixed-layout guess), not over samples.
    """
    position, nnz = layout.prefix + 4 * layout.floats, []
    for _ in range(layout.slots):
        if position + 4 > buf.size:
            return None
        count = int(int32_at(buf, np.array([position]))[0])
        if count < 0 or count > layout.max_nnz:
            return f"a slot has nnz={count}, outside [0, {layout.max_nnz}]"
        nnz.append(count)
        position += 4 + layout.key_bytes * count
    length = position + layout.suffix
    if length > buf.size:
        return None
    if layout.checksum:
        stated = int(int32_at(buf, np.array([0]))[0])
        if stated != length - 5:
            return f"its length field says {stated} bytes but its nnz add up to {length - 5}"
    return np.array(nnz, np.int64), length


def _walk_fixed(buf: np.ndarray, layout: NormLayout, nnz: np.ndarray, length: int, count: int) -> Walk | None:
    """``count`` records of ``length`` bytes each with the first record's nnz, or None if any differs."""
    starts = layout.prefix + 4 * layout.floats + np.concatenate([[0], np.cumsum(4 + layout.key_bytes * nnz)[:-1]])
    if not (_slot_ints(buf, count, length, starts) == nnz).all():
        return None
    if layout.checksum and not (_field(buf, count, length, "<i4", 0) == length - 5).all():
        return None
    good = np.ones(count, bool)
    if layout.checksum:
        rows = buf[:count * length].reshape(count, length)                  # (m, R) bytes
        good = rows[:, 4:-1].sum(axis=1, dtype=np.uint8) == rows[:, -1]     # uint8 sums wrap like HugeCTR's
    record_starts = np.arange(count, dtype=np.int64) * length
    return Walk(record_starts, np.broadcast_to(nnz, (count, nnz.size)), (starts + 4)[None, :], good,
                count * length, length=length)


def _field(buf: np.ndarray, count: int, length: int, dtype: str, offset: int, inner=()) -> np.ndarray:
    """A zero-copy view (count, *sizes) of ``dtype`` values at byte ``offset`` of each ``length``-byte record;
    ``inner`` lists (size, byte stride) of further dimensions. Unaligned strides are fine for NumPy."""
    shape = (count, *(size for size, _ in inner))
    if 0 in shape:
        return np.zeros(shape, dtype)
    return np.ndarray(shape, dtype=dtype, buffer=buf, offset=int(offset),
                      strides=(length, *(stride for _, stride in inner)))


def _slot_ints(buf: np.ndarray, count: int, length: int, starts: np.ndarray) -> np.ndarray:
    """(count, slots) int32 at byte ``starts`` of every record: one strided view when evenly spaced."""
    steps = np.diff(starts)
    if starts.size > 1 and (steps == steps[0]).all():
        return _field(buf, count, length, "<i4", starts[0], [(starts.size, int(steps[0]))])
    index = (np.arange(count) * length)[:, None] + starts[None, :]
    return int32_at(buf, index)


def _walk_variable(buf: np.ndarray, layout: NormLayout, limit: int) -> Walk:
    """Records of any nnz, found with vectorised candidate tests and pointer doubling."""
    if layout.checksum:
        starts, stop, broken = _framed_chain(buf, layout, limit)
    else:
        starts, stop, broken = _unframed_chain(buf, layout, limit)
    return _describe(buf, layout, starts, stop, broken)


def _framed_chain(buf: np.ndarray, layout: NormLayout, limit: int) -> tuple[np.ndarray, int, str]:
    """Check_t.Sum: record p ends at p + 5 + L(p). Candidates are the positions whose L is plausible, fits
    and whose checksum holds; the chain through them is followed by doubling. A record with a bad
    checksum leaves the candidates: it is taken as a (bad) record and the chain goes on after it."""
    lengths = _int32_everywhere(buf, 1)                          # L at every byte position, int32
    minimum = 4 * (layout.floats + layout.slots)
    candidates = np.flatnonzero((lengths >= minimum) & ((lengths & 3) == 0))
    ends = candidates + 5 + lengths[candidates]
    candidates, ends = candidates[ends <= buf.size], ends[ends <= buf.size]
    sums = wrapping_prefix_sums(buf)
    checked = (sums[ends - 1] - sums[candidates + 4]) == buf[ends - 1]   # the last byte is the checksum
    domain, domain_ends = candidates[checked], ends[checked]
    pieces, position, count = [], 0, 0
    while count < limit:
        if position + 4 > buf.size:
            return _joined(pieces), position, ""
        length = int(lengths[position])
        if length < minimum or length % 4:
            return _joined(pieces), position, _why_not_a_record(buf[position:], layout)
        if position + 5 + length > buf.size:
            return _joined(pieces), position, ""                 # runs past the window
        at = int(np.searchsorted(domain, position))
        if at < domain.size and domain[at] == position:
            chain = _follow(domain, domain_ends, at, limit - count)
            pieces.append(domain[chain])
            position = int(domain_ends[chain[-1]])
        else:                                                    # a bad checksum: one record, skipped later
            pieces.append(np.array([position]))
            position += 5 + length
        count += pieces[-1].size
    return _joined(pieces), position, ""


def _follow(domain: np.ndarray, successors: np.ndarray, start: int, limit: int) -> np.ndarray:
    """Indices into ``domain`` of the chain from ``domain[start]`` while successors stay in the domain."""
    at = np.minimum(np.searchsorted(domain, successors), domain.size - 1)
    successor = np.append(np.where(domain[at] == successors, at, domain.size), domain.size)
    return _chain(successor, start, limit, real=domain.size)


def _joined(pieces: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(pieces).astype(np.int64) if pieces else np.zeros(0, np.int64)


def _unframed_chain(buf: np.ndarray, layout: NormLayout, limit: int) -> tuple[np.ndarray, int, str]:
    """Check_t.Non: every 4-byte-aligned position is a candidate; its slots are walked in lockstep with
    all the others (most drop out within a step or two) and the chain is followed by doubling."""
    positions = np.arange(0, buf.size, 4, dtype=np.int64)
    ends = _unframed_ends(buf, layout, positions)               # -1: runs past the window, -2: no record
    valid = np.flatnonzero(ends >= 0)
    if not valid.size or valid[0] != 0:
        return np.zeros(0, np.int64), 0, _why_not_a_record(buf, layout) if ends.size and ends[0] == -2 else ""
    chain = valid[_follow(positions[valid], ends[valid], 0, limit)]   # indices into positions
    stop = int(ends[chain[-1]])
    broken = ""
    if chain.size < limit and stop < buf.size and ends[stop // 4] == -2:
        broken = _why_not_a_record(buf[stop:], layout)
    return positions[chain], stop, broken


def _unframed_ends(buf: np.ndarray, layout: NormLayout, positions: np.ndarray) -> np.ndarray:
    """End (exclusive) of the record starting at each position: -1 if it runs past the window, -2 if a
    slot's nnz is outside [0, max_nnz]. One vectorised step per slot over the surviving candidates."""
    words = _int32_everywhere(buf, 4)
    ends = np.full(positions.size, -2, np.int64)
    alive = np.arange(positions.size, dtype=np.int32)          # int32: windows stay far below 2 GiB
    cursor = (positions + 4 * layout.floats).astype(np.int64)
    for _ in range(layout.slots):
        inside = cursor + 4 <= buf.size
        ends[alive[~inside]] = -1
        alive, cursor = alive[inside], cursor[inside]
        count = words[cursor >> 2]
        keep = (count >= 0) & (count <= layout.max_nnz)
        alive, cursor = alive[keep], cursor[keep] + 4 + layout.key_bytes * count[keep]
    past = cursor > buf.size
    ends[alive[past]] = -1
    ends[alive[~past]] = cursor[~past]
    return ends


def _int32_everywhere(buf: np.ndarray, unit: int) -> np.ndarray:
    """The int32 starting at every ``unit``-th byte (4: a zero-copy view; 1: every byte, one copy)."""
    if unit == 4:
        return buf[:buf.size // 4 * 4].view("<i4")
    if buf.size < 4:
        return np.zeros(0, np.int32)
    return np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(buf, 4)).view("<i4")[:, 0]


def _why_not_a_record(buf: np.ndarray, layout: NormLayout) -> str:
    found = _first_record(buf, layout)
    return found if isinstance(found, str) else "it does not parse as a record"


def _chain(successor: np.ndarray, start: int, limit: int, real: int) -> np.ndarray:
    """Indices start, s(start), s(s(start)), ... while they are below ``real``, at most ``limit``.

    Pointer doubling: after round k the first 2**k chain elements are known and ``jump`` is s applied
    2**k times, so the next 2**k elements are ``jump[known]``. Entries >= ``real`` map to themselves.

    >>> _chain(np.array([2, 0, 1, 3]), 0, 10, real=3).tolist()     # 0 -> 2 -> 1 -> 0 ... (a cycle, capped)
    [0, 2, 1, 0, 2, 1, 0, 2, 1, 0]
    >>> _chain(np.array([1, 2, 3, 3]), 0, 10, real=3).tolist()     # 0 -> 1 -> 2 -> the sentinel 3
    [0, 1, 2]
    """
    chain, jump = np.array([start], np.int64), successor
    while chain.size < limit and chain[-1] < real:
        chain = np.concatenate([chain, jump[chain]])
        jump = jump[jump]
    chain = chain[:limit]
    beyond = chain >= real
    return chain[:np.argmax(beyond)] if beyond.any() else chain


def _describe(buf: np.ndarray, layout: NormLayout, starts: np.ndarray, stop: int, broken: str) -> Walk:
    """nnz, key positions and checksums of the records at ``starts`` (slots walked in lockstep).

    Under Check_t.Sum the nnz must add up to each record's L; the first record where they do not
    ends the walk there, as broken.
    """
    nnz = np.zeros((starts.size, layout.slots), np.int64)
    key_starts = np.zeros_like(nnz)
    cursor = starts + layout.prefix + 4 * layout.floats
    sound = np.ones(starts.size, bool)
    for slot in range(layout.slots):      # one vectorised step per slot over every record of the window
        readable = sound & (cursor + 4 <= buf.size)
        count = np.where(readable, int32_at(buf, np.where(readable, cursor, 0)), -1).astype(np.int64)
        sound &= (count >= 0) & (count <= layout.max_nnz)
        nnz[:, slot] = np.where(sound, count, 0)
        key_starts[:, slot] = cursor + 4
        cursor = cursor + 4 + layout.key_bytes * nnz[:, slot]
    if layout.checksum:
        stated = int32_at(buf, starts).astype(np.int64) if starts.size else np.zeros(0, np.int64)
        sound &= cursor == starts + 4 + stated
    if not sound.all():
        first = int(np.argmin(sound))
        stop, starts, nnz, key_starts, cursor = int(starts[first]), starts[:first], nnz[:first], \
            key_starts[:first], cursor[:first]
        broken = _why_not_a_record(buf[stop:], layout)
    good = np.ones(starts.size, bool)
    if layout.checksum:
        sums = wrapping_prefix_sums(buf)
        good = (sums[cursor] - sums[starts + 4]) == buf[cursor]
    return Walk(starts, nnz, key_starts, good, stop, broken)


def decode(buf: np.ndarray, layout: NormLayout, found: Walk, groups: list[int]):
    """(floats (n, label_dim + dense_dim) float32, [(values, sizes or None, hotness)] per slot group) of
    the good records of ``found``; ``groups`` are the slot counts of the sparse inputs, in order."""
    good = found.good
    if found.length:   # fixed layout: strided views of every field, copied once for the good records
        floats = _good_rows(_field(buf, found.count, found.length, "<f4", layout.prefix, [(layout.floats, 4)]),
                            good, np.float32)
        sparse, first = [], 0
        for slots in groups:
            part = slice(first, first + slots)
            sparse.append(_fixed_keys(buf, layout, found, found.key_starts[0, part], found.nnz[0, part]))
            first += slots
        return floats.reshape(-1, layout.floats), sparse
    nnz, key_starts = found.nnz[good], found.key_starts[good]
    floats = gather_floats(buf, layout, found.starts[good])
    sparse, first = [], 0
    for slots in groups:
        part = slice(first, first + slots)
        values = gather_keys(buf, layout, key_starts[:, part], nnz[:, part])
        sparse.append((values, nnz[:, part].reshape(-1), None))
        first += slots
    return floats.astype(np.float32, copy=False).reshape(-1, layout.floats), sparse


def _good_rows(view: np.ndarray, good: np.ndarray, dtype) -> np.ndarray:
    """The rows of a strided ``view`` whose ``good`` is set, as a new ``dtype`` array: one copy when every
    row is good (the usual case), else the selection and the conversion."""
    if good.all():
        return view.astype(dtype)
    return view[good].astype(dtype, copy=False)


def _fixed_keys(buf: np.ndarray, layout: NormLayout, found: Walk, starts: np.ndarray, nnz: np.ndarray):
    """The keys of one slot group of fixed-layout records (key ``starts`` within a record, ``nnz`` per slot)."""
    width, count, length = layout.key_bytes, found.count, found.length
    steps = np.diff(starts)
    if nnz.size and (nnz == nnz[0]).all() and (steps == (steps[0] if steps.size else 0)).all():
        # the same hotness h in every slot: one (records, slots, h) strided view
        step = int(steps[0]) if steps.size else 0
        keys = _field(buf, count, length, layout.key_dtype, starts[0], [(nnz.size, step), (int(nnz[0]), width)])
    else:
        columns = np.concatenate([start + width * np.arange(n) for start, n in zip(starts, nnz)]
                                 + [np.zeros(0, np.int64)])
        index = (np.arange(count) * length)[:, None, None] + columns[None, :, None] + np.arange(width)
        keys = np.ascontiguousarray(buf[index]).view(layout.key_dtype)
    values = _good_rows(keys, found.good, np.int64).reshape(-1)
    rows = int(found.good.sum())
    if nnz.size and (nnz == nnz[0]).all() and nnz[0] > 0:
        return values, None, int(nnz[0])
    return values, np.tile(nnz, rows), None


def wrapping_prefix_sums(buf: np.ndarray) -> np.ndarray:
    """(len + 1,) uint8: sums of buf[:i] modulo 256, so a difference is a record's checksum (a char sum)."""
    return np.concatenate([np.zeros(1, np.uint8), np.cumsum(buf, dtype=np.uint8)])


def gather_floats(buf: np.ndarray, layout: NormLayout, starts: np.ndarray) -> np.ndarray:
    """(m, label_dim + dense_dim) float32 of the records at ``starts``."""
    width = 4 * layout.floats
    index = (starts + layout.prefix)[:, None] + np.arange(width)
    return np.ascontiguousarray(buf[index]).view("<f4").reshape(starts.size, layout.floats)


def gather_keys(buf: np.ndarray, layout: NormLayout, key_starts: np.ndarray, nnz: np.ndarray) -> np.ndarray:
    """int64 keys of the bags whose first keys sit at ``key_starts`` (flat, bag after bag)."""
    sizes = nnz.reshape(-1)
    total = int(sizes.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    first = np.repeat(key_starts.reshape(-1), sizes)
    within = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    index = (first + layout.key_bytes * within)[:, None] + np.arange(layout.key_bytes)
    return np.ascontiguousarray(buf[index]).view(layout.key_dtype)[:, 0].astype(np.int64)
