"""BS-RoFormer and Mel-Band RoFormer, laid out exactly like the community checkpoints.

The band-split RoPE transformer (Lu et al., 2023) and its mel-band variant (Wang et al.,
2023) are what UVR, python-audio-separator and ZFTurbo's Music-Source-Separation-Training
run today. Their checkpoints are plain state dicts of the classes in ZFTurbo's
`models/bs_roformer/{bs_roformer,mel_band_roformer}.py` (lucidrains' BS-RoFormer 0.3.x
extended), configured by the `model:` section of a YAML file. These classes reproduce that
code's parameter names, shapes and forward computation for inference (no training losses),
so those files load with `strict=True` and separate identically (tests/test_roformer.py
compares with the reference's output), with no new dependency. Why not a package:
`audio-separator` imports its whole file-to-file separator (onnxruntime, diffq, ...) on
any import, and lucidrains' `bs-roformer` lacks MSST's options (zero_dc, skip connections,
linear attention layers) up to 0.5, while 1.x wraps every layer in hyper-connections
(and needs hyper-connections, pope-pytorch, einx), a different state dict layout.

    mix [B, C, L] -> STFT (hann, center) -> bins of each band (fixed widths, or the
    overlapping mel bands), (re, im) of every channel -> RMSNorm -> Linear -> [B, T, K, D]
    depth x (optional linear attention over T*K) -> RoPE transformer along T -> along K
    masks per stem: per band MLP (tanh) -> GLU -> complex mask; mel bands average where
    they overlap; complex multiply, DC bin zeroed, iSTFT -> [B, S, C, L]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: Band widths (in STFT bins, n_fft 2048) of the published BS-RoFormer: 62 bands.
DEFAULT_FREQS_PER_BANDS: tuple[int, ...] = (
    (2,) * 24 + (4,) * 12 + (12,) * 8 + (24,) * 8 + (48,) * 8 + (128, 129))


class RMSNorm(nn.Module):
    """x / |x| * sqrt(dim) * gamma."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = dim ** 0.5
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) * self.scale * self.gamma


