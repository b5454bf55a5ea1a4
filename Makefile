# The two commands of the README: `make demo` (the main job) and `make test` (every test).
# Both install what they need; cargo and maturin share one target directory (./target).
SHELL := /bin/bash
CARGO ?= cargo
# One feature set everywhere, so nothing is built twice.
FEATURES := cuda,wgpu
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
# Re-installed when the requirements change; pip's cache makes a re-run cheap.
VENV_STAMP := $(VENV)/.installed-$(shell cksum python/requirements-test.txt | cut -d' ' -f1)
# mmcv-lite 2.2.0 beside the venv's 2.1.0 (which mmsegmentation 1.2.2 needs), put first on
# PYTHONPATH for a second run of the mmcv tests.
MMCV22 := $(VENV)/mmcv-2.2.0
# wgpu asks for a runtime dir it never needs here; an empty one keeps its log quiet.
export XDG_RUNTIME_DIR ?= /tmp/cubeops-xdg-$(shell id -u)

.PHONY: demo test check-rust vulkan wheel arch-check gpu-artifacts dist install-test

## The main job: mmsegmentation's PointHead (DiffBEV's settings) trains on synthetic BEV maps
## with cubeops' point_sample on CUDA if present, else the CPU, next to the same run on mmcv's
## own point_sample; then the Rust example refines the exported BEV logits and is checked
## against Python. Built like `make test` builds: nothing twice.
demo: check-rust $(VENV_STAMP)
	$(CARGO) build -q --workspace --exclude cubeops-py --features $(FEATURES) --example bev_refine
	$(MAKE) wheel
	@mkdir -p target/demo
	$(VPY) python/examples/diffbev_point_head.py --export target/demo/bev.safetensors \
		--rust-bin target/debug/examples/bev_refine

## Every test: Rust (unit, fixtures, composite, wgpu kernels on Mesa llvmpipe, doc tests),
## then the Python package built by maturin from the same target dir, and pytest; then the
## release wheel (dist) installed without Rust on three torch versions (install-test).
## CUDA tests are compiled and skipped here (they need a GPU: see docs/gpu-testing.md).
test: check-rust vulkan $(VENV_STAMP)
	@mkdir -p $(XDG_RUNTIME_DIR)
	$(CARGO) test --workspace --exclude cubeops-py --features $(FEATURES)
	@echo "Rust benchmark smoke run (criterion's test mode: each benchmark once, small shapes, wgpu):"
	$(CARGO) test --workspace --exclude cubeops-py --features $(FEATURES) --benches
	$(MAKE) arch-check
	$(MAKE) wheel
	CUBEOPS_BEV_REFINE=target/debug/examples/bev_refine $(VPY) -m pytest tests/python -q
	@echo "mmcv.ops through the drop-in again, with mmcv-lite 2.2.0 (the user's mmcv; mmseg refuses it):"
	PYTHONPATH=$(MMCV22) $(VPY) -m pytest tests/python/test_mmcv_compat.py tests/python/test_mmcv_heads.py -q
	$(MAKE) install-test

## The release: an abi3 wheel tagged manylinux_2_28 (linked by zig against glibc 2.28's
## symbols, so Ubuntu 20.04-era systems that run torch load it) and an sdist, in dist/. The
## wheel is built from the sdist, so the sdist is known to build. Same target dir as the rest.
DIST_COMPAT := manylinux_2_28
dist: check-rust $(VENV_STAMP)
	rm -rf dist target/sdist && mkdir -p dist target/sdist
	cd python && ../$(VENV)/bin/maturin sdist -o ../dist
	tar -xzf dist/cubeops-*.tar.gz -C target/sdist
	@# The sdist stamps every file 2006-07-24 (reproducible archives); cargo decides what to
	@# rebuild by mtime, so without this an earlier dist build in ./target would be reused.
	find target/sdist -type f -exec touch {} +
	cd target/sdist/cubeops-* && PATH=$(CURDIR)/$(VENV)/bin:$$PATH CARGO_TARGET_DIR=$(CURDIR)/target \
		maturin build --release --zig --compatibility $(DIST_COMPAT) -o $(CURDIR)/dist
	$(VPY) tests/dist/check_wheel.py dist

