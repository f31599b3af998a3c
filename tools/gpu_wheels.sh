#!/usr/bin/env bash
# Builds the wheels folder tools/gpu_check.sh installs from: Keras and the dependencies of Keras
# that a CUDA machine with PyTorch and JAX usually lacks (numpy and ml_dtypes come with JAX),
# for CPython 3.11 and 3.12 on x86-64 Linux, binary wheels only. Prints the folder's size,
# which must stay under 50 MiB (it travels with the checkout).
#
#     bash tools/gpu_wheels.sh [FOLDER]        # default: wheels/
set -eu
cd "$(dirname "$0")/.."
FOLDER=${1:-wheels}
PYTHON=${PYTHON:-python3}
mkdir -p "$FOLDER"
# Pure Python: one wheel serves every version.
PURE="keras namex rich markdown-it-py mdurl pygments absl-py packaging typing-extensions"
# Compiled: one wheel per Python version.
COMPILED="optree h5py"
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: -d "$FOLDER" $PURE
for version in 3.11 3.12; do
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: -d "$FOLDER" \
        --python-version "$version" --implementation cp \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
        $COMPILED
done
ls -1 "$FOLDER"
bytes=$(du -cb "$FOLDER"/*.whl | tail -1 | cut -f1)
echo "wheels: $(( bytes / 1024 / 1024 )) MiB ($bytes bytes) in $FOLDER"
if [ "$bytes" -ge $(( 50 * 1024 * 1024 )) ]; then
    echo "error: the wheels folder is over 50 MiB" >&2
    exit 1
fi
