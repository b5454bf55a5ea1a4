//! The fused cubecl kernels on CUDA against the float64 reference. Needs an NVIDIA GPU:
//! ignored by default, run with
//! `cargo test -p cubeops --features cuda --test kernels_cuda -- --ignored --nocapture`.
#![cfg(feature = "cuda")]

mod common;

use burn::backend::cuda::CudaDevice;
use burn::backend::{Autodiff, Cuda};
use burn::tensor::DType;
use common::{edge_cases, non_finite_cases, random_cases, run_suite, run_suite_with};

type B = Autodiff<Cuda>;

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn kernels_match_reference_on_cuda() {
    let mut cases = random_cases(3, 64);
    cases.extend(edge_cases());
    cases.extend(non_finite_cases());
    // cubecl-cuda 0.10 refuses host copies of tensors with a zero dimension
    // (IoError::UnsupportedStrides), so burn can neither create nor read them on CUDA.
    // Empty problems are covered on wgpu, where they run through the same launchers.
    cases.retain(|case| case.dims.output_len() > 0);
    let dtypes = [(DType::F32, 1e-5), (DType::F16, 1e-2), (DType::BF16, 1e-2), (DType::F64, 1e-12)];
    run_suite::<B>("cuda", &CudaDevice::default(), &dtypes, &cases);
    // The deterministic backward (ordered kernel, no atomics).
    run_suite_with::<B>("cuda", &CudaDevice::default(), &dtypes, &cases, true);
}
