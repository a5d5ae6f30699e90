"""BSS Eval v4 against museval itself, SI-SDR, whole-track SDR and the error signals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal as sps
import torch

from stemwright.models.evaluation.block_toeplitz import (
    BlockToeplitzSolver,
    levinson_factor,
    solve_block_toeplitz,
)
from stemwright.models.evaluation.evaluate import load_museval_metrics
from stemwright.models.evaluation.metrics import (
    bss_eval,
    decompose,
    fir_sum,
    lagged_correlations,
    sdr,
    si_sdr,
)

SR = 8000


def _sources(n_src: int, seconds: float, channels: int = 2, seed: int = 0) -> np.ndarray:
    """Coloured, partly correlated noises with a stereo spread: well-posed references."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    out = np.empty((n_src, channels, n))
    for j in range(n_src):
        b, a = sps.butter(2, [0.02 + 0.1 * j, 0.3 + 0.15 * j], btype="band")
        base = sps.lfilter(b, a, rng.standard_normal(n))
        for c in range(channels):
            out[j, c] = base * (0.6 + 0.4 * c) + 0.3 * rng.standard_normal(n) * 0.1
        out[j] *= np.abs(np.sin(np.linspace(0, 3 + j, n))) + 0.2  # loudness changes
    return out


def _estimates(refs: np.ndarray, seed: int = 1) -> np.ndarray:
    """Target, a filtered copy, leakage of the others and noise."""
    rng = np.random.default_rng(seed)
    n_src = refs.shape[0]
    est = 0.7 * refs + 0.2 * np.roll(refs, 3, axis=-1)
    est += 0.15 * refs[np.roll(np.arange(n_src), 1)]
    est += 0.02 * rng.standard_normal(refs.shape)
    return est


def _museval(refs: np.ndarray, ests: np.ndarray, win: int, hop: int | None = None):
    mm = load_museval_metrics()
    if mm is None:
        pytest.skip("museval is not installed (pip install museval)")
    if ests.shape[-1] != refs.shape[-1]:  # museval.evaluate's pad_or_truncate
        ests = np.pad(ests, [(0, 0), (0, 0), (0, max(0, refs.shape[-1] - ests.shape[-1]))])
        ests = ests[..., :refs.shape[-1]]
    return mm.bss_eval(refs.transpose(0, 2, 1), ests.transpose(0, 2, 1), window=win,
                       hop=win if hop is None else hop,
                       compute_permutation=False, framewise_filters=False,
                       bsseval_sources_version=False)


def test_matches_museval_with_silent_window_and_short_estimate() -> None:
    refs = _sources(3, 3.5)
    refs[1, :, SR:2 * SR] = 0.0  # a silent second: museval skips it for every source
    ests = _estimates(refs)[..., :-700]  # shorter: padded as museval.evaluate does
    ref = _museval(refs, ests, SR)
    ours = bss_eval(refs, ests, SR, SR, device="cpu")
    for i, name in enumerate(("sdr", "isr", "sir", "sar")):
        got = getattr(ours, name)
        assert got.shape == ref[i].shape == (3, 3)  # the last half second is dropped
        assert np.array_equal(np.isnan(got), np.isnan(ref[i]))
        assert np.nanmax(np.abs(got - ref[i])) < 1e-6, name
    assert np.isnan(ours.sdr[:, 1]).all()
    assert not ours.unreliable.any()
    med = ours.medians()
    assert med["sdr"].shape == (3,) and np.all(np.isfinite(med["sdr"]))


def test_matches_museval_mono_and_one_window() -> None:
    refs = _sources(2, 0.8, channels=1, seed=3)  # shorter than the window: one window
    ests = _estimates(refs, seed=4)
    ref = _museval(refs, ests, SR)
    ours = bss_eval(refs, ests, SR, SR, device="cpu")
    assert ours.sdr.shape == (2, 1)
    for i, name in enumerate(("sdr", "isr", "sir", "sar")):
        assert np.max(np.abs(getattr(ours, name) - ref[i])) < 1e-6, name


@pytest.mark.parametrize(("win", "hop"), [(SR, SR // 2), (400, 400)])
def test_matches_museval_overlapping_and_short_windows(win: int, hop: int) -> None:
    """Overlapping windows (the heads and tails of the whole-track projections) and windows
    shorter than the 512-tap filters (the spectral path) agree with museval to 1e-6 dB."""
    refs = _sources(3, 2.5 if win == SR else 0.4, seed=11)
    ests = _estimates(refs, seed=12)
    ref = _museval(refs, ests, win, hop)
    ours = bss_eval(refs, ests, win, hop, device="cpu")
    for i, name in enumerate(("sdr", "isr", "sir", "sar")):
        got = getattr(ours, name)
        assert got.shape == ref[i].shape
        assert np.max(np.abs(got - ref[i])) < 1e-6, name


def _block_toeplitz(n_lag: int, k: int, seed: int) -> torch.Tensor:
    """R(0..L-1) [1, L, k, k] of coloured, correlated noises: a positive definite system."""
    x = _sources(1, 0.5, channels=k, seed=seed)[0]
    n = x.shape[-1]
    r = np.stack([x[:, :n - d] @ x[:, d:].T for d in range(n_lag)])  # R(d)[q, p]
    return torch.from_numpy(r)[None]


def _dense(r: torch.Tensor) -> torch.Tensor:
    n_lag, k = r.shape[1], r.shape[2]
    full = torch.cat([r[0, 1:].flip(0).transpose(-1, -2), r[0]])  # lags 1-L..L-1
    lag = torch.arange(n_lag)
    gram = full[lag[:, None] - lag[None, :] + n_lag - 1]  # [a, b, q, p]
    return gram.permute(0, 2, 1, 3).reshape(n_lag * k, n_lag * k)


def test_block_toeplitz_solver_matches_dense_solve() -> None:
    r = _block_toeplitz(24, 3, seed=13)
    gram = _dense(r)
    y = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 24, 3, 2)))
    want = torch.linalg.solve(gram, y.reshape(-1, 2))
    a, b, vf, vb = levinson_factor(r)
    first = torch.zeros(24 * 3, 3, dtype=torch.float64)
    first[:3] = vf[0]
    assert torch.allclose(gram @ a.reshape(-1, 3), first, atol=1e-9 * float(gram.abs().max()))
    solver = BlockToeplitzSolver(r)
    assert torch.allclose(solver.matvec(y).reshape(-1, 2), gram @ y.reshape(-1, 2))
    assert torch.allclose(solver.inverse(y).reshape(-1, 2), want, rtol=1e-6, atol=0)
    got = solve_block_toeplitz(r, y)
    assert got is not None
    assert torch.allclose(got.reshape(-1, 2), want, rtol=1e-10, atol=0)


