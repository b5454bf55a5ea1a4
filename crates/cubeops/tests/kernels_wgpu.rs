//! The fused cubecl kernels on wgpu (in CI: Mesa's llvmpipe software Vulkan) against the
//! float64 reference, through the public API with autodiff.
#![cfg(feature = "wgpu")]

mod common;

use burn::backend::wgpu::{WgpuDevice, WgpuRuntime};
use burn::backend::{Autodiff, Wgpu};
use burn::tensor::DType;
use common::{edge_cases, non_finite_cases, random_cases, run_suite};
use cubecl::Runtime;

type B = Autodiff<Wgpu>;

/// The dtypes this device stores, with their tolerances (f16/bf16: 1e-2 relative).
fn dtypes(device: &WgpuDevice) -> Vec<(DType, f64)> {
    let props = WgpuRuntime::client(device).properties().clone();
    let mut out = vec![(DType::F32, 1e-5)];
    for (dtype, tol) in [(DType::F16, 1e-2), (DType::BF16, 1e-2), (DType::F64, 1e-12)] {
        if props.supports_type(cubecl::ir::StorageType::from(dtype)) {
            out.push((dtype, tol));
        } else {
            println!("wgpu: {dtype:?} not supported by this device, skipped");
        }
    }
    out
}

#[test]
fn kernels_match_reference() {
    let device = WgpuDevice::default();
    let mut cases = random_cases(2, 24);
    cases.extend(edge_cases());
    let dtypes = dtypes(&device);
    run_suite::<B>("wgpu", &device, &dtypes, &cases);
    // Without f64 atomics (llvmpipe) the f64 input gradient falls back to burn's tensor ops,
    // whose `is_nan` WGSL may fold away; NaN semantics are checked on the kernel dtypes.
    let kernel_dtypes: Vec<_> = dtypes.into_iter().filter(|(d, _)| *d != DType::F64).collect();
    run_suite::<B>("wgpu", &device, &kernel_dtypes, &non_finite_cases());
}

/// The fused path is what ran above: llvmpipe has f32 atomic add, so grad_input used the
/// scatter kernel rather than the tensor-op fallback.
#[test]
fn llvmpipe_has_f32_atomic_add() {
    let client = WgpuRuntime::client(&WgpuDevice::default());
    let f32_type = cubecl::ir::StorageType::from(DType::F32);
    assert!(cubeops_kernels::point_sample::supports_atomic_add(&client, f32_type));
}

#[test]
fn device_mismatch_is_an_error() {
    use burn::tensor::Tensor;
    use cubeops::point_sample::{point_sample, PointSampleOptions};
    let input = Tensor::<B, 4>::zeros([1, 1, 2, 2], (&WgpuDevice::Cpu, DType::F32));
    let points = Tensor::<B, 3>::zeros([1, 3, 2], (&WgpuDevice::DefaultDevice, DType::F32));
    let e = point_sample(input, points, PointSampleOptions::default()).unwrap_err();
    assert_eq!(e.arg(), Some("points"));
    assert!(matches!(e, cubeops::OpError::Device { .. }), "{e}");
}
