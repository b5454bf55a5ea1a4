//! Multi-scale deformable attention on every backend here (NdArray through point_sample's
//! tensor ops, wgpu fused kernels on llvmpipe, the CPU kernels of the Python bridge; CUDA,
//! ignored without a GPU) against the float64 reference: forward and all three gradients, one
//! or several levels, P = 1, odd channel counts, points off the map, non-contiguous inputs;
//! bad input is an error.

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{DType, Tensor, TensorData};
use cubeops::ms_deform_attn::reference::{self, MsdaDims};
use cubeops::ms_deform_attn::{cpu, ms_deform_attn, MsDeformAttnAutodiffBackend};
use cubeops::point_sample::cpu::View;
use cubeops::OpError;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn dims_cases() -> Vec<MsdaDims> {
    let d = |n, num_heads, channels, num_queries, num_points, levels: &[[usize; 2]]| MsdaDims {
        n,
        num_heads,
        channels,
        num_queries,
        num_points,
        levels: levels.to_vec(),
    };
    vec![
        d(2, 2, 4, 5, 3, &[[6, 5], [3, 3], [2, 1]]),
        d(1, 1, 1, 3, 1, &[[4, 7]]),
        d(1, 3, 5, 7, 2, &[[1, 1], [5, 2]]),
        d(2, 8, 3, 4, 4, &[[8, 6], [4, 3], [2, 2], [1, 1]]),
        // Channels over a warp (two per thread in the fused backward) and a full group of 16.
        d(1, 2, 40, 3, 2, &[[5, 4], [2, 3]]),
        d(1, 1, 16, 6, 3, &[[4, 4]]),
    ]
}

struct Case {
    dims: MsdaDims,
    value: Vec<f64>,
    locations: Vec<f64>,
    weights: Vec<f64>,
    grad: Vec<f64>,
}

impl Case {
    fn new(dims: MsdaDims, rng: &mut StdRng) -> Self {
        let value = (0..dims.value_len()).map(|_| rng.random_range(-1.0..1.0)).collect();
        // A tenth of the points off the map or across its edges.
        let locations = (0..dims.locations_len()).map(|_| rng.random_range(-0.1..1.1)).collect();
        let weights = (0..dims.weights_len()).map(|_| rng.random_range(0.0..1.0)).collect();
        let grad = (0..dims.output_len()).map(|_| rng.random_range(-1.0..1.0)).collect();
        Case { dims, value, locations, weights, grad }
    }

    /// The inputs as `dtype` stores them, so the reference sees what the kernels see (a
    /// rounded location may move to the next cell, where the location gradient jumps).
    fn rounded_to(self, dtype: DType) -> Self {
        let round = |v: Vec<f64>| -> Vec<f64> {
            match dtype {
                DType::F16 => v.into_iter().map(|x| half::f16::from_f64(x).to_f64()).collect(),
                DType::BF16 => v.into_iter().map(|x| half::bf16::from_f64(x).to_f64()).collect(),
                DType::F32 => v.into_iter().map(|x| x as f32 as f64).collect(),
                _ => v,
            }
        };
        Case { dims: self.dims, value: round(self.value), locations: round(self.locations), weights: round(self.weights), grad: round(self.grad) }
    }
}

fn max_err(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter().zip(want).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max)
}

fn to_vec<B: burn::tensor::backend::Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec().unwrap()
}

