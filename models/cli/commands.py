"""The `stemwright` command line: separate, models, evaluate, multitrack, train, synth, info,
bench, gui.

Every user-facing failure ends as one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from ..audio.encode import check_lossy_options
from ..audio.io import LOSSY_FORMATS, OUTPUT_FORMATS, SAVE_FORMATS
from ..benchmarks.compare import run_compare, to_markdown, write_report
from ..benchmarks.separation import run_benchmark
from ..diagnostics import as_json, explain, report_lines, run_checks
from ..errors import AudioError, Cancelled, StemwrightError
from ..remix.export import DEFAULT_PATTERN
from ..separation.devices import DEVICE_CHOICES, resolve_device
from ..stems import STEM_IDS, get_stem
from ..wording import count
from ..zoo import catalog as zoo
from .batch import (
    NI_STEMS,
    NI_STEMS_KBPS,
    Rank,
    Settings,
    Summary,
    check_songs,
    find_songs,
    model_pattern,
    plan,
    preset_stems,
    rank_from_env,
    share,
    threads_per_song,
)
from .batch import residual_note as _residual_note  # noqa: F401 - its old name here
from .ni_options import add_ni_arguments, ni_settings
from .recipes_cli import (
    ENSEMBLE_HELP,
    download_names,
    ensemble_model,
    model_details,
    model_state,
    warn_unreadable_recipes,
)
from .runs import run_parallel, run_serial
from .train import add_train_parser, cmd_bench_training

EXIT_ERROR, EXIT_CANCELLED = 1, 130
#: what `stemwright evaluate` scores besides the default model when given neither -m
#: nor --oracle
DEFAULT_ORACLE = "irm2"


class CliError(StemwrightError):
    """A usage problem found before any work starts."""


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other failure (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"stemwright: error: {' '.join(message.split())} (see `{self.prog} "
                     "--help`)\n")


def _progress_bar(total: float, desc: str, unit: str = "s", scale: bool = False):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=scale, leave=False,
                dynamic_ncols=True, disable=None,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f}{unit} "
                           "[{elapsed}<{remaining}]" if not scale else None)


# -- separate ---------------------------------------------------------------------------

def _warn(text: str) -> None:
    print(f"stemwright: warning: {text}", file=sys.stderr, flush=True)


def _device_for(spec: str, jobs: int, rank: Rank) -> str:
    """The device this process separates on: under torchrun each rank on a GPU machine
    takes GPU LOCAL_RANK (for --device auto or cuda). Parallel jobs are CPU only."""
    device = resolve_device(spec)  # an unavailable device is an error even for CPU models
    if jobs > 1 and device.type != "cpu":
        raise CliError(f"--jobs {jobs} separates songs in parallel processes on the CPU, "
                       f"but the device here is {device} (a GPU, which runs one song at a "
                       "time); use --jobs 1 on the GPU, or --device cpu")
    if rank.world > 1 and device.type == "cuda" and spec.strip().lower() in ("auto", "cuda"):
        import torch  # lazy: torch is loaded already; only GPU ranks get here

        return f"cuda:{rank.local_rank % max(1, torch.cuda.device_count())}"
    return spec


def _format_options(args: argparse.Namespace) -> tuple[int | None, int | None]:
    """(bitrate, vbr) for the chosen --format; CliError for options it does not take."""
    fmt = args.format
    if fmt in SAVE_FORMATS:
        if args.bit_depth not in SAVE_FORMATS[fmt]:
            raise CliError(f"{fmt.upper()} supports --bit-depth "
                           f"{'/'.join(map(str, SAVE_FORMATS[fmt]))}")
        if args.bitrate is not None or args.vbr is not None:
            raise CliError(f"{fmt.upper()} is lossless; --bitrate and --vbr apply to "
                           f"{', '.join(LOSSY_FORMATS)} and ni-stems")
        return None, None
    try:
        if fmt == NI_STEMS:  # AAC tracks: the M4A encoder's range, no VBR
            if args.vbr is not None:
                raise AudioError("ni-stems holds AAC at a constant bitrate; leave out --vbr")
            bitrate, _ = check_lossy_options("m4a", args.bitrate, None)
            return bitrate or NI_STEMS_KBPS, None
        return check_lossy_options(fmt, args.bitrate, args.vbr)
    except AudioError as exc:
        raise CliError(str(exc)) from None


def _separate_settings(args: argparse.Namespace, device: str) -> Settings:
    """The run's settings from the arguments; CliError when they do not fit the model or
    each other."""
    bitrate, vbr = _format_options(args)
    entry = zoo.get_entry(args.model)
    produced = list(entry.mapping.produced)
    minus: tuple[str, ...] = ()
    preset = None
    if args.format == NI_STEMS:
        if args.preset or args.stems:
            raise CliError("--format ni-stems writes one file with the mix and four stems; "
                           "leave out --preset and --stems")
        stems: tuple[str, ...] = ()
    elif args.preset:
        if args.stems:
            raise CliError(f"--preset {args.preset} chooses the files to write; leave out "
                           "--stems")
        stems, minus, preset = preset_stems(args.preset, produced)
    else:
        try:
            stems = (tuple(get_stem(s).id for s in args.stems) if args.stems
                     else tuple(produced))
        except KeyError as exc:  # an unknown --stems name
            raise CliError(f"{exc.args[0]}; choose from --stems {' '.join(STEM_IDS)}"
                           ) from None
        absent = [s for s in stems if s not in produced]
        if absent:
            names = ", ".join(get_stem(s).name.lower() for s in produced)
            raise CliError(f"model '{entry.name}' does not produce "
                           f"{', '.join(get_stem(s).name.lower() for s in absent)} (it "
                           f"produces: {names})")
        stems = tuple(dict.fromkeys(stems))
    return Settings(
        model=entry.name, stems=stems, minus=minus, preset=preset, format=args.format,
        bit_depth=args.bit_depth, segment=args.segment, overlap=args.overlap,
        bitrate_kbps=bitrate, vbr=vbr, half=bool(args.half), residual_to_other=not args.no_residual,
        pattern=model_pattern(entry.name) if args.name_model else DEFAULT_PATTERN,
        copy_mix=bool(args.copy_mix), device=device, force=bool(args.force),
        debug=bool(getattr(args, "debug", False)), **ni_settings(args, produced, entry.name))


def cmd_separate(args: argparse.Namespace) -> int:
    """`stemwright separate` (files and folders of songs, see `batch`): check everything
    that can be checked, then separate this process's songs; prints a line per song and,
    for several songs, a summary. Returns 0 when nothing failed, 1 otherwise."""
    rank = rank_from_env()
    jobs = int(getattr(args, "jobs", 1) or 1)
    args.model = ensemble_model(args.model, getattr(args, "ensemble_weights", None))
    settings = _separate_settings(args, _device_for(args.device, jobs, rank))
    songs = find_songs(args.files, args.output, _warn)
    check_songs(songs, args.output)
    own = share(songs, rank) if rank.world > 1 else songs
    summary = Summary(rank)
    if not own:
        print(f"{rank.label}no songs for this rank ({count(len(songs), 'song')} in all)")
        return 0
    many = len(own) > 1 or rank.world > 1
    try:
        todo = plan(own, settings, args.skip_existing, summary)
        threads = threads_per_song(jobs, rank)
        if len(todo) > 1 and jobs > 1:
            run_parallel(todo, settings, summary, min(jobs, len(todo)), threads)
        elif todo:
            run_serial(todo, settings, summary, len(own),
                             threads if rank.local_world > 1 else None, _progress_bar)
    except KeyboardInterrupt:  # what was done so far, then "interrupted"
        _print_summary(summary, len(own), many)
        raise
    _print_summary(summary, len(own), many)
    return 1 if summary.counts()["failed"] else 0


def _print_summary(summary: Summary, total: int, many: bool) -> None:
    if many:
        for line in summary.lines(total):
            print(line, flush=True)


# -- models -----------------------------------------------------------------------------

def cmd_models(args: argparse.Namespace) -> int:
    if args.action == "list":
        rows, entries = [], zoo.list_models() + zoo.import_only_models()
        for e in entries:
            rows.append((e.name, ", ".join(e.mapping.produced),
                         f"{e.size_mb:.0f} MB" if e.size_mb else "-", model_state(e),
                         e.licence))
        for name, reason in zoo.unreadable_models():  # skipped, one line each
            print(f"stemwright: warning: skipped model '{name}': {reason} (remove it with "
                  f"`stemwright models remove {name}`)", file=sys.stderr)
        warn_unreadable_recipes()
        if args.json:
            out = []
            for e, r in zip(entries, rows, strict=True):
                row = dict(zip(("name", "stems", "size", "state", "licence"), r, strict=True))
                if args.verbose:
                    row.update(title=e.title, family=e.family, source=e.source,
                               description=e.description, urls=[f.url for f in e.files],
                               details=model_details(e, r[3]))
                out.append(row)
            print(json.dumps(out, indent=2))
            return 0
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for e, r in zip(entries, rows, strict=True):
            print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
            if args.verbose:
                for line in model_details(e, r[3]):
                    print(f"    {line}")
        return 0
    if args.action == "info":
        e = zoo.get_entry(args.name)
        state = model_state(e)
        print(f"{e.name}: {e.title} ({state if e.family == 'recipe' else f'{e.family}, {state}'})")
        print(f"    stems: {', '.join(e.mapping.produced)}")
        print(f"    size: {f'{e.size_mb:.0f} MB' if e.size_mb else 'unknown'}; licence: "
              f"{e.licence}")
        for line in model_details(e, state):
            print(f"    {line}")
        return 0
    if args.action == "download":
        for name in download_names(args.names):  # a recipe: its missing models
            if zoo.is_installed(name):
                print(f"{name}: already installed")
                continue
            entry = zoo.check_downloadable(name)  # one line if it cannot be downloaded
            bar = _progress_bar(entry.size_mb * 1e6 or 1, f"downloading {name}", "B", True)

            def progress(done: int, total: int | None, bar=bar) -> None:
                if total:
                    bar.total = max(total, done)
                bar.n = done
                bar.refresh()

            try:
                folder = zoo.download_model(name, progress=progress)
            finally:
                bar.close()
            print(f"{name}: installed in {folder}")
        return 0
    if args.action == "import":
        dest = zoo.import_model_file(args.name, args.file, config=args.config)
        record = zoo.roformer_record(args.name) if args.config else None
        if record is None:
            print(f"{args.name}: imported {Path(args.file).name} -> {dest}")
            return 0
        print(f"{args.name}: imported {Path(args.file).name} and {Path(args.config).name} "
              f"-> {dest}")
        for role, name in record["files"].items():
            print(f"    {name}: sha256 {record['sha256'][role]} \u2014 compare with the "
                  "publisher's if they list one")
        return 0
    if args.action == "compare":
        return _cmd_compare(args)
    if args.action == "remove":
        removed = zoo.remove_model(args.name)  # unknown names: ModelError listing choices
        print(f"{args.name}: removed" if removed else f"{args.name}: nothing installed")
        return 0
    raise CliError(f"unknown models action {args.action}")


def _cmd_compare(args: argparse.Namespace) -> int:

    devices = None if args.device == "auto" else [args.device]
    report = run_compare(args.names or None, args.seconds, devices, small=args.small,
                         threads=args.threads,
                         progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(to_markdown(report), end="")
    for path in write_report(report, args.output):
        print(f"wrote {path}")
    return 0


# -- evaluate, multitrack ---------------------------------------------------------------

def _fmt_db(value: float | None) -> str:
    return "-" if value is None or value != value or abs(value) == float("inf") else \
        f"{value:.2f}"


def _table(rows: list[list[str]], numbers: bool = False) -> str:
    """Aligned columns; with `numbers`, all but the first right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) if numbers and i else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True)))
                     .rstrip() for r in rows)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..classic.oracles import get_oracle
    from ..evaluation.evaluate import METRIC_TITLES, evaluate, write_csv, write_json
    from ..multitrack.folders import scan_folder

    resolve_device(args.device)
    models, oracle_names = list(args.model), list(args.oracle)
    if not models and not oracle_names:  # the default: the default model against IRM2
        models, oracle_names = [zoo.DEFAULT_MODEL], [DEFAULT_ORACLE]
    for name in models:
        zoo.get_entry(name)
    oracles = [get_oracle(o).name for o in oracle_names]
    out = None
    if args.output:
        out = Path(args.output)
        out = out.with_suffix("") if out.suffix.lower() in (".json", ".csv") else out
        if not out.parent.is_dir():
            raise CliError(f"{out.parent}: the folder for the report does not exist")
    scan = scan_folder(args.folder)
    print(f"{scan.root}: {count(len(scan.songs), 'song')}")
    bar = _progress_bar(100.0, "evaluating", "%")

    def progress(p) -> None:
        bar.n = round(100 * p.fraction, 1)
        bar.refresh()
        if p.message:
            bar.write(f"note: {p.message}")

    def on_song(song) -> None:
        bar.write(f"done: {song.key} ({song.duration:.1f} s)")

    try:
        report = evaluate(scan, models, oracles, procedure=args.procedure,
                          device=args.device, window=args.window, skip=args.skip,
                          filters=args.filters, progress=progress, on_song=on_song)
    finally:
        bar.close()
    summary = report.summary()
    stems = [s for s in STEM_IDS if any(s in v for v in summary.values())]
    for metric in ("sdr", "si_sdr"):
        print(f"\n{METRIC_TITLES[metric]} (dB, median over songs"
              f"{', of medians over 1 s windows' if metric == 'sdr' else ''})")
        rows = [["system", *[get_stem(s).name.lower() for s in stems], "mean"]]
        for system in report.systems:
            values = summary.get(system.name, {})
            label = system.name + (" (oracle)" if system.kind == "oracle" else "")
            rows.append([label, *[_fmt_db(values.get(s, {}).get(metric)) for s in
                                  [*stems, "mean"]]])
        print(_table(rows, numbers=True))
    for song in report.songs:
        for system, error in song.errors.items():
            print(f"{song.key}: {system}: {error}", file=sys.stderr)
    if out is not None:
        for path in (write_json(report, out.with_suffix(".json")),
                     write_csv(report, out.with_suffix(".csv"))):
            print(f"wrote {path}")
    return 0


