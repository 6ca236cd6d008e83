"""User-behaviour sequences for the DIN and BST examples, written in HugeCTR's Parquet layout.

Each sample: a user, the goods the user looked at before (``history`` slots, newest last, padded
with key 0 past the sequence length) and a target good, plus the category of every good. The
click model is planted so that attention over the history pays off: a user mostly browses a few
favourite categories, and clicks the target more often when its category is frequent in the
history. Columns, in this order (the ``_metadata.json`` ``cats`` order):

    label, [hist_len], user, good_0 .. good_{T-1}, target_good, cate_0 .. cate_{T-1}, target_cate

So ``DataReaderSparseParam("GoodID", 1, True, T + 1)`` reads history + target in one input (DIN),
and ``GoodID`` (T) + ``Target_Good`` (1) read them apart (BST). Keys are already global within
their group, so the reader needs no ``slot_size_array`` and history and target share one key
space. ``hist_len`` (a dense feature, float) is written when asked, for ``SequenceMask``.
The true click probability is stored beside the data as ``true_probability`` (not listed in
``_metadata.json``), so ``hugectr.tools.read_true_probabilities`` gives the oracle AUC.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from hugectr.metrics import auc_per_class
from hugectr.tools import read_true_probabilities


@dataclass(frozen=True)
class BehaviorSpec:
    """Sizes of the generated world; key 0 of goods and categories is the padding key."""

    history: int = 10
    users: int = 100
    goods: int = 300
    categories: int = 20
    favourite_categories: int = 2
    favourite_share: float = 0.75   # chance that a browsed good comes from a favourite category
    match_weight: float = 4.0       # logit per unit of "share of the history in the target's category"
    seed: int = 7


def _world(spec: BehaviorSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Hidden tables: category of each good, favourite categories and bias of each user, good bias."""
    category_of = np.concatenate([[0], rng.integers(1, spec.categories + 1, spec.goods - 1)])
    order = np.argsort(category_of[1:], kind="stable") + 1                   # goods grouped by category
    counts = np.bincount(category_of[1:], minlength=spec.categories + 1)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    favourites = rng.integers(1, spec.categories + 1, (spec.users, spec.favourite_categories))
    return {"category_of": category_of, "order": order, "counts": counts, "starts": starts,
            "favourites": favourites, "user_bias": rng.normal(0, 0.5, spec.users),
            "good_bias": rng.normal(0, 0.7, spec.goods)}


def _draw_goods(world: dict, spec: BehaviorSpec, rng: np.random.Generator, users: np.ndarray,
                shape: tuple[int, ...], favourite_share: float) -> np.ndarray:
    """Goods of ``shape`` (rows first): from the row's user's favourite categories, else from any category."""
    pick = rng.integers(0, spec.favourite_categories, shape)
    favourite = world["favourites"][users.reshape(-1, *([1] * (len(shape) - 1))), pick]
    category = np.where(rng.random(shape) < favourite_share, favourite, rng.integers(1, spec.categories + 1, shape))
    category = np.where(world["counts"][category] > 0, category, world["category_of"][1])  # empty: a used one
    index = world["starts"][category] + (rng.random(shape) * world["counts"][category]).astype(np.int64)
    return world["order"][index]                                           # positions in goods-by-category


