"""UVR's "VR architecture" networks: mask estimators on a multi-band magnitude spectrogram.

Two generations, written here from the MIT-licensed code in python-audio-separator
(`uvr_lib_v5/vr_network`), keeping their module names so the official `.pth` state dicts
(plain `model.state_dict()` pickles) load unchanged:

  * `CascadedNet` (UVR "v5.1", `nets_new.py`): three cascaded U-Nets with a BiLSTM in
    each decoder; e.g. 17_HP-Wind_Inst-UVR (nout 64, nout_lstm 128), the De-Echo and
    De-Noise models;
  * `CascadedASPPNet` (UVR v4/v5, `nets.py`): three cascaded ASPP U-Nets; the "SP", "HP"
    and "HP2" models (channels 16 / 32 / 64, told apart by file size in UVR, see
    `aspp_config_for_size`).

Both take a magnitude spectrogram [N, 2, bins + 1, frames] (bins = n_fft // 2, stereo as
two channels) and return a mask in [0, 1] of the same shape; `predict_mask` crops `offset`
frames at both ends (the context each window carries).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def crop_center(h1: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
    """`h1` [N, C, F, T1] cropped in time to the centre T2 frames of `h2` [.., T2]."""
    t1, t2 = h1.shape[3], h2.shape[3]
    if t1 == t2:
        return h1
    if t1 < t2:
        raise ValueError("the window is too short for this network (h1 shorter than h2)")
    start = (t1 - t2) // 2
    return h1[:, :, :, start:start + t2]


class Conv2DBNActiv(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d -> activation, as `conv.0/1/2`."""

    def __init__(self, nin: int, nout: int, ksize: int = 3, stride: int = 1,
                 pad: int | tuple[int, int] = 1, dilation: int | tuple[int, int] = 1,
                 activ: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(nin, nout, kernel_size=ksize, stride=stride, padding=pad,
                      dilation=dilation, bias=False),
            nn.BatchNorm2d(nout), activ())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


# -- v5.1: CascadedNet (nets_new / layers_new) ---------------------------------------------

class Encoder(nn.Module):
    """Two conv blocks, the first strided: [N, nin, F, T] -> [N, nout, F/s, T/s]."""

    def __init__(self, nin: int, nout: int, ksize: int = 3, stride: int = 1,
                 pad: int = 1, activ: type[nn.Module] = nn.LeakyReLU) -> None:
        super().__init__()
        self.conv1 = Conv2DBNActiv(nin, nout, ksize, stride, pad, activ=activ)
        self.conv2 = Conv2DBNActiv(nout, nout, ksize, 1, pad, activ=activ)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class Decoder(nn.Module):
    """Bilinear x2 upsampling, skip concatenated (time-cropped), one conv block."""

    def __init__(self, nin: int, nout: int, ksize: int = 3, stride: int = 1,
                 pad: int = 1, activ: type[nn.Module] = nn.ReLU, dropout: bool = False) -> None:
        super().__init__()
        self.conv1 = Conv2DBNActiv(nin, nout, ksize, 1, pad, activ=activ)
        self.dropout = nn.Dropout2d(0.1) if dropout else None

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        if skip is not None:
            x = torch.cat([x, crop_center(skip, x)], dim=1)
        x = self.conv1(x)
        return self.dropout(x) if self.dropout is not None else x


