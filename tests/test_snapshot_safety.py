"""Snapshots survive crashes: markers, optimizer-state loading, and a writer killed at random points."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from hugectr.io import snapshot_marker

WRITER = textwrap.dedent("""
    import sys, hugectr
    from hugectr.testing.datasets import planted_parquet
    data = planted_parquet(sys.argv[1] + "/data", [7, 11, 5], samples_per_file=512)
    solver = hugectr.CreateSolver(seed=5, batchsize=64, batchsize_eval=64, lr=0.01, i64_input_key=True)
    reader = hugectr.DataReaderParams(data_reader_type=hugectr.DataReaderType_t.Parquet, source=[data.source],
                                      eval_source=data.eval_source, check_type=hugectr.Check_t.Non,
                                      slot_size_array=data.slot_size_array)
    model = hugectr.Model(solver, reader, hugectr.CreateOptimizer())
    model.add(hugectr.Input(label_dim=1, label_name="label", dense_dim=13, dense_name="dense",
                            data_reader_sparse_param_array=[hugectr.DataReaderSparseParam("keys", 1, True, 3)]))
    model.add(hugectr.SparseEmbedding(embedding_type=hugectr.Embedding_t.DistributedSlotSparseEmbeddingHash,
                                      workspace_size_per_gpu_in_mb=64, embedding_vec_size=64, combiner="sum",
                                      sparse_embedding_name="emb", bottom_name="keys"))
    model.add(hugectr.DenseLayer(layer_type=hugectr.Layer_t.Reshape, bottom_names=["emb"], top_names=["flat"],
                                 leading_dim=192))
    model.add(hugectr.DenseLayer(layer_type=hugectr.Layer_t.InnerProduct, bottom_names=["flat"],
                                 top_names=["logit"], num_output=1))
    model.add(hugectr.DenseLayer(layer_type=hugectr.Layer_t.BinaryCrossEntropyLoss,
                                 bottom_names=["logit", "label"], top_names=["loss"]))
    model.compile()
    print("ready", flush=True)
    model.fit(max_iter=100000, display=0, eval_interval=0, snapshot=1, snapshot_prefix=sys.argv[1] + "/snap/m")
""")


def markers(folder):
    found = {}
    for path in folder.glob("m_snapshot_*.json"):
        body = json.loads(path.read_text())
        found[body["iteration"]] = body["complete"]
    return found


def wait_for_a_finished_snapshot(folder, since, child, limit=180.0):
    """The first steps compile kernels (seconds on a GPU): kill only once this run has finished a snapshot."""
    while time.time() - since < limit:
        fresh = [p for p in folder.glob("m_snapshot_*.json") if p.stat().st_mtime >= since - 1]
        if any(json.loads(p.read_text())["complete"] for p in fresh):     # markers are replaced atomically
            return
        assert child.poll() is None, "the writer exited before its first snapshot"
        time.sleep(0.05)
    raise AssertionError(f"no snapshot in {limit} s")


def test_optimizer_states_round_trip(planted_data, build_small_model, tmp_path):
    model = build_small_model(planted_data)
    model.start_data_reading()
    for _ in range(3):
        model.set_learning_rate(0.01)
        model.train()
    model.save_params_to_files(str(tmp_path / "m"), 3)
    other = build_small_model(planted_data, seed=17)
    other.load_dense_optimizer_states(str(tmp_path / "m_opt_dense_3.model"))
    other.load_sparse_optimizer_states({"emb": str(tmp_path / "m0_opt_sparse_3.model")})
    for mine, theirs in zip(other.dense_optimizer.state_tensors(), model.dense_optimizer.state_tensors()):
        assert torch.equal(mine.cpu(), theirs.cpu())
    for mine, theirs in zip(other.embedding_tables[0].optimizer_states(), model.embedding_tables[0].optimizer_states()):
        assert torch.equal(mine.cpu(), theirs.cpu())
    marker = json.loads((tmp_path / "m_snapshot_3.json").read_text())
    assert marker["complete"] and set(marker["files"]) == {"m_dense_3.model", "m_opt_dense_3.model",
                                                           "m0_sparse_3.model", "m0_opt_sparse_3.model"}
    with pytest.raises(ValueError, match=r"holds 217 float32 values but the model expects 434"):
        other.load_dense_optimizer_states(str(tmp_path / "m_dense_3.model"))   # a weights file, wrong size


def test_incomplete_or_changed_snapshot_is_refused(planted_data, build_small_model, tmp_path):
    model = build_small_model(planted_data)
    model.save_params_to_files(str(tmp_path / "m"), 1)
    marker = tmp_path / "m_snapshot_1.json"
    body = json.loads(marker.read_text())
    marker.write_text(json.dumps({**body, "complete": False}))
    with pytest.raises(ValueError, match="never finished"):
        model.load_dense_weights(str(tmp_path / "m_dense_1.model"))
    with pytest.raises(ValueError, match="never finished"):
        model.load_sparse_weights([str(tmp_path / "m0_sparse_1.model")])
    marker.write_text(json.dumps(body))
    with open(tmp_path / "m_dense_1.model", "ab") as handle:
        handle.write(b"\0\0\0\0")
    with pytest.raises(ValueError, match="recorded"):
        model.load_dense_weights(str(tmp_path / "m_dense_1.model"))


@pytest.mark.slow
def test_killed_writer_leaves_the_last_complete_snapshot_loadable(tmp_path, planted_data, build_small_model):
    """SIGKILL the writer at random moments; the newest complete snapshot loads, an incomplete one is refused."""
    (tmp_path / "snap").mkdir()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    rng = random.Random(7)
    env = {**os.environ, "HUGECTR_LOG_LEVEL": "-1"}
    for _ in range(3):
        child = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, env=env)
        assert child.stdout.readline().strip() == b"ready"
        wait_for_a_finished_snapshot(tmp_path / "snap", since=time.time(), child=child)
        time.sleep(rng.uniform(0.0, 1.0))        # then kill somewhere in the middle of later snapshots
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    found = markers(tmp_path / "snap")
    complete = [it for it, done in found.items() if done]
    assert complete, f"no snapshot finished in the runs: {found}"
    newest = max(complete)
    weights = np.fromfile(tmp_path / "snap" / f"m_dense_{newest}.model", dtype="<f4")
    assert weights.size == 192 + 1
    for iteration, done in found.items():
        path = tmp_path / "snap" / f"m_dense_{iteration}.model"
        if done:
            snapshot_marker.refuse_incomplete(path, "test")        # accepted
        else:
            with pytest.raises(ValueError, match="never finished"):
                snapshot_marker.refuse_incomplete(path, "test")
