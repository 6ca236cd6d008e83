"""Process placement: a plain ``python script.py`` with several GPUs in vvgpu starts its own ranks;
launcher variables are read; vvgpu and the launch must agree."""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from hugectr.distributed import env, launch

SCRIPT = textwrap.dedent("""
    import os, sys
    import torch
    import torch.distributed as dist
    import hugectr

    out, fail_rank = sys.argv[1], int(sys.argv[2])
    solver = hugectr.CreateSolver(vvgpu=[[0, 1]], batchsize=64, batchsize_eval=64)
    reader = hugectr.DataReaderParams(data_reader_type=hugectr.DataReaderType_t.Parquet, source=["unused"],
                                      eval_source="unused", check_type=hugectr.Check_t.Non)
    model = hugectr.Model(solver, reader, hugectr.CreateOptimizer())
    total = torch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(total)
    with open(os.path.join(out, f"rank{dist.get_rank()}"), "w") as f:
        f.write(f"{dist.get_world_size()} {total.item()} {model.device}")
    if dist.get_rank() == fail_rank:
        sys.exit(3)
    dist.barrier()          # a rank whose peer failed waits here until the launcher stops it
""")


def _run_script(tmp_path, fail_rank: int, launcher: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run SCRIPT as ``python train.py`` or under ``launcher`` (which runs the script file itself)."""
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "PYTEST_CURRENT_TEST")}
    environment.update(HUGECTR_DEVICE="cpu", OMP_NUM_THREADS="1")
    command = [*(launcher or (sys.executable,)), str(script), str(tmp_path), str(fail_rank)]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=240)


LAUNCHERS = {
    "torchrun": (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"),
    "mpirun": ("mpirun", "-n", "2", sys.executable),
}


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_launchers_give_the_ranks(tmp_path, launcher):
    """Under torchrun or mpirun the script runs once per rank as launched: no relaunch, same group."""
    if launcher == "mpirun" and shutil.which("mpirun") is None:
        pytest.skip("no mpirun on this machine (pip install mpich)")
    result = _run_script(tmp_path, fail_rank=-1, launcher=LAUNCHERS[launcher])
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "rank0").read_text() == "2 3.0 cpu"
    assert (tmp_path / "rank1").read_text() == "2 3.0 cpu"
    assert result.stdout.count("Model Init") == 1                 # rank 0 prints, and nobody relaunched


def test_plain_script_starts_one_rank_per_gpu_and_only_rank_0_prints(tmp_path):
    result = _run_script(tmp_path, fail_rank=-1)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "rank0").read_text() == "2 3.0 cpu"
    assert (tmp_path / "rank1").read_text() == "2 3.0 cpu"
    assert result.stdout.count("Model Init") == 1
    assert "[RK0]" in result.stdout and "[RK1]" not in result.stdout


def test_a_failing_rank_stops_the_others_and_sets_the_exit_code(tmp_path):
    result = _run_script(tmp_path, fail_rank=1)
    assert result.returncode != 0
    assert (tmp_path / "rank0").exists() and (tmp_path / "rank1").exists()


def test_vvgpu_and_launcher_world_must_agree(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ValueError, match=r"vvgpu names 2 GPU\(s\).*torchrun started 3 process"):
        env.init_ranks([[0, 1]])


def test_mpirun_variables_give_the_rank(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "3")
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1")
    assert env.launcher_rank() == env.LaunchedRank("Open MPI", 3, 4, 1)
    with pytest.raises(ValueError, match=r"vvgpu names 2 GPU\(s\).*Open MPI started 4"):
        env.init_ranks([[0, 1]])


def test_several_nodes_need_a_launcher(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="names 2 nodes.*torchrun --nnodes=2"):
        env.init_ranks([[0, 1], [0, 1]])
    with pytest.raises(RuntimeError, match="run_ranks"):       # never relaunches pytest itself
        env.init_ranks([[0, 1]])


def test_one_gpu_needs_no_ranks(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE"):
        monkeypatch.delenv(name, raising=False)
    env.init_ranks([[0]])
    assert not env.is_distributed()


def test_run_local_ranks_reports_the_failure():
    code = "import os, sys; sys.exit(5 if os.environ['RANK'] == '1' else 0)"
    assert launch.run_local_ranks([sys.executable, "-c", code], 2) == 5
    assert launch.run_local_ranks([sys.executable, "-c", "pass"], 2) == 0


GENERATING_SCRIPT = textwrap.dedent("""
    import hashlib, os, sys
    import torch.distributed as dist
    import hugectr
    from hugectr.tools import DataGenerator, DataGeneratorParams

    out = sys.argv[1]

    def generate(name):
        source = os.path.join(out, name, "file_list.txt")
        DataGenerator(DataGeneratorParams(hugectr.DataReaderType_t.Parquet, 1, 2, 2, False, source,
                                          os.path.join(out, name, "file_list_test.txt"), [10, 10], num_files=1,
                                          eval_num_files=1, num_samples_per_file=64, num_samples=64,
                                          eval_num_samples=64)).generate()
        return hashlib.md5(open(os.path.join(out, name, "train", "gen_0.parquet"), "rb").read()).hexdigest()

    print("before Model", flush=True)
    before = generate("before")                    # a HugeCTR script makes its data first
    solver = hugectr.CreateSolver(vvgpu=[[0, 1]], batchsize=64, batchsize_eval=64)
    reader = hugectr.DataReaderParams(data_reader_type=hugectr.DataReaderType_t.Parquet, source=["unused"],
                                      eval_source="unused", check_type=hugectr.Check_t.Non)
    model = hugectr.Model(solver, reader, hugectr.CreateOptimizer())
    after = generate("after")
    print(f"after Model on rank {dist.get_rank()}", flush=True)
    with open(os.path.join(out, f"rank{dist.get_rank()}"), "w") as f:
        f.write(f"{before} {after}")
""")


def test_plain_script_side_effects_and_prints_happen_once(tmp_path):
    """What runs before Model(...) ran in the launching process: the ranks neither repeat its prints nor
    regenerate its data (which raced on the same files); after Model(...) rank 0 generates, the others wait."""
    script = tmp_path / "generate.py"
    script.write_text(GENERATING_SCRIPT)
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "PYTEST_CURRENT_TEST")}
    environment.update(HUGECTR_DEVICE="cpu", OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, str(script), str(tmp_path)], env=environment, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("before Model") == 1
    assert result.stdout.count("after Model on rank 0") == 1 and "on rank 1" not in result.stdout
    assert result.stdout.count("Model Init") == 1
    assert (tmp_path / "rank0").read_text() == (tmp_path / "rank1").read_text()   # the same files, written once