class ASPPModule(nn.Module):
    """Atrous spatial pyramid pooling: a frequency-pooled branch, a 1x1 and three dilated
    3x3 branches (dilations as (freq, time) pairs), fused by a 1x1 bottleneck."""

    def __init__(self, nin: int, nout: int,
                 dilations: tuple[tuple[int, int], ...] = ((4, 2), (8, 4), (12, 6)),
                 activ: type[nn.Module] = nn.ReLU, dropout: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.AdaptiveAvgPool2d((1, None)),
                                   Conv2DBNActiv(nin, nout, 1, 1, 0, activ=activ))
        self.conv2 = Conv2DBNActiv(nin, nout, 1, 1, 0, activ=activ)
        self.conv3 = Conv2DBNActiv(nin, nout, 3, 1, dilations[0], dilations[0], activ=activ)
        self.conv4 = Conv2DBNActiv(nin, nout, 3, 1, dilations[1], dilations[1], activ=activ)
        self.conv5 = Conv2DBNActiv(nin, nout, 3, 1, dilations[2], dilations[2], activ=activ)
        self.bottleneck = Conv2DBNActiv(nout * 5, nout, 1, 1, 0, activ=activ)
        self.dropout = nn.Dropout2d(0.1) if dropout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        feat1 = F.interpolate(self.conv1(x), size=(h, w), mode="bilinear", align_corners=True)
        out = torch.cat((feat1, self.conv2(x), self.conv3(x), self.conv4(x), self.conv5(x)),
                        dim=1)
        out = self.bottleneck(out)
        return self.dropout(out) if self.dropout is not None else out


