"""The CPU check of the Triton kernels: a kernel test file's interpreted tests, run in a child process.

``@triton.jit`` picks Triton's interpreter when triton is imported, so the CPU tests of a kernel
module run in a fresh ``TRITON_INTERPRET=1`` process (``dispatch.interpreter_pytest``). A kernel
test file marks those tests ``@interpreted`` and holds one parent test::

    @starts_interpreter_child
    def test_kernels_under_triton_interpreter():
        assert_interpreted_tests_pass(__file__)
"""

from __future__ import annotations

import re

import pytest
import torch

from ..kernels import dispatch

interpreted = pytest.mark.skipif(not dispatch.interpreting(),
                                 reason="runs in the TRITON_INTERPRET=1 child of test_kernels_under_triton_interpreter")


def starts_interpreter_child(test):
    """Skips the parent test where it has nothing to do: on a GPU machine (the gpu tests run the real
    kernels there), without triton, and inside the child itself."""
    on_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU runs the real kernels (the gpu tests)")
    no_child = pytest.mark.skipif(dispatch.interpreting() or not dispatch.HAVE_TRITON,
                                  reason="needs triton; starts the child")
    return on_gpu(no_child(test))


def assert_interpreted_tests_pass(test_file: str, *pytest_args: str) -> None:
    """Runs ``test_file`` under the interpreter; every test there must pass (only the parent may skip)."""
    done = dispatch.interpreter_pytest(test_file, *pytest_args)
    skipped = re.search(r"(\d+) skipped", done.stdout)
    assert done.returncode == 0 and " passed" in done.stdout and int(skipped.group(1) if skipped else 0) <= 1, \
        done.stdout[-8000:] + done.stderr[-4000:]
