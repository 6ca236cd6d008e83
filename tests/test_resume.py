"""Resume equivalence: 2N steps straight == N steps, a snapshot, a NEW process that loads it all, N more.

The data: two Parquet files A and B of exactly N batches each. The straight run and the first
half read the file list [A, B] (one reader worker: file-list order, batches never straddle a
file); the resumed process reads the list [B], so it sees batches N+1..2N (HugeCTR keeps no
reader position). The schedule warms up and then decays from step N on, so the scheduler's
position matters; the model has a DistributedSlot and a LocalizedSlot embedding (slot_id files).

Compared (independently of how the tables order their rows): the dense model and dense optimizer
files byte for byte, each embedding's key -> vector (and slot id) map, its optimizer state per key,
LazyGlobal's per-key last step, and the step counts the markers record. On CPU bitwise; on a GPU
within 1e-6. A control resumes from HugeCTR-style files (no marker, no side file): it loads, counts
restart as in HugeCTR, and the result differs, so the comparison can fail.

This file is also the resumed process's script: ``python tests/test_resume.py WORKDIR NAME...``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hugectr
from hugectr.io import read_sparse_model

N, BATCH, EV = 6, 32, 4
SLOTS = [60, 50, 40]                      # slots 0-1 feed "dist", slot 2 feeds "local"
EMBEDDINGS = ["dist", "local"]
CONFIGS = {                               # name -> (Optimizer_t, Update_t), for the dense and sparse parts
    "adam_local": ("Adam", "Local"),
    "adam_global": ("Adam", "Global"),
    "adam_lazy_global": ("Adam", "LazyGlobal"),
    "adagrad": ("AdaGrad", "Local"),
    "sgd": ("SGD", "Local"),
}
CONTROL = "adam_lazy_global"              # resumed again from HugeCTR-style files


def build(data: dict, source: str, config: str) -> hugectr.Model:
    """The same compiled model in every process (fixed seed); ``source`` is the train file list."""
    kind, update = CONFIGS[config]
    solver = hugectr.CreateSolver(seed=11, batchsize=BATCH, batchsize_eval=BATCH, max_eval_batches=1, lr=0.01,
                                  warmup_steps=4, decay_start=N, decay_steps=2 * N, decay_power=2.0, end_lr=1e-4,
                                  vvgpu=[[0]], repeat_dataset=True, i64_input_key=True)
    reader = hugectr.DataReaderParams(data_reader_type=hugectr.DataReaderType_t.Parquet, source=[source],
                                      eval_source=data["eval_source"], check_type=hugectr.Check_t.Non,
                                      slot_size_array=SLOTS)
    optimizer = hugectr.CreateOptimizer(optimizer_type=getattr(hugectr.Optimizer_t, kind),
                                        update_type=getattr(hugectr.Update_t, update))
    model = hugectr.Model(solver, reader, optimizer)
    model.add(hugectr.Input(label_dim=1, label_name="label", dense_dim=13, dense_name="dense",
                            data_reader_sparse_param_array=[hugectr.DataReaderSparseParam("wide", 1, True, 2),
                                                            hugectr.DataReaderSparseParam("deep", 1, True, 1)]))
    E = hugectr.Embedding_t
    for kind_, name, bottom in ((E.DistributedSlotSparseEmbeddingHash, "dist", "wide"),
                                (E.LocalizedSlotSparseEmbeddingHash, "local", "deep")):
        model.add(hugectr.SparseEmbedding(embedding_type=kind_, workspace_size_per_gpu_in_mb=1, embedding_vec_size=EV,
                                          combiner="sum", sparse_embedding_name=name, bottom_name=bottom))
    L = hugectr.Layer_t
    for layer_type, bottoms, tops, keywords in [
            (L.Reshape, ["dist"], ["dist_flat"], {"leading_dim": 2 * EV}),
            (L.Reshape, ["local"], ["local_flat"], {"leading_dim": EV}),
            (L.Concat, ["dist_flat", "local_flat", "dense"], ["features"], {}),
            (L.InnerProduct, ["features"], ["fc1"], {"num_output": 8}),
            (L.BatchNorm, ["fc1"], ["bn1"], {"factor": 0.1, "eps": 1e-5}),
            (L.ReLU, ["bn1"], ["relu1"], {}),
            (L.InnerProduct, ["relu1"], ["logit"], {"num_output": 1}),
            (L.BinaryCrossEntropyLoss, ["logit", "label"], ["loss"], {})]:
        model.add(hugectr.DenseLayer(layer_type=layer_type, bottom_names=bottoms, top_names=tops, **keywords))
    model.compile()
    return model


def train(model: hugectr.Model, steps: int, prefix: str) -> None:
    """``steps`` iterations of ``fit``, whose snapshot at the last one writes ``{prefix}_*_{steps}``."""
    model.fit(max_iter=steps, display=0, eval_interval=0, snapshot=steps, snapshot_prefix=prefix)


def resume(data: dict, config: str, folder: str, half: str) -> None:
    """A fresh model on file list [B] loads everything of snapshot ``half`` and trains N more steps."""
    model = build(data, data["list_b"], config)
    model.load_dense_weights(f"{half}_dense_{N}.model")
    model.load_dense_optimizer_states(f"{half}_opt_dense_{N}.model")
    model.load_sparse_weights([f"{half}{i}_sparse_{N}.model" for i in range(len(EMBEDDINGS))])          # list form
    model.load_sparse_optimizer_states({name: f"{half}{i}_opt_sparse_{N}.model"                     # dict form
                                        for i, name in enumerate(EMBEDDINGS)})
    train(model, N, f"{folder}/resumed")


def resume_main(argv: list[str]) -> None:
    """The resumed process: ``WORKDIR NAME...``; NAME ``hugectr_style`` resumes the control."""
    workdir, names = Path(argv[0]), argv[1:]
    data = json.loads((workdir / "data.json").read_text())
    for name in names:
        config = CONTROL if name == "hugectr_style" else name
        resume(data, config, str(workdir / name), str(workdir / name / "half"))


# -- the runs ---------------------------------------------------------------------------------------
def make_data(workdir: Path) -> dict:
    from hugectr.data.file_list import read_file_list
    from hugectr.testing.datasets import planted_parquet

    generated = planted_parquet(workdir / "data", SLOTS, samples_per_file=N * BATCH, num_files=2, seed=3)
    file_a, file_b = read_file_list(generated.source)
    (workdir / "list_b.txt").write_text(f"1\n{os.path.abspath(file_b)}\n")
    data = {"list_ab": generated.source, "list_b": str(workdir / "list_b.txt"), "eval_source": generated.eval_source}
    (workdir / "data.json").write_text(json.dumps(data))
    return data


def hugectr_style_copy(source: Path, target: Path) -> None:
    """The half snapshot as HugeCTR would have written it: its files only, no marker, no side file."""
    target.mkdir()
    for path in source.glob(f"half*_{N}.model"):
        (shutil.copytree if path.is_dir() else shutil.copy)(path, target / path.name)


def run_all(workdir: Path, device: str) -> None:
    """Straight and first-half runs here; every resume in one new process."""
    env = {**os.environ, "HUGECTR_DEVICE": device, "HUGECTR_LOG_LEVEL": "0", "HUGECTR_COMPILE": "0"}
    with pytest.MonkeyPatch.context() as patch:
        for key in ("HUGECTR_DEVICE", "HUGECTR_LOG_LEVEL", "HUGECTR_COMPILE"):
            patch.setenv(key, env[key])
        data = make_data(workdir)
        for config in CONFIGS:
            folder = workdir / config
            train(build(data, data["list_ab"], config), 2 * N, str(folder / "straight"))
            train(build(data, data["list_ab"], config), N, str(folder / "half"))
        hugectr_style_copy(workdir / CONTROL, workdir / "hugectr_style")
    done = subprocess.run([sys.executable, __file__, str(workdir), *CONFIGS, "hugectr_style"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"the resumed process failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


# -- reading what the runs wrote ----------------------------------------------------------------------
def marker(prefix: Path, iteration: int) -> dict:
    return json.loads(Path(f"{prefix}_snapshot_{iteration}.json").read_text())


def sparse_by_key(prefix: Path, iteration: int, index: int, copies: int) -> dict[str, np.ndarray]:
    """One embedding's saved rows sorted by key: vectors, slot ids, optimizer state rows, last steps.

    Rows past the keys in use (never hit) are compared as they lie: ``unused_*``.
    """
    saved = read_sparse_model(f"{prefix}{index}_sparse_{iteration}.model")
    order = np.argsort(saved.keys, kind="stable")
    n = saved.keys.size
    out = {"keys": saved.keys[order], "vectors": saved.vectors[order]}
    if saved.slot_ids is not None:
        out["slot_ids"] = saved.slot_ids[order]
    opt_path = Path(f"{prefix}{index}_opt_sparse_{iteration}.model")
    states = np.fromfile(opt_path, dtype="<f4").reshape(copies, -1, EV) if copies else np.zeros((0, n, EV), "<f4")
    out["states"], out["unused_states"] = states[:, :n][:, order], states[:, n:]
    last_step = Path(f"{opt_path}.last_step")
    if last_step.exists():
        steps = np.fromfile(last_step, dtype="<i8")
        out["last_step"], out["unused_last_step"] = steps[:n][order], steps[n:]
    return out


def copies_of(config: str) -> int:
    return {"Adam": 2, "AdaGrad": 1, "SGD": 0}[CONFIGS[config][0]]


def compare(expected: dict, actual: dict, exact: bool, what: str) -> None:
    assert expected.keys() == actual.keys(), what
    for key in expected:
        if exact or expected[key].dtype.kind in "iu":
            np.testing.assert_array_equal(actual[key], expected[key], err_msg=f"{what}: {key}")
        else:
            np.testing.assert_allclose(actual[key], expected[key], rtol=0, atol=1e-6, err_msg=f"{what}: {key}")


def check_equivalent(workdir: Path, config: str, exact: bool) -> None:
    folder = workdir / config
    straight, resumed = folder / "straight", folder / "resumed"
    for name in ("dense", "opt_dense"):
        a = np.fromfile(f"{straight}_{name}_{2 * N}.model", dtype="<f4")
        b = np.fromfile(f"{resumed}_{name}_{N}.model", dtype="<f4")
        compare({name: a}, {name: b}, exact, f"{config} {name} file")
    a = np.fromfile(f"{straight}_dense_{2 * N}.model.ntp.f32", dtype="<f4")    # BatchNorm statistics, unrounded
    compare({"ntp": a}, {"ntp": np.fromfile(f"{resumed}_dense_{N}.model.ntp.f32", dtype="<f4")}, exact, config)
    if exact:
        for suffix in ("", ".ntp.json"):
            assert (Path(f"{straight}_dense_{2 * N}.model{suffix}").read_bytes()
                    == Path(f"{resumed}_dense_{N}.model{suffix}").read_bytes()), f"{config} dense{suffix}"
    for index in range(len(EMBEDDINGS)):
        compare(sparse_by_key(straight, 2 * N, index, copies_of(config)),
                sparse_by_key(resumed, N, index, copies_of(config)), exact, f"{config} {EMBEDDINGS[index]}")
    # The resumed run counted on from the snapshot: its marker records the straight run's counts.
    renamed = json.dumps(marker(straight, 2 * N)["training_state"]).replace("straight", "resumed")
    assert marker(resumed, N)["training_state"] == json.loads(renamed.replace(f"_{2 * N}.", f"_{N}."))


@pytest.fixture(scope="module")
def cpu_runs(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("resume_cpu")
    run_all(workdir, "cpu")
    return workdir


@pytest.mark.parametrize("config", list(CONFIGS))
def test_resume_equals_straight_run_on_cpu(cpu_runs, config):
    check_equivalent(cpu_runs, config, exact=True)


def test_markers_record_the_counts_hugectr_files_lack(cpu_runs):
    state = marker(cpu_runs / "adam_lazy_global" / "straight", 2 * N)["training_state"]
    assert state[f"straight_opt_dense_{2 * N}.model"] == {"step_count": 2 * N, "lr_scheduler_step": 2 * N}
    assert state[f"straight0_opt_sparse_{2 * N}.model"] == {
        "step": 2 * N, "last_step_file": f"straight0_opt_sparse_{2 * N}.model.last_step"}
    rows = np.fromfile(cpu_runs / "adam_lazy_global" / f"straight0_opt_sparse_{2 * N}.model.last_step", dtype="<i8")
    assert rows.max() == 2 * N and set(np.unique(rows)) <= set(range(1, 2 * N + 1))
    sgd = marker(cpu_runs / "sgd" / "straight", 2 * N)
    assert "last_step_file" not in sgd["training_state"][f"straight0_opt_sparse_{2 * N}.model"]
    assert not list((cpu_runs / "sgd").glob("*.last_step"))


def test_hugectr_style_files_load_and_restart_the_counts(cpu_runs):
    """No marker: the load works, counts restart as in HugeCTR, and the result is not the straight run's."""
    resumed = cpu_runs / "hugectr_style" / "resumed"
    state = marker(resumed, N)["training_state"]
    assert state[f"resumed_opt_dense_{N}.model"] == {"step_count": N, "lr_scheduler_step": N}
    assert state[f"resumed0_opt_sparse_{N}.model"]["step"] == N
    straight = np.fromfile(cpu_runs / CONTROL / f"straight_dense_{2 * N}.model", dtype="<f4")
    restarted = np.fromfile(f"{resumed}_dense_{N}.model", dtype="<f4")
    assert straight.shape == restarted.shape and not np.array_equal(straight, restarted)