/// Forward and the three gradients through the public API with autodiff; `transposed` stores
/// the value as (N, M, S, D) and views it as (N, S, M, D).
fn run_suite<B: MsDeformAttnAutodiffBackend>(label: &str, device: &B::Device, dtype: DType, tol: f64) {
    let mut rng = StdRng::seed_from_u64(3);
    for dims in dims_cases() {
        for transposed in [false, true] {
            let case = Case::new(dims.clone(), &mut rng).rounded_to(dtype);
            let MsdaDims { n, num_heads: m, channels: d, num_queries: q, num_points: p, .. } = dims;
            let (s, l) = (dims.num_keys(), dims.levels.len());
            let opts = (device, dtype);
            let value = if transposed {
                let nmsd: Vec<f64> = (0..case.value.len())
                    .map(|i| {
                        let (di, rest) = (i % d, i / d);
                        let (si, rest) = (rest % s, rest / s);
                        let (mi, b) = (rest % m, rest / m);
                        case.value[((b * s + si) * m + mi) * d + di]
                    })
                    .collect();
                Tensor::<B, 4>::from_data(TensorData::new(nmsd, [n, m, s, d]), opts).swap_dims(1, 2)
            } else {
                Tensor::<B, 4>::from_data(TensorData::new(case.value.clone(), [n, s, m, d]), opts)
            };
            let value = value.require_grad();
            let locations = Tensor::<B, 6>::from_data(TensorData::new(case.locations.clone(), [n, q, m, l, p, 2]), opts).require_grad();
            let weights = Tensor::<B, 5>::from_data(TensorData::new(case.weights.clone(), [n, q, m, l, p]), opts).require_grad();
            let out = ms_deform_attn(value.clone(), &dims.levels, locations.clone(), weights.clone()).unwrap();
            assert_eq!(out.dims(), [n, q, m * d]);
            let g = Tensor::<B, 3>::from_data(TensorData::new(case.grad.clone(), [n, q, m * d]), opts);
            let grads = (out.clone() * g).sum().backward();
            let want = reference::forward(&dims, &case.value, &case.locations, &case.weights);
            let (want_v, want_l, want_w) = reference::backward(&dims, &case.value, &case.locations, &case.weights, &case.grad);
            let what = format!("{label} {dtype:?} {dims:?} transposed={transposed}");
            let grad_of = |name: &str, got: Option<Vec<f64>>| got.unwrap_or_else(|| panic!("no gradient for {name}: {what}"));
            let checks = [
                ("forward", to_vec(out), want),
                ("grad value", grad_of("value", value.grad(&grads).map(to_vec)), want_v),
                ("grad locations", grad_of("locations", locations.grad(&grads).map(to_vec)), want_l),
                ("grad weights", grad_of("weights", weights.grad(&grads).map(to_vec)), want_w),
            ];
            for (name, got, want) in checks {
                // Location gradients scale with the map size (d pixel / d location).
                let scale = if name == "grad locations" { 10.0 } else { 1.0 };
                let err = max_err(&got, &want);
                if err > tol * scale {
                    let (i, _) = got.iter().zip(&want).enumerate().max_by(|a, b| (a.1 .0 - a.1 .1).abs().total_cmp(&(b.1 .0 - b.1 .1).abs())).unwrap();
                    eprintln!("worst {name} at {i}: got {} want {} loc {:?} w {}", got[i], want[i], &case.locations[i / 2 * 2..i / 2 * 2 + 2], case.weights[i / 2]);
                }
                assert!(err <= tol * scale, "{name}: max error {err:e} > {:e}: {what}", tol * scale);
            }
        }
    }
}

#[test]
fn ndarray_matches_reference() {
    run_suite::<Autodiff<NdArray<f64>>>("ndarray", &Default::default(), DType::F64, 1e-12);
    run_suite::<Autodiff<NdArray>>("ndarray", &Default::default(), DType::F32, 1e-5);
}

#[cfg(feature = "wgpu")]
#[test]
fn wgpu_kernels_match_reference() {
    let device = burn::backend::wgpu::WgpuDevice::default();
    let client = <burn::backend::wgpu::WgpuRuntime as cubecl::Runtime>::client(&device);
    let fused = [8, 16, 32].map(|lanes| cubeops_kernels::ms_deform_attn::supports_fused_backward(&client, lanes));
    println!("wgpu: fused backward with 8 / 16 / 32 lanes: {fused:?} (planes {:?}, {}..{} wide)", client.properties().features.plane, client.properties().hardware.plane_size_min, client.properties().hardware.plane_size_max);
    run_suite::<Autodiff<burn::backend::Wgpu>>("wgpu", &device, DType::F32, 1e-5);
    run_suite::<Autodiff<burn::backend::Wgpu>>("wgpu", &device, DType::F16, 2e-2);
    // llvmpipe has no f64 atomics: the value's gradient comes from the deterministic kernel.
    if client.properties().supports_type(cubecl::ir::StorageType::from(DType::F64)) {
        run_suite::<Autodiff<burn::backend::Wgpu<f64>>>("wgpu", &device, DType::F64, 1e-12);
        println!("wgpu f64: checked (value gradient from the deterministic kernel where f64 atomics are missing)");
    } else {
        println!("wgpu: f64 not supported by this device, skipped");
    }
}

