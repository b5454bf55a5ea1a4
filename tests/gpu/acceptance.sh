#!/bin/bash
# Issue 14's acceptance run on the GPU machine, in one call (the device tool's limit is 600 s):
# the CUDA test suite, the 10,000-case fuzz on CUDA, the PointHead benchmark, the op grid and
# the interleaved host-time comparison, all on one wheel. H100 times (session 13's whole run):
# tests ~205 s, fuzz ~55 s, PointHead ~27 s, op grid ~122 s, host time ~30 s: ~450 s with the
# install, so give the call ~480 s or more. Each step has its own time
# limit, so a slow step costs its own figures only. Outputs go to $OUT (log.txt, bench/).
#
# From the repository root, with .whl/ (mmcv-lite, mmseg, mmengine, ...; docs/gpu-testing.md)
# and a cubeops wheel carried:
#     bash tests/gpu/acceptance.sh [path/to/cubeops-*.whl]     (default: .gpu/wheels/cubeops-*.whl)
set -u
OUT=${OUT:-/tmp/cubeops-acceptance}
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

step "doctor"
timeout 60 python3 -m cubeops.doctor 2>&1 | tail -4
step "CUDA test suite (the fuzz apart)"
timeout 280 python3 -m pytest tests/python -q -p no:cacheprovider --deselect tests/python/test_fuzz.py -rfE 2>&1 | tail -6
step "fuzz, 10,000 cases on CUDA"
CUBEOPS_FUZZ_EXAMPLES=10000 CUBEOPS_FUZZ_DEVICE=cuda timeout 90 \
    python3 -m pytest tests/python/test_fuzz.py -q -p no:cacheprovider 2>&1 | tail -3
step "PointHead"
timeout 120 python3 benches/pointhead_torch.py --out "$OUT/bench" 2>&1 | tail -13
step "op grid"
timeout 200 python3 benches/point_sample_torch.py --out "$OUT/bench" > "$OUT/grid.txt" 2>&1
tail -8 "$OUT/grid.txt"
step "host time, interleaved"
timeout 50 python3 benches/host_overhead.py --interleaved-only --rounds 31 2>&1 | tail -4
step "end"