def test_side_files_are_checked(cpu_runs, tmp_path):
    """A cut or missing side file of a snapshot is refused, naming the file."""
    for path in (cpu_runs / CONTROL).glob(f"half*_{N}*"):
        (shutil.copytree if path.is_dir() else shutil.copy)(path, tmp_path / path.name)
    data = json.loads((cpu_runs / "data.json").read_text())
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HUGECTR_DEVICE", "cpu")
        model = build(data, data["list_b"], CONTROL)
    opt_files = [str(tmp_path / f"half{i}_opt_sparse_{N}.model") for i in range(len(EMBEDDINGS))]
    side = tmp_path / f"half0_opt_sparse_{N}.model.last_step"
    side.write_bytes(side.read_bytes()[:-8])
    with pytest.raises(ValueError, match=r"last_step' has .* bytes but snapshot marker"):
        model.load_sparse_optimizer_states(opt_files)
    side.unlink()
    with pytest.raises(FileNotFoundError, match="last_step"):
        model.load_sparse_optimizer_states(opt_files)
    exact = tmp_path / f"half_dense_{N}.model.ntp.f32"
    exact.write_bytes(exact.read_bytes()[:-4])
    with pytest.raises(ValueError, match=r"ntp.f32' has .* bytes but snapshot marker"):
        model.load_dense_weights(str(tmp_path / f"half_dense_{N}.model"))


@pytest.mark.gpu
def test_resume_equals_straight_run_on_gpu(device, tmp_path):
    run_all(tmp_path, device.type)
    for config in CONFIGS:
        check_equivalent(tmp_path, config, exact=False)


if __name__ == "__main__":
    resume_main(sys.argv[1:])
