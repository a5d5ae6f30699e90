"""`stemwright separate --format ni-stems` options: which of our stems go into NI's four
slots (`--ni-stems-mapping`) and the codec (`--ni-stems-codec aac|alac`). Kept here so
commands.py stays short; the mapping itself lives in `remix.nistems`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..errors import AudioError
from ..remix.nistems import NI_PRESETS, check_ni_codec, parse_ni_mapping
from .batch import NI_STEMS, BatchError


def add_ni_arguments(p: argparse.ArgumentParser) -> None:
    """The two options on `separate`'s parser."""
    p.add_argument("--ni-stems-mapping", metavar="MAP", default=None,
                   help=f"ni-stems: which stems go into NI's four slots: a preset "
                        f"({', '.join(NI_PRESETS)}; default: drums | bass | other = guitar + "
                        "wind + other | vocals) or four groups for the drums, bass, other and "
                        "vocals slots separated by ';', stems joined by '+', each optionally "
                        "named, e.g. \"drums;bass;Guitar=electric_guitar;vocals+other+wind\"")
    p.add_argument("--ni-stems-codec", choices=("aac", "alac"), default=None,
                   help="ni-stems: AAC (default, --bitrate) or ALAC, lossless "
                        "(--bit-depth 16 or 24)")


def ni_settings(args: argparse.Namespace, produced: Sequence[str],
                model: str) -> dict[str, str]:
    """{"ni_mapping": its canonical spec, "ni_codec": ...} for `Settings`; BatchError (one
    line) for options that do not fit --format, the model or each other."""
    mapping_arg = getattr(args, "ni_stems_mapping", None)
    codec_arg = getattr(args, "ni_stems_codec", None)
    if args.format != NI_STEMS:
        if mapping_arg is not None or codec_arg is not None:
            raise BatchError("--ni-stems-mapping and --ni-stems-codec apply to --format "
                             "ni-stems only; leave them out")
        return {}
    codec = codec_arg or "aac"
    if codec == "alac" and (args.bitrate is not None or args.vbr is not None):
        raise BatchError("--ni-stems-codec alac is lossless; leave out --bitrate and --vbr "
                         "(choose --bit-depth 16 or 24)")
    try:
        check_ni_codec(codec, args.bit_depth if codec == "alac" else 24)
    except AudioError as exc:
        raise BatchError(f"--ni-stems-codec alac: {exc}; use --bit-depth 16 or 24") from None
    try:
        mapping = parse_ni_mapping(mapping_arg)
    except AudioError as exc:
        raise BatchError(f"--ni-stems-mapping: {exc}") from None
    try:
        mapping.check(produced)
    except AudioError as exc:
        raise BatchError(f"model '{model}': {exc}") from None
    return {"ni_mapping": mapping.spec(), "ni_codec": codec}