def test_singular_block_toeplitz_is_left_to_the_dense_solver() -> None:
    r = _block_toeplitz(16, 2, seed=14)
    r[..., 1] = r[..., 0]  # two identical channels: exactly singular
    r[..., 1, :] = r[..., 0, :]
    y = torch.ones(1, 16, 2, 1, dtype=torch.float64)
    assert solve_block_toeplitz(r, y) is None


def test_skip_own_keeps_the_other_sources() -> None:
    refs = _sources(2, 3.0, seed=5)
    refs[0, :, :SR] = 0.0
    ests = _estimates(refs, seed=6)
    anyskip = bss_eval(refs, ests, SR, SR, device="cpu")
    own = bss_eval(refs, ests, SR, SR, skip="own", device="cpu")
    assert np.isnan(anyskip.sdr[:, 0]).all()
    assert np.isnan(own.sdr[0, 0]) and np.isfinite(own.sdr[1, 0])
    assert np.allclose(own.sdr[:, 1:], anyskip.sdr[:, 1:])


def test_duplicated_mono_channel_is_well_posed() -> None:
    """A mono track on both channels makes museval's system singular; here it is dropped
    from the basis, which leaves the projections, hence the scores, well defined."""
    refs = _sources(2, 2.0, seed=7)
    refs[0, 1] = refs[0, 0]
    ests = _estimates(refs, seed=8)
    out = bss_eval(refs, ests, SR, SR, device="cpu")
    for name in ("sdr", "isr", "sir", "sar"):
        assert np.all(np.isfinite(getattr(out, name)))
    assert not out.unreliable.any()
    # the same source given with two slightly different channels scores about the same
    refs2 = refs.copy()
    refs2[0, 1] += 1e-7 * np.random.default_rng(0).standard_normal(refs.shape[-1])
    out2 = bss_eval(refs2, ests, SR, SR, device="cpu")
    assert np.max(np.abs(out2.sir - out.sir)) < 0.05


def test_silent_reference_is_refused() -> None:
    refs = _sources(2, 1.0)
    refs[1] = 0.0
    with pytest.raises(ValueError, match="silent"):
        bss_eval(refs, _estimates(refs), SR, SR, device="cpu")


def test_decomposition_adds_up_and_finds_the_leak() -> None:
    refs = _sources(3, 2.0, seed=9)
    est = refs.copy()
    est[0] = refs[0] + 0.1 * refs[2]  # pure interference, no artifacts
    parts = decompose(refs, est, 0, device="cpu")
    total = parts.target + parts.e_spat + parts.e_interf + parts.e_artif
    assert np.allclose(total, est[0], atol=1e-5)
    leak = np.sum((0.1 * refs[2]) ** 2)
    # the leak, less what delayed copies of the target explain (that part is e_spat)
    interf = np.sum(parts.e_interf.astype(np.float64) ** 2) / leak
    assert 0.8 < interf <= 1.0
    assert np.sum(parts.e_artif.astype(np.float64) ** 2) < 1e-6 * leak


def test_lagged_correlations_and_fir_match_numpy() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3000))
    y = rng.standard_normal((3, 3000))
    r = lagged_correlations(torch.from_numpy(x), torch.from_numpy(y), 40, fft_size=256)
    for p in range(2):
        for q in range(3):
            full = np.correlate(np.pad(x[p], (0, 40)), y[q], mode="valid")[:40]
            assert np.allclose(r[p, q].numpy(), full)
    h = rng.standard_normal((2, 30, 3))
    out = fir_sum(torch.from_numpy(x), torch.from_numpy(h), fft_size=128).numpy()
    want = [sum(np.convolve(h[k, :, c], x[k])[:3000] for k in range(2)) for c in range(3)]
    assert np.allclose(out, np.stack(want))


def test_si_sdr_and_plain_sdr() -> None:
    rng = np.random.default_rng(0)
    s = rng.standard_normal((2, 4000))
    noise = rng.standard_normal((2, 4000))
    e = s + 0.1 * noise
    assert sdr(s, e) == pytest.approx(20.0, abs=0.2)
    assert si_sdr(s, 3.0 * e) == pytest.approx(si_sdr(s, e), abs=1e-9)  # scale-free
    assert sdr(s, 3.0 * e) < 0  # plain SDR is not
    assert si_sdr(s, s) == math.inf
    assert math.isnan(si_sdr(np.zeros_like(s), e)) and math.isnan(sdr(np.zeros_like(s), e))
    assert sdr(s, e[:, :3000]) < sdr(s, e)  # a short estimate is padded with silence
