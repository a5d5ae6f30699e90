"""NI Stems, both ways (issue 18): our six stems go into NI's four slots by a mapping the
user picks (presets default/guitar/wind or a custom spec), as AAC or lossless ALAC; a slot
with nothing produced is refused, never written as silence."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest
import soundfile as sf

from stemwright.models.errors import AudioError
from stemwright.models.remix.nistems import (
    NI_PRESETS,
    NIMapping,
    NISlot,
    parse_ni_mapping,
    read_ni_stems,
    write_ni_stems,
)

SR = 44100
SIX = ("vocals", "drums", "bass", "electric_guitar", "wind", "other")


def _stems(names=SIX, n=SR // 4, seed=0):
    """A distinct tone per stem (AAC codes tones well; a wrong sum shows), each channel
    its own phase, well below full scale."""
    t = np.arange(n) / SR
    freqs = {s: 220.0 * (1.5 ** i) + seed for i, s in enumerate(SIX)}
    return {s: np.stack([0.1 * np.sin(2 * np.pi * freqs[s] * t + ph) for ph in (0.0, 1.0)]
                        ).astype(np.float32) for s in names}


def _snr(want, got):
    return 10 * np.log10(np.sum(want ** 2) / max(np.sum((got - want) ** 2), 1e-20))


EXPECTED = {  # preset -> (slot names, stems summed per slot)
    "default": (["Drums", "Bass", "Other", "Vocals"],
                [("drums",), ("bass",), ("electric_guitar", "wind", "other"), ("vocals",)]),
    "guitar": (["Drums", "Bass", "Guitar", "Vocals & Rest"],
               [("drums",), ("bass",), ("electric_guitar",), ("vocals", "wind", "other")]),
    "wind": (["Drums", "Bass", "Wind", "Vocals & Rest"],
             [("drums",), ("bass",), ("wind",), ("vocals", "electric_guitar", "other")]),
}


@pytest.mark.parametrize("preset", sorted(EXPECTED))
def test_presets_round_trip_aac(tmp_path, preset):
    stems = _stems()
    mix = np.sum(list(stems.values()), axis=0)
    path = write_ni_stems(tmp_path / "a.stem.mp4", mix, stems, SR, mapping=preset)
    ni = read_ni_stems(path)
    names, groups = EXPECTED[preset]
    assert [s["name"] for s in ni.metadata["stems"]] == names
    assert all(s["color"].startswith("#") and len(s["color"]) == 7
               for s in ni.metadata["stems"])
    for key, group in zip(("drums", "bass", "other", "vocals"), groups, strict=True):
        want = np.sum([stems[s] for s in group], axis=0)
        assert _snr(want, ni.stems[key]) > 15, (preset, key)
    assert NI_PRESETS[preset].spec() == preset


@pytest.mark.parametrize("depth", [16, 24])
def test_custom_mapping_alac_exact(tmp_path, depth):
    n = SR // 4 + 37  # not a multiple of ALAC's 4096-sample frame
    stems = _stems(n=n, seed=depth)
    mix = np.sum(list(stems.values()), axis=0)
    spec = "drums;bass;Guitar=electric_guitar;vocals+other+wind"
    path = write_ni_stems(tmp_path / "x.stem.mp4", mix, stems, SR, mapping=spec,
                          codec="alac", bit_depth=depth)
    ni = read_ni_stems(path)
    assert ni.mix.shape == (2, n)  # no encoder delay, no padding: the input's length
    assert all(v.shape == (2, n) for v in ni.stems.values())
    meta = ni.metadata["stems"]
    assert [s["name"] for s in meta] == ["Drums", "Bass", "Guitar",
                                         "Vocals + Other + Wind"]  # in the spec's order
    lsb = 1.0 / 2 ** (depth - 1)
    want = {"drums": stems["drums"], "bass": stems["bass"],
            "other": stems["electric_guitar"],
            "vocals": stems["vocals"] + stems["other"] + stems["wind"]}
    for key, w in want.items():
        assert np.max(np.abs(ni.stems[key] - w)) <= lsb, key
    assert np.max(np.abs(ni.mix - mix)) <= lsb
    with open(path, "rb") as fh:  # the NI box as for AAC, and ALAC inside
        raw = fh.read()
    assert b"alac" in raw and b"stem" in raw and raw[4:12] == b"ftypM4A "


def test_alac_reads_back_with_the_same_manifest_layout_as_aac(tmp_path):
    stems = _stems(names=("vocals", "drums", "bass", "other"))
    mix = np.sum(list(stems.values()), axis=0)
    a = read_ni_stems(write_ni_stems(tmp_path / "a.stem.mp4", mix, stems, SR))
    b = read_ni_stems(write_ni_stems(tmp_path / "b.stem.mp4", mix, stems, SR, codec="alac"))
    assert a.metadata == b.metadata


@pytest.mark.parametrize(("spec", "match"), [
    ("drums;bass;vocals", "give 4 groups"),
    ("drums;bass;piano;vocals+other+wind+electric_guitar", "unknown stem 'piano'"),
    ("drums;bass;other+other;vocals+wind+electric_guitar", "repeated"),
    ("drums;bass+drums;other;vocals", "drums is in two slots"),
    ("drums;bass;;vocals", "an empty stem"),
    ("drums;bass;X=other+;vocals", "an empty stem"),
    ("karaoke", "choose a preset"),
    (f"{'N' * 41}=drums;bass;other;vocals", "printable characters"),
])
def test_bad_specs_are_refused_in_one_line(spec, match):
    with pytest.raises(AudioError, match=match) as info:
        parse_ni_mapping(spec)
    assert "\n" not in str(info.value)


def test_a_slot_with_nothing_produced_is_refused_not_silenced(tmp_path):
    stems = _stems(names=("vocals", "drums", "bass", "other"))  # a 4-stem model
    mix = np.sum(list(stems.values()), axis=0)
    start = time.monotonic()
    with pytest.raises(AudioError, match=r"missing: guitar \(electric_guitar\)"):
        write_ni_stems(tmp_path / "g.stem.mp4", mix, stems, SR, mapping="guitar")
    with pytest.raises(AudioError, match="puts wind in no slot"):
        write_ni_stems(tmp_path / "w.stem.mp4", mix, {**stems, "wind": stems["other"]},
                       SR, mapping="drums;bass;other;vocals")
    assert time.monotonic() - start < 5
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a .part


def test_bad_codec_and_depth_and_slot_colour_are_refused(tmp_path):
    stems = _stems()
    mix = np.sum(list(stems.values()), axis=0)
    with pytest.raises(AudioError, match="choose aac or alac"):
        write_ni_stems(tmp_path / "a.stem.mp4", mix, stems, SR, codec="flac")
    with pytest.raises(AudioError, match="16- or 24-bit"):
        write_ni_stems(tmp_path / "a.stem.mp4", mix, stems, SR, codec="alac", bit_depth=32)
    with pytest.raises(AudioError, match="#RRGGBB"):
        NIMapping(tuple(NISlot(n, "red", (n,)) for n in ("drums", "bass", "other",
                                                          "vocals")))
    assert list(tmp_path.iterdir()) == []


# -- the command line -------------------------------------------------------------------

@pytest.fixture
def song(tmp_path, monkeypatch):
    from stemwright.models.synthetic.test_songs import synth_song

    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    mix, _ = synth_song(1.0, SR, seed=3)
    path = tmp_path / "Tune.wav"
    sf.write(path, mix.T, SR, subtype="PCM_16")
    return path


def _run(capsys, *args):
    from stemwright.models.cli.commands import main

    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_custom_mapping_as_alac(tmp_path, song, capsys):
    out_dir = tmp_path / "out"
    # classic makes vocals, drums, bass, other: the custom spec names the slots
    args = ("separate", str(song), "-o", str(out_dir), "-m", "classic", "--format",
            "ni-stems", "--ni-stems-mapping", "Beat=drums;bass;Keys=other;vocals",
            "--ni-stems-codec", "alac", "--bit-depth", "16")
    code, out, err = _run(capsys, *args)
    assert code == 0, err
    ni = read_ni_stems(out_dir / "Tune" / "Tune.stem.mp4")
    assert [s["name"] for s in ni.metadata["stems"]] == ["Beat", "Bass", "Keys", "Vocals"]
    assert ni.mix.shape == (2, SR)  # ALAC: the song's length exactly
    record = json.loads((out_dir / "Tune" / ".stemwright.json").read_text())
    assert record["ni_codec"] == "alac"
    assert record["ni_mapping"] == "Beat=drums;Bass=bass;Keys=other;Vocals=vocals"
    # --skip-existing notices a changed mapping: the song is separated again
    code, out, err = _run(capsys, *args, "--skip-existing")
    assert code == 0 and "skipped" in (out + err).lower()
    code, out, err = _run(capsys, *args[:-4], "--ni-stems-codec", "alac", "--skip-existing",
                          "--force", "--ni-stems-mapping", "drums;bass;other;vocals")
    assert code == 0 and "skipped" not in (out + err).lower(), out + err
    ni = read_ni_stems(out_dir / "Tune" / "Tune.stem.mp4")
    assert ni.metadata["stems"][0]["name"] == "Drums"


@pytest.mark.parametrize(("extra", "match"), [
    (("--ni-stems-mapping", "guitar"), "missing: guitar"),
    (("--ni-stems-mapping", "drums;bass"), "--ni-stems-mapping: .*give 4 groups"),
    (("--ni-stems-codec", "alac", "--bitrate", "192"), "leave out --bitrate"),
    (("--ni-stems-codec", "alac", "--bit-depth", "32"), "16 or 24"),
])
def test_cli_refuses_bad_ni_options_before_any_work(tmp_path, song, capsys, extra, match):
    start = time.monotonic()
    code, _, err = _run(capsys, "separate", str(song), "-o", str(tmp_path / "out"), "-m",
                        "classic", "--format", "ni-stems", *extra)
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert re.search(match, err), err
    assert not (tmp_path / "out").exists() and time.monotonic() - start < 5


def test_cli_ni_options_need_ni_stems(tmp_path, song, capsys):
    code, _, err = _run(capsys, "separate", str(song), "-o", str(tmp_path / "out"), "-m",
                        "classic", "--ni-stems-codec", "alac")
    assert code != 0 and "apply to --format ni-stems" in err


# -- the Export dialog ------------------------------------------------------------------

def test_export_dialog_ni_options(qtbot, tmp_path):
    pytest.importorskip("pytestqt")
    from PySide6.QtCore import QSettings, Qt

    from stemwright.desktop.dialogs import export as export_dialog
    from stemwright.models.remix.mixer import MixerState

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("export/folder", str(tmp_path / "out"))
    settings.setValue("export/subfolder", False)
    stems = _stems(names=("vocals", "drums", "bass", "other"), n=SR // 4)
    d = export_dialog.ExportDialog(None, stems, SR, "Song", MixerState.for_stems(stems),
                                   settings)
    qtbot.addWidget(d)
    d.set_mode("nistems")
    opts = d.ni_options
    assert d.export_button.isEnabled()
    opts.mapping_combo.setCurrentIndex(opts.mapping_combo.findData("guitar"))
    assert not d.export_button.isEnabled() and "guitar" in d.preview.text()
    # the summary is rich text: "Vocals & Rest" shows as such, not as "&amp;"
    assert opts.summary.textFormat() == Qt.TextFormat.RichText
    assert "Vocals &amp; Rest" in opts.summary.text()
    opts.mapping_combo.setCurrentIndex(opts.mapping_combo.findData(""))
    opts.custom_edit.setText("drums;bass;Keys=other")
    assert not d.export_button.isEnabled() and "4 groups" in d.preview.text()
    opts.custom_edit.setText("drums;bass;Keys=other;vocals")
    opts.codec_combo.setCurrentIndex(opts.codec_combo.findData("alac24"))
    assert d.export_button.isEnabled()
    assert d.start_export()
    qtbot.waitUntil(lambda: d.task is None, timeout=60000)
    (path,) = d.written
    ni = read_ni_stems(path)
    assert [s["name"] for s in ni.metadata["stems"]] == ["Drums", "Bass", "Keys", "Vocals"]
    assert np.max(np.abs(ni.stems["other"] - stems["other"])) <= 2.0 ** -23
    # remembered for the next export
    again = export_dialog.ExportDialog(None, stems, SR, "Song", MixerState.for_stems(stems),
                                       settings)
    qtbot.addWidget(again)
    assert again.ni_options.custom_edit.text() == "drums;bass;Keys=other;vocals"
    assert again.ni_options.codec() == ("alac", 24)
