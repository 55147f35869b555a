"""Several Python threads at once, per-thread errstate, and the stream= argument."""

import threading
from concurrent.futures import ThreadPoolExecutor

import mlx.core as mx
import numpy as np
import pytest
from matrices import random_spd

import mlx_linalg as la
from mlx_linalg import _dispatch


def test_threads_calling_at_once_get_their_own_results(rng):
    inputs = [random_spd(rng, (3, 24, 24), mx.float64) for _ in range(8)]
    expected = [np.linalg.cholesky(np.asarray(a)) for a in inputs]

    def work(i):
        for _ in range(5):
            L = np.asarray(la.cholesky(inputs[i]))
            np.testing.assert_allclose(L, expected[i], rtol=1e-12)
            la.svd(inputs[i])
            la.solve(inputs[i], inputs[i])
        return i

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert sorted(pool.map(work, range(8))) == list(range(8))


def test_errstate_is_per_thread():
    barrier = threading.Barrier(2)
    seen = {}

    def raising():
        with la.errstate(linalg="raise"):
            barrier.wait()
            seen["raising"] = la.geterr()["linalg"]
            barrier.wait()

    def default():
        barrier.wait()
        seen["default"] = la.geterr()["linalg"]
        barrier.wait()

    threads = [threading.Thread(target=raising), threading.Thread(target=default)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert seen == {"raising": "raise", "default": "nan"}


@pytest.mark.parametrize("stream", [None, mx.cpu, mx.Device(mx.cpu), mx.default_stream(mx.cpu)])
def test_stream_argument_is_accepted_in_every_form(stream, rng):
    a = random_spd(rng, (5, 5), mx.float32)
    assert la.cholesky(a, stream=stream).shape == (5, 5)
    assert _dispatch.backend(stream) == "cpu"


def test_gpu_stream_without_a_gpu_rule_computes_through_lapack(rng):
    a = random_spd(rng, (4, 4), mx.float32)
    impl = _dispatch.implementation("eig", mx.gpu, a)
    assert impl.__module__ == "mlx_linalg._cpu.lapack"
    assert _dispatch.backend(mx.gpu) == "gpu"


@pytest.mark.parametrize("kind", ["stream", "device", "device_type"])
def test_gpu_implementations_build_their_ops_on_the_callers_stream(kind):
    """A GPU rule's implementation runs under ``mx.stream(stream)``; checked here with a CPU
    stream standing in for a GPU one (the wrapper does not look at the device type)."""
    stream = mx.new_stream(mx.cpu)
    target = {"stream": stream, "device": mx.cpu, "device_type": mx.DeviceType.cpu}[kind]
    wrapped = _dispatch._on_stream(lambda: mx.default_stream(mx.default_device()), target)
    expected = stream if kind == "stream" else mx.default_stream(mx.cpu)
    assert wrapped() == expected
    assert mx.default_stream(mx.default_device()) != stream  # restored afterwards
