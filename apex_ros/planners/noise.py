"""Colored (power-law) Gaussian noise along the time axis, as iCEM samples it.

Power spectral density ~ 1/f^beta: beta=0 is white noise, larger beta gives smoother,
more correlated action sequences. Same construction as the `colorednoise` package
(Timmer & Koenig 1995): random Fourier coefficients scaled by f^(-beta/2), normalized to unit
variance; here drawn from a caller-owned numpy Generator so planners stay reproducible.
"""
import numpy as np


def colored_noise(beta: float, shape, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance noise of `shape` (..., T), correlated along the last axis."""
    if beta < 0:
        raise ValueError(f'colored-noise exponent beta must be >= 0, got {beta}')
    *lead, steps = shape
    if beta == 0 or steps < 2:  # one step has no spectrum to shape
        return rng.standard_normal(shape)
    freqs = np.fft.rfftfreq(steps)
    freqs[0] = 1.0 / steps  # the lowest resolvable frequency stands in for DC
    scale = freqs ** (-beta / 2.0)
    w = scale[1:].copy()
    w[-1] *= (1 + (steps % 2)) / 2.0  # the Nyquist bin is real for even T
    sigma = 2 * np.sqrt(np.sum(w ** 2)) / steps
    real = rng.standard_normal((*lead, freqs.size)) * scale
    imag = rng.standard_normal((*lead, freqs.size)) * scale
    if steps % 2 == 0:
        imag[..., -1] = 0.0
        real[..., -1] *= np.sqrt(2.0)
    imag[..., 0] = 0.0
    real[..., 0] *= np.sqrt(2.0)
    return np.fft.irfft(real + 1j * imag, n=steps, axis=-1) / sigma


def perturbed_sequences(mean, std, beta: float, n: int, rng, low, high) -> np.ndarray:
    """n sequences clip(mean + noise * std, low, high), (n, H, nu), with unit colored noise
    correlated along time (H); mean (H, nu), std (H, nu) or a scalar."""
    horizon, nu = mean.shape
    noise = colored_noise(beta, (n, nu, horizon), rng).transpose(0, 2, 1)
    return np.clip(mean + noise * std, low, high)
