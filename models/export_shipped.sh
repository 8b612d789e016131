#!/usr/bin/env bash
# Export a shipped model in every variant with parity reports (the commands behind edge/shipped/),
# each with its "uncertain" threshold, which ser-export measures on the model's validation files and records
# in the file (export/uncertainty.py states the rule; python -m ser_edge.export.uncertainty re-measures one file).
# Usage: models/export_shipped.sh emodb ../shared/datasets/emodb
# The .tflite files and the parity JSON that `ser-edge info` reads go to edge/shipped/ (the device
# package); the readable parity reports stay with the Keras models in models/shipped/parity/.
set -euo pipefail
name=$1 data=$2
python=$(dirname "$(command -v ser-export)")/python
variants=$("$python" -c 'from ser_edge.edge.registry import VARIANTS; print(*VARIANTS)')
mkdir -p models/shipped/parity
for variant in $variants; do
  ser-export "models/shipped/$name.keras" --quantize "$variant" --out "edge/shipped/$name-$variant.tflite" \
    --calibration-data "$data" --dataset "$name" --report edge/shipped/parity
  mv "edge/shipped/parity/$name-$variant.parity.md" models/shipped/parity/
done
