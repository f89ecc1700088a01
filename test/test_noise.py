"""apex_ros.planners.noise.colored_noise: power-law spectrum, normalization, reproducibility."""
import numpy as np
import pytest

from apex_ros.planners.noise import colored_noise

T = 1024
N_SEQ = 1000


def spectrum_slope(x):
    """Least-squares slope of log(mean |rfft|^2) vs log(f) over the non-DC frequencies."""
    power = np.mean(np.abs(np.fft.rfft(x, axis=-1)) ** 2, axis=0)
    freqs = np.fft.rfftfreq(x.shape[-1])
    return np.polyfit(np.log(freqs[1:]), np.log(power[1:]), 1)[0]


@pytest.mark.parametrize('beta', [0.5, 1.0, 2.0])
def test_power_spectrum_slope_is_minus_beta(beta):
    # Each bin's averaged power has relative std 1/sqrt(N_SEQ) ~ 3%, i.e. ~0.03 in log, and
    # the fit runs over 512 bins spanning log(512) ~ 6.2: the slope's statistical error is
    # ~0.003. A tolerance of 0.15 is far above that, yet far below the error of the usual
    # construction mistakes (scaling amplitudes by f^-beta instead of f^-beta/2 doubles the
    # slope; forgetting the scaling gives slope 0).
    x = colored_noise(beta, (N_SEQ, T), np.random.default_rng(1))
    assert x.shape == (N_SEQ, T)
    assert spectrum_slope(x) == pytest.approx(-beta, abs=0.15)


def test_white_noise_has_flat_spectrum():
    x = colored_noise(0.0, (N_SEQ, T), np.random.default_rng(2))
    assert spectrum_slope(x) == pytest.approx(0.0, abs=0.05)
    # beta = 0 is plain standard normal noise: marginal variance 1, no correlation in time.
    assert x.var() == pytest.approx(1.0, abs=0.01)
    lag1 = np.mean(x[:, 1:] * x[:, :-1])
    assert abs(lag1) < 0.01


@pytest.mark.parametrize('beta', [0.5, 1.0, 2.0])
def test_larger_beta_is_smoother(beta):
    """Positive lag-1 autocorrelation growing with beta (what makes the actions smooth)."""
    rng = np.random.default_rng(3)
    lo = colored_noise(beta, (N_SEQ, 30), rng)
    hi = colored_noise(beta + 0.5, (N_SEQ, 30), rng)

    def lag1(x):
        x = x - x.mean(axis=-1, keepdims=True)
        return np.mean(x[:, 1:] * x[:, :-1]) / np.mean(x * x)
    assert 0 < lag1(lo) < lag1(hi)


@pytest.mark.parametrize('steps', [30, 31, 1024])
@pytest.mark.parametrize('beta', [0.5, 1.0, 2.0])
def test_unit_variance_within_a_sequence(beta, steps):
    # The normalization (as in the `colorednoise` package) excludes the DC bin, so what is
    # 1 is the variance of a sequence about its own mean, averaged over sequences. 2000
    # sequences: the mean of the per-sequence variances is within ~1-2% of its expectation
    # even for brown noise (beta=2, whose per-sequence variance scatters the most).
    n = 2000 if steps > 100 else 20000
    x = colored_noise(beta, (n, steps), np.random.default_rng(4))
    assert x.var(axis=-1).mean() == pytest.approx(1.0, abs=0.05)
    # ... and the total (marginal) variance is at least that: the DC term only adds.
    assert x.var() > 0.95


def test_same_seed_same_noise_different_seed_different_noise():
    shape = (7, 3, 30)                 # iCEM's (samples, nu, horizon)
    a = colored_noise(2.0, shape, np.random.default_rng(123))
    b = colored_noise(2.0, shape, np.random.default_rng(123))
    c = colored_noise(2.0, shape, np.random.default_rng(124))
    assert a.shape == shape
    assert np.array_equal(a, b)
    assert not np.any(a == c)


def test_noise_consumes_the_callers_generator():
    """Successive calls on one Generator give fresh noise (the planner's rng advances)."""
    rng = np.random.default_rng(5)
    a = colored_noise(1.0, (4, 30), rng)
    b = colored_noise(1.0, (4, 30), rng)
    assert not np.allclose(a, b)


def test_independent_along_leading_axes():
    """Correlation is along the last axis only: different sequences are uncorrelated."""
    x = colored_noise(2.0, (2, 5000, 30), np.random.default_rng(6))
    corr = np.corrcoef(x[0].ravel(), x[1].ravel())[0, 1]
    assert abs(corr) < 0.05


@pytest.mark.parametrize('beta', [-0.1, -2.0])
def test_negative_beta_raises(beta):
    with pytest.raises(ValueError, match='beta'):
        colored_noise(beta, (2, 10), np.random.default_rng(0))
