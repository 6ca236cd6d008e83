"""``cache_eval_data = N``: the first N eval batches stay on the device and are replayed in a cycle."""

import os

import numpy as np
import torch

from hugectr.data.batch import Batch
from hugectr.data.device_feed import DeviceFeed
from hugectr.testing.datasets import planted_parquet


class CountingReader:
    """A stream of batches 0, 1, ... (each a 1-sample batch whose label is its number); None after ``end``."""

    def __init__(self, end=None):
        self.end, self.reads, self.generation, self.closed = end, 0, 0, 0

    def next_batch(self):
        number = self.reads
        self.reads += 1
        if self.end is not None and number >= self.end:
            return None
        return Batch(torch.tensor([[float(number)]]), torch.zeros(1, 1))

    def close(self):
        self.closed += 1


def labels(feed, count):
    return [None if (b := feed.next_batch()) is None else int(b.label.item()) for _ in range(count)]


def test_the_first_n_batches_are_replayed_in_a_cycle():
    reader = CountingReader()
    feed = DeviceFeed(reader, torch.device("cpu"), read_ahead=False, cache_batches=3)
    assert labels(feed, 8) == [0, 1, 2, 0, 1, 2, 0, 1]
    assert reader.reads == 3 and reader.closed == 1            # read once, then the reader is stopped


def test_an_end_of_data_before_n_batches_ends_every_replayed_pass():
    feed = DeviceFeed(CountingReader(end=2), torch.device("cpu"), read_ahead=False, cache_batches=5)
    assert labels(feed, 7) == [0, 1, None, 0, 1, None, 0]


def test_a_new_source_drops_the_cache():
    reader = CountingReader()
    feed = DeviceFeed(reader, torch.device("cpu"), read_ahead=False, cache_batches=2)
    assert labels(feed, 3) == [0, 1, 0]
    reader.generation += 1                                      # set_source(new file) on the reader
    assert labels(feed, 3) == [2, 3, 2] and reader.reads == 4


def test_without_a_cache_every_batch_is_read():
    reader = CountingReader()
    assert labels(DeviceFeed(reader, torch.device("cpu"), read_ahead=False), 4) == [0, 1, 2, 3]


def test_a_model_evaluates_from_the_cache_after_the_eval_files_are_gone(tmp_path, build_small_model, monkeypatch):
    """Two evaluations of a cached eval set agree, the second one with the eval files deleted."""
    monkeypatch.setenv("HUGECTR_DEVICE", "cpu")
    planted_data = planted_parquet(tmp_path, [7, 11, 5], samples_per_file=512)   # its own copy: files get deleted
    model = build_small_model(planted_data, compile=False)
    model.reader_params.cache_eval_data = 3                     # 3 batches of 128 from the 512-sample eval file
    model.compile()
    model.start_data_reading()
    for _ in range(4):
        model.train()
    first = [model.eval() for _ in range(3)], model.get_eval_metrics()
    with open(planted_data.eval_source) as listing:
        for path in listing.read().split()[1:]:
            os.remove(path)
    second = [model.eval() for _ in range(3)], model.get_eval_metrics()
    assert first[0] == second[0] == [True, True, True]
    np.testing.assert_allclose([v for _, v in second[1]], [v for _, v in first[1]], rtol=0, atol=0)
    # the reader was not used again: a fresh eval source must be named to read anything new
    assert model.get_data_reader_eval().generation == 0
