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
tests=(tests/python/test_point_sample.py tests/python/test_psamask.py tests/python/test_ms_deform_attn.py
       tests/python/test_focal_loss.py tests/python/test_doctor.py tests/python/test_onnx.py)
extras=(pytest numpy hypothesis onnx onnxruntime)
# torch >= 2.9 exports ONNX with the dynamo exporter, which needs onnxscript.
if python3 -c "import sys; v = tuple(map(int, sys.argv[1].split('.')[:2])); sys.exit(v < (2, 9))" "$torch_version"; then
    extras+=(onnxscript)
fi

echo "== install test: $wheel with torch $torch_version in $venv"
# Disk: torch's CUDA wheels make a venv 5-7 GB, so one venv at a time, removed when done, and
# no pip cache (it would keep ~4 GB of wheels per torch version).
need_gb=${CUBEOPS_INSTALL_TEST_GB:-9}
mkdir -p target
avail_gb=$(df -Pk target | awk 'NR == 2 { print int($4 / 1048576) }')
if (( avail_gb < need_gb )); then
    echo "FAIL: $avail_gb GB free under target/, the install test needs ~$need_gb GB (CUBEOPS_INSTALL_TEST_GB)"
    exit 1
fi
echo "$avail_gb GB free under target/"
export PIP_NO_CACHE_DIR=1
rm -rf "$venv"
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
# Only the venv and the system: no ~/.cargo/bin, so no cargo or rustc.
export PATH="$root/$venv/bin:/usr/local/bin:/usr/bin:/bin"
if command -v cargo >/dev/null || command -v rustc >/dev/null; then
    echo "FAIL: a Rust toolchain is on PATH ($PATH)"; exit 1
fi
python -m pip install -q --upgrade pip
start=$SECONDS
# pip resolves the whole set first (a dry run; nothing is installed), then the resolved wheels go
# in with --no-deps: the same environment as one `pip install`, but torch's CUDA wheels one at a
# time, so at most one download (<= 1 GB) sits on disk beside the venv instead of ~4 GB.
python -m pip install -q --dry-run --ignore-installed --only-binary=:all: \
    --report "$venv/resolved.json" "$wheel" "torch==$torch_version" "${extras[@]}"
python - "$venv/resolved.json" >"$venv/resolved.txt" <<'EOF'
import json, sys
big, small = [], []
for item in json.load(open(sys.argv[1]))["install"]:
    name, url = item["metadata"]["name"].lower(), item["download_info"]["url"]
    (big if name.startswith(("torch", "nvidia-", "triton")) else small).append(url)
print(" ".join(small))
print("\n".join(big))
EOF
while read -r urls; do
    # shellcheck disable=SC2086 # a line is a list of URLs
    python -m pip install -q --no-deps --only-binary=:all: $urls
done <"$venv/resolved.txt"
python -m pip check
echo "pip install (wheels only, no compiler): $((SECONDS - start)) s"
# The installed package, not the source tree's python/cubeops.
python -c "import cubeops, torch, sys; assert '/site-packages/' in cubeops.__file__, cubeops.__file__; print('cubeops', cubeops.__version__, 'from', cubeops.__file__, 'torch', torch.__version__)"
python -m cubeops.doctor
python -m pytest "${tests[@]}" -q -p no:cacheprovider
