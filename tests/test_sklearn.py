"""scikit-learn as a real Array API client: estimators fitted on MLX arrays under
``mlx_linalg.installed()`` match the same estimators fitted on NumPy arrays.

Tolerances are float32 ones (both fits run in float32); vectors are compared up to sign.
"""

import os

os.environ.setdefault("SCIPY_ARRAY_API", "1")  # scikit-learn's array API mode requires it

import mlx.core as mx  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import mlx_linalg  # noqa: E402

sklearn = pytest.importorskip("sklearn")
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402

RTOL = 2e-4
ATOL = 2e-4


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    # Anisotropic data so the leading components are well separated.
    scales = np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.3, 0.2, 0.1])
    X = (rng.standard_normal((80, 8)) * scales).astype(np.float32)
    y_reg = (X @ rng.standard_normal(8) + 0.1 * rng.standard_normal(80)).astype(np.float32)
    y_cls = (X[:, 0] + X[:, 1] > 0).astype(np.int32) + (X[:, 2] > 1).astype(np.int32)
    return X, y_reg, y_cls


def _fit_both(estimator_factory, X, *args):
    """The estimator fitted on NumPy arrays and, with array API dispatch, on MLX arrays."""
    reference = estimator_factory().fit(X, *args)
    with mlx_linalg.installed(), sklearn.config_context(array_api_dispatch=True):
        fitted = estimator_factory().fit(mx.array(X), *(mx.array(a) for a in args))
    return reference, fitted


def _signs(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
    """Per-vector signs that make ``b`` point like ``a`` (vectors along ``axis``)."""
    return np.sign(np.sum(a * b, axis=axis, keepdims=True))


def _np(x) -> np.ndarray:
    assert isinstance(x, mx.array), f"expected an MLX result, got {type(x).__name__}"
    return np.asarray(x)


@pytest.mark.parametrize(
    "solver_kwargs",
    [
        {"svd_solver": "full"},
        {"svd_solver": "covariance_eigh"},
        {
            "svd_solver": "randomized",
            "power_iteration_normalizer": "QR",
            "n_oversamples": 5,
            "iterated_power": 4,
            "random_state": 0,
        },
    ],
    ids=["full", "covariance_eigh", "randomized-QR"],
)
def test_pca_matches_numpy(data, solver_kwargs):
    X, _, _ = data
    ref, got = _fit_both(lambda: PCA(n_components=3, **solver_kwargs), X)
    np.testing.assert_allclose(_np(got.explained_variance_), ref.explained_variance_, rtol=RTOL)
    np.testing.assert_allclose(_np(got.singular_values_), ref.singular_values_, rtol=RTOL)
    np.testing.assert_allclose(_np(got.mean_), ref.mean_, rtol=RTOL, atol=ATOL)
    components = _np(got.components_)
    components = components * _signs(ref.components_, components, axis=1)
    np.testing.assert_allclose(components, ref.components_, rtol=1e-3, atol=1e-3)
    with mlx_linalg.installed(), sklearn.config_context(array_api_dispatch=True):
        projected = _np(got.transform(mx.array(X)))
    expected = ref.transform(X)
    projected = projected * _signs(expected, projected, axis=0)
    np.testing.assert_allclose(projected, expected, rtol=1e-3, atol=2e-3)


def test_ridge_svd_matches_numpy(data):
    X, y, _ = data
    ref, got = _fit_both(lambda: Ridge(alpha=0.5, solver="svd"), X, y)
    np.testing.assert_allclose(_np(got.coef_), ref.coef_, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(float(_np(got.intercept_)), ref.intercept_, rtol=RTOL, atol=ATOL)


def test_lda_svd_matches_numpy(data):
    X, _, y = data
    ref, got = _fit_both(lambda: LinearDiscriminantAnalysis(solver="svd"), X, y)
    np.testing.assert_allclose(_np(got.coef_), ref.coef_, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(_np(got.intercept_), ref.intercept_, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(
        _np(got.explained_variance_ratio_), ref.explained_variance_ratio_, rtol=1e-3
    )
    with mlx_linalg.installed(), sklearn.config_context(array_api_dispatch=True):
        predicted = _np(got.predict(mx.array(X)))
    np.testing.assert_array_equal(predicted, ref.predict(X))


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
def test_gaussian_mixture_matches_numpy(data, covariance_type):
    X, _, _ = data
    X = X[:, :3]

    def factory():
        return GaussianMixture(
            n_components=2,
            covariance_type=covariance_type,
            init_params="random_from_data",
            random_state=0,
            max_iter=20,
        )

    ref, got = _fit_both(factory, X)
    np.testing.assert_allclose(_np(got.weights_), ref.weights_, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(_np(got.means_), ref.means_, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(_np(got.covariances_), ref.covariances_, rtol=1e-3, atol=1e-3)


@pytest.mark.xfail(
    strict=True,
    reason="scikit-learn's covariance_type='full' writes into the view covariances[k, :, :] "
    "(_add_to_diagonal); MLX has no views, so reg_covar never reaches the covariances",
)
def test_gaussian_mixture_full_covariance(data):
    X, _, _ = data
    X = X[:, :3]

    def factory():
        return GaussianMixture(
            n_components=2, init_params="random_from_data", random_state=0, max_iter=20
        )

    ref, got = _fit_both(factory, X)
    np.testing.assert_allclose(_np(got.means_), ref.means_, rtol=1e-3, atol=1e-3)


def test_namespace_is_ours_inside_sklearn(data):
    X, _, _ = data
    from sklearn.utils._array_api import get_namespace

    with mlx_linalg.installed(), sklearn.config_context(array_api_dispatch=True):
        xp, is_array_api = get_namespace(mx.array(X))
    assert is_array_api
    assert xp.__name__ == "mlx_linalg.array_api"
    assert xp.linalg is mlx_linalg
