"""Conv-TasNet (Luo & Mesgarani 2019) with the learnable encoders of the thesis (ch. 5).

    mix [B, C, L]                               (L padded to a multiple of the stride W)
      encoder                                    w  [B, N, T],  T = L / W
      separator (TCN):
        gLN -> 1x1 conv N -> B
        R stacks x X blocks, dilation 2^x:
          1x1 conv B -> H, PReLU, gLN, depthwise conv (kernel P, dilated), PReLU, gLN,
          1x1 conv H -> B (residual, added) and 1x1 conv H -> B (skip, summed)
        PReLU -> 1x1 conv B -> S*N -> sigmoid      masks  [B, S, N, T]
      decoder (masks * w, per source)            sources [B, S, C, L]

Encoders (`encoder=`); every filterbank runs on each audio channel separately and the
channels' outputs are stacked, so N = C x filters per channel:
  * "free": a learned conv (asteroid FreeFB), then ReLU - the original Conv-TasNet;
  * "sinc": parameterized sinc band-passes (asteroid ParamSincFB: learnable cut-offs,
    mel initialisation; the kernel is made odd, 20 -> 21), then ReLU;
  * "gammatone": parameterized multi-phase gammatone filters (order 2, learnable centre
    frequency, bandwidth and phase; `ParamGammatoneFB`, an asteroid Filterbank), then ReLU;
  * "hybrid_free" / "hybrid_sinc" / "hybrid_gammatone": a free conv branch and a filterbank
    branch (`fb_ratio` of the N channels), each ReLU'd, concatenated, then the
    Conv(1x1)-ReLU-Conv(1x1) bottleneck back to N channels;
  * "hybrid_stft": Meta-TasNet's encoder - the conv branch plus an STFT branch (asteroid
    STFTFB at the same hop: log power, normalised, then a 1x1 conv), same bottleneck.
Decoders (`decoder=`):
  * "free": a learned transposed conv N -> C (the thesis' best, also for hybrids);
  * "pinv": the pseudo-inverse of the encoder's filterbank (asteroid `Decoder.pinv_of`);
    for a hybrid, a 1x1 conv first splits the representation back into the branches,
    each decoded by the pseudo-inverse of its own filterbank, and the two are summed.

Defaults are the thesis' (Table A.1): hybrid gammatone encoder, free decoder, N = 440,
L = W = 20, B = H = 160, P = 3, X = 10 blocks, R = 4 stacks, sigmoid masks, 44.1 kHz,
trained on 8 s chunks with SI-SDR, Adam lr 1e-3, weight decay 5e-4.

asteroid's own MultiphaseGammatoneFB is fixed (not learnable) and fails on NumPy >= 1.24
(`np.float`), hence the small `ParamGammatoneFB` here, initialised the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from asteroid_filterbanks import STFTFB, Decoder, Encoder, Filterbank, FreeFB, ParamSincFB
from torch import nn

from ..stems import STEM_IDS

ENCODERS = ("free", "sinc", "gammatone", "hybrid_free", "hybrid_sinc", "hybrid_gammatone",
            "hybrid_stft")
DECODERS = ("free", "pinv")


# -- filterbanks ----------------------------------------------------------------------

def _erb(freq_hz: np.ndarray | float) -> np.ndarray:
    return 9.265 * np.log1p(np.asarray(freq_hz) / (24.7 * 9.265))


def _erb_to_hz(erb: np.ndarray) -> np.ndarray:
    return (np.exp(erb / 9.265) - 1.0) * 24.7 * 9.265


class ParamGammatoneFB(Filterbank):
    """Learnable multi-phase gammatone filterbank (Ditter & Gerkmann 2020; thesis' "pmpgtf").

    g[n] = t^(p-1) exp(-2 pi b t) cos(2 pi f t + phi), t = n / samplerate, n = 1..kernel,
    order p = 2, each filter scaled to unit energy; f, b and phi are learned. Initialised
    like the multi-phase design: 24 centre frequencies one ERB apart from 100 Hz (spread
    over up to 40 % of the sample rate when that is wider, for music), each with
    `n_filters / 48` phase pairs phi and phi + pi, and b = ERB(f) / (pi / 2).
    `n_filters` must be even. Filters: [n_filters, 1, kernel_size].
    """

    def __init__(self, n_filters: int, kernel_size: int, stride: int | None = None,
                 sample_rate: float = 8000.0, n_centres: int = 24, order: int = 2,
                 **kwargs) -> None:
        super().__init__(n_filters, kernel_size, stride=stride, sample_rate=sample_rate)
        if n_filters % 2:
            raise ValueError("a multi-phase gammatone filterbank needs an even n_filters")
        self.order = order
        n_centres = min(n_centres, n_filters // 2)
        lo = _erb(100.0)
        hi = max(lo + n_centres - 1, _erb(0.4 * sample_rate))
        centres = _erb_to_hz(np.linspace(lo, hi, n_centres))
        pairs = np.full(n_centres, n_filters // 2 // n_centres)
        pairs[: n_filters // 2 - pairs.sum()] += 1
        freqs, phases = [], []
        for f, k in zip(centres, pairs, strict=True):
            half = [np.pi * i / k for i in range(k)]
            freqs += [f] * (2 * k)
            phases += half + [p + np.pi for p in half]
        freqs = np.asarray(freqs, dtype=np.float32)
        divisor = math.pi * math.factorial(2 * order - 2) * 2.0 ** -(2 * order - 2) / (
            math.factorial(order - 1) ** 2)
        band = (24.7 + 0.108 * freqs) / divisor
        self.freq_hz = nn.Parameter(torch.from_numpy(freqs).view(-1, 1))
        self.band_hz = nn.Parameter(torch.from_numpy(band.astype(np.float32)).view(-1, 1))
        self.phase = nn.Parameter(torch.tensor(phases, dtype=torch.float32).view(-1, 1))
        t = np.arange(1, kernel_size + 1, dtype=np.float32) / sample_rate
        self.register_buffer("t", torch.from_numpy(t).view(1, -1), persistent=False)

    def filters(self) -> torch.Tensor:
        t = self.t.to(self.freq_hz.dtype)
        g = (t ** (self.order - 1) * torch.exp(-2 * math.pi * self.band_hz.abs() * t)
             * torch.cos(2 * math.pi * self.freq_hz.abs() * t + self.phase))
        g = g / (g.norm(dim=1, keepdim=True) + 1e-8)
        return g.unsqueeze(1)

    def get_config(self) -> dict:
        return dict(super().get_config(), order=self.order)


def make_filterbank(kind: str, n_filters: int, kernel_size: int, stride: int,
                    samplerate: int) -> Filterbank:
    """asteroid filterbank `kind` ("free", "sinc", "gammatone", "stft")."""
    if kind == "free":
        return FreeFB(n_filters, kernel_size, stride=stride, sample_rate=samplerate)
    if kind == "sinc":
        odd = kernel_size + 1 - kernel_size % 2  # ParamSincFB wants odd lengths
        return ParamSincFB(n_filters, odd, stride=stride, sample_rate=samplerate)
    if kind == "gammatone":
        return ParamGammatoneFB(n_filters, kernel_size, stride=stride, sample_rate=samplerate)
    if kind == "stft":
        return STFTFB(n_filters, n_filters, stride=stride, sample_rate=samplerate)
    raise ValueError(f"unknown filterbank '{kind}'")


class Branch(nn.Module):
    """One filterbank on every audio channel, frames aligned on the stride grid.

    Frame j covers samples [jW - p, jW - p + K) (K: kernel, p = ceil((K - W) / 2)), so
    branches of different kernels line up. analysis: [B, C, T] -> [B, C, F, T / W];
    synthesis (pseudo-inverse): [B', C, F, T / W] -> [B', C, T].
    """

    def __init__(self, filterbank: Filterbank) -> None:
        super().__init__()
        self.encoder = Encoder(filterbank, as_conv1d=False)
        kernel, stride = filterbank.kernel_size, filterbank.stride
        self.left = max(0, -(-(kernel - stride) // 2))
        self.right = max(0, kernel - stride - self.left)

    @property
    def n_feats(self) -> int:
        return self.encoder.n_feats_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.shape[-1] // self.encoder.stride
        return self.encoder(F.pad(x, (self.left, self.right)))[..., :frames]

    def synthesis(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        wav = Decoder.pinv_of(self.encoder.filterbank)(spec)
        wav = wav[..., self.left:self.left + length]
        return F.pad(wav, (0, length - wav.shape[-1]))


class LogSpectrogram(nn.Module):
    """Meta-TasNet's spectral branch: STFT at the encoder's hop -> log power -> normalised
    -> 1x1 conv. [B, C, T] -> [B, out_channels, T / W]."""

    def __init__(self, n_fft: int, stride: int, audio_channels: int, out_channels: int,
                 samplerate: int) -> None:
        super().__init__()
        self.branch = Branch(make_filterbank("stft", n_fft, n_fft, stride, samplerate))
        bins = self.branch.n_feats // 2
        # Meta-TasNet normalises with dataset statistics; a per-example norm needs none.
        self.norm = nn.GroupNorm(1, audio_channels * bins, eps=1e-8)
        self.conv = nn.Conv1d(audio_channels * bins, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = self.branch(x)  # [B, C, 2 * bins, T]
        re, im = spec.chunk(2, dim=2)
        logp = torch.log10(re.square() + im.square() + 1e-8).flatten(1, 2)
        return self.conv(self.norm(logp))


class TasEncoder(nn.Module):
    """Waveform -> representation: [B, C, T] -> [B, N, T / W] (see the module docstring)."""

    def __init__(self, kind: str, n_filters: int, kernel_size: int, stride: int,
                 audio_channels: int, samplerate: int, fb_ratio: float = 0.5,
                 stft_n_fft: int = 512) -> None:
        super().__init__()
        if kind not in ENCODERS:
            raise ValueError(f"unknown encoder '{kind}' (one of {', '.join(ENCODERS)})")
        self.kind = kind
        self.hybrid = kind.startswith("hybrid_")
        self.fb_kind = kind.removeprefix("hybrid_")
        c = audio_channels
        if n_filters % c:
            raise ValueError("n_filters must be a multiple of the audio channels")
        if not self.hybrid:
            self.conv = Branch(make_filterbank(kind, n_filters // c, kernel_size, stride,
                                               samplerate))
            self.fb = None
            self.n_conv, self.n_fb = self.conv.n_feats * c, 0
            self.bottleneck = None
        else:
            n_fb = round(n_filters * fb_ratio / (2 * c)) * 2 * c  # even per channel
            if not 0 < n_fb < n_filters:
                raise ValueError("fb_ratio leaves no channels for one of the hybrid branches")
            self.n_conv, self.n_fb = n_filters - n_fb, n_fb
            self.conv = Branch(make_filterbank("free", self.n_conv // c, kernel_size, stride,
                                               samplerate))
            if self.fb_kind == "stft":
                self.fb = LogSpectrogram(stft_n_fft, stride, c, n_fb, samplerate)
            else:
                self.fb = Branch(make_filterbank(self.fb_kind, n_fb // c, kernel_size, stride,
                                                 samplerate))
            self.bottleneck = nn.Sequential(
                nn.Conv1d(n_filters, n_filters, 1, bias=False), nn.ReLU(),
                nn.Conv1d(n_filters, n_filters, 1, bias=False))
        self.out_channels = self.n_conv + self.n_fb

    def fb_branch(self) -> Branch | None:
        """The filterbank branch as a `Branch` (the STFT's own for "hybrid_stft")."""
        if isinstance(self.fb, LogSpectrogram):
            return self.fb.branch
        return self.fb

    @property
    def kernel_span(self) -> int:
        """Longest filter of the encoder, in samples."""
        spans = [self.conv.encoder.filterbank.kernel_size]
        branch = self.fb_branch()
        if branch is not None:
            spans.append(branch.encoder.filterbank.kernel_size)
        return max(spans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = F.relu(self.conv(x).flatten(1, 2))
        if not self.hybrid:
            return conv
        if isinstance(self.fb, LogSpectrogram):
            fb = self.fb(x)
        else:
            fb = F.relu(self.fb(x).flatten(1, 2))
        return self.bottleneck(torch.cat([conv, fb], dim=1))


class TasDecoder(nn.Module):
    """Masked representation -> waveform: [B', N, T / W] -> [B', C, T]."""

    def __init__(self, kind: str, encoder: TasEncoder, kernel_size: int, stride: int,
                 audio_channels: int) -> None:
        super().__init__()
        if kind not in DECODERS:
            raise ValueError(f"unknown decoder '{kind}' (one of {', '.join(DECODERS)})")
        self.kind = kind
        self.audio_channels = audio_channels
        n = encoder.out_channels
        self.transposed = None
        self.split = None
        if kind == "free":
            self.transposed = nn.ConvTranspose1d(n, audio_channels, kernel_size, stride,
                                                 bias=False)
            self.left = max(0, -(-(kernel_size - stride) // 2))
        elif encoder.hybrid:
            fb = encoder.fb_branch()
            self.widths = [encoder.n_conv, fb.n_feats * audio_channels]
            self.split = nn.Conv1d(n, sum(self.widths), 1, bias=False)

    def forward(self, rep: torch.Tensor, encoder: TasEncoder, length: int) -> torch.Tensor:
        c = self.audio_channels
        if self.transposed is not None:
            wav = self.transposed(rep)[..., self.left:self.left + length]
            return F.pad(wav, (0, length - wav.shape[-1]))
        frames = rep.shape[-1]
        if self.split is None:
            return encoder.conv.synthesis(rep.view(rep.shape[0], c, -1, frames), length)
        conv, fb = self.split(rep).split(self.widths, dim=1)
        out = encoder.conv.synthesis(conv.reshape(rep.shape[0], c, -1, frames), length)
        return out + encoder.fb_branch().synthesis(fb.reshape(rep.shape[0], c, -1, frames),
                                                   length)


# -- separator ------------------------------------------------------------------------

class TCNBlock(nn.Module):
    """Conv-TasNet block: [B, Bn, T] -> ([B, Bn, T] residual output, [B, Bn, T] skip).

    The last block of the network has no residual conv (its output would go unused).
    """

    def __init__(self, channels: int, hidden: int, kernel_size: int, dilation: int,
                 residual: bool = True) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(channels, hidden, 1), nn.PReLU(), nn.GroupNorm(1, hidden, eps=1e-8),
            nn.Conv1d(hidden, hidden, kernel_size, dilation=dilation, groups=hidden,
                      padding=dilation * (kernel_size - 1) // 2),
            nn.PReLU(), nn.GroupNorm(1, hidden, eps=1e-8))
        self.res = nn.Conv1d(hidden, channels, 1) if residual else None
        self.skip = nn.Conv1d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.net(x)
        return (x if self.res is None else x + self.res(y)), self.skip(y)


class TCN(nn.Module):
    """Mask estimator: w [B, N, T] -> masks [B, S, N, T]. gLN is GroupNorm with one group."""

    def __init__(self, n_filters: int, n_sources: int, bottleneck: int, hidden: int,
                 kernel_size: int, blocks: int, stacks: int, mask: str = "sigmoid") -> None:
        super().__init__()
        if mask not in ("sigmoid", "relu"):
            raise ValueError("mask must be 'sigmoid' or 'relu'")
        self.n_sources, self.n_filters, self.mask = n_sources, n_filters, mask
        self.inp = nn.Sequential(nn.GroupNorm(1, n_filters, eps=1e-8),
                                 nn.Conv1d(n_filters, bottleneck, 1))
        n = stacks * blocks
        self.blocks = nn.ModuleList(
            TCNBlock(bottleneck, hidden, kernel_size, 2 ** (i % blocks), residual=i < n - 1)
            for i in range(n))
        self.out = nn.Sequential(nn.PReLU(), nn.Conv1d(bottleneck, n_sources * n_filters, 1))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        x = self.inp(w)
        skips = 0.0
        for block in self.blocks:
            x, skip = block(x)
            skips = skips + skip
        m = self.out(skips).view(w.shape[0], self.n_sources, self.n_filters, w.shape[-1])
        return torch.sigmoid(m) if self.mask == "sigmoid" else F.relu(m)


class ConvTasNet(nn.Module):
    """Conv-TasNet separator: mix [B, C, L] -> sources [B, S, C, L] (any L).

    Args:
        sources: names of the S output sources, in output order.
        audio_channels: C, 2 for stereo.
        encoder / decoder: see `ENCODERS` and `DECODERS` (module docstring).
        n_filters: N, channels of the encoded representation (all audio channels).
        kernel_size / stride: L and W of the encoder and decoder (20 / 20).
        bottleneck / hidden: B and H of the TCN blocks (160 / 160).
        conv_kernel: P, depthwise conv width (3).
        blocks / stacks: X blocks per stack with dilations 1..2^(X-1), R stacks (10 / 4).
        fb_ratio: share of the N channels given to the filterbank branch of a hybrid.
        stft_n_fft: window of the STFT branch ("hybrid_stft"), at hop W.
        mask: "sigmoid" (thesis) or "relu".
        samplerate: the rate the model works at (filterbank initialisation).
    """

    def __init__(self, sources: Sequence[str] = STEM_IDS, audio_channels: int = 2,
                 encoder: str = "hybrid_gammatone", decoder: str = "free",
                 n_filters: int = 440, kernel_size: int = 20, stride: int = 20,
                 bottleneck: int = 160, hidden: int = 160, conv_kernel: int = 3,
                 blocks: int = 10, stacks: int = 4, fb_ratio: float = 0.5,
                 stft_n_fft: int = 512, mask: str = "sigmoid",
                 samplerate: int = 44100) -> None:
        super().__init__()
        if kernel_size < stride:
            raise ValueError("kernel_size must be at least the stride")
        self.sources = list(sources)
        self.audio_channels = audio_channels
        self.samplerate = samplerate
        self.stride = stride
        self.encoder = TasEncoder(encoder, n_filters, kernel_size, stride, audio_channels,
                                  samplerate, fb_ratio, stft_n_fft)
        n = self.encoder.out_channels
        self.separator = self._make_separator(n, bottleneck, hidden, conv_kernel, blocks,
                                              stacks, mask)
        self.decoder = TasDecoder(decoder, self.encoder, kernel_size, stride, audio_channels)
        self._tcn_span = 1 + stacks * (conv_kernel - 1) * (2**blocks - 1)  # frames

    def _make_separator(self, n_filters: int, bottleneck: int, hidden: int, conv_kernel: int,
                        blocks: int, stacks: int, mask: str) -> nn.Module:
        return TCN(n_filters, len(self.sources), bottleneck, hidden, conv_kernel, blocks,
                   stacks, mask)

    @property
    def receptive_field(self) -> int:
        """Input samples one output sample depends on through the convs. gLN normalises
        over the whole input, so in practice every output depends a little on all of it."""
        return (self._tcn_span - 1) * self.stride + 2 * self.encoder.kernel_span

    def valid_length(self, length: int) -> int:
        """Smallest multiple of the stride >= `length`."""
        return -(-length // self.stride) * self.stride

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """mix [B, C, L] -> sources [B, S, C, L]."""
        batch, channels, length = mix.shape
        padded = self.valid_length(length)
        w = self.encoder(F.pad(mix, (0, padded - length)))  # [B, N, T]
        masks = self.separator(w)  # [B, S, N, T]
        masked = (masks * w.unsqueeze(1)).flatten(0, 1)  # [B*S, N, T]
        out = self.decoder(masked, self.encoder, padded)[..., :length]
        return out.reshape(batch, len(self.sources), channels, length)


# -- instrument-conditioned separator (in the spirit of Meta-TasNet) ----------------------

class GeneratedWeights(nn.Module):
    """Per-instrument weights from instrument codes: z [S, G] -> [S, *shape].

    Meta-TasNet's parameter generator: the instrument embedding goes through a first
    fully connected layer shared by the whole network (giving the code z) and a second
    one per layer, whose output is reshaped into that layer's weights."""

    def __init__(self, code: int, shape: tuple[int, ...], init_fan_in: int) -> None:
        super().__init__()
        self.shape = shape
        self.linear = nn.Linear(code, math.prod(shape))
        bound = 1.0 / math.sqrt(init_fan_in)
        nn.init.uniform_(self.linear.bias, -bound, bound)  # like a conv's default init
        nn.init.normal_(self.linear.weight, std=0.1 * bound)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.linear(z).view(z.shape[0], *self.shape)


class ConditionedBlock(nn.Module):
    """TCN block with generated weights, run for S instruments at once:
    [B, S, Bn, T] -> ([B, S, Bn, T] residual output, [B, S, Bn, T] skip)."""

    def __init__(self, code: int, channels: int, hidden: int, kernel_size: int,
                 dilation: int, residual: bool = True) -> None:
        super().__init__()
        self.dilation, self.kernel_size, self.hidden = dilation, kernel_size, hidden
        self.inp = GeneratedWeights(code, (hidden, channels + 1), channels)  # weight | bias
        self.depth = GeneratedWeights(code, (hidden, kernel_size + 1), kernel_size)
        self.res = GeneratedWeights(code, (channels, hidden + 1), hidden) if residual else None
        self.skip = GeneratedWeights(code, (channels, hidden + 1), hidden)
        self.act1, self.act2 = nn.PReLU(), nn.PReLU()
        self.norm1 = nn.GroupNorm(1, hidden, eps=1e-8)
        self.norm2 = nn.GroupNorm(1, hidden, eps=1e-8)

    @staticmethod
    def _pointwise(x: torch.Tensor, wb: torch.Tensor) -> torch.Tensor:
        """Per-instrument 1x1 conv: x [B, S, Cin, T], wb [S, Cout, Cin + 1]."""
        return torch.einsum("bsct,soc->bsot", x, wb[..., :-1]) + wb[..., -1][None, :, :, None]

    def _norm(self, norm: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
        b, s, c, t = x.shape
        return norm(x.reshape(b * s, c, t)).view(b, s, c, t)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, s, _, t = x.shape
        y = self._norm(self.norm1, self.act1(self._pointwise(x, self.inp(z))))
        dw = self.depth(z)  # [S, H, K + 1]
        pad = self.dilation * (self.kernel_size - 1) // 2
        y = F.conv1d(y.reshape(b, s * self.hidden, t),
                     dw[..., :-1].reshape(s * self.hidden, 1, self.kernel_size),
                     dw[..., -1].reshape(-1), padding=pad, dilation=self.dilation,
                     groups=s * self.hidden).view(b, s, self.hidden, t)
        y = self._norm(self.norm2, self.act2(y))
        out = x if self.res is None else x + self._pointwise(y, self.res(z))
        return out, self._pointwise(y, self.skip(z))


class ConditionedTCN(nn.Module):
    """Mask estimator whose weights are generated for each instrument from a learned
    instrument embedding: w [B, N, T] -> masks [B, S', N, T] for the S' instruments asked.

    embedding e_s [E] -> FC -> ReLU -> code z_s [G] (shared) -> per layer FC -> weights.
    The input norm and bottleneck are shared; every block and the mask layer are
    generated, so one set of weights serves any instrument and a new instrument only
    needs a new embedding."""

    def __init__(self, n_filters: int, n_sources: int, bottleneck: int, hidden: int,
                 kernel_size: int, blocks: int, stacks: int, mask: str = "sigmoid",
                 embedding: int = 32, code: int = 4) -> None:
        super().__init__()
        if mask not in ("sigmoid", "relu"):
            raise ValueError("mask must be 'sigmoid' or 'relu'")
        self.n_filters, self.mask = n_filters, mask
        self.embedding = nn.Embedding(n_sources, embedding)
        self.code = nn.Sequential(nn.Linear(embedding, code), nn.ReLU())
        self.inp = nn.Sequential(nn.GroupNorm(1, n_filters, eps=1e-8),
                                 nn.Conv1d(n_filters, bottleneck, 1))
        n = stacks * blocks
        self.blocks = nn.ModuleList(
            ConditionedBlock(code, bottleneck, hidden, kernel_size, 2 ** (i % blocks),
                             residual=i < n - 1)
            for i in range(n))
        self.act = nn.PReLU()
        self.out = GeneratedWeights(code, (n_filters, bottleneck + 1), bottleneck)

    def forward(self, w: torch.Tensor, sources: Sequence[int] | None = None) -> torch.Tensor:
        ids = torch.arange(self.embedding.num_embeddings, device=w.device) if sources is None \
            else torch.as_tensor(list(sources), device=w.device)
        z = self.code(self.embedding(ids))  # [S', G]
        x = self.inp(w).unsqueeze(1).expand(-1, len(ids), -1, -1)  # [B, S', Bn, T]
        skips = 0.0
        for block in self.blocks:
            x, skip = block(x, z)
            skips = skips + skip
        m = ConditionedBlock._pointwise(self.act(skips), self.out(z))  # [B, S', N, T]
        return torch.sigmoid(m) if self.mask == "sigmoid" else F.relu(m)


class ConditionedTasNet(ConvTasNet):
    """Instrument-conditioned Conv-TasNet, in the spirit of Meta-TasNet (Samuel et al. 2020):
    mix [B, C, L] -> sources [B, S, C, L], or only the instruments asked for.

    Encoder and decoder as in `ConvTasNet` (default: Meta-TasNet's conv + STFT hybrid
    encoder); the separator's weights are generated per instrument from its embedding
    (`ConditionedTCN`), so the network runs once per instrument, sharing every weight.
    Not Meta-TasNet itself: one stage at one rate, no extra dissimilarity/similarity/
    reconstruction losses. `embedding` and `code` are the sizes of the instrument
    embedding and of the shared code it is turned into.
    """

    def __init__(self, sources: Sequence[str] = STEM_IDS, audio_channels: int = 2,
                 encoder: str = "hybrid_stft", decoder: str = "free",
                 n_filters: int = 440, kernel_size: int = 20, stride: int = 20,
                 bottleneck: int = 160, hidden: int = 160, conv_kernel: int = 3,
                 blocks: int = 10, stacks: int = 4, fb_ratio: float = 0.5,
                 stft_n_fft: int = 512, mask: str = "sigmoid", samplerate: int = 44100,
                 embedding: int = 32, code: int = 4) -> None:
        self._embedding, self._code = embedding, code
        super().__init__(sources, audio_channels, encoder, decoder, n_filters, kernel_size,
                         stride, bottleneck, hidden, conv_kernel, blocks, stacks, fb_ratio,
                         stft_n_fft, mask, samplerate)

    def _make_separator(self, n_filters: int, bottleneck: int, hidden: int, conv_kernel: int,
                        blocks: int, stacks: int, mask: str) -> nn.Module:
        return ConditionedTCN(n_filters, len(self.sources), bottleneck, hidden, conv_kernel,
                              blocks, stacks, mask, self._embedding, self._code)

    def forward(self, mix: torch.Tensor, sources: Sequence[str | int] | None = None
                ) -> torch.Tensor:
        """mix [B, C, L] -> [B, S', C, L] for `sources` (names or indices; default all)."""
        batch, channels, length = mix.shape
        ids = None if sources is None else [
            self.sources.index(s) if isinstance(s, str) else int(s) for s in sources]
        padded = self.valid_length(length)
        w = self.encoder(F.pad(mix, (0, padded - length)))  # [B, N, T]
        masks = self.separator(w, ids)  # [B, S', N, T]
        masked = (masks * w.unsqueeze(1)).flatten(0, 1)
        out = self.decoder(masked, self.encoder, padded)[..., :length]
        return out.reshape(batch, masks.shape[1], channels, length)


__all__ = ["ConditionedTCN", "ConditionedTasNet", "ConvTasNet", "DECODERS", "ENCODERS",
           "ParamGammatoneFB", "TCN", "TasDecoder", "TasEncoder", "make_filterbank"]
