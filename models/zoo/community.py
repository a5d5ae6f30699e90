"""Community models (issue 16): the MSST families (BS-RoFormer, Mel-Band RoFormer, MDX23C,
SCNet), a `.ckpt` state dict plus its YAML config each, as UVR, python-audio-separator and
ZFTurbo's Music-Source-Separation-Training publish them; and UVR's VR-architecture models
(a `.pth`, its settings from UVR's model data). Only facts live here;
`catalog` lists, imports and loads them (`separation.roformer_backend` runs them).
"""

from __future__ import annotations

from ..stems import StemMapping
from .entries import ModelEntry, RemoteFile

#: python-audio-separator's release holding the models of its own list (models.json);
#: `audio-separator` 0.47.1 falls back to it when UVR's release lacks a file.
AUDIO_SEPARATOR_ROOT = ("https://github.com/nomadkaraoke/python-audio-separator/releases/"
                        "download/model-configs/")
UVR_ROOT = "https://github.com/TRvlvr/model_repo/releases/download/all_public_uvr_models/"
MSST_CONFIGS = ("https://raw.githubusercontent.com/ZFTurbo/Music-Source-Separation-Training/"
                "main/configs/")
MSST_RELEASES = ("https://github.com/ZFTurbo/Music-Source-Separation-Training/releases/"
                 "download/")
#: Both files of a RoFormer entry; `target` says which is which. Their names carry no
#: checksum and their publishers list none, and every zoo file must be checksum-verified
#: (downloads; `models import` matches files by checksum): so these entries wait in
#: ROFORMER_ENTRIES, outside ZOO, until their sha256 are recorded from the real files
#: (never guessed). Their sizes are unknown here too (0.0).
_ROFORMER_NO_LICENCE = "none published (community weights)"


def _roformer(ckpt_url: str, config_url: str) -> tuple[RemoteFile, RemoteFile]:
    return RemoteFile(ckpt_url, "checkpoint"), RemoteFile(config_url, "config")


