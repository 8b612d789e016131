#!/usr/bin/env bash
# Runs on a lent GPU machine (the device tool), from the repository root:
#   bash models/gpu_run.sh --plan full --epochs 150 --workers 12 --deadline 500
# Needs, carried beside the working tree: .whl/ (keras, namex, optree wheels for
# the machine's Python; it has JAX but no TensorFlow) and .gpu/*.npz (feature
# bundles from `ser-train --write-bundle`). The jobs write straight into $OUT/runs-gpu (finished folds
# carried in runs/gpu are copied there first, so they are skipped): whatever a job has written when the
# command ends, on time or killed, comes back -- fold files, logs, and the checkpoints a job cut
# short resumes from, on any machine and backend (`ser-train` with the same arguments and --out).
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "wheels did not install"; exit 1; }
# The ser_edge namespace over this checkout's folders, as the pyproject's package-dir maps them (no install).
mkdir -p /tmp/site/ser_edge && for folder in edge models export benchmarks; do ln -sfn "$PWD/$folder" "/tmp/site/ser_edge/$folder"; done
export PYTHONPATH="/tmp/site" KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)" || exit 1
runs="${OUT:-.}/runs-gpu"
mkdir -p "$runs" && if [ -d runs/gpu ]; then cp -r runs/gpu/. "$runs/"; fi
python3 -m ser_edge.models.gpu_jobs --runs "$runs" "$@"