def cmd_multitrack(args: argparse.Namespace) -> int:
    from ..multitrack.folders import scan_folder, write_mapping

    scan = scan_folder(args.folder)
    if args.json:
        print(json.dumps({"folder": str(scan.root), "problems": scan.problems, "songs": [
            {"song": s.key, "layout": s.layout, "duration": round(s.duration, 3),
             "mixture": s.mixture.name if s.mixture else None, "stems": s.stems_present(),
             "problems": s.problems,
             "tracks": [{"file": t.key, "stem": t.stem, "by": t.source,
                         "instrument": t.instrument or None,
                         "duration": round(t.info.duration, 3) if t.info else None,
                         "samplerate": t.info.samplerate if t.info else None,
                         "channels": t.info.channels if t.info else None,
                         "problem": t.problem} for t in s.tracks]}
            for s in scan.songs]}, indent=2))
    else:
        print(f"{scan.root}: {count(len(scan.songs), 'song')}"
              + (f" (mapping from {scan.mapping_file.name})" if scan.mapping_file else ""))
        for song in scan.songs:
            mixture = song.mixture.name if song.mixture else "sum of the stems"
            print(f"\n{song.key}  [{song.layout}, {song.duration:.2f} s, mixture: {mixture}]")
            rows = []
            for t in song.tracks:
                info = (f"{t.info.duration:.2f} s  {t.info.samplerate} Hz  {t.info.channels} ch"
                        if t.info else "-")
                label = t.stem + (f"  [{t.instrument}]" if t.instrument else "")
                rows.append(["  " + t.key, label, t.source, info])
            if rows:
                print(_table(rows))
            present = song.stems_present()
            absent = [s for s in STEM_IDS if s not in present]
            print(f"  stems: {', '.join(present) or 'none'}"
                  + (f"; absent: {', '.join(absent)}" if absent else ""))
            for t in song.tracks:
                if t.problem:
                    print(f"  problem: {t.key}: {t.problem}")
            for problem in song.problems:
                print(f"  problem: {problem}")
        for problem in scan.problems:
            print(f"problem: {problem}")
    if args.write_mapping:
        path = write_mapping(scan)
        print(f"wrote {path} (edit it to change the mapping)", file=sys.stderr if args.json
              else sys.stdout)
    return 0


