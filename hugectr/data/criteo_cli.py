"""``hugectr-criteo-convert``: Criteo text files -> HugeCTR Parquet / Norm / Raw (see ``hugectr.data.criteo``).

    hugectr-criteo-convert day_0.gz day_1.gz --output data --format parquet --min-frequency 6 \\
        --eval-files day_23.gz
    hugectr-criteo-convert train.txt --output raw --format raw --categorical hash --hash-size 1000000 \\
        --train-lines 40000000

Prints the slot_size_array and the DataReaderParams settings on stdout (also written to
``<output>/slot_size_array.json``); a progress bar goes to stderr. A bad input line is reported
with its file, line and column, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import sys
import time

from .criteo import ConversionResult, CriteoConversion, convert_criteo

_FORMATS = {"parquet": "Parquet", "norm": "Norm", "raw": "Raw"}
_DESCRIPTION = ("Convert Criteo click-log text files (label, 13 integer, 26 hexadecimal categorical fields) to "
                "HugeCTR Parquet, Norm or Raw files.")


class ProgressBar:
    """A one-line progress bar on ``stream``: stage, bar by bytes read, lines and lines/s, redrawn at most
    every ``interval`` seconds; a new stage starts a new line."""

    def __init__(self, stream=sys.stderr, width: int = 30, interval: float = 0.2):
        self.stream, self.width, self.interval = stream, width, interval
        self._stage, self._start, self._shown = "", time.perf_counter(), 0.0
        self._last: tuple | None = None
        self._drawn = 0

    def __call__(self, stage: str, done: int, total: int, lines: int) -> None:
        now = time.perf_counter()
        if stage != self._stage:
            self.finish()
            self._stage, self._start = stage, self._start if not self._stage else now
        self._last = (stage, done, total, lines, now)
        if now - self._shown >= self.interval:
            self._draw()

    def _draw(self) -> None:
        stage, done, total, lines, now = self._last
        fraction = min(done / total, 1.0) if total else 1.0
        filled = int(fraction * self.width)
        title = {"count": "counting values", "convert": "converting"}.get(stage, stage)
        line = (f"{title:<15} [{'#' * filled}{'.' * (self.width - filled)}] {100 * fraction:5.1f}% "
                f"{done / 2**20:,.1f}/{total / 2**20:,.1f} MiB  {lines:,} lines  "
                f"{lines / max(now - self._start, 1e-3):,.0f} lines/s")
        self.stream.write("\r" + line.ljust(self._drawn))
        self.stream.flush()
        self._drawn, self._shown = len(line), time.perf_counter()

    def finish(self) -> None:
        """Draw the last state and end the line."""
        if self._last is not None:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
        self._last, self._drawn = None, 0


def _hash_sizes(text: str):
    sizes = [int(part) for part in text.split(",")]
    return sizes[0] if len(sizes) == 1 else tuple(sizes)


class _ValueDefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows the default of every optional setting that takes a value. An on/off flag's help says what it
    turns off (its stored default, True, would read as if the flag were on); a required option or one
    without a default (None) has none to show."""

    def _get_help_string(self, action):
        if action.nargs == 0 or action.required or action.default is None:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hugectr-criteo-convert", description=_DESCRIPTION,
                                     formatter_class=_ValueDefaultsFormatter)
    parser.add_argument("inputs", nargs="+", help="Criteo text files for training (.gz/.bz2/.zst/.lz4 read too)")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--format", choices=sorted(_FORMATS), default="parquet", help="the files to write")
    parser.add_argument("--eval-files", nargs="*", default=[], help="Criteo text files for evaluation")
    parser.add_argument("--train-lines", type=int, default=None,
                        help="the first N lines of the inputs are training data, the rest evaluation data")
    parser.add_argument("--categorical", choices=["vocabulary", "hash"], default="vocabulary",
                        help="map each slot's values to ids by a vocabulary built from the training data, or "
                             "by hashing into --hash-size buckets")
    parser.add_argument("--hash-size", type=_hash_sizes, default=None,
                        help="hash buckets: one int for every slot, or 26 comma-separated ints")
    parser.add_argument("--min-frequency", type=int, default=1,
                        help="vocabulary: values seen fewer times share the out-of-vocabulary id (HugeCTR's "
                             "Criteo scripts use 6)")
    parser.add_argument("--dense-fill", type=float, default=0.0, help="value of a missing integer field")
    parser.add_argument("--no-log", dest="log_dense", action="store_false",
                        help="keep dense values as they are (default: clip negatives to 0, then log(x + 1))")
    parser.add_argument("--key-type", choices=["uint32", "int64"], default="uint32",
                        help="int64 pairs with CreateSolver(i64_input_key=True)")
    parser.add_argument("--rows-per-file", type=int, default=1 << 20, help="Parquet / Norm samples per file")
    parser.add_argument("--check-type", choices=["Sum", "Non"], default="Sum", help="Norm record framing")
    parser.add_argument("--int-label-dense", dest="float_label_dense", action="store_false",
                        help="Raw: int32 label and dense values (read with float_label_dense=False; default: float32, "
                             "read with float_label_dense=True)")
    parser.add_argument("--block-size", type=int, default=1 << 24, help="bytes of text parsed at a time")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar (default: a progress bar on standard error)")
    return parser


def _report(result: ConversionResult, config: CriteoConversion) -> str:
    lines = [f"slot_size_array: {result.slot_size_array}",
             f"train samples: {result.num_samples}, eval samples: {result.eval_num_samples}",
             f"source: {result.source}", f"eval_source: {result.eval_source}", f"summary: {result.summary}"]
    keywords = [f"data_reader_type=hugectr.DataReaderType_t.{config.format.name}",
                f"source=[{result.source!r}]", f"eval_source={result.eval_source!r}"]
    if config.format.name == "Parquet":
        keywords.append("slot_size_array=<the list above>")
    elif config.format.name == "Norm":
        keywords.append(f"check_type=hugectr.Check_t.{config.check_type.name}")
    else:
        keywords += [f"num_samples={result.num_samples}", f"eval_num_samples={result.eval_num_samples}",
                     f"float_label_dense={config.float_label_dense}", "check_type=hugectr.Check_t.Non"]
    lines.append(f"hugectr.DataReaderParams({', '.join(keywords)}); "
                 f"CreateSolver(i64_input_key={config.i64_input_key})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    progress = ProgressBar() if args.progress else None
    try:
        config = CriteoConversion(args.output, _FORMATS[args.format], args.categorical, args.hash_size,
                                  args.min_frequency, args.dense_fill, args.log_dense, args.key_type == "int64",
                                  args.rows_per_file, args.train_lines, args.check_type, args.float_label_dense,
                                  args.block_size)
        result = convert_criteo(args.inputs, config, args.eval_files, progress)
    except (ValueError, TypeError, OSError) as error:
        if progress is not None:
            progress.finish()
        print(f"hugectr-criteo-convert: error: {error}", file=sys.stderr)
        return 1
    if progress is not None:
        progress.finish()
    print(_report(result, config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