/// The same suite on CUDA (the fused backward with plane shuffles runs only there: llvmpipe
/// has no subgroup operations). Needs an NVIDIA GPU: `-- --ignored`.
#[cfg(feature = "cuda")]
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn cuda_kernels_match_reference() {
    let device = burn::backend::cuda::CudaDevice::default();
    let client = <cubecl::cuda::CudaRuntime as cubecl::Runtime>::client(&device);
    let fused = [8, 16, 32].map(|lanes| cubeops_kernels::ms_deform_attn::supports_fused_backward(&client, lanes));
    println!("cuda: fused backward with 8 / 16 / 32 lanes: {fused:?}");
    run_suite::<Autodiff<burn::backend::Cuda>>("cuda", &device, DType::F32, 1e-5);
    run_suite::<Autodiff<burn::backend::Cuda>>("cuda", &device, DType::F16, 2e-2);
    run_suite::<Autodiff<burn::backend::Cuda<f64>>>("cuda", &device, DType::F64, 1e-12);
}

#[test]
fn cpu_kernels_match_reference() {
    let mut rng = StdRng::seed_from_u64(5);
    for dims in dims_cases() {
        let case = Case::new(dims.clone(), &mut rng);
        let MsdaDims { n, num_heads: m, channels: d, num_queries: q, num_points: p, .. } = dims;
        let (s, l) = (dims.num_keys(), dims.levels.len());
        let starts = dims.level_starts();
        let levels: Vec<(usize, usize, usize)> = dims.levels.iter().zip(&starts).map(|(&[h, w], &st)| (h, w, st)).collect();
        // Weights read through a broadcast-like stride pattern: stored (N, L, P, Lq, M), viewed.
        let mut stored = vec![f64::NAN; case.weights.len()];
        for (i, w) in case.weights.iter().enumerate() {
            let (pi, li, mi, qi, b) = (i % p, (i / p) % l, (i / (p * l)) % m, (i / (p * l * m)) % q, i / (p * l * m * q));
            stored[(((b * l + li) * p + pi) * q + qi) * m + mi] = *w;
        }
        let inputs = cpu::Inputs {
            value: View::new("value", &case.value, [n, s, m, d], [s * m * d, m * d, d, 1]).unwrap(),
            locations: View::new("sampling_locations", &case.locations, [n, q, m, l, p, 2], [q * m * l * p * 2, m * l * p * 2, l * p * 2, p * 2, 2, 1]).unwrap(),
            weights: View::new("attention_weights", &stored, [n, q, m, l, p], [l * p * q * m, m, 1, p * q * m, q * m]).unwrap(),
        };
        let mut out = vec![f64::NAN; dims.output_len()];
        cpu::forward(&inputs, &levels, &mut out).unwrap();
        let what = format!("cpu {dims:?}");
        assert!(max_err(&out, &reference::forward(&dims, &case.value, &case.locations, &case.weights)) < 1e-12, "forward {what}");
        let (want_v, want_l, want_w) = reference::backward(&dims, &case.value, &case.locations, &case.weights, &case.grad);
        let grad = View::new("grad_output", &case.grad, [n, q, m, d], [q * m * d, m * d, d, 1]).unwrap();
        let mut gv = vec![f64::NAN; want_v.len()];
        cpu::grad_value(&inputs, &levels, grad, &mut gv).unwrap();
        let (mut gl, mut gw) = (vec![f64::NAN; want_l.len()], vec![f64::NAN; want_w.len()]);
        cpu::grad_sampling(&inputs, &levels, grad, &mut gl, &mut gw).unwrap();
        assert!(max_err(&gv, &want_v) < 1e-12, "grad value {what}");
        assert!(max_err(&gl, &want_l) < 1e-11, "grad locations {what}");
        assert!(max_err(&gw, &want_w) < 1e-12, "grad weights {what}");
    }
}

