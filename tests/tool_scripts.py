"""The repository's scripts that are not in a package (tools/, docs/examples/), for tests:
imported as modules from their paths, or run the way a user runs them."""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"


def load(path: str, name: str | None = None):
    """The script at ``path`` (relative to the repository root) imported as a module named
    ``name`` (default: the file's stem). tools/ goes on ``sys.path`` first: the benchmark
    scripts import their sibling ``bench_timing``."""
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    file = ROOT / path
    spec = importlib.util.spec_from_file_location(name or file.stem, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(path: str, *args: str, timeout: float = 300) -> str:
    """The standard output of ``python <path> <args>`` run from the repository root; a
    failing run raises ``subprocess.CalledProcessError``."""
    done = subprocess.run(
        [sys.executable, path, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
    )
    return done.stdout