class LSTMModule(nn.Module):
    """[N, nin_conv, F, T] -> one channel -> BiLSTM over time -> [N, 1, F, T]."""

    def __init__(self, nin_conv: int, nin_lstm: int, nout_lstm: int) -> None:
        super().__init__()
        self.conv = Conv2DBNActiv(nin_conv, 1, 1, 1, 0)
        self.lstm = nn.LSTM(input_size=nin_lstm, hidden_size=nout_lstm // 2,
                            bidirectional=True)
        self.dense = nn.Sequential(nn.Linear(nout_lstm, nin_lstm), nn.BatchNorm1d(nin_lstm),
                                   nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, nbins, nframes = x.shape
        h = self.conv(x)[:, 0].permute(2, 0, 1)  # [T, N, F]
        h, _ = self.lstm(h)
        h = self.dense(h.reshape(-1, h.shape[-1]))  # [T * N, F]
        return h.reshape(nframes, n, 1, nbins).permute(1, 2, 3, 0)


class BaseNet(nn.Module):
    """A five-level U-Net with an ASPP bottleneck and an LSTM before the last decoder:
    [N, nin, F, T] -> [N, nout, F, T] (F a multiple of 16, `nin_lstm` = F / 2)."""

    def __init__(self, nin: int, nout: int, nin_lstm: int, nout_lstm: int,
                 dilations: tuple[tuple[int, int], ...] = ((4, 2), (8, 4), (12, 6))) -> None:
        super().__init__()
        self.enc1 = Conv2DBNActiv(nin, nout, 3, 1, 1)
        self.enc2 = Encoder(nout, nout * 2, 3, 2, 1)
        self.enc3 = Encoder(nout * 2, nout * 4, 3, 2, 1)
        self.enc4 = Encoder(nout * 4, nout * 6, 3, 2, 1)
        self.enc5 = Encoder(nout * 6, nout * 8, 3, 2, 1)
        self.aspp = ASPPModule(nout * 8, nout * 8, dilations, dropout=True)
        self.dec4 = Decoder(nout * (6 + 8), nout * 6, 3, 1, 1)
        self.dec3 = Decoder(nout * (4 + 6), nout * 4, 3, 1, 1)
        self.dec2 = Decoder(nout * (2 + 4), nout * 2, 3, 1, 1)
        self.lstm_dec2 = LSTMModule(nout * 2, nin_lstm, nout_lstm)
        self.dec1 = Decoder(nout * (1 + 2) + 1, nout * 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        h = self.aspp(self.enc5(e4))
        h = self.dec4(h, e4)
        h = self.dec3(h, e3)
        h = self.dec2(h, e2)
        h = torch.cat([h, self.lstm_dec2(h)], dim=1)
        return self.dec1(h, e1)


class CascadedNet(nn.Module):
    """UVR v5.1 mask network: low/high halves of the band (stage 1, stage 2), then the
    full band (stage 3). `n_fft` = 2 x the model params' `bins`.

    forward: magnitude [N, 2, n_fft/2 + 1, T] -> mask [N, 2, n_fft/2 + 1, T] in [0, 1]
    (the last bin replicated).
    """

    offset = 64  # frames of context cropped from each side of a window's mask

    def __init__(self, n_fft: int, nout: int = 32, nout_lstm: int = 128) -> None:
        super().__init__()
        self.max_bin = n_fft // 2
        self.output_bin = n_fft // 2 + 1
        self.nin_lstm = self.max_bin // 2
        lstm = self.nin_lstm // 2
        self.stg1_low_band_net = nn.Sequential(BaseNet(2, nout // 2, lstm, nout_lstm),
                                               Conv2DBNActiv(nout // 2, nout // 4, 1, 1, 0))
        self.stg1_high_band_net = BaseNet(2, nout // 4, lstm, nout_lstm // 2)
        self.stg2_low_band_net = nn.Sequential(BaseNet(nout // 4 + 2, nout, lstm, nout_lstm),
                                               Conv2DBNActiv(nout, nout // 2, 1, 1, 0))
        self.stg2_high_band_net = BaseNet(nout // 4 + 2, nout // 2, lstm, nout_lstm // 2)
        self.stg3_full_band_net = BaseNet(3 * nout // 4 + 2, nout, self.nin_lstm, nout_lstm)
        self.out = nn.Conv2d(nout, 2, 1, bias=False)
        self.aux_out = nn.Conv2d(3 * nout // 4, 2, 1, bias=False)  # training only

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :self.max_bin]
        bandw = x.shape[2] // 2
        l1_in, h1_in = x[:, :, :bandw], x[:, :, bandw:]
        l1 = self.stg1_low_band_net(l1_in)
        h1 = self.stg1_high_band_net(h1_in)
        aux1 = torch.cat([l1, h1], dim=2)
        l2 = self.stg2_low_band_net(torch.cat([l1_in, l1], dim=1))
        h2 = self.stg2_high_band_net(torch.cat([h1_in, h1], dim=1))
        aux2 = torch.cat([l2, h2], dim=2)
        f3 = self.stg3_full_band_net(torch.cat([x, aux1, aux2], dim=1))
        mask = torch.sigmoid(self.out(f3))
        return F.pad(mask, (0, 0, 0, self.output_bin - mask.shape[2]), mode="replicate")

    def predict_mask(self, x: torch.Tensor) -> torch.Tensor:
        """The mask without `offset` frames at each end: [N, 2, F, T - 2 offset]."""
        mask = self.forward(x)
        return mask[:, :, :, self.offset:-self.offset]


# -- v4/v5: CascadedASPPNet (nets / layers) ------------------------------------------------

class SeperableConv2DBNActiv(nn.Module):
    """Depthwise conv -> pointwise conv -> BatchNorm2d -> activation (UVR's spelling)."""

    def __init__(self, nin: int, nout: int, ksize: int = 3, stride: int = 1, pad: int = 1,
                 dilation: int = 1, activ: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(nin, nin, kernel_size=ksize, stride=stride, padding=pad,
                      dilation=dilation, groups=nin, bias=False),
            nn.Conv2d(nin, nout, kernel_size=1, bias=False),
            nn.BatchNorm2d(nout), activ())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class EncoderV4(nn.Module):
    """Conv block then strided conv block; returns (downsampled, skip)."""

    def __init__(self, nin: int, nout: int, ksize: int = 3, stride: int = 1, pad: int = 1,
                 activ: type[nn.Module] = nn.LeakyReLU) -> None:
        super().__init__()
        self.conv1 = Conv2DBNActiv(nin, nout, ksize, 1, pad, activ=activ)
        self.conv2 = Conv2DBNActiv(nout, nout, ksize, stride, pad, activ=activ)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.conv1(x)
        return self.conv2(skip), skip


class DecoderV4(nn.Module):
    """Bilinear x2 upsampling, skip concatenated (time-cropped), one conv block (`conv`)."""

    def __init__(self, nin: int, nout: int, ksize: int = 3, stride: int = 1, pad: int = 1,
                 activ: type[nn.Module] = nn.ReLU, dropout: bool = False) -> None:
        super().__init__()
        self.conv = Conv2DBNActiv(nin, nout, ksize, 1, pad, activ=activ)
        self.dropout = nn.Dropout2d(0.1) if dropout else None

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        if skip is not None:
            x = torch.cat([x, crop_center(skip, x)], dim=1)
        x = self.conv(x)
        return self.dropout(x) if self.dropout is not None else x


class ASPPModuleV4(nn.Module):
    """ASPP with separable dilated branches; 5, 6 or 7 branches (`branches`). With 7, UVR
    registers one extra module twice (conv6 and conv7 share weights), kept here."""

    def __init__(self, nin: int, nout: int, dilations: tuple[int, int, int] = (4, 8, 16),
                 activ: type[nn.Module] = nn.ReLU, branches: int = 5) -> None:
        super().__init__()
        if branches not in (5, 6, 7):
            raise ValueError("an ASPP module has 5, 6 or 7 branches")
        self.branches = branches
        self.conv1 = nn.Sequential(nn.AdaptiveAvgPool2d((1, None)),
                                   Conv2DBNActiv(nin, nin, 1, 1, 0, activ=activ))
        self.conv2 = Conv2DBNActiv(nin, nin, 1, 1, 0, activ=activ)
        self.conv3 = SeperableConv2DBNActiv(nin, nin, 3, 1, dilations[0], dilations[0], activ)
        self.conv4 = SeperableConv2DBNActiv(nin, nin, 3, 1, dilations[1], dilations[1], activ)
        self.conv5 = SeperableConv2DBNActiv(nin, nin, 3, 1, dilations[2], dilations[2], activ)
        if branches >= 6:
            self.conv6 = SeperableConv2DBNActiv(nin, nin, 3, 1, dilations[2], dilations[2],
                                                activ)
        if branches == 7:
            self.conv7 = self.conv6
        self.bottleneck = nn.Sequential(
            Conv2DBNActiv(nin * branches, nout, 1, 1, 0, activ=activ), nn.Dropout2d(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        feats = [F.interpolate(self.conv1(x), size=(h, w), mode="bilinear",
                               align_corners=True),
                 self.conv2(x), self.conv3(x), self.conv4(x), self.conv5(x)]
        if self.branches >= 6:
            feats.append(self.conv6(x))
        if self.branches == 7:
            feats.append(self.conv7(x))
        return self.bottleneck(torch.cat(feats, dim=1))


class BaseASPPNet(nn.Module):
    """A four- (or five-, `deep`) level U-Net with an ASPP bottleneck:
    [N, nin, F, T] -> [N, ch, F, T]."""

    def __init__(self, nin: int, ch: int, dilations: tuple[int, int, int] = (4, 8, 16),
                 branches: int = 5, deep: bool = False) -> None:
        super().__init__()
        self.deep = deep
        self.enc1 = EncoderV4(nin, ch, 3, 2, 1)
        self.enc2 = EncoderV4(ch, ch * 2, 3, 2, 1)
        self.enc3 = EncoderV4(ch * 2, ch * 4, 3, 2, 1)
        self.enc4 = EncoderV4(ch * 4, ch * 8, 3, 2, 1)
        if deep:
            self.enc5 = EncoderV4(ch * 8, ch * 16, 3, 2, 1)
            self.aspp = ASPPModuleV4(ch * 16, ch * 32, dilations, branches=branches)
            self.dec5 = DecoderV4(ch * (16 + 32), ch * 16, 3, 1, 1)
        else:
            self.aspp = ASPPModuleV4(ch * 8, ch * 16, dilations, branches=branches)
        self.dec4 = DecoderV4(ch * (8 + 16), ch * 8, 3, 1, 1)
        self.dec3 = DecoderV4(ch * (4 + 8), ch * 4, 3, 1, 1)
        self.dec2 = DecoderV4(ch * (2 + 4), ch * 2, 3, 1, 1)
        self.dec1 = DecoderV4(ch * (1 + 2), ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, e1 = self.enc1(x)
        h, e2 = self.enc2(h)
        h, e3 = self.enc3(h)
        h, e4 = self.enc4(h)
        if self.deep:
            h, e5 = self.enc5(h)
            h = self.dec5(self.aspp(h), e5)
        else:
            h = self.aspp(h)
        h = self.dec4(h, e4)
        h = self.dec3(h, e3)
        h = self.dec2(h, e2)
        return self.dec1(h, e1)


class CascadedASPPNet(nn.Module):
    """UVR v4/v5 mask network with `ch` channels (SP 16, HP 32, HP2 64); `branches` and
    `deep` as `aspp_config_for_size` gives them for an official file.

    forward: magnitude [N, 2, n_fft/2 + 1, T] -> mask [N, 2, n_fft/2 + 1, T] in [0, 1].
    """

    offset = 128

    def __init__(self, n_fft: int, ch: int = 16, branches: int = 5,
                 deep: bool = False) -> None:
        super().__init__()
        half = ch // 2
        kw = {"branches": branches, "deep": deep}
        self.stg1_low_band_net = BaseASPPNet(2, ch, **kw)
        self.stg1_high_band_net = BaseASPPNet(2, ch, **kw)
        self.stg2_bridge = Conv2DBNActiv(2 + ch, half, 1, 1, 0)
        self.stg2_full_band_net = BaseASPPNet(half, ch, **kw)
        self.stg3_bridge = Conv2DBNActiv(2 + 2 * ch, ch, 1, 1, 0)
        self.stg3_full_band_net = BaseASPPNet(ch, 2 * ch, **kw)
        self.out = nn.Conv2d(2 * ch, 2, 1, bias=False)
        self.aux1_out = nn.Conv2d(ch, 2, 1, bias=False)  # training only
        self.aux2_out = nn.Conv2d(ch, 2, 1, bias=False)  # training only
        self.max_bin = n_fft // 2
        self.output_bin = n_fft // 2 + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :self.max_bin]
        bandw = x.shape[2] // 2
        aux1 = torch.cat([self.stg1_low_band_net(x[:, :, :bandw]),
                          self.stg1_high_band_net(x[:, :, bandw:])], dim=2)
        aux2 = self.stg2_full_band_net(self.stg2_bridge(torch.cat([x, aux1], dim=1)))
        h = self.stg3_full_band_net(self.stg3_bridge(torch.cat([x, aux1, aux2], dim=1)))
        mask = torch.sigmoid(self.out(h))
        return F.pad(mask, (0, 0, 0, self.output_bin - mask.shape[2]), mode="replicate")

    def predict_mask(self, x: torch.Tensor) -> torch.Tensor:
        """The mask without `offset` frames at each end: [N, 2, F, T - 2 offset]."""
        mask = self.forward(x)
        return mask[:, :, :, self.offset:-self.offset]


#: UVR tells a VR model's network by its file size in KiB, rounded to the nearest of these.
UVR_ARCH_SIZES = (31191, 33966, 56817, 123821, 123812, 129605, 218409, 537238, 537227)
#: Sizes that are v5.1 `CascadedNet`s (their nout; nout_lstm 128).
UVR_CASCADED_SIZES = {56817: 32, 218409: 64}


def uvr_arch_size(file_bytes: int) -> int:
    """UVR's `nn_arch_size` of a `.pth` of `file_bytes` bytes (nearest known size, KiB)."""
    kib = -(-int(file_bytes) // 1024)
    return min(UVR_ARCH_SIZES, key=lambda s: abs(s - kib))


def aspp_config_for_size(arch_size: int) -> dict[str, int | bool]:
    """`CascadedASPPNet` keyword arguments of an official v4/v5 file of UVR size
    `arch_size` (SP: 31191, 33966, 129605; HP: 123821, 123812; HP2: 537238, 537227)."""
    if arch_size in (31191, 33966, 129605):
        ch = 16
    elif arch_size in (123821, 123812):
        ch = 32
    elif arch_size in (537238, 537227):
        ch = 64
    else:
        raise ValueError(f"{arch_size} is not the size of a v4/v5 VR network")
    branches = 6 if arch_size == 129605 else 7 if arch_size in (537238, 537227, 33966) else 5
    return {"ch": ch, "branches": branches, "deep": arch_size == 129605}


__all__ = ["CascadedASPPNet", "CascadedNet", "UVR_ARCH_SIZES", "UVR_CASCADED_SIZES",
           "aspp_config_for_size", "uvr_arch_size"]
