"""Solving symmetric positive definite block-Toeplitz systems (BSS Eval's Gram systems).

BSS Eval's Gram matrix of delayed references is block Toeplitz: with the unknowns ordered
lag-major, block (a, b) is R(a - b), a k x k matrix of lagged correlations, and
R(-d) = R(d)^T. A dense LU of its (L k)^2 entries costs O(L^3 k^3) (seconds for six stereo
stems and 512 lags); the block Levinson-Whittle recursion below costs O(L^2 k^3). On music
the system is very ill-conditioned and the recursion alone is only good to about 1e-3, so
`solve_block_toeplitz` refines it (each step two FFT products) to a dense LU's accuracy,
checks the residual, and says (None) when the system is too close to singular for that.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def _one_thread(dev: torch.device) -> Iterator[None]:
    """Run a loop of tiny CPU ops on one thread: on a busy machine, torch's thread pool
    makes each of them tens of times slower."""
    if dev.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def levinson_factor(r: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Whittle's block Levinson recursion for T[(i, q), (j, p)] = R(i - j)[q, p].

    r [B, L, k, k]: R(0)..R(L-1), R(-d) = R(d)^T, T positive definite. Returns the monic
    forward predictor a [B, L, k, k] (a_0 = I), the monic backward one b (b_{L-1} = I)
    and their error matrices vf, vb [B, k, k]: T a = [vf, 0, .., 0], T b = [0, .., 0, vb].
    Raises torch.linalg.LinAlgError when a leading block is singular.
    """
    batch, n_lag, k, _ = r.shape
    dt, dev = torch.float64, r.device
    r = r.to(dt)
    zero = torch.zeros_like(r[:, :1])
    # hf[:, :, (L-1-n) k:] = [R(n) .. R(1), 0]: sum_i R(n - i) a_i over blocks 0..n
    hf = torch.cat([r[:, 1:].flip(1), zero], 1).permute(0, 2, 1, 3).reshape(
        batch, k, n_lag * k)
    # vt[:, :, :(n+1) k] = [0, R(1)^T .. R(n)^T]: sum_i R(-(i+1)) b_i, b kept one block down
    vt = torch.cat([zero, r[:, 1:].transpose(-1, -2)], 1).permute(0, 2, 1, 3).reshape(
        batch, k, n_lag * k)
    buf = torch.zeros(batch, (n_lag + 1) * k, 2 * k, dtype=dt, device=dev)  # [b down | a]
    eye = torch.eye(k, dtype=dt, device=dev).expand(batch, k, k)
    buf[:, k:2 * k, :k] = eye
    buf[:, :k, k:] = eye
    vf = r[:, 0].clone()
    vb = r[:, 0].clone()
    with _one_thread(dev):
        for n in range(1, n_lag):
            rows = buf[:, :(n + 1) * k]
            shifted, a_old = rows[..., :k], rows[..., k:]
            ef = hf[:, :, (n_lag - 1 - n) * k:] @ a_old
            eb = vt[:, :, :(n + 1) * k] @ shifted
            kf = torch.linalg.solve(vb, ef)
            kb = torch.linalg.solve(vf, eb)
            a_new = torch.baddbmm(a_old, shifted, kf, alpha=-1.0)
            b_new = torch.baddbmm(shifted, a_old, kb, alpha=-1.0)
            vf = vf - eb @ kf
            vb = vb - ef @ kb
            buf[:, :(n + 1) * k, k:] = a_new
            buf[:, k:(n + 2) * k, :k] = b_new
    a = buf[:, :n_lag * k, k:].reshape(batch, n_lag, k, k)
    b = buf[:, k:(n_lag + 1) * k, :k].reshape(batch, n_lag, k, k)
    return a, b, vf, vb


def _spectrum(x: torch.Tensor, n: int) -> torch.Tensor:
    """rfft of x [B, L, p, q] along the lag axis (taken as the last, contiguous axis)
    -> [B, F, p, q]."""
    f = torch.fft.rfft(x.permute(0, 2, 3, 1).contiguous(), n=n)
    return f.permute(0, 3, 1, 2).contiguous()


