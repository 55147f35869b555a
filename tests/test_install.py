"""install()/uninstall()/installed(): routing while installed, exact restoration after."""

import threading

import array_api_compat
import mlx.core as mx
import numpy as np
import pytest

import mlx_linalg
import mlx_linalg.array_api as xp
from mlx_linalg._install import is_installed


def _snapshot() -> tuple[dict, dict]:
    return dict(mx.linalg.__dict__), dict(mx.array.__dict__)


def _assert_restored(snapshot: tuple[dict, dict]) -> None:
    linalg_before, array_before = snapshot
    linalg_now, array_now = dict(mx.linalg.__dict__), dict(mx.array.__dict__)
    assert set(linalg_now) == set(linalg_before)
    assert all(linalg_now[k] is v for k, v in linalg_before.items())
    assert set(array_now) == set(array_before)
    assert all(array_now[k] is v for k, v in array_before.items())


@pytest.fixture(autouse=True)
def clean():
    mlx_linalg.uninstall()
    snapshot = _snapshot()
    yield snapshot
    mlx_linalg.uninstall()
    _assert_restored(snapshot)


def test_install_routes_linalg_and_namespace(clean):
    x = mx.ones((3, 3))
    assert array_api_compat.array_namespace(x) is mx  # MLX's own before
    mlx_linalg.install()
    assert is_installed()
    assert x.__array_namespace__() is xp
    assert array_api_compat.array_namespace(x) is xp
    assert mx.linalg.qr is mlx_linalg.qr
    assert mx.linalg.svdvals is mlx_linalg.svdvals  # mlx_linalg's extras appear
    assert mx.linalg.norm is clean[0]["norm"]  # MLX-only functions stay
    assert x.device == mx.default_device()
    assert x.to_device("cpu") is x


def test_uninstall_restores_exactly(clean):
    mlx_linalg.install()
    mlx_linalg.uninstall()
    _assert_restored(clean)
    assert not hasattr(mx.ones(2), "device")
    assert array_api_compat.array_namespace(mx.ones(2)) is mx


def test_idempotent(clean):
    mlx_linalg.install()
    mlx_linalg.install()
    assert mx.linalg.svdvals is mlx_linalg.svdvals
    mlx_linalg.uninstall()
    _assert_restored(clean)
    mlx_linalg.uninstall()
    _assert_restored(clean)


def test_context_manager_nests_and_respects_install(clean):
    with mlx_linalg.installed():
        with mlx_linalg.installed():
            assert mx.ones(1).__array_namespace__() is xp
        assert mx.ones(1).__array_namespace__() is xp  # the outer block still holds
    _assert_restored(clean)
    mlx_linalg.install()
    with mlx_linalg.installed():
        pass
    assert is_installed()  # the block does not undo an explicit install()


def test_context_manager_restores_on_error(clean):
    with pytest.raises(RuntimeError), mlx_linalg.installed():
        raise RuntimeError("boom")
    _assert_restored(clean)


def test_threads_share_one_consistent_state(clean):
    barrier = threading.Barrier(4)
    seen = []

    def worker():
        barrier.wait()
        for _ in range(50):
            with mlx_linalg.installed():
                seen.append(mx.ones(1).__array_namespace__() is xp)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(seen) and len(seen) == 200
    _assert_restored(clean)


def test_api_version(clean):
    with mlx_linalg.installed():
        x = mx.ones(2)
        assert x.__array_namespace__(api_version="2024.12") is xp
        assert x.__array_namespace__(api_version="2023.12") is xp
        with pytest.raises(ValueError, match="api_version"):
            x.__array_namespace__(api_version="1999.01")