/// The reference by hand: one level of 2x2 keys, one channel, one query.
#[test]
fn reference_by_hand() {
    let dims = MsdaDims { n: 1, num_heads: 1, channels: 1, num_queries: 1, num_points: 2, levels: vec![[2, 2]] };
    let value = [1.0, 2.0, 3.0, 4.0];
    // Point 1 at the centre of the map: the mean 2.5; point 2 on key (0, 1)'s centre: 2.
    let (locations, weights) = ([0.5, 0.5, 0.75, 0.25], [2.0, 10.0]);
    assert_eq!(reference::forward(&dims, &value, &locations, &weights), vec![2.0 * 2.5 + 10.0 * 2.0]);
    let (gv, gl, gw) = reference::backward(&dims, &value, &locations, &weights, &[1.0]);
    assert_eq!(gw, vec![2.5, 2.0]);
    assert_eq!(gv, vec![0.5, 10.5, 0.5, 0.5]);
    // At the centre: d/dx = weight * W * ((2 - 1) + (4 - 3)) / 2 = 2 * 2 * 1 = 4; d/dy = 2 * 2 * 2 = 8.
    assert_eq!(&gl[..2], &[4.0, 8.0]);
}

#[test]
fn bad_input_is_an_error() {
    type B = NdArray;
    let device = Default::default();
    let value = Tensor::<B, 4>::zeros([1, 10, 2, 4], &device);
    let locations = Tensor::<B, 6>::zeros([1, 3, 2, 2, 4, 2], &device);
    let weights = Tensor::<B, 5>::zeros([1, 3, 2, 2, 4], &device);
    let err = ms_deform_attn(value.clone(), &[[2, 2], [2, 2]], locations.clone(), weights.clone()).unwrap_err();
    assert!(matches!(err, OpError::Shape { arg: "spatial_shapes", .. }) && err.to_string().contains("8 keys"), "{err}");
    let err = ms_deform_attn(value.clone(), &[[3, 2], [2, 2]], locations.clone(), weights.clone().narrow(4, 0, 3)).unwrap_err();
    assert!(matches!(err, OpError::Shape { arg: "attention_weights", .. }), "{err}");
    let err = ms_deform_attn(value.clone(), &[[3, 2], [4, 1]], locations.clone().narrow(3, 0, 1), weights.clone()).unwrap_err();
    assert!(matches!(err, OpError::Shape { arg: "sampling_locations", .. }), "{err}");
    let err = ms_deform_attn(value.clone(), &[[3, 2], [4, 1]], locations.clone().cast(DType::F64), weights.clone()).unwrap_err();
    assert!(matches!(err, OpError::DType { arg: "sampling_locations", .. }), "{err}");
    assert!(ms_deform_attn(value, &[[3, 2], [4, 1]], locations, weights).is_ok());
    // The CPU kernels: a level reaching past the value.
    let storage = vec![0.0f32; 40];
    let locs = vec![0.0f32; 48];
    let wts = vec![0.0f32; 24];
    let inputs = cpu::Inputs {
        value: View::new("value", &storage, [1, 10, 1, 4], [40, 4, 4, 1]).unwrap(),
        locations: View::new("sampling_locations", &locs, [1, 3, 1, 2, 4, 2], [48, 16, 16, 8, 2, 1]).unwrap(),
        weights: View::new("attention_weights", &wts, [1, 3, 1, 2, 4], [24, 8, 8, 4, 1]).unwrap(),
    };
    let mut out = vec![0.0f32; 12];
    let err = cpu::forward(&inputs, &[(3, 2, 0), (3, 2, 6)], &mut out).unwrap_err();
    assert!(matches!(err, OpError::Shape { arg: "value_spatial_shapes", .. }), "{err}");
}
