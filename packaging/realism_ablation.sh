#!/usr/bin/env bash
# Issue 15, session of 2026-12-03: what the synth's realism ingredients buy, and the
# architecture screening, as run (CPU only, 2 cores; DATA and RUNS are scratch folders).
# Results are in the issue note and resources/models/stemwright6.md ("Realism ablation").
set -euo pipefail
DATA=${DATA:-/work/data}
RUNS=${RUNS:-/work/runs}
SW=${SW:-.venv/bin/stemwright}
M=resources/models/stemwright6.safetensors
# 1. The same 24 compositions (seed 7) rendered by generator v1 (GM drums, one gain; the
#    commit before 5f91245) and by generator v2 (recorded kits + mastering, 5f91245), and a
#    test split no run sees (v2, seed 1234).
$SW synth "$DATA/screen" --songs 24 --seconds 150 --seed 7 --split 0.875/0.125/0 -v  # at 95cde45
$SW synth "$DATA/new" --songs 24 --seconds 150 --seed 7 --split 0.875/0.125/0 -v     # at 5f91245
$SW synth "$DATA/newtest" --songs 8 --seconds 150 --seed 1234 --split 0/0/1 -v       # at 5f91245
# 2. Screening: BandSplitNet against MaskNet, 80 steps (batch 4 x 4 s) each on the v1 songs.
common=("$DATA/screen/train" --valid-folder "$DATA/screen/valid" --epochs 1 --segments-per-song 16
        --max-steps 80 --batch 4 --segment 4 --lr 1e-3 --warmup 8 --no-install
        --cache-dir "$DATA/cache" --valid-segments 4 --threads 1 --workers 0 --json)
$SW train "${common[@]}" -m bandsplit --out "$RUNS/screen-bandsplit"
$SW train "${common[@]}" -m masknet --out "$RUNS/screen-masknet1024"
# 3. Ablation: stemwright6 fine-tuned for the same steps on v1 songs (A), on the same
#    compositions from v2 (B), and on v2 with MP3/AAC round trips of the mixture (C).
ft=(--epochs 1 --segments-per-song 64 --max-steps "${STEPS:-150}" --batch 8 --segment 4 --lr 3e-4
    --warmup 15 --ema 0.99 --loss l1 --stem-weight vocals=2 --stem-weight bass=1.5
    --valid-metric usdr --valid-segments 3 --no-install --cache-dir "$DATA/cache" --threads 1
    --workers 0 --json)
$SW train "$DATA/screen/train" --valid-folder "$DATA/screen/valid" -m $M "${ft[@]}" --out "$RUNS/abl-A"
$SW train "$DATA/new/train" --valid-folder "$DATA/new/valid" -m $M "${ft[@]}" --out "$RUNS/abl-B"
$SW train "$DATA/new/train" --valid-folder "$DATA/new/valid" -m $M "${ft[@]}" --codec-prob 0.5 \
    --out "$RUNS/abl-C"
# 3b. D: C continued on v1 and v2 songs together (so vocals do not drift), 2 epochs of 84 steps.
$SW train "$DATA/screen/train" "$DATA/new/train" --valid-folder "$DATA/new/valid" \
    -m "$RUNS/abl-C/best.safetensors" --epochs 2 --segments-per-song 16 --batch 8 --segment 4 \
    --lr 2e-4 --warmup 10 --ema 0.99 --loss l1 --stem-weight vocals=2 --stem-weight bass=1.5 \
    --codec-prob 0.5 --valid-metric usdr --valid-segments 3 --no-install --cache-dir "$DATA/cache" \
    --threads 2 --workers 0 --json --out "$RUNS/ft-D"
# 4. Scores: real clips (../shared/tools/real_clips_vs_classic.sh RUN/best.safetensors),
#    the v2 test split (stemwright evaluate), and where wind and guitar energy lands:
for r in A B C; do
  .venv/bin/python packaging/confusion_matrix.py "$RUNS/abl-$r/best.safetensors" "$DATA/newtest" \
      --json "$RUNS/confusion-$r.json"
done
.venv/bin/python packaging/confusion_matrix.py stemwright6 "$DATA/newtest" --json "$RUNS/confusion-0.json"
# 5. Session of 2026-12-03 (afternoon): 17 songs of generator v3 (expressive wind, guitar
#    amps/cabinets/double tracking; at f705d05; stopped after 17 of 40 to leave time to train),
#    then E: D continued on v1 + v2 + v3 songs, bass weighted x2.
$SW synth "$DATA/v3" --songs 40 --seconds 150 --seed 11 --split 1/0/0 --workers 1 -v
$SW train "$DATA/screen/train" "$DATA/new/train" "$DATA/v3/train" --valid-folder "$DATA/new/valid" \
    -m "$RUNS/ft-D/best.safetensors" --epochs 4 --segments-per-song 8 --batch 8 --segment 4 \
    --lr 2e-4 --warmup 10 --ema 0.99 --loss l1 --stem-weight vocals=2 --stem-weight bass=2 \
    --codec-prob 0.5 --valid-metric usdr --valid-segments 3 --no-install --cache-dir "$DATA/cache" \
    --threads 2 --workers 0 --json --out "$RUNS/ft-E"
# (resume after an interruption: the same command with --resume)