def test_mx_linalg_keeps_mlx_calling_conventions(clean):
    rng = np.random.default_rng(0)
    a_np = rng.standard_normal((4, 4)).astype(np.float32)
    spd = mx.array(a_np @ a_np.T + 4 * np.eye(4, dtype=np.float32))
    a = mx.array(a_np)
    with mlx_linalg.installed():
        upper = mx.linalg.cholesky(spd, True)  # MLX: positional upper
        np.testing.assert_allclose(np.asarray(upper.T @ upper), np.asarray(spd), rtol=1e-4)
        w_upper, _ = mx.linalg.eigh(mx.triu(spd), "U")
        w_lower, _ = mx.linalg.eigh(mx.tril(spd))
        np.testing.assert_allclose(np.asarray(w_upper), np.asarray(w_lower), rtol=1e-5)
        np.testing.assert_allclose(
            np.asarray(mx.linalg.eigvalsh(mx.triu(spd), UPLO="U")), np.asarray(w_lower), rtol=1e-5
        )
        s = mx.linalg.svd(a, compute_uv=False)
        assert s.shape == (4,)
        u, s, vt = mx.linalg.svd(a[:, :3])
        assert u.shape == (4, 4) and vt.shape == (3, 3)  # MLX: full matrices
        perm, lower, upper = mx.linalg.lu(a)
        assert perm.dtype == mx.uint32
        np.testing.assert_allclose(np.asarray(lower[perm] @ upper), a_np, rtol=1e-5, atol=1e-5)
        packed, pivots = mx.linalg.lu_factor(a)
        assert pivots.dtype == mx.uint32
        tri = mx.tril(spd)
        b = mx.ones((4, 2))
        x = mx.linalg.solve_triangular(tri, b)  # MLX: lower by default
        np.testing.assert_allclose(np.asarray(tri @ x), np.ones((4, 2)), rtol=1e-4, atol=1e-5)
        x = mx.linalg.solve_triangular(mx.triu(spd), b, upper=True)
        np.testing.assert_allclose(np.asarray(mx.triu(spd) @ x), np.ones((4, 2)), atol=1e-4)
        c = mx.linalg.cross(mx.array([1.0, 0, 0]), mx.array([0.0, 1, 0]), -1)
        np.testing.assert_array_equal(np.asarray(c), [0, 0, 1])
        with pytest.raises(ValueError, match=r"\[mlx_linalg.eigh\] expected UPLO"):
            mx.linalg.eigh(spd, "X")


def test_boolean_indexing_only_while_installed(clean):
    x = mx.arange(12).reshape(3, 4)
    with pytest.raises(ValueError):
        x[x > 5]
    with mlx_linalg.installed():
        np.testing.assert_array_equal(np.asarray(x[x > 5]), np.arange(6, 12))
        np.testing.assert_array_equal(
            np.asarray(x[mx.array([True, False, True])]), np.asarray(x)[[0, 2]]
        )
        np.testing.assert_array_equal(
            np.asarray(x[:, mx.array([False, True, False, True])]), np.asarray(x)[:, [1, 3]]
        )
        assert x[x > 100].shape == (0,)
        stop = mx.array(2)
        np.testing.assert_array_equal(np.asarray(x[:stop]), np.asarray(x)[:2])
        y = mx.arange(5).astype(mx.float32)
        y[y > 2] = -1.0
        np.testing.assert_array_equal(np.asarray(y), [0, 1, 2, -1, -1])
        z = mx.zeros((2, 3))
        z[mx.array([False, True])] = 7.0
        np.testing.assert_array_equal(np.asarray(z), [[0, 0, 0], [7, 7, 7]])
        assert xp.__array_namespace_info__().capabilities()["boolean indexing"]
    assert not xp.__array_namespace_info__().capabilities()["boolean indexing"]


def test_errors_through_namespace_match_direct_calls(clean):
    bad = mx.ones((3, 4))
    with pytest.raises(ValueError) as direct:
        mlx_linalg.cholesky(bad)
    with mlx_linalg.installed():
        ns = bad.__array_namespace__()
        with pytest.raises(ValueError) as routed:
            ns.linalg.cholesky(bad)
        with pytest.raises(ValueError) as via_mx:
            mx.linalg.cholesky(bad)
    assert str(routed.value) == str(direct.value) == str(via_mx.value)
    assert str(direct.value).startswith("[mlx_linalg.cholesky]")
    with pytest.raises(TypeError, match=r"^\[mlx_linalg.inv\]"):
        xp.linalg.inv(mx.ones((2, 2), dtype=mx.int32))
