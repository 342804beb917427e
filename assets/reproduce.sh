#!/usr/bin/env bash
# Re-train the shipped ancestry checkpoints on the embedded `shapes` data set (seed 0): 300 images
# per class, 250 of each base class for training and 50 held out to measure accuracy.
# Each writes assets/<name>.safetensors and its model card assets/<name>.json. On the 2-core development
# machine with one torch thread: ViT ~35 s per epoch (60 epochs ~35 min), ResNet ~3.4 min per epoch.
# Run with OMP_NUM_THREADS=1 when other processes compete for the cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY -m learngene accumulate --arch lg_vit_tiny --images-per-class 300 --holdout-per-class 50 \
    --epochs 60 --batch-size 128 --lr 2e-3 --warmup-epochs 3 --seed 0 --out assets/lg_vit_tiny.safetensors
$PY -m learngene accumulate --arch lg_resnet_mini --images-per-class 300 --holdout-per-class 50 \
    --epochs 10 --batch-size 128 --lr 2e-3 --warmup-epochs 1 --seed 0 --out assets/lg_resnet_mini.safetensors
# What the Similarity page shows at once: every method's similarity result and the pseudo-descendant
# (assets/similarity/, assets/pseudo/; ~15 min), then the measured per-layer gains (learngene probe).
bash assets/similarity.sh
# The shipped learngene of each ancestry: the layers its CKA result chose, cut out with `inherit`
# (assets/learngenes/<stem>-cka.safetensors, with the split and recipe; a few seconds each).
for stem in lg_vit_tiny lg_resnet_mini; do
    $PY -m learngene inherit --ancestry assets/$stem.safetensors --similarity assets/similarity/$stem-cka.json \
        --out assets/learngenes/$stem-cka.safetensors
done
# (one CPU thread: ViT 20 tasks ~15 min, ResNet 12 tasks ~15 min)
$PY -m learngene probe --ancestry assets/lg_vit_tiny.safetensors --chosen auto-paper --tasks 20 \
    --out assets/lg_vit_tiny.probe.json
$PY -m learngene probe --ancestry assets/lg_resnet_mini.safetensors --chosen auto-paper --tasks 12 \
    --out assets/lg_resnet_mini.probe.json
# The Home page's reference demo runs, assets/demo/<stem>/ (metrics.jsonl, summary.json, meta.json): the
# demo's train job with the shipped CKA layers (assets/similarity/<stem>-cka.json, made first), timed from the
# click to the summary; ~30-45 s each on the 2-core machine.
$PY -m bench.demo_speed --ancestry assets/lg_vit_tiny.safetensors --save-reference
$PY -m bench.demo_speed --ancestry assets/lg_resnet_mini.safetensors --save-reference
