#!/usr/bin/env bash
# The finished similarity results and pseudo-descendants shipped with each ancestry (so that
# exploring layers takes seconds): the Similarity page shows them the moment it opens, without a job.
# Writes assets/pseudo/<stem>.safetensors (+ card) and assets/similarity/<stem>-<view>.json.
# The pseudo-descendant is trained longer than the interactive default (which must finish within
# seconds), so the shipped heatmaps compare the ancestry with a network that has learned more.
# ~10 min on the 2-core machine with one thread. Usage: bash assets/similarity.sh [stem ...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
stems=("$@")
[ ${#stems[@]} -gt 0 ] || stems=(lg_vit_tiny lg_resnet_mini)
for stem in "${stems[@]}"; do
    anc=assets/$stem.safetensors
    case $stem in
        lg_vit_tiny) pd_epochs=30 ;;  # the ViT pseudo-descendant learns slowly from scratch
        *) pd_epochs=10 ;;
    esac
    out=assets/similarity/$stem
    $PY -m learngene condense --ancestry "$anc" --method cka --pd-epochs $pd_epochs --no-pd-cache \
        --save-pd assets/pseudo/$stem.safetensors --out "$out-cka.json"
    # the same pseudo-descendant (found in assets/pseudo/ by its settings), compared on layer updates
    $PY -m learngene condense --ancestry "$anc" --method cka --pd-epochs $pd_epochs --cka-of update \
        --out "$out-cka-update.json"
    for method in auto gradient weights; do
        $PY -m learngene condense --ancestry "$anc" --method $method --out "$out-$method.json"
    done
done