def _signal(f: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse of `_spectrum`: [B, F, p, q] -> [B, n, p, q]."""
    return torch.fft.irfft(f.permute(0, 2, 3, 1).contiguous(), n=n).permute(0, 3, 1, 2)


class BlockToeplitzSolver:
    """T^-1 and T for one batch of block-Toeplitz systems, by FFT (see `levinson_factor`).

    T^-1 comes from the Gohberg-Semencul formula
    T^-1 = L(a) vf^-1 L(a)^T - L(Z b) vb^-1 L(Z b)^T (L: lower block-triangular Toeplitz,
    Z: one block down), each triangular product an FFT convolution; T from R directly.
    """

    def __init__(self, r: torch.Tensor) -> None:
        r = r.to(torch.float64)
        self.n_lag = r.shape[1]
        self.n = n = 2 * self.n_lag
        a, b, self.vf, self.vb = levinson_factor(r)
        self.a_f, self.b_f = _spectrum(a, n), _spectrum(b, n)
        kernel = torch.zeros((r.shape[0], n) + r.shape[2:], dtype=torch.float64,
                             device=r.device)
        kernel[:, :self.n_lag] = r
        kernel[:, n - self.n_lag + 1:] = r[:, 1:].flip(1).transpose(-1, -2)  # lags < 0
        self.r_f = _spectrum(kernel, n)

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        """T x for x [B, L, k, m] (a circular block convolution of length 2L)."""
        return _signal(self.r_f @ _spectrum(x, self.n), self.n)[:, :self.n_lag]

    def inverse(self, v: torch.Tensor) -> torch.Tensor:
        """T^-1 v for v [B, L, k, m], to the accuracy the factors allow."""
        n_lag, n = self.n_lag, self.n
        v_f = _spectrum(v.flip(1), n)  # L^T v is a correlation: a convolution of v reversed
        out = 0
        for poly, err, shift, sign in ((self.a_f, self.vf, 0, 1.0),
                                       (self.b_f, self.vb, 1, -1.0)):
            u = _signal(poly.transpose(-1, -2) @ v_f, n)  # u_j = c_{L-1-shift-j}
            u = u[:, :n_lag].flip(1) if shift == 0 else torch.cat(
                [u[:, :n_lag - 1].flip(1), torch.zeros_like(u[:, :1])], dim=1)
            w = torch.linalg.solve(err[:, None], u)
            y = _signal(poly @ _spectrum(w, n), n)
            y = y[:, :n_lag] if shift == 0 else torch.cat(
                [torch.zeros_like(y[:, :1]), y[:, :n_lag - 1]], dim=1)
            out = out + sign * y
        return out


def solve_block_toeplitz(r: torch.Tensor, y: torch.Tensor, tol: float = 1e-9,
                         max_refine: int = 40) -> torch.Tensor | None:
    """Solve T x = y (see `levinson_factor`) to the accuracy of a dense LU: Levinson and
    Gohberg-Semencul, then iterative refinement with the exact product T x until the
    correction stops shrinking (the Gram systems are ill-conditioned: the first solution
    can be off by 1e-3). None when the recursion fails or the residual stays above `tol`
    (relative to |y| + |R(0)| |x|): a singular or nearly singular system, for a dense
    solver instead."""
    y = y.to(torch.float64)
    with _one_thread(r.device):
        try:
            solver = BlockToeplitzSolver(r)
        except RuntimeError:  # torch.linalg.LinAlgError: a singular leading block
            return None
        x = solver.inverse(y)
        last = math.inf
        for _ in range(max_refine):
            dx = solver.inverse(y - solver.matvec(x))
            size = float(torch.linalg.vector_norm(dx))
            if not size < last:  # no longer converging (or not finite): keep x
                break
            x = x + dx
            last = size
            if size <= 1e-15 * float(torch.linalg.vector_norm(x)):
                break
        if not bool(torch.isfinite(x).all()):
            return None
        resid = torch.linalg.vector_norm(solver.matvec(x) - y)
        scale = torch.linalg.matrix_norm(r[:, 0].to(torch.float64), ord=2).max()
        bound = torch.linalg.vector_norm(y) + scale * torch.linalg.vector_norm(x)
    return x if float(resid) <= tol * float(bound) else None