## dist's wheel installed into fresh venvs without Rust, on the lowest torch pyproject claims (2.4.1),
## on the user's (2.9.1) and on the newest on PyPI (2.15.0): the doctor and the CPU tests there
## (tests/dist/install_test.sh). One venv at a time (5-7 GB each: torch's CUDA wheels), removed after; needs ~9 GB free.
## With CUBEOPS_PRUNE_BUILD=1 (set by .ci/run: a throwaway clone) the build state no later step
## needs (.venv, cargo's outputs; ~12 GB) is deleted once dist/ holds the wheel, to make that room.
INSTALL_TORCH := 2.4.1 2.9.1 2.15.0
install-test: dist
	@if [ "$${CUBEOPS_PRUNE_BUILD:-0}" = 1 ]; then \
		echo "CUBEOPS_PRUNE_BUILD=1: removing .venv and target/'s build outputs (dist/ is built)"; \
		rm -rf $(VENV) target/debug target/release target/x86_64-unknown-linux-gnu target/sdist target/wheels; \
		df -h . | tail -1; \
	fi
	@for v in $(INSTALL_TORCH); do bash tests/dist/install_test.sh $$v || exit 1; done

## Every kernel variant compiled by NVRTC 12.8 (torch 2.9.1's nvidia-cuda-nvrtc-cu12) for
## sm_75 ... sm_120a, no GPU needed; fails if one does not build (docs/gpu-support.md).
NVIDIA_PKGS = $(shell $(VPY) -c "import nvidia, os; print(list(nvidia.__path__)[0])" 2>/dev/null)
# Built with the workspace selection of `cargo test`, so cargo resolves the same features and
# reuses its build (`cargo run -p cubeops-kernels` alone would rebuild cubecl).
arch-check: $(VENV_STAMP)
	$(CARGO) build -q --workspace --exclude cubeops-py --features $(FEATURES) --bin arch-check
	LD_LIBRARY_PATH=$(NVIDIA_PKGS)/cuda_nvrtc/lib CUBEOPS_CUDA_INCLUDE=$(NVIDIA_PKGS)/cuda_runtime/include \
		target/debug/arch-check

## The Python package as an abi3 wheel in target/wheels, installed into .venv. The dev
## profile and the cuda+wgpu feature set are those of `cargo test`: nothing builds twice.
wheel: $(VENV_STAMP)
	cd python && ../$(VENV)/bin/maturin build --profile dev -o ../target/wheels
	$(VPY) -m pip install -q --force-reinstall --no-deps $$(ls -t target/wheels/cubeops-*.whl | head -1)

$(VENV_STAMP): python/requirements-test.txt
	@[ -x $(VPY) ] || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -r python/requirements-test.txt
	$(VPY) -m pip install -q --no-deps --upgrade --target $(MMCV22) mmcv-lite==2.2.0
	@rm -f $(VENV)/.installed-* && touch $@

check-rust:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs), then run make again"; exit 1; }

## Mesa's software Vulkan (llvmpipe) lets the cubecl kernels run through wgpu on any CPU.
vulkan:
	@if ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || ! command -v vulkaninfo >/dev/null; then \
		echo "installing Mesa's Vulkan drivers (llvmpipe) for the wgpu kernel tests"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq mesa-vulkan-drivers libvulkan1 vulkan-tools >/dev/null; \
	fi
	@vulkaninfo --summary 2>/dev/null | grep -E "deviceName|driverName" | sed 's/^\s*/vulkan: /'

## Stripped release binaries for the GPU machine (see docs/gpu-testing.md): .gpu/
gpu-artifacts: check-rust
	$(CARGO) test -p cubeops --features $(FEATURES) --profile gpu --no-run --test kernels_cuda --test psamask --test ms_deform_attn --bench point_sample
	$(CARGO) build --workspace --exclude cubeops-py --features $(FEATURES) --profile gpu --example demo --example bev_refine --bin arch-check
	@mkdir -p .gpu && rm -f .gpu/kernels_cuda .gpu/psamask .gpu/ms_deform_attn .gpu/bench_point_sample .gpu/demo .gpu/arch-check .gpu/bev_refine
	cp $$(ls -t target/gpu/deps/kernels_cuda-* | grep -v '\.d$$' | head -1) .gpu/kernels_cuda
	cp $$(ls -t target/gpu/deps/psamask-* | grep -v '\.d$$' | head -1) .gpu/psamask
	cp $$(ls -t target/gpu/deps/ms_deform_attn-* | grep -v '\.d$$' | head -1) .gpu/ms_deform_attn
	cp $$(ls -t target/gpu/deps/point_sample-* | grep -v '\.d$$' | head -1) .gpu/bench_point_sample
	cp target/gpu/examples/demo target/gpu/examples/bev_refine target/gpu/arch-check .gpu/
	@ls -la .gpu
