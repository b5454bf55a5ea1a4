#!/bin/bash
# The opt-in shared-memory NCHW backward (CUBEOPS_POINT_SAMPLE_SHARED=1, docs/ops/point_sample.md)
# on the GPU machine, in one call (~500 s on an H100 by the step limits; give the call 560 s): its CUDA tests, then the op grid and
# PointHead with it off (the default) and on, on one wheel and one machine. Outputs go to $OUT
# (log.txt, off/, on/). If the tests pass and "on" is faster, make it the default
# (SHARED_SUMS in python/cubeops/ops/point_sample.py) and run tests/gpu/acceptance.sh.
#
# From the repository root, with .whl/ and a cubeops wheel carried (as for acceptance.sh):
#     bash tests/gpu/shared_ab.sh [path/to/cubeops-*.whl]
set -u
OUT=${OUT:-/tmp/cubeops-shared-ab}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
T0=$SECONDS
step() { echo "== $1 (t = $((SECONDS - T0)) s)"; }

WHEEL=${1:-$(ls .gpu/wheels/cubeops-*.whl 2>/dev/null | head -1)}
[ -f "$WHEEL" ] || { echo "no cubeops wheel: pass its path, or put it in .gpu/wheels/"; exit 2; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl "$WHEEL" || exit 1
export PYTHONPATH=/tmp/site
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
sha256sum "$WHEEL"

step "CUDA tests of the shared path (and the rest of test_cuda.py)"
timeout 90 python3 -m pytest tests/python/test_cuda.py tests/python/test_point_sample.py -q -p no:cacheprovider -rfE 2>&1 | tail -6
step "the same with the shared path on by default"
CUBEOPS_POINT_SAMPLE_SHARED=1 timeout 90 python3 -m pytest tests/python/test_point_sample.py tests/python/test_autocast.py \
    tests/python/test_cuda_graphs.py -q -p no:cacheprovider -rfE 2>&1 | tail -6
for mode in off on; do
    flag=$([ $mode = on ] && echo 1 || echo 0)
    step "op grid, shared $mode"
    CUBEOPS_POINT_SAMPLE_SHARED=$flag timeout 140 python3 benches/point_sample_torch.py --out "$OUT/$mode" > "$OUT/grid_$mode.txt" 2>&1
    tail -7 "$OUT/grid_$mode.txt"
    step "PointHead, shared $mode"
    CUBEOPS_POINT_SAMPLE_SHARED=$flag timeout 45 python3 benches/pointhead_torch.py --out "$OUT/$mode" 2>&1 | tail -11
done
step "end"
