"""Array API generic code on MLX arrays: a user's function taking ``xp`` and SciPy's
array-API paths, each compared with the same code on NumPy arrays."""

import os
import subprocess
import sys
import textwrap

import array_api_compat
import mlx.core as mx
import numpy as np

import mlx_linalg


def whiten(x):
    """Generic Array API code (the docs' example): decorrelate the columns of ``x``."""
    xp = array_api_compat.array_namespace(x)
    centered = x - xp.mean(x, axis=0)
    cov = centered.T @ centered / (x.shape[0] - 1)
    w, v = xp.linalg.eigh(cov)
    return centered @ v / xp.sqrt(w)


def test_user_generic_function_runs_on_mlx():
    x = np.random.default_rng(0).standard_normal((200, 4)).astype(np.float32)
    with mlx_linalg.installed():
        z = whiten(mx.array(x))
    assert isinstance(z, mx.array)
    np.testing.assert_allclose(np.cov(np.asarray(z).T), np.eye(4), atol=1e-4)
    reference = whiten(x)
    signs = np.sign(np.sum(reference * np.asarray(z), axis=0))
    np.testing.assert_allclose(np.asarray(z) * signs, reference, rtol=1e-3, atol=1e-3)


SCIPY_SCRIPT = textwrap.dedent(
    """
    import mlx.core as mx
    import numpy as np
    import scipy.cluster.vq
    import scipy.special
    import scipy.stats

    import mlx_linalg

    x = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    calls = {
        "logsumexp": lambda a: scipy.special.logsumexp(a, axis=0),
        "softmax": lambda a: scipy.special.softmax(a, axis=1),
        "zscore": lambda a: scipy.stats.zscore(a),
        "whiten": lambda a: scipy.cluster.vq.whiten(a),
    }
    with mlx_linalg.installed():
        for name, call in calls.items():
            got = call(mx.array(x))
            assert isinstance(got, mx.array), (name, type(got))
            np.testing.assert_allclose(np.asarray(got), call(x), rtol=1e-5, atol=1e-6)
    print("ok", len(calls))
    """
)


def test_scipy_array_api_paths_run_on_mlx():
    # SciPy reads SCIPY_ARRAY_API when it is first imported, so this runs in a fresh process.
    env = dict(os.environ, SCIPY_ARRAY_API="1")
    done = subprocess.run(
        [sys.executable, "-c", SCIPY_SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok 4"