class RotaryEmbedding(nn.Module):
    """rotary-embedding-torch's `RotaryEmbedding(dim)` ('lang' frequencies, theta 10000):
    the same `freqs` parameter (it is in the checkpoints) and the same rotation."""

    def __init__(self, dim: int, theta: float = 10000.0) -> None:
        super().__init__()
        # Explicitly on the CPU, also under a `meta` device context (templates): meta
        # arithmetic would import torch's reference kernels, seconds for nothing.
        steps = torch.arange(0, dim, 2, device="cpu")[:dim // 2].float()
        freqs = 1.0 / (theta ** (steps / dim))
        self.freqs = nn.Parameter(freqs, requires_grad=False)

    def rotate_queries_or_keys(self, t: torch.Tensor) -> torch.Tensor:
        """Rotate t [..., n, d] by position along n (angles in float32, like the reference)."""
        n = t.shape[-2]
        pos = torch.arange(n, device=t.device, dtype=t.dtype).to(self.freqs.dtype)
        angles = torch.einsum("n,f->nf", pos, self.freqs).repeat_interleave(2, dim=-1)
        rot = self.freqs.shape[0] * 2
        head, tail = t[..., :rot], t[..., rot:]
        pairs = head.unflatten(-1, (-1, 2))
        half = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        out = head * angles.cos() + half * angles.sin()
        return torch.cat((out, tail), dim=-1).to(t.dtype)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, flash: bool,
            scale: float | None = None) -> torch.Tensor:
    """Softmax attention as the reference's `Attend` (dropout is inference-off)."""
    if flash:
        if scale is not None:
            q = q * (scale / q.shape[-1] ** -0.5)
        return F.scaled_dot_product_attention(q, k, v)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    sim = torch.einsum("bhid,bhjd->bhij", q, k) * scale
    return torch.einsum("bhij,bhjd->bhid", sim.softmax(dim=-1), v)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: float = 4, dropout: float = 0.0) -> None:
        super().__init__()
        inner = int(dim * mult)
        self.net = nn.Sequential(RMSNorm(dim), nn.Linear(dim, inner), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(inner, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Attention(nn.Module):
    """Gated multi-head self-attention with rotary positions."""

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, dropout: float = 0.0,
                 rotary_embed: RotaryEmbedding | None = None, flash: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.flash = flash
        self.rotary_embed = rotary_embed
        inner = heads * dim_head
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_gates = nn.Linear(dim, heads)
        self.to_out = nn.Sequential(nn.Linear(inner, dim, bias=False), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        b, n, _ = x.shape
        q, k, v = self.to_qkv(x).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        if self.rotary_embed is not None:
            q = self.rotary_embed.rotate_queries_or_keys(q)
            k = self.rotary_embed.rotate_queries_or_keys(k)
        out = _attend(q, k, v, self.flash)
        gates = self.to_gates(x).transpose(1, 2).unsqueeze(-1)
        out = (out * gates.sigmoid()).transpose(1, 2).reshape(b, n, -1)
        return self.to_out(out)


class _QKV(nn.Module):
    """Linear -> 'b n (qkv h d) -> qkv b h d n' (the reference's Sequential with Rearrange)."""

    def __init__(self, heads: int) -> None:
        super().__init__()
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, 3, self.heads, -1).permute(2, 0, 3, 4, 1)


class _MergeHeads(nn.Module):
    """'b h d n -> b n (h d)'."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, d, n = x.shape
        return x.permute(0, 3, 1, 2).reshape(b, n, h * d)


class LinearAttention(nn.Module):
    """Cross-covariance attention (El-Nouby et al. 2021) over feature channels."""

    def __init__(self, *, dim: int, dim_head: int = 32, heads: int = 8, scale: float = 8,
                 flash: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        inner = dim_head * heads
        self.scale = scale
        self.flash = flash
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Sequential(nn.Linear(dim, inner * 3, bias=False), _QKV(heads))
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.to_out = nn.Sequential(_MergeHeads(), nn.Linear(inner, dim, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.to_qkv(self.norm(x))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        q = q * self.temperature.exp()
        return self.to_out(_attend(q, k, v, self.flash, self.scale))


class Transformer(nn.Module):
    def __init__(self, *, dim: int, depth: int, dim_head: int = 64, heads: int = 8,
                 attn_dropout: float = 0.0, ff_dropout: float = 0.0, ff_mult: float = 4,
                 norm_output: bool = True, rotary_embed: RotaryEmbedding | None = None,
                 flash_attn: bool = True, linear_attn: bool = False) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        for _ in range(depth):
            if linear_attn:
                attn = LinearAttention(dim=dim, dim_head=dim_head, heads=heads,
                                       dropout=attn_dropout, flash=flash_attn)
            else:
                attn = Attention(dim, heads, dim_head, attn_dropout, rotary_embed, flash_attn)
            self.layers.append(nn.ModuleList([attn, FeedForward(dim, ff_mult, ff_dropout)]))
        self.norm = RMSNorm(dim) if norm_output else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return self.norm(x)


class BandSplit(nn.Module):
    def __init__(self, dim: int, dim_inputs: Sequence[int]) -> None:
        super().__init__()
        self.dim_inputs = tuple(dim_inputs)
        self.to_features = nn.ModuleList(
            nn.Sequential(RMSNorm(d), nn.Linear(d, dim)) for d in self.dim_inputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = x.split(self.dim_inputs, dim=-1)
        return torch.stack([f(p) for p, f in zip(parts, self.to_features, strict=True)],
                           dim=-2)


def _mlp(dim_in: int, dim_out: int, dim_hidden: int, hidden_layers: int) -> nn.Sequential:
    dims = (dim_in, *((dim_hidden,) * hidden_layers), dim_out)
    net: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        net.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            net.append(nn.Tanh())
    return nn.Sequential(*net)


class MaskEstimator(nn.Module):
    """Per band: MLP -> GLU -> (re, im) mask values of the band's bins."""

    def __init__(self, dim: int, dim_inputs: Sequence[int], depth: int,
                 mlp_expansion_factor: int = 4, hidden_layers: int | None = None) -> None:
        super().__init__()
        # BS-RoFormer's MLP has depth - 1 hidden layers, Mel-Band RoFormer's depth.
        hidden = depth - 1 if hidden_layers is None else hidden_layers
        self.to_freqs = nn.ModuleList(
            nn.Sequential(_mlp(dim, d * 2, dim * mlp_expansion_factor, hidden), nn.GLU(dim=-1))
            for d in dim_inputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bands = x.unbind(dim=-2)
        return torch.cat([m(b) for b, m in zip(bands, self.to_freqs, strict=True)], dim=-1)


class _RoformerBase(nn.Module):
    """What both variants share: STFT, the axial transformer stack, masks, iSTFT."""

    sources: list[str]

    def _init_common(self, dim: int, depth: int, stereo: bool, num_stems: int,
                     time_transformer_depth: int, freq_transformer_depth: int,
                     linear_transformer_depth: int, dim_head: int, heads: int,
                     attn_dropout: float, ff_dropout: float, flash_attn: bool,
                     stft_n_fft: int, stft_hop_length: int, stft_win_length: int,
                     stft_normalized: bool, zero_dc: bool, skip_connection: bool,
                     use_pope: bool, norm_output: bool) -> None:
        if use_pope:
            raise ValueError("PoPE positions (use_pope: true) are not supported; only "
                             "rotary (RoPE) RoFormers are")
        if stft_win_length > stft_n_fft or stft_hop_length < 1:
            raise ValueError("stft_win_length must be at most stft_n_fft, hop at least 1")
        self.stereo = stereo
        self.audio_channels = 2 if stereo else 1
        self.num_stems = num_stems
        self.zero_dc = zero_dc
        self.skip_connection = skip_connection
        self.stft_kwargs = dict(n_fft=stft_n_fft, hop_length=stft_hop_length,
                                win_length=stft_win_length, normalized=stft_normalized)
        self.stft_win_length = stft_win_length
        tkw = dict(dim=dim, heads=heads, dim_head=dim_head, attn_dropout=attn_dropout,
                   ff_dropout=ff_dropout, flash_attn=flash_attn, norm_output=norm_output)
        time_rotary, freq_rotary = RotaryEmbedding(dim_head), RotaryEmbedding(dim_head)
        self.layers = nn.ModuleList()
        for _ in range(depth):
            blocks: list[nn.Module] = []
            if linear_transformer_depth > 0:
                blocks.append(Transformer(depth=linear_transformer_depth, linear_attn=True,
                                          **tkw))
            blocks.append(Transformer(depth=time_transformer_depth, rotary_embed=time_rotary,
                                      **tkw))
            blocks.append(Transformer(depth=freq_transformer_depth, rotary_embed=freq_rotary,
                                      **tkw))
            self.layers.append(nn.ModuleList(blocks))

    @property
    def n_freqs(self) -> int:
        return self.stft_kwargs["n_fft"] // 2 + 1

    def _stft(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, S, L] -> window, real STFT [B, F*S (bin-major), T, 2]."""
        b, s, n = audio.shape
        window = torch.hann_window(self.stft_win_length, device=audio.device)
        spec = torch.stft(audio.reshape(b * s, n), **self.stft_kwargs, window=window,
                          return_complex=True)
        spec = torch.view_as_real(spec)  # [B*S, F, T, 2]
        f, t = spec.shape[1], spec.shape[2]
        spec = spec.view(b, s, f, t, 2).permute(0, 2, 1, 3, 4).reshape(b, f * s, t, 2)
        return window, spec

    def _axial(self, x: torch.Tensor) -> torch.Tensor:
        """The transformer stack over band features x [B, T, K, D]."""
        b, t, k, d = x.shape
        store: list[torch.Tensor] = []
        for i, blocks in enumerate(self.layers):
            if len(blocks) == 3:
                linear, time_tf, freq_tf = blocks
                x = linear(x.reshape(b, t * k, d)).view(b, t, k, d)
            else:
                time_tf, freq_tf = blocks
            if self.skip_connection:
                for j in range(i):
                    x = x + store[j]
            x = x.permute(0, 2, 1, 3).reshape(b * k, t, d)
            x = time_tf(x).view(b, k, t, d).permute(0, 2, 1, 3).reshape(b * t, k, d)
            x = freq_tf(x).view(b, t, k, d)
            if self.skip_connection:
                store.append(x)
        return x

    def _istft(self, spec: torch.Tensor, window: torch.Tensor, length: int) -> torch.Tensor:
        """Complex [B, N, F*S, T] -> audio [B, N, S, length]."""
        b, n, fs, t = spec.shape
        s = self.audio_channels
        spec = spec.view(b, n, fs // s, s, t).permute(0, 1, 3, 2, 4).reshape(b * n * s,
                                                                           fs // s, t)
        if self.zero_dc:
            spec = spec.index_fill(1, torch.tensor(0, device=spec.device), 0.0)
        audio = torch.istft(spec, **self.stft_kwargs, window=window, return_complex=False,
                            length=length)
        return audio.view(b, n, s, -1)

    def _masks(self, x: torch.Tensor) -> torch.Tensor:
        """Complex masks [B, N, bins, T] from band features [B, T, K, D]."""
        masks = torch.stack([m(x) for m in self.mask_estimators], dim=1)  # [B, N, T, bins*2]
        b, n, t, fc = masks.shape
        masks = masks.view(b, n, t, fc // 2, 2).permute(0, 1, 3, 2, 4).contiguous()
        return torch.view_as_complex(masks)

    def _check_input(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.ndim == 2:
            audio = audio.unsqueeze(1)
        if audio.shape[1] != self.audio_channels:
            raise ValueError(f"expected {self.audio_channels}-channel audio, got "
                             f"{audio.shape[1]}")
        return audio


class BSRoformer(_RoformerBase):
    """Band-split RoFormer: contiguous bands of fixed widths (`freqs_per_bands`)."""

    def __init__(self, dim: int, *, depth: int, stereo: bool = False, num_stems: int = 1,
                 time_transformer_depth: int = 2, freq_transformer_depth: int = 2,
                 linear_transformer_depth: int = 0,
                 freqs_per_bands: Sequence[int] = DEFAULT_FREQS_PER_BANDS,
                 dim_head: int = 64, heads: int = 8, attn_dropout: float = 0.0,
                 ff_dropout: float = 0.0, flash_attn: bool = True, dim_freqs_in: int = 1025,
                 stft_n_fft: int = 2048, stft_hop_length: int = 512,
                 stft_win_length: int = 2048, stft_normalized: bool = False,
                 stft_window_fn: None = None, zero_dc: bool = True,
                 mask_estimator_depth: int = 2, multi_stft_resolution_loss_weight: float = 1.0,
                 multi_stft_resolutions_window_sizes: Sequence[int] = (4096, 2048, 1024, 512,
                                                                       256),
                 multi_stft_hop_size: int = 147, multi_stft_normalized: bool = False,
                 multi_stft_window_fn: None = None, mlp_expansion_factor: int = 4,
                 use_torch_checkpoint: bool = False, skip_connection: bool = False,
                 sage_attention: bool = False, use_pope: bool = False) -> None:
        # dim_freqs_in, the multi_stft_* loss settings, use_torch_checkpoint (training
        # memory) and sage_attention (a kernel choice) do not change inference.
        super().__init__()
        if stft_window_fn is not None or multi_stft_window_fn is not None:
            raise ValueError("custom window functions are not supported")
        self._init_common(dim, depth, stereo, num_stems, time_transformer_depth,
                          freq_transformer_depth, linear_transformer_depth, dim_head, heads,
                          attn_dropout, ff_dropout, flash_attn, stft_n_fft, stft_hop_length,
                          stft_win_length, stft_normalized, zero_dc, skip_connection,
                          use_pope, norm_output=False)
        self.final_norm = RMSNorm(dim)
        bands = tuple(int(f) for f in freqs_per_bands)
        if len(bands) < 2 or sum(bands) != self.n_freqs or min(bands) < 1:
            raise ValueError(f"freqs_per_bands must be at least 2 positive widths summing to "
                             f"{self.n_freqs} (stft_n_fft {stft_n_fft}), got sum "
                             f"{sum(bands)}")
        dims = tuple(2 * f * self.audio_channels for f in bands)
        self.band_split = BandSplit(dim, dims)
        self.mask_estimators = nn.ModuleList(
            MaskEstimator(dim, dims, mask_estimator_depth, mlp_expansion_factor)
            for _ in range(num_stems))

    def forward(self, raw_audio: torch.Tensor) -> torch.Tensor:
        """[B, C, L] -> [B, num_stems, C, L]."""
        raw_audio = self._check_input(raw_audio)
        window, spec = self._stft(raw_audio)
        b, fs, t, _ = spec.shape
        x = spec.permute(0, 2, 1, 3).reshape(b, t, fs * 2)
        x = self.final_norm(self._axial(self.band_split(x)))
        spec = torch.view_as_complex(spec.contiguous()).unsqueeze(1) * self._masks(x)
        return self._istft(spec, window, raw_audio.shape[-1])


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, htk=False): linear to 1 kHz, then log."""
    hz = np.asarray(hz, dtype=np.float64)
    mels = hz / (200.0 / 3)
    log = hz >= 1000.0
    mels[log] = 15.0 + np.log(hz[log] / 1000.0) / (np.log(6.4) / 27.0)
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    freqs = (200.0 / 3) * mels
    log = mels >= 15.0
    freqs[log] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mels[log] - 15.0))
    return freqs


def mel_band_layout(sample_rate: int, n_fft: int, num_bands: int) -> np.ndarray:
    """[num_bands, n_fft // 2 + 1] bool: the bins of each mel band, as the reference
    derives them from `librosa.filters.mel(sr, n_fft, n_mels)` (Slaney, norm 'slaney',
    float32), first and last bins forced in. The same arithmetic as librosa 0.10-0.11,
    written out because librosa's first call takes seconds (tests compare the two)."""
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    edges = _hz_to_mel(np.array([0.0, float(sample_rate) / 2]))
    mel_f = _mel_to_hz(np.linspace(edges[0], edges[1], num_bands + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((num_bands, n_fft // 2 + 1), dtype=np.float32)
    for i in range(num_bands):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:num_bands + 2] - mel_f[:num_bands]))[:, np.newaxis]
    weights[0, 0] = 1.0
    weights[-1, -1] = 1.0
    return weights > 0


class MelBandRoformer(_RoformerBase):
    """Mel-band RoFormer: overlapping bands from a mel filter bank, masks averaged."""

    def __init__(self, dim: int, *, depth: int, stereo: bool = False, num_stems: int = 1,
                 time_transformer_depth: int = 2, freq_transformer_depth: int = 2,
                 linear_transformer_depth: int = 0, num_bands: int = 60, dim_head: int = 64,
                 heads: int = 8, attn_dropout: float = 0.1, ff_dropout: float = 0.1,
                 flash_attn: bool = True, dim_freqs_in: int = 1025, sample_rate: int = 44100,
                 stft_n_fft: int = 2048, stft_hop_length: int = 512,
                 stft_win_length: int = 2048, stft_normalized: bool = False,
                 stft_window_fn: None = None, zero_dc: bool = True,
                 mask_estimator_depth: int = 1, multi_stft_resolution_loss_weight: float = 1.0,
                 multi_stft_resolutions_window_sizes: Sequence[int] = (4096, 2048, 1024, 512,
                                                                       256),
                 multi_stft_hop_size: int = 147, multi_stft_normalized: bool = False,
                 multi_stft_window_fn: None = None, match_input_audio_length: bool = False,
                 mlp_expansion_factor: int = 4, use_torch_checkpoint: bool = False,
                 skip_connection: bool = False, sage_attention: bool = False,
                 use_pope: bool = False) -> None:
        super().__init__()
        if stft_window_fn is not None or multi_stft_window_fn is not None:
            raise ValueError("custom window functions are not supported")
        if not 2 <= num_bands <= 1024 or not 1000 <= sample_rate <= 384000:
            raise ValueError("num_bands must be 2-1024 and sample_rate 1000-384000 Hz")
        self._init_common(dim, depth, stereo, num_stems, time_transformer_depth,
                          freq_transformer_depth, linear_transformer_depth, dim_head, heads,
                          attn_dropout, ff_dropout, flash_attn, stft_n_fft, stft_hop_length,
                          stft_win_length, stft_normalized, zero_dc, skip_connection,
                          use_pope, norm_output=True)
        layout = mel_band_layout(sample_rate, stft_n_fft, num_bands)
        if not layout.any(axis=0).all():
            raise ValueError("the mel bands leave frequency bins uncovered")
        freq_indices = np.nonzero(layout)[1]  # band by band, ascending bins
        if stereo:
            freq_indices = (freq_indices[:, None] * 2 + np.arange(2)).reshape(-1)
        # Plain CPU tensors (also under a `meta` device context): not in the state dict.
        self.register_buffer("freq_indices", torch.from_numpy(freq_indices.astype(np.int64)),
                             persistent=False)
        self.register_buffer("num_bands_per_freq",
                             torch.from_numpy(layout.sum(axis=0).astype(np.int64)),
                             persistent=False)
        dims = tuple(2 * int(f) * self.audio_channels for f in layout.sum(axis=1))
        self.band_split = BandSplit(dim, dims)
        self.mask_estimators = nn.ModuleList(
            MaskEstimator(dim, dims, mask_estimator_depth, mlp_expansion_factor,
                          hidden_layers=mask_estimator_depth)
            for _ in range(num_stems))

    def forward(self, raw_audio: torch.Tensor) -> torch.Tensor:
        """[B, C, L] -> [B, num_stems, C, L]."""
        raw_audio = self._check_input(raw_audio)
        channels = raw_audio.shape[1]
        window, spec = self._stft(raw_audio)
        b, fs, t, _ = spec.shape
        x = spec[:, self.freq_indices]  # [B, sum of band widths, T, 2]
        x = x.permute(0, 2, 1, 3).reshape(b, t, -1)
        x = self._axial(self.band_split(x))
        masks = self._masks(x)  # [B, N, picked bins, T]
        spec = torch.view_as_complex(spec.contiguous()).unsqueeze(1)
        n = masks.shape[1]
        masks = masks.type(spec.dtype)
        index = self.freq_indices.view(1, 1, -1, 1).expand(b, n, -1, t)
        summed = torch.zeros((b, n, fs, t), dtype=spec.dtype, device=spec.device)
        summed = summed.scatter_add_(2, index, masks)
        denom = self.num_bands_per_freq.repeat_interleave(channels).view(-1, 1)
        spec = spec * (summed / denom.clamp(min=1e-8))
        return self._istft(spec, window, raw_audio.shape[-1])


__all__ = ["BSRoformer", "DEFAULT_FREQS_PER_BANDS", "MelBandRoformer", "mel_band_layout"]
