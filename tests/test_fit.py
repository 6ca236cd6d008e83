"""``Model.fit`` in both modes: cadence, HugeCTR's log lines, early stop, snapshots, NaN loss."""

import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import hugectr
from hugectr.fit import LossDiverged

PREFIX = r"\[HCTR\]\[\d\d:\d\d:\d\d\.\d{3}\]\[INFO\]\[RK0\]\[main\]: "


def info_lines(text: str) -> list[str]:
    return [re.sub("^" + PREFIX, "", line) for line in text.splitlines() if re.match(PREFIX, line)]


def test_non_epoch_cadence_and_lines(planted_data, build_small_model, tmp_path, capsys):
    model = build_small_model(planted_data)
    capsys.readouterr()
    model.fit(max_iter=6, display=2, eval_interval=3, snapshot=3, snapshot_prefix=str(tmp_path / "m"))
    lines = info_lines(capsys.readouterr().out)
    assert lines[:4] == ["Use non-epoch mode with number of iterations: 6",
                         "Training batchsize: 64, evaluation batchsize: 128",
                         "Evaluation interval: 3, snapshot interval: 3",
                         "Dense network trainable: True"]
    assert "Sparse embedding emb trainable: True" in lines
    assert "Use mixed precision: False, scaler: 1.000000, use cuda graph: True" in lines
    assert "lr: 0.010000, warmup_steps: 1, end_lr: 0.000000" in lines
    iters = [line for line in lines if line.startswith("Iter:")]
    assert [int(line.split()[1]) for line in iters] == [2, 4, 6]
    assert all(re.fullmatch(r"Iter: \d Time\(2 iters\): [\d.e-]+s Loss: [\d.]+ lr:0\.01", line) for line in iters)
    evals = [line for line in lines if line.startswith("Evaluation, AUC: ")]
    assert len(evals) == 2
    assert sum(line.startswith("Eval Time for 4 iters: ") for line in lines) == 2
    assert re.fullmatch(r"Finish 6 iterations with batchsize: 64 in [\d.]+s\.", lines[-1])
    for iteration in (3, 6):
        assert (tmp_path / f"m0_sparse_{iteration}.model" / "key").is_file()
        assert (tmp_path / f"m_dense_{iteration}.model").is_file()
    assert not (tmp_path / "m_dense_2.model").exists()


def test_auc_threshold_stops_training(planted_data, build_small_model, capsys):
    model = build_small_model(planted_data, metrics_spec={hugectr.MetricsType.AUC: 0.0})
    capsys.readouterr()
    model.fit(max_iter=10, display=1, eval_interval=2, snapshot=0)
    lines = info_lines(capsys.readouterr().out)
    assert re.fullmatch(r"Hit target accuracy AUC 0\.00000 at 1 / 10 iterations with batchsize 64 in [\d.]+s\. "
                        r"Average speed [\d.]+ records/s\.", lines[-1])
    assert [line for line in lines if line.startswith("Iter:")][-1].startswith("Iter: 2 ")


def test_all_metrics_in_enum_order(planted_data, build_small_model, capsys):
    spec = {hugectr.MetricsType.HitRate: 0.8, hugectr.MetricsType.AverageLoss: 0.0, hugectr.MetricsType.AUC: 1.0}
    model = build_small_model(planted_data, metrics_spec=spec)
    model.fit(max_iter=2, display=0, eval_interval=2, snapshot=0)
    names = [line.split(":")[0] for line in info_lines(capsys.readouterr().out) if line.startswith("Evaluation,")]
    assert names == ["Evaluation, AUC", "Evaluation, AverageLoss", "Evaluation, HitRate"]


def test_epoch_mode_lines_and_end_of_data(planted_data, build_small_model, capsys):
    # 2 files x 512 samples = 16 batches of 64 per epoch; train() returns False on the 17th call.
    model = build_small_model(planted_data, repeat_dataset=False)
    capsys.readouterr()
    model.fit(num_epochs=2, display=8, eval_interval=0, snapshot=0)
    lines = info_lines(capsys.readouterr().out)
    assert lines[0] == "Use epoch mode with number of epochs: 2"
    assert "-" * 35 + "Epoch 0" + "-" * 35 in lines and "-" * 35 + "Epoch 1" + "-" * 35 in lines
    assert re.fullmatch(r"Finish 2 epochs 34 global iterations with batchsize 64 in [\d.]+s\.", lines[-1])