def _roformer_entries() -> dict[str, ModelEntry]:
    """BS-RoFormer SW (six stems) and the top published vocals RoFormers."""
    return {entry.name: entry for entry in (
        ModelEntry(
            "bs_roformer_sw", "BS-RoFormer SW, six stems", "roformer",
            StemMapping(("bass", "drums", "other", "vocals", "guitar", "piano"),
                        {"guitar": "electric_guitar", "piano": "other"}),
            44100, 0.0,
            _ROFORMER_NO_LICENCE,
            "Community BS-RoFormer, trainer unknown ('BS Roformer SW by jarredou' in "
            "audio-separator 0.47.1's model list); MVSep guitar leaderboard 9.01 dB "
            "guitar SDR, piano leaderboard 7.80 dB piano SDR (as quoted in issue 16 and "
            "third-party notes; not re-measured here)",
            "Six stems: vocals, drums, bass, guitar -> electric guitar, piano -> other, "
            "other. Band-split RoFormer, about 8 s chunks.",
            _roformer(AUDIO_SEPARATOR_ROOT + "BS-Roformer-SW.ckpt",
                      AUDIO_SEPARATOR_ROOT + "BS-Roformer-SW.yaml")),
        ModelEntry(
            "bs_roformer_viperx_1297", "BS-RoFormer vocals (viperx, ep 317)", "roformer",
            StemMapping(("vocals", "other")), 44100, 0.0, _ROFORMER_NO_LICENCE,
            "viperx, BS-RoFormer trained for vocals; vocals SDR 10.87 dB on MVSep's "
            "multisong set (ZFTurbo/Music-Source-Separation-Training "
            "docs/pretrained_models.md); median 11.77 dB vocals, 16.45 dB instrumental "
            "over 40 MUSDB18-HQ train-split tracks, which it may have trained on (audio-separator "
            "0.47.1 models-scores.json)",
            "Vocals and the rest (other = mix - vocals). UVR's 'BS-Roformer-Viperx-1297'.",
            _roformer(UVR_ROOT + "model_bs_roformer_ep_317_sdr_12.9755.ckpt",
                      MSST_CONFIGS + "viperx/model_bs_roformer_ep_317_sdr_12.9755.yaml"),
            sdr=(("vocals", 10.87),)),
        ModelEntry(
            "mel_band_roformer_kj_vocals", "Mel-Band RoFormer vocals (Kimberley Jensen)",
            "roformer", StemMapping(("vocals", "other")), 44100, 0.0,
            "not stated in the lists that publish it (see Hugging Face "
            "KimberleyJSN/melbandroformer)",
            "Kimberley Jensen, Mel-Band RoFormer for vocals; vocals SDR 10.98 dB on MVSep's "
            "multisong set (ZFTurbo/Music-Source-Separation-Training "
            "docs/pretrained_models.md); median 12.60 dB vocals over 11 MUSDB18-HQ train-split "
            "tracks (audio-separator 0.47.1 models-scores.json, "
            "'vocals_mel_band_roformer.ckpt')",
            "Vocals and the rest (other = mix - vocals), Mel-band RoFormer.",
            _roformer("https://huggingface.co/KimberleyJSN/melbandroformer/resolve/main/"
                      "MelBandRoformer.ckpt",
                      MSST_CONFIGS + "KimberleyJensen/config_vocals_mel_band_roformer_kj.yaml"),
            sdr=(("vocals", 10.98),)),
        ModelEntry(
            "mdx23c_instvoc_hq", "MDX23C InstVoc HQ (8K FFT, vocals / instrumental)",
            "roformer", StemMapping(("Vocals", "Instrumental"),
                                    {"Vocals": "vocals", "Instrumental": "other"}),
            44100, 0.0, _ROFORMER_NO_LICENCE,
            "UVR's MDX23C (TFC-TDF v3, KUIELab's SDX23 design) 'MDX23C-InstVoc HQ'; median "
            "10.56 dB vocals, 15.83 dB instrumental over 40 MUSDB18-HQ train-split tracks, "
            "which it may have trained on (audio-separator models-scores.json, "
            "'MDX23C-8KFFT-InstVoc_HQ.ckpt')",
            "Vocals and instrumental (-> other), MDX23C U-Net, about 6 s chunks.",
            _roformer(UVR_ROOT + "MDX23C-8KFFT-InstVoc_HQ.ckpt",
                      "https://raw.githubusercontent.com/Anjok07/ultimatevocalremovergui/"
                      "eb1ee99c9678cab64e3cbb87c9431c054cc7e3ec/models/MDX_Net_Models/"
                      "model_data/mdx_c_configs/model_2_stem_full_band_8k.yaml")),
        ModelEntry(
            "scnet_large_musdb", "SCNet large, four stems (MUSDB18-HQ)", "roformer",
            StemMapping(("drums", "bass", "other", "vocals")), 44100, 0.0,
            "none stated for the weights (the MSST and starrytong/SCNet code: MIT)",
            "ZFTurbo, SCNet large trained on MUSDB18-HQ only; MUSDB18 test average SDR 9.32 "
            "dB (bass 8.63, drums 10.89, vocals 10.69, other 7.06), multisong average 9.19 "
            "(ZFTurbo/Music-Source-Separation-Training docs/pretrained_models.md)",
            "Drums, bass, other, vocals. Sparse Compression Network, 11 s chunks.",
            _roformer(MSST_RELEASES + "v1.0.8/model_scnet_sdr_9.3244.ckpt",
                      MSST_RELEASES + "v1.0.8/config_musdb18_scnet_large.yaml"),
            sdr=(("vocals", 10.69), ("drums", 10.89), ("bass", 8.63), ("other", 7.06))),
        ModelEntry(
            "vr_wind_inst_hp", "UVR wind instruments (VR architecture, 17_HP-Wind_Inst)",
            "vr", StemMapping(("No Woodwinds", "Woodwinds"),
                              {"No Woodwinds": "other", "Woodwinds": "wind"}),
            44100, 223.65, "none published for the weights (UVR's code: MIT)",
            "Ultimate Vocal Remover's VR-architecture wind/woodwind model "
            "'17_HP-Wind_Inst-UVR' (UVR model data: params 4band_v3, primary stem 'No "
            "Woodwinds'); no SDR published (audio-separator models-scores.json lists it with "
            "empty scores)",
            "Wind (woodwinds and brass as UVR groups them) and the rest (-> other). A "
            "CascadedNet on a four-band spectrogram; the whole song at once.",
            (RemoteFile(UVR_ROOT + "17_HP-Wind_Inst-UVR.pth", "checkpoint"),)),
    )}


#: UVR's model data of the VR-architecture entries (`vr_model_data/model_data_new.json`
#: of TRvlvr/application_data; the network size follows from the file size, as in UVR).
VR_SETTINGS: dict[str, dict] = {
    "vr_wind_inst_hp": {"params": "4band_v3", "primary_stem": "No Woodwinds", "nout": 64,
                        "nout_lstm": 128},
}


#: Community RoFormers ready to join ZOO once their files' sha256 are recorded.
ROFORMER_ENTRIES: dict[str, ModelEntry] = _roformer_entries()


__all__ = ["AUDIO_SEPARATOR_ROOT", "MSST_CONFIGS", "ROFORMER_ENTRIES", "UVR_ROOT", "VR_SETTINGS"]
