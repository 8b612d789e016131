#!/usr/bin/env bash
# Runs on a lent GPU machine (the device tool), from the repository root:
#   bash models/gpu_run.sh --plan full --epochs 150 --workers 12 --deadline 500
# Needs, carried beside the working tree: .whl/ (keras, namex, optree wheels for
# the machine's Python; it has JAX but no TensorFlow) and .gpu/*.npz (feature
# bundles from `ser-train --write-bundle`). Brings back runs/gpu as ONE archive, $OUT/runs-gpu.tgz,
# rewritten every 15 s while the jobs run: the device tool returns only a limited number of files
# (loose fold files beyond it are lost, as happened once) and nothing written after a command is
# killed, so the latest archive holds the fold files, logs and the checkpoints that a job cut short
# resumes from (`ser-train` with the same arguments and --out; a JAX checkpoint resumed on TensorFlow here).
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "wheels did not install"; exit 1; }
# The ser_edge namespace over this checkout's folders, as the pyproject's package-dir maps them (no install).
mkdir -p /tmp/site/ser_edge && for folder in edge models export benchmarks; do ln -sfn "$PWD/$folder" "/tmp/site/ser_edge/$folder"; done
export PYTHONPATH="/tmp/site" KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)" || exit 1
archive() {  # write-then-rename, so a kill mid-write leaves the previous archive whole
  tar czf "${OUT:-.}/.runs-gpu.tgz" runs/gpu && mv "${OUT:-.}/.runs-gpu.tgz" "${OUT:-.}/runs-gpu.tgz"
}
bash models/join_parts.sh || exit 1  # bundles that came in parts over consecutive calls
mkdir -p runs/gpu
python3 -m ser_edge.models.gpu_jobs --runs runs/gpu "$@" &
jobs_pid=$!
while kill -0 "$jobs_pid" 2>/dev/null; do sleep 15; archive; done
wait "$jobs_pid"
status=$?
archive
exit $status
