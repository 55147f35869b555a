"""The kernel-body tools of tools/metal_check for tests: ``metal_check`` (the C++ compile
check), ``emulate`` (runs a Metal body on the CPU) and the ``needs_emulation`` skip mark."""

import shutil
import subprocess

import pytest
import tool_scripts

metal_check = tool_scripts.load("tools/metal_check/check.py", "metal_check")
emulate = tool_scripts.load("tools/metal_check/emulate.py")


def _has_cxx20_barrier() -> bool:
    """g++ with C++20's <barrier> (GCC 11+), which the emulation needs."""
    if shutil.which("g++") is None:
        return False
    probe = subprocess.run(
        ["g++", "-std=c++20", "-fsyntax-only", "-x", "c++", "-"],
        input="#include <barrier>\nstd::barrier<> b(1);\n",
        capture_output=True,
        text=True,
    )
    return probe.returncode == 0


needs_emulation = pytest.mark.skipif(not _has_cxx20_barrier(), reason="needs g++ with C++20")
