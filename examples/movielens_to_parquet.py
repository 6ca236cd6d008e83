"""Convert MovieLens-100k (RecBole atomic ``ml-100k.inter``) to HugeCTR's Parquet layout for NCF.

Label: rating >= 4 (1.0) else 0.0. Features: the user id and the item id, one one-hot slot each,
keys slot-local (the raw ids), so the reader adds the ``slot_size_array`` offsets. Split by time:
the oldest 80% of the ratings train, the newest 20% are held back (as the data README's
reference AUC of 0.704 for a logistic regression on these two ids).

    python examples/movielens_to_parquet.py ../shared/data/ml-100k movielens_parquet
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

COLUMNS = ["label", "user", "item"]


def read_ratings(prefix: str | Path) -> dict[str, np.ndarray]:
    """``<prefix>.inter`` (tab-separated, typed header) as user, item, rating, timestamp arrays."""
    path = Path(f"{prefix}.inter")
    if not path.is_file():
        raise FileNotFoundError(f"MovieLens ratings not found at '{path}'; pass the prefix of the RecBole "
                                "ml-100k files (e.g. ../shared/data/ml-100k)")
    table = pcsv.read_csv(path, parse_options=pcsv.ParseOptions(delimiter="\t"))
    names = {name.split(":")[0]: name for name in table.column_names}   # "user_id:token" -> "user_id"
    return {"user": table[names["user_id"]].to_numpy().astype(np.int64),
            "item": table[names["item_id"]].to_numpy().astype(np.int64),
            "rating": table[names["rating"]].to_numpy().astype(np.float64),
            "timestamp": table[names["timestamp"]].to_numpy().astype(np.float64)}


def _write_split(folder: Path, columns: dict[str, np.ndarray]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "part_0.parquet"
    pq.write_table(pa.table({name: columns[name] for name in COLUMNS}), path)
    metadata = {"file_stats": [{"file_name": path.name, "num_rows": int(len(columns["label"]))}],
                "labels": [{"col_name": "label", "index": 0}], "conts": [],
                "cats": [{"col_name": "user", "index": 1}, {"col_name": "item", "index": 2}]}
    (folder / "_metadata.json").write_text(json.dumps(metadata, indent=2))
    file_list = folder / "_file_list.txt"
    file_list.write_text(f"1\n{path.resolve()}\n")
    return str(file_list.resolve())


def convert(prefix: str | Path, out_dir: str | Path, test_fraction: float = 0.2) -> dict:
    """Write ``out_dir/train`` and ``out_dir/val``; return what a training script needs to know."""
    ratings = read_ratings(prefix)
    order = np.argsort(ratings["timestamp"], kind="stable")          # oldest first
    columns = {"label": (ratings["rating"][order] >= 4).astype(np.float32),
               "user": ratings["user"][order], "item": ratings["item"][order]}
    split = int(round(len(order) * (1 - test_fraction)))
    out = Path(out_dir)
    sources = {name: _write_split(out / name, {k: v[rows] for k, v in columns.items()})
               for name, rows in (("train", slice(0, split)), ("val", slice(split, None)))}
    return {"train_source": sources["train"], "eval_source": sources["val"],
            "slot_size_array": [int(columns["user"].max()) + 1, int(columns["item"].max()) + 1],
            "train_rows": split, "val_rows": len(order) - split}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefix", help="path prefix of the RecBole files, e.g. ../shared/data/ml-100k")
    parser.add_argument("out_dir")
    args = parser.parse_args()
    print(json.dumps(convert(args.prefix, args.out_dir), indent=2))


if __name__ == "__main__":
    main()
