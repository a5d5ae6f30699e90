"""Separation metrics: BSS Eval v4 (as museval computes it), SI-SDR and whole-track SDR.

BSS Eval v4 (Vincent et al. 2006; Liutkus et al. 2018, the `museval` package) writes an
estimate as `s_hat = s + e_spat + e_interf + e_artif`. The parts come from least-squares
projections of the estimate onto delayed copies (0..511 samples) of the references: onto the
target reference alone (P_j, giving e_spat = P_j - s) and onto all references together
(P_all, giving e_interf = P_all - P_j and e_artif = s_hat - P_all). In v4 the distortion
filters are fitted once on the whole track and then applied window by window (1 s windows,
1 s hop); a window is skipped (NaN) when any reference or estimate in it is silent, and a
track's score is the median over the windows that are left.

`bss_eval` follows museval's algorithm step for step (same Gram system, same filters, same
windows, same skipping; the scores agree to about 1e-7 dB) but is organised for speed, and
works in float64 with torch (on a CUDA GPU when there is one):

* the lagged correlations behind the Gram matrix and the right-hand sides are summed block by
  block in the frequency domain (one batched complex matrix product) instead of one
  full-length FFT per pair of channels;
* the Gram matrix is block Toeplitz, so it is solved by block Levinson (block_toeplitz.py),
  O(L^2 k^3) instead of a dense LU's O(L^3 k^3), for every estimate together, then refined
  to a dense solver's accuracy; museval factorises a dense matrix again for each estimate;
* the projections are filtered once over the whole track; a window's projection (museval
  filters each window's references on their own) differs from that only in its first and
  last L-1 samples, which short convolutions give, and only energies are summed per window.

One deliberate difference: a reference channel that is silent or a copy of another channel
of its source (a mono track in a stereo song) is left out of the basis. It spans nothing
new, so the projections stay the same, but it makes museval's system singular and its
ISR/SIR/SAR numerical noise.

`run_metrics_benchmark` in evaluate.py measures the agreement with museval and the speed-up.
`decompose` returns the error signals themselves (e_spat, e_interf, e_artif) over the whole
track, for listening.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.fft
import torch

from ..separation.devices import resolve_device
from .block_toeplitz import solve_block_toeplitz

FILTER_LEN = 512  # taps of the distortion filters (museval's filters_len)
GAIN_LIMIT = 1e4  # filter gain beyond which ISR, SIR and SAR are numerical noise
ROBUST_RIDGE = 1e-8  # diagonal loading (relative) for `bss_eval(ridge=...)` on such songs
_RIDGE = 1e-10  # relative diagonal loading of the Gram matrix
_CORR_FFT = 4096  # FFT size for the block-wise lagged correlations
_FIR_FFT = 16384  # FFT size for the overlap-save filtering in `decompose`
_WINDOW_BYTES = 192 << 20  # spectra held at once in the window loop
_CORR_BYTES = 32 << 20  # spectra per step of `lagged_correlations` (cache-sized is faster)


@dataclass
class BssEvalFilters:
    """The distortion filters fitted on the whole track, kept so `decompose` can reuse them.

    `interf` [S_est, S_ref, C_ref, L, C_out]: each estimate projected on all references;
    `spatial` [S, C_ref, L, C_out]: each estimate projected on its own reference.
    """

    interf: torch.Tensor
    spatial: torch.Tensor
    gain: np.ndarray  # [S_est] filter gain, see `fit_filters`; above GAIN_LIMIT is suspect


@dataclass
class BssEvalScores:
    """Framewise BSS Eval v4 scores, each float64 [sources, windows] in dB (NaN = skipped)."""

    sdr: np.ndarray
    isr: np.ndarray
    sir: np.ndarray
    sar: np.ndarray
    window: int  # samples
    hop: int
    filters: BssEvalFilters  # emptied (gain only) unless keep_filters was asked for

    @property
    def unreliable(self) -> np.ndarray:
        """[S] bool: ISR, SIR and SAR are numerical noise for this source (see bss_eval)."""
        return self.filters.gain > GAIN_LIMIT

    def medians(self) -> dict[str, np.ndarray]:
        """Median over the windows that were not skipped, per source: {metric: [S]}."""
        out = {}
        for name in ("sdr", "isr", "sir", "sar"):
            values = getattr(self, name)
            out[name] = np.array([_nanmedian(row) for row in values])
        return out


@dataclass
class Decomposition:
    """An estimate split into target, spatial, interference and artifact signals [C, T].

    target + e_spat + e_interf + e_artif equals the estimate (up to float rounding).
    """

    target: np.ndarray
    e_spat: np.ndarray
    e_interf: np.ndarray
    e_artif: np.ndarray


def metrics_device(device: str | torch.device = "auto") -> torch.device:
    """A device for float64 metrics: CUDA or CPU (Apple MPS has no float64)."""
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    return dev if dev.type in ("cpu", "cuda") else torch.device("cpu")


# --------------------------------------------------------------------------------------
# BSS Eval v4
# --------------------------------------------------------------------------------------

def bss_eval(references: np.ndarray, estimates: np.ndarray, window: int = 44100,
             hop: int = 44100, skip: str = "any", ridge: float = 0.0,
             filters_len: int = FILTER_LEN, device: str | torch.device = "auto",
             keep_filters: bool = False) -> BssEvalScores:
    """BSS Eval v4 image metrics of `estimates` against `references`, both [S, C, T].

    Matches `museval.evaluate(refs, ests, win=window, hop=hop)` (with museval's [S, T, C]
    layout): estimates are zero-padded or cut to the references' length; the last partial
    window is dropped; `skip="any"` skips a window for every source when any reference or
    estimate is silent in it (museval), `skip="own"` only for the sources whose own
    reference or estimate is silent there (useful when some stems play only part of a song).
    An estimate that is silent throughout (museval refuses those) gets NaN and does not
    count as silent in the other sources' windows; its reference stays in the projections.

    References with numerically empty bands (lossy-coded audio above its cut-off, a mono
    track copied to both channels) make the Gram system singular: museval's filters then
    become huge and cancel each other, and its ISR/SIR/SAR turn into noise (SDR does not
    depend on the filters). `scores.filters.gain` flags it (above GAIN_LIMIT); `ridge`
    (e.g. ROBUST_RIDGE) loads the diagonal to get stable values instead of museval's.
    """
    if skip not in ("any", "own"):
        raise ValueError("skip must be 'any' or 'own'")
    refs, ests = _prepare(references, estimates)
    dev = metrics_device(device)
    n_src, n_chan, length = refs.shape
    if n_src == 0 or length == 0:
        raise ValueError("bss_eval needs at least one source and one sample")
    r = torch.from_numpy(refs).to(dev)
    e = torch.from_numpy(ests).to(dev)
    filt = fit_filters(r, e, filters_len, ridge)
    starts, size = _frames(length, int(window), int(hop))
    if size >= filters_len - 1:
        out = _window_scores_direct(r, e, filt, starts, size, skip)
    else:  # windows shorter than the filters: the spectral way handles them
        out = _window_scores(r, e, filt, starts, size, skip)
    if not keep_filters:
        filt = BssEvalFilters(filt.interf[:0], filt.spatial[:0], filt.gain)
    return BssEvalScores(*out, window=int(window), hop=int(hop), filters=filt)


def fit_filters(refs: torch.Tensor, ests: torch.Tensor, filters_len: int = FILTER_LEN,
                ridge: float = 0.0) -> BssEvalFilters:
    """Least-squares distortion filters over the whole track (museval's C and Cj).

    refs, ests: [S, C, T] on one device (float32 or float64; the arithmetic is float64,
    block by block, so long songs need no float64 copy). The Gram matrix of the delayed
    copies is solved once for every estimate's correlations. A reference channel that is
    silent or a copy of another channel of the same source (a mono track in a stereo
    song) adds nothing to the span and would make the system singular: it is left out of
    the basis, which leaves every projection, hence every score, as it is.
    """
    n_src, n_chan, _ = refs.shape
    L = filters_len
    k = n_src * n_chan
    dev = refs.device
    flat_r = refs.reshape(k, -1)
    flat_e = ests.reshape(k, -1)
    # r[p, q, d] = sum_n x_p[n + d] y_q[n] for d in 0..L-1, x = refs then ests, y = refs
    r = lagged_correlations([flat_r, flat_e], flat_r, L)
    rr, re = r[:k], r[k:]
    rr[..., 0] = 0.5 * (rr[..., 0] + rr[..., 0].T)  # equal up to rounding: make G symmetric
    keep = _basis_channels(rr[..., 0], n_src, n_chan)
    kb = len(keep)
    idx = torch.tensor(keep, device=dev)
    rr_b = rr[idx][:, idx]
    # museval adds float eps to the diagonal; `ridge` adds that fraction of the mean
    # diagonal more, for references too degenerate to project on (see bss_eval)
    # G[(q, a), (p, b)] = <delay_a y_q, delay_b y_p> = corr_{p,q}(a - b): block Toeplitz in
    # lag-major order, block (a, b) = R(a - b) with R(d)[q, p] = corr_{p,q}(d)
    blocks = rr_b.permute(2, 1, 0).contiguous()  # [L, q, p]
    scale = float(blocks[0].diagonal().mean())
    blocks[0].diagonal().add_(torch.finfo(torch.float64).eps + ridge * scale)
    # D[(a, q), (e, c)] = <delay_a y_q, est_{e,c}> = corr_{(e,c), q}(a)
    rhs = re[:, idx].permute(2, 1, 0).contiguous()  # [L, q, (e, c)]
    sol = _solve_toeplitz(blocks[None], rhs[None])[0]  # [L, q, (e, c)]
    interf = torch.zeros(n_src, k, L, n_chan, dtype=torch.float64, device=dev)
    interf[:, idx] = sol.reshape(L, kb, n_src, n_chan).permute(2, 1, 0, 3)  # [e, (j, cj), a, c]
    interf = interf.reshape(n_src, n_src, n_chan, L, n_chan)
    spatial = torch.zeros(n_src, n_chan, L, n_chan, dtype=torch.float64, device=dev)
    # each source's own system (its channels' rows and columns), batched by basis size
    rows_of = [[i for i, q in enumerate(keep) if q // n_chan == j] for j in range(n_src)]
    for size in sorted({len(rows) for rows in rows_of}):
        group = [j for j in range(n_src) if len(rows_of[j]) == size]
        sel = torch.tensor([rows_of[j] for j in group], device=dev)  # [G, size]
        own_r = blocks[:, sel[:, :, None], sel[:, None, :]].permute(1, 0, 2, 3)
        cols = torch.tensor([[j * n_chan + c for c in range(n_chan)] for j in group],
                            device=dev)
        own_y = rhs[:, sel[:, :, None], cols[:, None, :]].permute(1, 0, 2, 3)
        own = _solve_toeplitz(own_r, own_y)  # [G, L, size, C]
        for g, j in enumerate(group):
            chans = [keep[i] % n_chan for i in rows_of[j]]
            spatial[j, chans] = own[g].permute(1, 0, 2)
    # filter gain: energy the filters would pass from the references taken one by one,
    # over the estimate's energy; about 1e2 for sound projections, 1e6 and far more when
    # large filters cancel each other (references with numerically empty bands)
    ref_energy = torch.diagonal(rr[..., 0]).reshape(n_src, n_chan)
    passed = torch.einsum("ejkac,jk->e", interf ** 2, ref_energy)
    est_energy = (torch.linalg.vector_norm(flat_e, dim=-1, dtype=torch.float64) ** 2
                  ).reshape(n_src, n_chan).sum(-1)
    gain = (passed / est_energy.clamp_min(1e-300)).cpu().numpy()
    return BssEvalFilters(interf=interf, spatial=spatial, gain=gain)


def _basis_channels(energy: torch.Tensor, n_src: int, n_chan: int) -> list[int]:
    """Reference channels (flat index) that span something new within their source.

    `energy` [K, K] holds the lag-0 inner products. A channel is dropped when it is silent
    or when less than 1e-12 of its energy lies outside the channels kept before it.
    """
    e = energy.cpu().numpy()
    keep: list[int] = []
    for j in range(n_src):
        mine: list[int] = []
        for c in range(j * n_chan, (j + 1) * n_chan):
            own = e[c, c]
            if own <= 0.0:
                continue
            if mine:
                g = e[np.ix_(mine, mine)]
                b = e[mine, c]
                explained = float(b @ np.linalg.lstsq(g, b, rcond=None)[0])
                if own - explained <= 1e-12 * own:
                    continue
            mine.append(c)
        if not mine:
            raise ValueError(f"reference {j} is silent; BSS Eval needs every reference to "
                             "have sound (leave absent stems out)")
        keep += mine
    return keep


def _solve_toeplitz(blocks: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Solve the block-Toeplitz Gram systems blocks [B, L, k, k], rhs [B, L, k, m] by block
    Levinson; a system where that fails (singular or nearly so) is solved densely by
    `_solve`, as before."""
    sol = solve_block_toeplitz(blocks, rhs)
    if sol is not None:
        return sol
    batch, n_lag, k, m = rhs.shape
    lag = torch.arange(n_lag, device=blocks.device)
    full = torch.cat([blocks[:, 1:].flip(1).transpose(-1, -2), blocks], dim=1)  # 1-L..L-1
    out = []
    for i in range(batch):
        # dense lag-major matrix: [(a, q), (b, p)] = R(a - b)[q, p]
        gram = full[i, lag[:, None] - lag[None, :] + n_lag - 1]  # [a, b, q, p]
        gram = gram.permute(0, 2, 1, 3).reshape(n_lag * k, n_lag * k)
        out.append(_solve(gram, rhs[i].reshape(n_lag * k, m)).reshape(n_lag, k, m))
        del gram
    return torch.stack(out)


def _solve(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Solve a x = b by LU like museval; least squares (as museval falls back to) when a is
    exactly singular."""
    lu, pivots, info = torch.linalg.lu_factor_ex(a)
    if int(info) == 0:
        return torch.linalg.lu_solve(lu, pivots, b)
    del lu
    # Exactly singular (e.g. two stems that are the same recording). An SVD least squares
    # on thousands of unknowns takes minutes of CPU per window; a vanishing ridge gives the
    # same minimum-norm solution in the limit, in one more LU.
    scale = float(a.diagonal().abs().mean()) or 1.0
    ridged = a.clone()
    ridged.diagonal().add_(1e-10 * scale)
    lu, pivots, info = torch.linalg.lu_factor_ex(ridged)
    if int(info) == 0:
        return torch.linalg.lu_solve(lu, pivots, b)
    del lu, ridged
    driver = "gelsy" if a.device.type == "cpu" else None
    return torch.linalg.lstsq(a, b, driver=driver).solution


def lagged_correlations(x: torch.Tensor | Sequence[torch.Tensor], y: torch.Tensor, lags: int,
                        fft_size: int = _CORR_FFT) -> torch.Tensor:
    """r[p, q, d] = sum_n x[p, n + d] * y[q, n] for d in 0..lags-1 (zero outside 0..T-1),
    in float64. `x` may be several [P_i, T] tensors, taken as one (without joining them).

    Summed over blocks in the frequency domain: one batched matrix product per block group,
    far cheaper than a full-length FFT per pair when only a few hundred lags are wanted.
    """
    xs_all = [x] if isinstance(x, torch.Tensor) else list(x)
    n_x = sum(t.shape[0] for t in xs_all)
    n_fft = max(fft_size, 2 * lags)
    step = n_fft - lags + 1
    length = y.shape[-1]
    n_blocks = max(1, -(-length // step))
    n_bins = n_fft // 2 + 1
    acc = torch.zeros(n_bins, n_x, y.shape[0], dtype=torch.complex128, device=y.device)
    group = max(1, _CORR_BYTES // (16 * n_bins * (n_x + y.shape[0])))
    for b0 in range(0, n_blocks, group):
        b1 = min(n_blocks, b0 + group)
        xp = torch.cat([_span(t, b0 * step, b1 * step + lags - 1) for t in xs_all])
        xs = xp.unfold(-1, n_fft, step)  # [P, m, N]
        ys = _span(y, b0 * step, b1 * step).reshape(y.shape[0], b1 - b0, step)
        # contiguous operands: a strided or lazily conjugated batched complex matmul
        # takes torch's slow path (tens of times slower)
        xf = torch.fft.rfft(xs, n=n_fft).permute(2, 0, 1).contiguous()  # [F, P, m]
        yf = torch.fft.rfft(ys, n=n_fft).conj().permute(2, 1, 0).contiguous()  # [F, m, Q]
        acc += xf @ yf
    return torch.fft.irfft(acc.permute(1, 2, 0), n=n_fft)[..., :lags]


def _frames(length: int, window: int, hop: int) -> tuple[list[int], int]:
    """Window starts and size as museval's Framing: full windows only, or one whole one."""
    if window <= 0 or hop <= 0:
        raise ValueError("window and hop must be positive")
    if window >= length:
        return [0], length
    n_win = (length - window + hop) // hop
    return [t * hop for t in range(n_win)], window


def _window_scores(refs: torch.Tensor, ests: torch.Tensor, filt: BssEvalFilters,
                   starts: list[int], size: int, skip: str
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """SDR, ISR, SIR, SAR per source and window, from spectra (Parseval), [S, W] each."""
    n_src, n_chan, _ = refs.shape
    L = filt.spatial.shape[2]
    k = n_src * n_chan
    n_fft = scipy.fft.next_fast_len(size + L - 1, real=True)
    n_bins = n_fft // 2 + 1
    # Filter spectra: interf [F, (j, cj), (e, c)], spatial [F, j, cj, c]
    cf = torch.fft.rfft(filt.interf.permute(1, 2, 0, 4, 3), n=n_fft)  # [j, cj, e, c, F]
    cf = cf.reshape(k, k, n_bins).permute(2, 0, 1).contiguous()
    sf = torch.fft.rfft(filt.spatial.permute(0, 1, 3, 2), n=n_fft).permute(3, 0, 1, 2)
    edges = [0, n_bins - 1] if n_fft % 2 == 0 else [0]  # bins counted once, not twice

    def energy(spec: torch.Tensor) -> torch.Tensor:
        """Energy of the real signals whose rfft is `spec` [F, W, S, C], per [W, S]."""
        r = torch.view_as_real(spec)
        total = torch.linalg.vector_norm(r, dim=(0, 3, 4)) ** 2
        return (2.0 * total - r[edges].square().sum(dim=(0, 3, 4))) / n_fft

    # an estimate silent over the whole track (museval refuses those) is not scored and
    # does not make the other sources' windows count as silent
    mute = (ests == 0).all(dim=-1).all(dim=-1)
    results = {name: [] for name in ("sdr", "isr", "sir", "sar")}
    group = max(1, _WINDOW_BYTES // (16 * n_bins * k * 4))
    for g0 in range(0, len(starts), group):
        chunk = starts[g0:g0 + group]
        rw = torch.stack([refs[..., s:s + size] for s in chunk]).double()  # [W, S, C, n]
        ew = torch.stack([ests[..., s:s + size] for s in chunk]).double()
        w = len(chunk)
        # SDR needs no projection: e_spat + e_interf + e_artif = s_hat - s
        s_energy = (rw ** 2).sum(dim=(-1, -2))
        sdr = _db(s_energy, ((ew - rw) ** 2).sum(dim=(-1, -2)))
        rf = torch.fft.rfft(rw, n=n_fft).permute(3, 0, 1, 2)  # [F, W, S, C]
        ef = torch.fft.rfft(ew, n=n_fft).permute(3, 0, 1, 2)
        p_all = (rf.reshape(n_bins, w, k) @ cf).reshape(n_bins, w, n_src, n_chan)
        p_own = sum(rf[..., c:c + 1] * sf[:, None, :, c, :] for c in range(n_chan))
        isr = _db(s_energy, energy(p_own - rf))
        sir = _db(energy(p_own), energy(p_all - p_own))
        sar = _db(energy(p_all), energy(ef - p_all))
        del rf, ef, p_all, p_own
        silent_r = (rw.sum(dim=2) == 0).all(dim=-1)  # museval: channel sum zero throughout
        silent_e = (ew.sum(dim=2) == 0).all(dim=-1) & ~mute  # [W, S]
        silent = silent_r | silent_e
        if skip == "any":
            silent = silent.any(dim=1, keepdim=True).expand_as(silent)
        silent = silent | mute
        for name, value in (("sdr", sdr), ("isr", isr), ("sir", sir), ("sar", sar)):
            results[name].append(torch.where(silent, torch.nan, value))
    return tuple(torch.cat(results[n]).T.cpu().numpy() for n in ("sdr", "isr", "sir", "sar"))


def _window_scores_direct(refs: torch.Tensor, ests: torch.Tensor, filt: BssEvalFilters,
                          starts: list[int], size: int, skip: str
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """SDR, ISR, SIR, SAR per source and window [S, W], with the projections filtered once
    over the whole track instead of once per window.

    museval filters each window's references on their own (zero before the window, and a
    tail of L-1 samples after it). Over a window [s, s + n) that equals the whole-track
    projection P less h_s, the part of P that samples before s put into [s, s + L - 1);
    and the tail equals h_{s+n}. These "heads" are short convolutions of L-1 samples, so
    each window costs O(L log L) beyond the energy sums. Needs n >= L - 1.
    """
    n_src, n_chan, length = refs.shape
    L = filt.spatial.shape[2]
    k = n_src * n_chan
    dev = refs.device
    hop = starts[1] - starts[0] if len(starts) > 1 else size
    # one filter bank: outputs [P_all (e, c) | P_own (j, c)] from the k reference channels
    bank = torch.zeros(k, L, 2 * k, dtype=torch.float64, device=dev)
    bank[:, :, :k] = filt.interf.permute(1, 2, 3, 0, 4).reshape(k, L, k)
    for j in range(n_src):
        sl = slice(j * n_chan, (j + 1) * n_chan)
        bank[sl, :, k + j * n_chan:k + (j + 1) * n_chan] = filt.spatial[j]
    n_head = 2 * L
    bank_f = torch.fft.rfft(bank.permute(0, 2, 1), n=n_head).permute(2, 0, 1).contiguous()
    mute = (ests == 0).all(dim=-1).all(dim=-1)
    flat_r = refs.reshape(k, length)
    names = ("sdr", "spat", "own", "interf", "all", "artif")
    results = {name: [] for name in ("sdr", "isr", "sir", "sar")}
    per_window = max(hop, 1) * k * 8 * 8  # about the bytes held per window
    group = max(1, _WINDOW_BYTES // per_window)
    for g0 in range(0, len(starts), group):
        chunk = starts[g0:g0 + group]
        t0, t1 = chunk[0], chunk[-1] + size
        w = len(chunk)
        x = _span(flat_r, t0 - L + 1, t1)  # with the history the first heads need
        p = fir_sum(x, bank)[:, L - 1:]  # whole-track projections over [t0, t1)
        a_all = p[:k].reshape(n_src, n_chan, -1)
        a_own = p[k:].reshape(n_src, n_chan, -1)
        r = refs[..., t0:t1].double()
        e = ests[..., t0:t1].double()
        # heads at every window start and end: h_b(b + i) = sum_{t < b} h(b + i - t) x(t)
        bounds = sorted(set(chunk) | {s + size for s in chunk})
        where = {b: i for i, b in enumerate(bounds)}
        segs = torch.stack([x[:, b - t0:b - t0 + L - 1] for b in bounds])  # [B, k, L-1]
        seg_f = torch.fft.rfft(segs, n=n_head).permute(2, 0, 1).contiguous()  # [F, B, k]
        heads = torch.fft.irfft((seg_f @ bank_f).permute(1, 2, 0), n=n_head)
        heads = heads[..., L - 1:2 * L - 2]
        h_all = heads[:, :k].reshape(len(bounds), n_src, n_chan, L - 1)
        h_own = heads[:, k:].reshape(len(bounds), n_src, n_chan, L - 1)
        # each energy's signal over the whole span, and what a window start takes from its
        # first L-1 samples (the window's signal there is full - head)
        signals = {"sdr": (e - r, None), "spat": (a_own - r, h_own), "own": (a_own, h_own),
                   "interf": (a_all - a_own, h_all - h_own), "all": (a_all, h_all),
                   "artif": (e - a_all, -h_all)}
        first = torch.tensor([where[s] for s in chunk], device=dev)
        last = torch.tensor([where[s + size] for s in chunk], device=dev)
        offsets = [s - t0 for s in chunk]
        energy = {}
        for name in names:
            sig, head = signals[name]
            body = _window_energy(sig, size, hop, w)
            if head is not None:
                lead = torch.stack([sig[..., o:o + L - 1] for o in offsets])  # [W, S, C, L-1]
                fixed = lead - head[first]
                body = body + (fixed.square() - lead.square()).sum(dim=(2, 3))
                body = body + head[last].square().sum(dim=(2, 3))  # the tail
            energy[name] = body
        s_energy = _window_energy(r, size, hop, w)
        scores = {"sdr": _db(s_energy, energy["sdr"]), "isr": _db(s_energy, energy["spat"]),
                  "sir": _db(energy["own"], energy["interf"]),
                  "sar": _db(energy["all"], energy["artif"])}
        rsum = r.sum(dim=1).unfold(-1, size, hop)[:, :w]  # museval: channel sum zero
        esum = e.sum(dim=1).unfold(-1, size, hop)[:, :w]
        silent_r = (rsum == 0).all(dim=-1).T  # [W, S]
        silent_e = (esum == 0).all(dim=-1).T & ~mute
        silent = silent_r | silent_e
        if skip == "any":
            silent = silent.any(dim=1, keepdim=True).expand_as(silent)
        silent = silent | mute
        for name, value in scores.items():
            results[name].append(torch.where(silent, torch.nan, value))
    return tuple(torch.cat(results[n]).T.cpu().numpy() for n in ("sdr", "isr", "sir", "sar"))


def _window_energy(sig: torch.Tensor, size: int, hop: int, count: int) -> torch.Tensor:
    """Energy of sig [S, C, T] in `count` windows of `size` every `hop` samples -> [W, S]."""
    frames = sig.unfold(-1, size, hop)[:, :, :count]  # a view: [S, C, W, size]
    return (torch.linalg.vector_norm(frames, dim=(1, 3)) ** 2).T


def _db(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """10 log10(num / den) with museval's convention: +inf when den is 0."""
    return torch.where(den == 0, torch.inf, 10 * torch.log10(num / den))


def _prepare(references: np.ndarray, estimates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[S, C, T] pair, float32 kept as is (else float64); estimates padded or cut to the
    references' length."""
    refs, ests = np.asarray(references), np.asarray(estimates)
    if refs.dtype != np.float32 or ests.dtype != np.float32:
        refs, ests = refs.astype(np.float64, copy=False), ests.astype(np.float64, copy=False)
    if refs.ndim == 2:
        refs, ests = refs[:, None], ests[:, None] if ests.ndim == 2 else ests
    if refs.ndim != 3 or ests.ndim != 3 or refs.shape[:2] != ests.shape[:2]:
        raise ValueError(f"references {refs.shape} and estimates {ests.shape} must both be "
                         "[sources, channels, samples] with matching sources and channels")
    length = refs.shape[-1]
    if ests.shape[-1] < length:
        ests = np.pad(ests, [(0, 0), (0, 0), (0, length - ests.shape[-1])])
    return np.ascontiguousarray(refs), np.ascontiguousarray(ests[..., :length])


def _span(x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """x[:, start:stop] in float64, zeros where the range runs outside 0..T-1."""
    length = x.shape[-1]
    lo, hi = max(start, 0), min(stop, length)
    part = x[:, lo:hi].double() if hi > lo else x[:, :0].double()
    if lo - start or stop - max(hi, lo):
        part = torch.nn.functional.pad(part, (lo - start, stop - max(hi, lo)))
    return part


def _nanmedian(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(np.median(finite)) if finite.size else math.nan


# --------------------------------------------------------------------------------------
# Error signals for listening
# --------------------------------------------------------------------------------------

def decompose(references: np.ndarray, estimates: np.ndarray, index: int,
              filters: BssEvalFilters | None = None, device: str | torch.device = "auto"
              ) -> Decomposition:
    """BSS Eval decomposition of estimate `index` over the whole track, as float32 [C, T].

    e_interf is what of the other references leaked in, e_artif what no filtering of the
    references explains (musical noise, smearing). Pass `filters` from
    `bss_eval(..., keep_filters=True)` to skip refitting them.
    """
    refs, ests = _prepare(references, estimates)
    dev = metrics_device(device)
    r = torch.from_numpy(refs).to(dev)
    if filters is None or filters.interf.shape[0] == 0:
        filters = fit_filters(r, torch.from_numpy(ests).to(dev))
    n_src, n_chan, length = refs.shape
    interf = filters.interf[index].to(dev)  # [S, C, L, C_out]
    spatial = filters.spatial[index].to(dev)  # [C, L, C_out]
    p_all = fir_sum(r.reshape(n_src * n_chan, length),
                    interf.reshape(n_src * n_chan, *interf.shape[2:]))
    p_own = fir_sum(r[index], spatial)
    target = r[index].double()
    est = torch.from_numpy(ests[index]).to(dev).double()
    parts = (target, p_own - target, p_all - p_own, est - p_all)
    return Decomposition(*(p.to(torch.float32).cpu().numpy() for p in parts))


def fir_sum(x: torch.Tensor, h: torch.Tensor, fft_size: int = _FIR_FFT) -> torch.Tensor:
    """y[c] = sum_k (h[k, :, c] * x[k])[:T]: causal FIR filtering, overlap-save by blocks.

    x [K, T], h [K, L, C_out] -> [C_out, T].
    """
    k, length = x.shape
    L = h.shape[1]
    n_fft = max(fft_size, 2 * L)
    step = n_fft - L + 1
    n_blocks = max(1, -(-length // step))
    hf = torch.fft.rfft(h.permute(2, 0, 1).double(), n=n_fft).permute(2, 1, 0).contiguous()
    out = []
    group = max(1, _WINDOW_BYTES // (16 * (n_fft // 2 + 1) * k))
    for b0 in range(0, n_blocks, group):
        b1 = min(n_blocks, b0 + group)
        seg = _span(x, b0 * step - L + 1, b1 * step).unfold(-1, n_fft, step)  # [K, m, N]
        xf = torch.fft.rfft(seg, n=n_fft).permute(2, 1, 0).contiguous()  # [F, m, K]
        y = torch.fft.irfft((xf @ hf).permute(2, 1, 0), n=n_fft)  # [C_out, m, N]
        out.append(y[..., L - 1:].reshape(h.shape[2], -1))
    return torch.cat(out, dim=-1)[:, :length]


# --------------------------------------------------------------------------------------
# Whole-track metrics
# --------------------------------------------------------------------------------------

def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR in dB over the whole track (all channels as one vector).

    NaN when the reference is silent; +inf for a perfect (rescaled) estimate.
    """
    s = np.asarray(reference, dtype=np.float64).ravel()
    e = _fit(estimate, reference).ravel()
    ss = float(s @ s)
    if ss == 0.0:
        return math.nan
    target = (float(e @ s) / ss) * s
    return _ratio_db(float(target @ target), float(np.sum((target - e) ** 2)))


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Plain whole-track SDR 10 log10(|s|^2 / |s - s_hat|^2) in dB (cSDR / uSDR).

    NaN when the reference is silent.
    """
    s = np.asarray(reference, dtype=np.float64)
    e = _fit(estimate, reference)
    ss = float(np.sum(s * s))
    if ss == 0.0:
        return math.nan
    return _ratio_db(ss, float(np.sum((s - e) ** 2)))


def _fit(estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    e = np.asarray(estimate, dtype=np.float64)
    length = np.shape(reference)[-1]
    if e.shape[-1] < length:
        e = np.pad(e, [(0, 0)] * (e.ndim - 1) + [(0, length - e.shape[-1])])
    return e[..., :length]


def _ratio_db(num: float, den: float) -> float:
    if den == 0.0:
        return math.inf
    if num == 0.0:
        return -math.inf
    return 10.0 * math.log10(num / den)


__all__ = ["FILTER_LEN", "BssEvalScores", "BssEvalFilters", "Decomposition", "bss_eval",
           "fit_filters", "decompose", "lagged_correlations", "fir_sum", "si_sdr", "sdr",
           "metrics_device"]
