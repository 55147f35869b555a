"""GPU tests: marked ``gpu``, skipped unless this MLX build has a GPU backend (Metal or
CUDA). Run them all, with the kernel benchmarks, through ``tools/gpu-check.sh``."""

import mlx.core as mx
import pytest

HAS_GPU = mx.is_available(mx.gpu)


def pytest_collection_modifyitems(config, items):
    if HAS_GPU:
        return
    skip = pytest.mark.skip(reason="no MLX GPU backend (Metal or CUDA) in this build")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _gpu_default_device():
    """Run each GPU test with the GPU as MLX's default device."""
    if not HAS_GPU:
        yield
        return
    previous = mx.default_device()
    mx.set_default_device(mx.gpu)
    try:
        yield
    finally:
        mx.set_default_device(previous)
