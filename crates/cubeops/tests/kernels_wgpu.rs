//! The fused cubecl kernels on wgpu (in CI: Mesa's llvmpipe software Vulkan) against the
//! float64 reference, through the public API with autodiff.
#![cfg(feature = "wgpu")]

mod common;

use burn::backend::wgpu::{WgpuDevice, WgpuRuntime};
use burn::backend::{Autodiff, Wgpu};
use burn::tensor::DType;
use common::{edge_cases, non_finite_cases, random_cases, run, run_suite, run_suite_with, Case};
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
    // Without f64 atomics (llvmpipe) the f64 input gradient comes from the ordered kernel.
    run_suite::<B>("wgpu", &device, &dtypes, &non_finite_cases());
}

#[test]
fn deterministic_gradient_matches_reference_and_repeats_bit_for_bit() {
    use cubeops::point_sample::{InputLayout, Sampling};
    use cubeops::point_sample::reference::RefDims;
    use rand::SeedableRng;
    let device = WgpuDevice::default();
    let mut cases = random_cases(5, 24);
    cases.extend(edge_cases());
    cases.extend(non_finite_cases());
    run_suite_with::<B>("wgpu", &device, &dtypes(&device), &cases, true);

    // Many points on few cells (order-dependent sums), several row bands per plane.
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let dims = RefDims { n: 1, channels: 2, height: 40, width: 3, num_points: 3000 };
    let points = (0..dims.num_points).flat_map(|i| [0.5, (i % 40) as f64 / 40.0 + 0.01]).collect();
    let case = Case::new("crowded", dims, points, Sampling::default(), &mut rng);
    for layout in [InputLayout::Nchw, InputLayout::Nhwc] {
        let first = run::<B>(&case, DType::F32, layout, true, &device);
        let again = run::<B>(&case, DType::F32, layout, true, &device);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&first.grad_input), bits(&again.grad_input), "{layout:?}");
        let want = common::reference_outcome(&case, DType::F32);
        let err = common::max_error("crowded grad_input", &first.grad_input, &want.grad_input);
        assert!(err < 1e-5, "{layout:?}: crowded grad_input error {err:e}");
    }
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