def _samples(world: dict, spec: BehaviorSpec, rng: np.random.Generator, rows: int) -> dict[str, np.ndarray]:
    """``rows`` samples: users, padded histories (n, T), targets, labels drawn from the planted model."""
    steps = spec.history
    users = rng.integers(0, spec.users, rows)
    lengths = rng.integers(steps // 2, steps + 1, rows)                      # (n,) valid history steps
    valid = np.arange(steps)[None, :] < lengths[:, None]                     # (n, T)
    history = np.where(valid, _draw_goods(world, spec, rng, users, (rows, steps), spec.favourite_share), 0)
    target = _draw_goods(world, spec, rng, users, (rows,), 0.5)
    cats = world["category_of"]
    share = ((cats[history] == cats[target][:, None]) & valid).sum(1) / lengths   # (n,) in [0, 1]
    logit = -1.5 + spec.match_weight * share + world["good_bias"][target] + world["user_bias"][users]
    probability = 1.0 / (1.0 + np.exp(-logit))
    return {"label": (rng.random(rows) < probability).astype(np.float32), "hist_len": lengths.astype(np.float32),
            "user": users, "history": history, "target": target, "true_probability": probability}


def _columns(samples: dict[str, np.ndarray], world: dict, with_length: bool) -> dict[str, np.ndarray]:
    """Named columns in file order; goods then their categories (history newest last, target after)."""
    columns = {"label": samples["label"]}
    if with_length:
        columns["hist_len"] = samples["hist_len"]
    columns["user"] = samples["user"]
    goods = np.concatenate([samples["history"], samples["target"][:, None]], axis=1)   # (n, T + 1)
    steps = goods.shape[1] - 1
    names = [f"good_{t}" for t in range(steps)] + ["target_good"]
    columns.update({name: goods[:, t] for t, name in enumerate(names)})
    categories = world["category_of"][goods]                                          # (n, T + 1), 0 = padding
    names = [f"cate_{t}" for t in range(steps)] + ["target_cate"]
    columns.update({name: categories[:, t] for t, name in enumerate(names)})
    return columns


def _write_split(folder: Path, parts: list[dict[str, np.ndarray]], probabilities: list[np.ndarray]) -> str:
    """Parquet files + ``_metadata.json`` + ``_file_list.txt`` in ``folder``; returns the file list's path."""
    folder.mkdir(parents=True, exist_ok=True)
    names = list(parts[0])
    stats, paths = [], []
    for k, (columns, probability) in enumerate(zip(parts, probabilities)):
        # Labels and lengths float32, keys int64 (HugeCTR's i64_input_key).
        arrays = {name: pa.array(v.astype(np.float32 if v.dtype.kind == "f" else np.int64))
                  for name, v in columns.items()}
        arrays["true_probability"] = pa.array(probability.astype(np.float32))
        path = folder / f"part_{k}.parquet"
        pq.write_table(pa.table(arrays), path)
        stats.append({"file_name": path.name, "num_rows": len(probability)})
        paths.append(str(path.resolve()))
    groups = {"labels": ["label"], "conts": [n for n in names if n == "hist_len"],
              "cats": [n for n in names if n not in ("label", "hist_len")]}
    metadata = {"file_stats": stats, **{g: [{"col_name": n, "index": names.index(n)} for n in members]
                                        for g, members in groups.items()}}
    (folder / "_metadata.json").write_text(json.dumps(metadata, indent=2))
    file_list = folder / "_file_list.txt"
    file_list.write_text(f"{len(paths)}\n" + "\n".join(paths) + "\n")
    return str(file_list.resolve())


def generate(workdir: str | Path, spec: BehaviorSpec = BehaviorSpec(), num_files: int = 4,
             samples_per_file: int = 8192, eval_samples: int = 8192, with_length: bool = False) -> dict:
    """Write ``workdir/train`` and ``workdir/val``; returns sources, sizes and slot counts for a script."""
    rng = np.random.default_rng(spec.seed)
    world = _world(spec, rng)
    splits = {}
    for split, files, rows in (("train", num_files, samples_per_file), ("val", 1, eval_samples)):
        samples = [_samples(world, spec, rng, rows) for _ in range(files)]
        splits[split] = _write_split(Path(workdir) / split, [_columns(s, world, with_length) for s in samples],
                                     [s["true_probability"] for s in samples])
    return {"source": splits["train"], "eval_source": splits["val"], "history": spec.history,
            "users": spec.users, "goods": spec.goods, "categories": spec.categories + 1,
            "train_samples": num_files * samples_per_file, "eval_samples": eval_samples}


def oracle_auc(eval_source: str) -> float:
    """AUC of the planted click probabilities on the eval file: what a perfect model would reach."""
    probabilities, labels = read_true_probabilities(eval_source)
    return auc_per_class(torch.as_tensor(probabilities).view(-1, 1), torch.as_tensor(labels).view(-1, 1))[0].item()
