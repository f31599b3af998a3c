#!/usr/bin/env bash
# GPU check, under 8 minutes on a bare CUDA machine that has PyTorch and JAX (CUDA builds) but not
# Keras or this package: installs Keras and its missing pure-Python dependencies from a wheels
# folder (built by tools/gpu_wheels.sh), then per backend (torch, jax) one training step of the
# cifar10 architecture and an encode/decode round trip, and `keras-realnvp benchmark --compare`
# at batch 64 on the cifar10 and celeba_64 architectures (one round, one step). Writes one JSON
# record to $OUT/gpu_check.json if OUT is set, else ./gpu_check.json.
#
#     bash tools/gpu_check.sh [WHEELS_FOLDER]        # default: wheels/
#     bash tools/gpu_check.sh --cpu-smoke            # the same logic, tiny, on a CPU (no installs)
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
OUTPUT="${OUT:-.}/gpu_check.json"
mkdir -p "$(dirname "$OUTPUT")"
if [ "${1:-}" = "--cpu-smoke" ]; then
    exec timeout -k 10 300 "$PYTHON" tools/gpu_check.py --cpu-smoke --budget 270 --output "$OUTPUT"
fi
WHEELS=${1:-wheels}
INSTALL_LOG=$(mktemp)
# No index: the machine reaches nothing. This package itself is not installed: PYTHONPATH
# finds the checkout (its other dependencies, numpy, h5py, pillow and huggingface-hub, are
# imported only by functions these checks do not call, or come with Keras' wheels).
timeout -k 5 90 "$PYTHON" -m pip install --no-index --find-links "$WHEELS" keras >"$INSTALL_LOG" 2>&1
status=$?
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
tail -3 "$INSTALL_LOG"
# What is left of 8 minutes, less a margin; the driver shares it among the parts.
elapsed=$SECONDS
budget=$(( 455 - elapsed ))
timeout -k 10 $(( budget + 10 )) "$PYTHON" tools/gpu_check.py --budget "$budget" --output "$OUTPUT" \
    --install-log "$INSTALL_LOG" --install-status "$status"
result=$?
echo "total ${SECONDS} s; record: $OUTPUT"
exit $result
