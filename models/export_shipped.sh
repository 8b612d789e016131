#!/usr/bin/env bash
# Export a shipped model in all four variants with parity reports (the commands behind models/shipped/),
# each with its "uncertain" threshold, which ser-export measures on the model's validation files and records
# in the file (export/uncertainty.py states the rule; python -m export.uncertainty re-measures one file).
# Usage: models/export_shipped.sh emodb ../shared/datasets/emodb
set -euo pipefail
name=$1 data=$2
for variant in float32 float16 dynamic int8; do
  ser-export "models/shipped/$name.keras" --quantize "$variant" --out "models/shipped/$name-$variant.tflite" \
    --calibration-data "$data" --dataset "$name" --report models/shipped/parity
done