# -- synth ------------------------------------------------------------------------------

def cmd_synth(args: argparse.Namespace) -> int:
    from ..synthetic.generate import describe_summary, generate

    bar = _progress_bar(args.songs * args.seconds, "generating", " s")

    def progress(done: float, total: float, record: dict | None) -> None:
        bar.n = round(done, 1)
        bar.refresh()
        if record is not None and args.verbose:
            bar.write(f"{record['key']}: {record['style']}, {record['bpm']:.0f} bpm, "
                      f"{record['key_signature']}, {len(record['tracks'])} track"
                      f"{'s' * (len(record['tracks']) != 1)}")

    try:
        summary = generate(args.output, songs=args.songs, seconds=args.seconds,
                           seed=args.seed, split=args.split, workers=args.workers,
                           style=args.style, progress=progress)
    finally:
        bar.close()
    for line in describe_summary(summary):
        print(line)
    print(f"wrote {Path(args.output) / 'summary.json'}")
    return 0


# -- info, bench, gui ---------------------------------------------------------------------

def cmd_info(args: argparse.Namespace) -> int:
    from ..audio.io import audio_info

    for path in args.files:
        info = audio_info(path)
        minutes, seconds = divmod(info.duration, 60)
        print(f"{info.path.name}: {info.format} {info.subtype}, {info.samplerate} Hz, "
              f"{info.channels} ch, {int(minutes)}:{seconds:06.3f} ({info.frames} frame"
              f"{'s' * (info.frames != 1)})")
        for key, value in sorted(info.tags.items()):
            print(f"  {key}: {value}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.pipeline is not None:
        from ..benchmarks.pipeline import cmd_bench_pipeline  # lazy: only for --pipeline
        return cmd_bench_pipeline(args)
    if args.training:
        return cmd_bench_training(args)
    if args.metrics:
        from ..evaluation.evaluate import run_metrics_benchmark

        seconds = 180.0 if args.seconds is None else args.seconds
        print(json.dumps(run_metrics_benchmark(seconds, args.device), indent=2))
        return 0
    args.seconds = 60.0 if args.seconds is None else args.seconds
    if args.resamplers:
        from ..benchmarks.resamplers import run_resampler_benchmark

        print(json.dumps(run_resampler_benchmark(args.seconds), indent=2))
        return 0

    report = run_benchmark(args.models or None, args.device, args.seconds,
                           args.random_weights, args.segment)
    print(json.dumps(report, indent=2))
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    if (sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
            and not os.environ.get("WAYLAND_DISPLAY")
            and not os.environ.get("QT_QPA_PLATFORM")):
        raise StemwrightError("no display found, so the desktop app cannot open here; use "
                              "`stemwright separate` on this machine, or run the app on a "
                              "desktop session")
    try:
        from stemwright.desktop.app import run
    except ImportError as exc:
        raise StemwrightError(f"the desktop app cannot start: {exc} (is PySide6 installed?)"
                              ) from exc
    return run(getattr(args, "file", None))


def cmd_doctor(args: argparse.Namespace) -> int:
    checks = run_checks(gui=not args.no_gui)
    if args.json:
        print(json.dumps(as_json(checks), indent=2))
    else:
        print("\n".join(report_lines(checks)))
    failed = [c.name for c in checks if c.required and not c.ok]
    if failed and not args.json:
        print(f"stemwright: error: this installation is broken ({', '.join(failed)}); "
              "see the lines marked FAIL", file=sys.stderr)
    return EXIT_ERROR if failed else 0


# -- parser -----------------------------------------------------------------------------

SEPARATE_EPILOG = """\
songs and output folders:
  A file named on the command line goes to DIR/<song>/. Folders are searched with their
  sub-folders for audio files (.wav .flac .mp3 .m4a .ogg .opus .aiff ...), skipping
  hidden files and folders, the -o folder, and what Stemwright wrote (folders holding a
  .stemwright.json record, files named like "<folder> - Vocals.wav"). A song found in a
  folder keeps its sub-folders below that folder: `separate Music -o out` writes
  Music/Live/Song.wav to out/Live/Song/, and Music/Live/Ballad/mix.wav (a song named
  after its folder) to out/Live/Ballad/. Two songs that would share a folder are
  refused before any work.

resuming:
  After a song's files are written, DIR/<song>/.stemwright.json records the model,
  stems, format, bit depth, segment, overlap, residual and naming choices and the input
  file's size and time. --skip-existing skips a song when its record matches and all its
  files exist; other existing files are refused unless --force overwrites them
  (--skip-existing --force: separate again every song not already done).

several processes or machines (torchrun):
  With RANK and WORLD_SIZE set (torchrun sets them), the songs are sorted by output
  folder and rank r separates songs r, r+WORLD_SIZE, r+2*WORLD_SIZE...; each rank
  writes its own songs and prints its own summary (a GPU rank takes GPU LOCAL_RANK).
  No process group is created. Run it again with --skip-existing to resume:
    torchrun --nproc_per_node 2 -m stemwright.models.cli separate Music -o out \\
        --skip-existing

exit status: 0 when every song was separated or skipped, 1 when any failed or the run
was refused, 2 for usage errors, 130 when interrupted (Ctrl+C).
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="stemwright", description="Separate songs into vocals, drums, bass, electric "
        "guitar, wind and other. With no command, opens the desktop app.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors "
                        "(accepted anywhere on the command line)")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("doctor", help="check this installation: versions, native libraries, "
                       "devices, audio output, synth tools, cache folder")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-gui", action="store_true", help="skip the Qt checks")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser(
        "separate", help="separate songs (files, or folders of them) into stem files",
        description="Separate songs into stem files. Give audio files, or folders: "
        "folders are searched for audio files, sub-folders included.",
        epilog=SEPARATE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="PATH",
                   help="audio files, or folders to search for them")
    p.add_argument("-m", "--model", default=zoo.DEFAULT_MODEL,
                   help=f"model or recipe name (default: {zoo.DEFAULT_MODEL}; see "
                        f"`stemwright models list`), or {ENSEMBLE_HELP}")
    p.add_argument("--ensemble-weights", metavar="W,W", help="weights of the models of an "
                   "ensemble -m A+B, in order (e.g. 2,1; default: equal)")
    p.add_argument("-o", "--output", default="separated", metavar="DIR",
                   help="output folder; stems go to DIR/<song>/, <song> being the file's "
                        "name, or its folder's name when the file is called mix, master, "
                        "song...; songs found in a folder keep their sub-folders "
                        "(see below) (default: separated)")
    p.add_argument("--stems", nargs="+", metavar="STEM",
                   help=f"only these stems ({', '.join(STEM_IDS)})")
    p.add_argument("--preset", metavar="PRESET",
                   help="karaoke: the song minus vocals as one file, and the vocals; "
                        "a-cappella: the vocals only; practice-STEM (e.g. practice-drums, "
                        "practice-electric_guitar): the song minus that stem as one file")
    p.add_argument("--format", choices=(*OUTPUT_FORMATS, NI_STEMS), default="wav",
                   help="wav/flac (--bit-depth), mp3/m4a/opus (--bitrate; mp3 also --vbr), "
                        "or ni-stems: one <song>.stem.mp4 for Traktor, Mixxx and djay "
                        "(the mix and drums, bass, other, vocals as AAC; default wav)")
    p.add_argument("--bit-depth", type=int, choices=(16, 24, 32), default=24,
                   help="16/24-bit PCM, or 32-bit float (WAV only); default 24")
    p.add_argument("--bitrate", type=int, metavar="KBPS", default=None,
                   help="lossy formats, kbit/s: mp3 32-320 (default 320), m4a 32-320 "
                        f"(256), opus 6-510 (160), ni-stems 32-320 ({NI_STEMS_KBPS})")
    add_ni_arguments(p)
    p.add_argument("--vbr", type=int, metavar="Q", default=None,
                   help="mp3 only: LAME variable-bitrate quality, 0 (best, about 245 "
                        "kbit/s) to 9 (smallest)")
    p.add_argument("--name-model", action="store_true",
                   help="put the model's name in each file name: \"<song> - Vocals "
                        "(<model>).wav\"")
    p.add_argument("--copy-mix", action="store_true",
                   help="also copy the input file next to the stems as \"<song> - "
                        "Mix.<its extension>\"")
    p.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICE_CHOICES)}, "
                   "or cuda:N (default auto)")
    p.add_argument("--segment", type=float, metavar="SECONDS", help="chunk length")
    p.add_argument("--overlap", type=float, help="chunk overlap, 0 to 0.9 (default 0.25)")
    p.add_argument("--half", action="store_true", help="half precision on GPU")
    p.add_argument("--no-residual", action="store_true",
                   help="do not fold mix - sum(stems) into other")
    p.add_argument("-j", "--jobs", type=_positive_int, default=1, metavar="N",
                   help="separate N songs at once, in N processes on the CPU (each with "
                        "cores/N threads); default 1. A GPU runs one song at a time: --jobs "
                        "above 1 is refused there")
    p.add_argument("--skip-existing", action="store_true",
                   help="skip songs already separated with the same model and settings "
                        "(their record matches and all their files exist)")
    p.add_argument("--force", action="store_true", help="overwrite existing stem files")
    p.set_defaults(func=cmd_separate)

    p = sub.add_parser("models", help="list, download, import or remove models")
    msub = p.add_subparsers(dest="action", required=True)
    q = msub.add_parser("list", help="show every model and recipe, and whether it is "
                        "installed")
    q.add_argument("--json", action="store_true")
    q.add_argument("-v", "--verbose", action="store_true", help="also what each model is, "
                   "its source, and for import-only models the URLs to fetch by hand")
    q = msub.add_parser("info", help="everything about one model, and how to get it")
    q.add_argument("name", metavar="MODEL")
    q = msub.add_parser("download", help="download pretrained weights")
    q.add_argument("names", nargs="+", metavar="MODEL")
    q = msub.add_parser("import", help="install a weight file you already have (offline)")
    q.add_argument("name", metavar="MODEL")
    q.add_argument("file", metavar="FILE")
    q.add_argument("--config", metavar="YAML", help="a RoFormer's YAML config, published "
                   "with its .ckpt (both are validated, copied and their sha256 recorded)")
    q = msub.add_parser("compare", help="parameters, receptive field, speed and memory of "
                        "every architecture (random weights); writes JSON, Markdown, CSV")
    q.add_argument("names", nargs="*", metavar="MODEL", help="default: all")
    q.add_argument("--seconds", type=float, default=60.0, help="song length (default 60)")
    q.add_argument("--device", default="auto", help="cpu, cuda, or auto: the CPU and the "
                   "GPU when there is one")
    q.add_argument("-o", "--output", default=".", metavar="DIR",
                   help="folder for models-compare.json/.md/.csv (default: here)")
    q.add_argument("--threads", type=int, help="CPU threads per model")
    q.add_argument("--small", action="store_true", help="tiny test configurations")
    q = msub.add_parser("remove", help="delete a model's downloaded files")
    q.add_argument("name", metavar="MODEL")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("evaluate", help="score models and oracles on multitrack songs",
                       description="Score separation models and oracles (upper bounds "
                       "computed from the true stems) with BSS Eval on folders of "
                       "multitrack songs. With neither -m nor --oracle, scores the default "
                       f"model ({zoo.DEFAULT_MODEL}) and the {DEFAULT_ORACLE} oracle.")
    p.add_argument("folder", metavar="FOLDER", help="folder of songs (see `stemwright "
                   "multitrack`)")
    p.add_argument("-m", "--model", action="append", default=[], metavar="MODEL",
                   help="a model to evaluate (repeat for several); with neither -m nor "
                        f"--oracle: {zoo.DEFAULT_MODEL} and the {DEFAULT_ORACLE} oracle")
    p.add_argument("--oracle", action="append", default=[], metavar="ORACLE",
                   help="an oracle to evaluate: irm1, irm2 or ibm (repeat for several)")
    p.add_argument("-o", "--output", metavar="REPORT",
                   help="write REPORT.json and REPORT.csv")
    p.add_argument("--procedure", choices=("adaptive", "summing", "averaging", "scaling"),
                   default="adaptive", help="how tracks are mixed (default adaptive)")
    p.add_argument("--window", type=float, default=1.0, metavar="SECONDS",
                   help="BSS Eval window and hop (default 1)")
    p.add_argument("--skip", choices=("any", "own"), default="any",
                   help="skip a window when any reference is silent in it (museval, the "
                        "default) or only for the silent stem")
    p.add_argument("--filters", choices=("auto", "museval", "robust"), default="auto",
                   help="BSS Eval filter fit: museval's; regularised; or museval's except "
                        "where its ISR/SIR/SAR are numerical noise (default)")
    p.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICE_CHOICES)}, "
                   "or cuda:N (default auto)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("multitrack", help="list the songs, tracks and mapping of a folder")
    p.add_argument("folder", metavar="FOLDER")
    p.add_argument("--write-mapping", action="store_true",
                   help="write stemwright-mapping.yaml in the folder, to edit the mapping")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_multitrack)

    p = sub.add_parser("synth", help="generate songs with their true stems (multitrack "
                       "folders for training and teaching)")
    p.add_argument("output", metavar="OUT_DIR", help="folder for train/, valid/, test/ and "
                   "summary.json (an interrupted run continues where it stopped)")
    p.add_argument("--songs", type=int, default=10, help="how many songs (default 10)")
    p.add_argument("--seconds", type=float, default=120.0,
                   help="length of each song, 1-900 s (default 120)")
    p.add_argument("--seed", type=int, default=0, help="same seed, same songs (default 0)")
    p.add_argument("--split", default="0.8/0.1/0.1", metavar="TRAIN/VALID/TEST",
                   help="fractions of songs per split (default 0.8/0.1/0.1)")
    p.add_argument("--workers", type=int, help="parallel processes (default: one per core)")
    p.add_argument("--style", help="only this style (rock, pop, funk, shuffle, swing, "
                   "ballad, electronic); default: all")
    p.add_argument("-v", "--verbose", action="store_true", help="a line per finished song")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("info", help="show an audio file's format, length and tags")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("bench", help="measure speed and memory; prints JSON")
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="zoo models or Stemwright checkpoint files (default: every installed "
                        "model)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seconds", type=float, help="length of the test signal (default 60; "
                   "180 with --metrics)")
    p.add_argument("--segment", type=float)
    p.add_argument("--random-weights", action="store_true",
                   help="also benchmark demucs architectures with random weights (no download)")
    p.add_argument("--resamplers", action="store_true",
                   help="compare soxr and torchaudio resampling instead")
    p.add_argument("--metrics", action="store_true",
                   help="time BSS Eval against museval on a six-stem song instead")
    p.add_argument("--training", action="store_true", help="training throughput "
                   "(segments/s) of every architecture instead (--segment: seconds per "
                   "segment, default per architecture)")
    p.add_argument("--batch", type=int, help="with --training: batch size")
    p.add_argument("--small", action="store_true", help="with --training: tiny configurations")
    p.add_argument("--pipeline", nargs="?", const="", metavar="MODEL", help="the whole "
                   "`separate` command instead: peak memory per song length, command vs "
                   "model speed, start-up, time to first stems, metrics (default model: "
                   f"{zoo.DEFAULT_MODEL})")
    p.add_argument("--minutes", help="with --pipeline: song lengths, e.g. 1,5,60 (default 1,5)")
    p.set_defaults(func=cmd_bench)

    add_train_parser(sub)

    p = sub.add_parser("gui", help="open the desktop app")
    p.add_argument("file", nargs="?", metavar="FILE")
    p.set_defaults(func=cmd_gui)
    return parser


def _take_debug(argv: Sequence[str]) -> tuple[list[str], bool]:
    """`--debug` may stand anywhere before a `--`: remove it and say whether it was there."""
    argv = list(argv)
    end = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:end]
    return [a for i, a in enumerate(argv) if i >= end or a != "--debug"], debug


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `stemwright` console script."""
    parser = build_parser()
    argv, debug = _take_debug(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.debug = debug
    if args.command is None:
        args.func, args.file = cmd_gui, None
    try:
        return int(args.func(args) or 0)
    except Cancelled:
        print("stemwright: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except KeyboardInterrupt:
        print("stemwright: interrupted", file=sys.stderr)
        return EXIT_CANCELLED
    except StemwrightError as exc:
        if args.debug:
            raise
        print(f"stemwright: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - last line of defence: one line, not a traceback
        if args.debug:
            raise
        print(f"stemwright: unexpected error: {explain(exc)} (run with --debug for details)",
              file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