@pytest.mark.parametrize("repeat", [True, False], ids=["non-epoch", "epoch"])
def test_snapshot_every_step_skips_the_first_as_hugectr(planted_data, build_small_model, tmp_path, repeat):
    """HugeCTR's fit writes a snapshot when (iter + 1) % snapshot == 0 and iter != 0 (0-based), in both modes."""
    model = build_small_model(planted_data, repeat_dataset=repeat)
    prefix = str(tmp_path / "s")
    if repeat:
        model.fit(max_iter=3, display=0, eval_interval=0, snapshot=1, snapshot_prefix=prefix)
    else:
        model.fit(num_epochs=1, display=0, eval_interval=0, snapshot=1, snapshot_prefix=prefix)
    written = sorted(int(p.name.split("_")[-1].split(".")[0]) for p in tmp_path.glob("s_dense_*.model"))
    # epoch mode: 16 batches, and the 17th train() that meets the end of the data counts as an iteration too
    assert written == ([2, 3] if repeat else list(range(2, 18)))


def test_low_level_epoch_loop(planted_data, build_small_model):
    model = build_small_model(planted_data, repeat_dataset=False, batchsize=100, batchsize_eval=100)
    reader = model.get_data_reader_train()
    steps = 0
    while model.train():
        steps += 1
    assert steps == 11 and reader.is_eof()    # 1024 samples: 10 full batches, the partial 11th dropped
    reader.set_source()
    assert model.train() and not reader.is_eof()
    eval_batches = 0
    while model.eval():
        eval_batches += 1
    assert eval_batches == 6                  # 512 eval samples: 5 full batches and a partial one of 12
    assert 0.0 < dict(model.get_eval_metrics())["AUC"] < 1.0
    assert np.isnan(dict(model.get_eval_metrics())["AUC"])   # the window was reset


def test_fit_needs_compile_and_positive_length(planted_data, build_small_model):
    model = build_small_model(planted_data, compile=False)
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(max_iter=1)
    model.compile()
    with pytest.raises(ValueError, match="max_iter > 0"):
        model.fit(max_iter=0)


def test_nan_loss_is_reported(tmp_path, build_small_model, planted_data):
    """A NaN in the data makes the loss NaN; fit stops with HugeCTR's message at the next display."""
    source_file = open(planted_data.source).read().split()[1]
    table = pq.read_table(source_file)
    dense = table.column(1).to_numpy().copy()
    dense[:] = np.nan
    broken = tmp_path / "train"
    broken.mkdir()
    pq.write_table(table.set_column(1, table.column_names[1], pa.array(dense, pa.float32())), broken / "part.parquet")
    (broken / "_metadata.json").write_text((__import__("pathlib").Path(source_file).parent / "_metadata.json")
                                           .read_text().replace("gen_0.parquet", "part.parquet"))
    file_list = tmp_path / "list.txt"
    file_list.write_text(f"1\n{broken / 'part.parquet'}\n")
    data = type(planted_data)(str(file_list), planted_data.eval_source, planted_data.slot_size_array, 13, 512, 1)
    model = build_small_model(data)
    with pytest.raises(LossDiverged, match="Loss cannot converge"):
        model.fit(max_iter=4, display=2, eval_interval=0, snapshot=0)


def test_set_source_between_fits_trains_on_the_new_list(planted_data, build_small_model, tmp_path, capsys):
    """Epoch mode: Model.set_source(source, eval_source) between fit calls; the next fit reads the new list."""
    from hugectr.data.file_list import read_file_list, write_file_list

    one_file = str(tmp_path / "one_file.txt")
    write_file_list(one_file, read_file_list(planted_data.source)[:1])        # 512 samples: 8 batches of 64
    model = build_small_model(planted_data, repeat_dataset=False)
    model.fit(num_epochs=1, display=0, eval_interval=0, snapshot=0)
    model.set_source(source=one_file, eval_source=planted_data.eval_source)
    capsys.readouterr()
    model.fit(num_epochs=1, display=0, eval_interval=0, snapshot=0)
    lines = info_lines(capsys.readouterr().out)
    assert f"Training source file: {one_file}" in lines
    assert re.fullmatch(r"Finish 1 epochs 9 global iterations with batchsize 64 in [\d.]+s\.", lines[-1])
    with pytest.raises(TypeError, match="embedding training cache's form.*set_source\\(source=file_list"):
        model.set_source(source=[one_file, planted_data.source], keyset=["a.keyset", "b.keyset"],
                         eval_source=planted_data.eval_source)
    with pytest.raises(RuntimeError, match="only be used in epoch mode"):
        build_small_model(planted_data).set_source(one_file, planted_data.eval_source)
