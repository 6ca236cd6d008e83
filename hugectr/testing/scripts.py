"""Loading the repository's scripts (benchmarks, examples) as modules, for the tests that run them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPOSITORY = Path(__file__).resolve().parents[2]


def load_script(path: Path | str, name: str | None = None) -> ModuleType:
    """The script at ``path`` (relative: to the repository) as a module named ``name``.

    The module is registered in ``sys.modules`` under that name: dataclasses defined in the script
    look their module up there.
    """
    path = REPOSITORY / path
    name = name or f"script_{path.parent.name}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def benchmark_smoke_output(script: str, capsys) -> str:
    """What ``benchmarks/<script> --cpu-smoke`` prints (run in this process; ``capsys`` is pytest's fixture)."""
    load_script(Path("benchmarks") / script).main(["--cpu-smoke"])
    return capsys.readouterr().out
