#!/usr/bin/env bash
# Installs dist/'s wheel into a fresh venv with torch==$1 and no Rust on PATH, as a user
# would (pip may not build anything), then runs the doctor and the package's CPU tests.
# Usage: bash tests/dist/install_test.sh 2.9.1
set -euo pipefail
torch_version=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
wheel=$(ls dist/cubeops-*.whl)
venv=target/install-test/torch-$torch_version
# The CPU tests that need only torch (mmcv's live in `make test`'s own venv).
tests=(tests/python/test_point_sample.py tests/python/test_psamask.py tests/python/test_doctor.py tests/python/test_onnx.py)
extras=(pytest numpy hypothesis onnx onnxruntime)
# torch >= 2.9 exports ONNX with the dynamo exporter, which needs onnxscript.
if python3 -c "import sys; v = tuple(map(int, sys.argv[1].split('.')[:2])); sys.exit(v < (2, 9))" "$torch_version"; then
    extras+=(onnxscript)
fi

echo "== install test: $wheel with torch $torch_version in $venv"
rm -rf "$venv"
python3 -m venv "$venv"
# Only the venv and the system: no ~/.cargo/bin, so no cargo or rustc.
export PATH="$root/$venv/bin:/usr/local/bin:/usr/bin:/bin"
if command -v cargo >/dev/null || command -v rustc >/dev/null; then
    echo "FAIL: a Rust toolchain is on PATH ($PATH)"; exit 1
fi
python -m pip install -q --upgrade pip
start=$SECONDS
python -m pip install -q --only-binary=:all: "$wheel" "torch==$torch_version" "${extras[@]}"
echo "pip install (wheels only, no compiler): $((SECONDS - start)) s"
# The installed package, not the source tree's python/cubeops.
python -c "import cubeops, torch, sys; assert '/site-packages/' in cubeops.__file__, cubeops.__file__; print('cubeops', cubeops.__version__, 'from', cubeops.__file__, 'torch', torch.__version__)"
python -m cubeops.doctor
python -m pytest "${tests[@]}" -q -p no:cacheprovider
