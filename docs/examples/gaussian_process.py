"""Fit a Gaussian process by maximizing its log marginal likelihood with ``mx.grad``.

The model: y = f(x) + ε with f ~ GP(0, k), k(x, x') = σf² exp(−(x − x')² / (2ℓ²)) and
ε ~ N(0, σn²). With K = k(X, X) + σn² I = L Lᵀ and α = K⁻¹ y (Rasmussen and Williams,
Gaussian Processes for Machine Learning, 2006, alg. 2.1 and eq. 5.8):

    log p(y | X) = −½ yᵀα − ½ log det K − (n/2) log 2π.

The three hyperparameters are optimized in log space by Adam on the negative log likelihood,
with gradients flowing through ``cholesky``, ``cho_solve`` and ``slogdet``. Run it with
``python docs/examples/gaussian_process.py``; ``tests/test_gradients.py`` runs it too.
"""

import math

import mlx.core as mx
import numpy as np

import mlx_linalg as la


def make_data(n: int = 40, noise: float = 0.1, seed: int = 0) -> tuple[mx.array, mx.array]:
    """Noisy samples of sin(3x) at n points of [−2, 2] (float64)."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-2, 2, n))
    y = np.sin(3 * x) + noise * rng.standard_normal(n)
    return mx.array(x, dtype=mx.float64), mx.array(y, dtype=mx.float64)


def negative_log_likelihood(log_params: mx.array, x: mx.array, y: mx.array) -> mx.array:
    """−log p(y | x) for log_params = (log ℓ, log σf, log σn)."""
    lengthscale, signal, noise = mx.exp(log_params)
    sq_dist = (x[:, None] - x[None, :]) ** 2
    k = signal**2 * mx.exp(-sq_dist / (2 * lengthscale**2))
    k = k + (noise**2 + 1e-8) * mx.eye(x.shape[0], dtype=x.dtype)
    factor = la.cholesky(k)
    alpha = la.cho_solve((factor, True), y)
    _, logdet = la.slogdet(k)
    n = x.shape[0]
    return 0.5 * (y @ alpha) + 0.5 * logdet + 0.5 * n * math.log(2 * math.pi)


def fit(x: mx.array, y: mx.array, steps: int = 100, learning_rate: float = 0.08) -> dict:
    """Adam on the negative log likelihood from ℓ = σf = 1, σn = 0.5.

    Returns:
        dict with the initial and final negative log likelihood and the fitted
        lengthscale, signal and noise standard deviations.
    """
    params = mx.array([0.0, 0.0, math.log(0.5)], dtype=mx.float64)
    loss_and_grad = mx.value_and_grad(negative_log_likelihood)
    first = None
    mt = mx.zeros_like(params)
    vt = mx.zeros_like(params)
    beta1, beta2 = 0.9, 0.999
    for step in range(1, steps + 1):
        loss, grad = loss_and_grad(params, x, y)
        if first is None:
            first = loss.item()
        mt = beta1 * mt + (1 - beta1) * grad
        vt = beta2 * vt + (1 - beta2) * grad * grad
        m_hat, v_hat = mt / (1 - beta1**step), vt / (1 - beta2**step)
        params = params - learning_rate * m_hat / (mx.sqrt(v_hat) + 1e-8)
        mx.eval(params)
    final = negative_log_likelihood(params, x, y).item()
    lengthscale, signal, noise = np.exp(np.asarray(params)).tolist()
    return {
        "initial_nll": first,
        "final_nll": final,
        "lengthscale": lengthscale,
        "signal": signal,
        "noise": noise,
    }


def main() -> dict:
    with mx.stream(mx.cpu):  # float64 runs on the CPU
        x, y = make_data()
        return fit(x, y)


if __name__ == "__main__":
    result = main()
    print(f"negative log likelihood {result['initial_nll']:.3f} -> {result['final_nll']:.3f}")
    print(
        f"lengthscale {result['lengthscale']:.3f}, signal {result['signal']:.3f}, "
        f"noise {result['noise']:.3f} (data noise 0.1)"
    )
