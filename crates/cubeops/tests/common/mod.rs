//! Test harness shared by the backend suites: random and edge cases, a runner that puts a
//! case through any autodiff backend, and comparison against the float64 reference.
#![allow(dead_code)]

use burn::tensor::{DType, Tensor, TensorData};
use cubeops::point_sample::reference::{self, RefDims};
use cubeops::point_sample::{
    point_sample, InputLayout, Padding, PointSampleAutodiffBackend, PointSampleOptions, Sampling,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub dims: RefDims,
    /// Contiguous NCHW.
    pub input: Vec<f64>,
    pub points: Vec<f64>,
    /// Points tensor shape: `[N, P, 2]` or `[N, Hp, Wp, 2]`.
    pub points_shape: Vec<usize>,
    pub grad_output: Vec<f64>,
    pub sampling: Sampling,
}

impl Case {
    pub fn new(name: &str, dims: RefDims, points: Vec<f64>, sampling: Sampling, rng: &mut StdRng) -> Self {
        let input = (0..dims.input_len()).map(|_| rng.random_range(-2.0..2.0)).collect();
        let grad_output = (0..dims.output_len()).map(|_| rng.random_range(-1.0..1.0)).collect();
        let points_shape = vec![dims.n, dims.num_points, 2];
        Case { name: name.into(), dims, input, points, points_shape, grad_output, sampling }
    }
}

fn dims(n: usize, channels: usize, height: usize, width: usize, num_points: usize) -> RefDims {
    RefDims { n, channels, height, width, num_points }
}

fn random_points(rng: &mut StdRng, count: usize) -> Vec<f64> {
    (0..count * 2).map(|_| rng.random_range(-0.25..1.25)).collect()
}

/// Random shapes and points (about a sixth of the points outside [0, 1]; for border and
/// reflection padding, many well outside), cycling through every sampling.
pub fn random_cases(seed: u64, count: usize) -> Vec<Case> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|i| {
            let d = dims(
                rng.random_range(1..=3),
                rng.random_range(1..=8),
                rng.random_range(1..=9),
                rng.random_range(1..=9),
                rng.random_range(0..=40),
            );
            let sampling = Sampling::all()[i % 12];
            let mut points = random_points(&mut rng, d.n * d.num_points);
            if sampling.padding != Padding::Zeros {
                // Several mirror images away from the map.
                points.iter_mut().for_each(|p| *p = (*p - 0.5) * 5.0 + 0.5);
            }
            Case::new(&format!("random{i}"), d, points, sampling, &mut rng)
        })
        .collect()
}

/// Points on the borders and cell edges, outside [0, 1], H or W = 1, P = 0, 4-D points, for
/// every sampling.
pub fn edge_cases() -> Vec<Case> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut cases = Vec::new();
    for sampling in Sampling::all() {
        // Dyadic positions: exact in every float type, so every backend sees the same cells.
        let k: Vec<f64> = (0..=8).map(|i| i as f64 / 8.0).collect();
        let border: Vec<f64> = k.iter().flat_map(|&y| k.iter().flat_map(move |&x| [x, y])).collect();
        cases.push(Case::new("borders", dims(1, 3, 8, 4, 81), border, sampling, &mut rng));
        let outside = vec![-0.5, 0.5, 1.5, 0.5, 0.5, -0.25, 0.5, 1.0625, -1.0, 2.0, 1.125, -0.125];
        cases.push(Case::new("outside", dims(1, 2, 4, 4, 6), outside, sampling, &mut rng));
        let pts = random_points(&mut rng, 2 * 9);
        cases.push(Case::new("h1", dims(2, 3, 1, 6, 9), pts, sampling, &mut rng));
        let pts = random_points(&mut rng, 9);
        cases.push(Case::new("w1", dims(1, 4, 6, 1, 9), pts, sampling, &mut rng));
        cases.push(Case::new("no_points", dims(2, 3, 4, 5, 0), vec![], sampling, &mut rng));
        let pts = random_points(&mut rng, 2 * 12);
        let mut c = Case::new("points4d", dims(2, 3, 6, 5, 12), pts, sampling, &mut rng);
        c.points_shape = vec![2, 3, 4, 2];
        cases.push(c);
        // Wide channels: more threads per point than a cube holds along C.
        let pts = random_points(&mut rng, 5);
        cases.push(Case::new("wide_c", dims(1, 300, 3, 4, 5), pts, sampling, &mut rng));
    }
    cases
}

/// Non-finite and huge coordinates, one case per mode and padding: under zeros they sample
/// zero with zero gradients; under border/reflection see torch's CUDA rules in the reference.
/// (Reflection of 1e30 is left out: its result depends on the rounding of the pixel
/// position, which differs between f32 kernels and the f64 reference, as in torch.)
pub fn non_finite_cases() -> Vec<Case> {
    let mut rng = StdRng::seed_from_u64(11);
    let (nan, inf) = (f64::NAN, f64::INFINITY);
    let mut cases = Vec::new();
    for sampling in Sampling::all().into_iter().filter(|s| !s.align_corners) {
        let huge = if sampling.padding == Padding::Reflection { 0.7 } else { 1e30 };
        let points = vec![nan, 0.5, 0.5, nan, inf, 0.5, -inf, 0.5, 0.5, inf, huge, 0.5, -huge, -huge, 0.3, 0.6];
        cases.push(Case::new("non_finite", dims(1, 2, 4, 4, 8), points, sampling, &mut rng));
    }
    cases
}

/// Rounds values through `dtype`, so the reference sees exactly what the backend stores.
pub fn quantize(values: &[f64], dtype: DType) -> Vec<f64> {
    TensorData::new(values.to_vec(), [values.len()]).convert_dtype(dtype).convert::<f64>().to_vec().unwrap()
}

pub struct Outcome {
    pub output: Vec<f64>,
    pub grad_input: Vec<f64>,
    pub grad_points: Vec<f64>,
}

/// The reference result for a case, on inputs rounded to `dtype`.
pub fn reference_outcome(case: &Case, dtype: DType) -> Outcome {
    let input = quantize(&case.input, dtype);
    let points = quantize(&case.points, dtype);
    let grad_output = quantize(&case.grad_output, dtype);
    let output = reference::forward(case.dims, &input, &points, case.sampling);
    let (grad_input, grad_points) = reference::backward(case.dims, &input, &points, &grad_output, case.sampling);
    Outcome { output, grad_input, grad_points }
}

fn tensor<B: PointSampleAutodiffBackend, const D: usize>(values: &[f64], shape: [usize; D], dtype: DType, device: &B::Device) -> Tensor<B, D> {
    // The dtype must be explicit: without it burn converts to the device's default float type.
    Tensor::from_data(TensorData::new(values.to_vec(), shape), (device, dtype))
}

fn to_vec<B: burn::tensor::backend::Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec().unwrap()
}

/// Runs forward and backward (loss = sum(output * grad_output)) through the public API.
/// With `InputLayout::Nhwc` the input is handed over as `(N, H, W, C)`.
pub fn run<B: PointSampleAutodiffBackend>(case: &Case, dtype: DType, layout: InputLayout, deterministic: bool, device: &B::Device) -> Outcome {
    let RefDims { n, channels, height, width, num_points } = case.dims;
    let nchw: Tensor<B, 4> = tensor(&case.input, [n, channels, height, width], dtype, device);
    let input = match layout {
        InputLayout::Nchw => nchw,
        // Materialise a real (N, H, W, C) tensor, not a view of the NCHW one.
        InputLayout::Nhwc => {
            let nhwc: Vec<f64> = to_vec(nchw.permute([0, 2, 3, 1]));
            tensor(&nhwc, [n, height, width, channels], dtype, device)
        }
    }
    .require_grad();
    let s = case.sampling;
    let options = PointSampleOptions { align_corners: s.align_corners, mode: s.mode, padding_mode: s.padding, layout, deterministic };
    let grad_output_3d: Tensor<B, 3> = tensor(&case.grad_output, [n, channels, num_points], dtype, device);

    if case.dims.output_len() == 0 {
        // burn's autodiff cannot reduce an empty tensor (its sum backward panics), so an
        // empty call checks the forward shape only; its gradients are all zero anyway.
        let points: Tensor<B, 3> = tensor(&case.points, [n, num_points, 2], dtype, device);
        let out = point_sample(input, points, options).expect("valid call");
        assert_eq!(out.dims(), [n, channels, num_points]);
        let want = reference_outcome(case, dtype);
        return Outcome { output: to_vec(out), ..want };
    }
    let backward = |output: Tensor<B, 3>| (output.clone() * grad_output_3d.clone()).sum().backward();
    let (output, grads, grad_points) = if case.points_shape.len() == 4 {
        let s = &case.points_shape;
        let points: Tensor<B, 4> = tensor(&case.points, [s[0], s[1], s[2], s[3]], dtype, device).require_grad();
        let out = point_sample(input.clone(), points.clone(), options).expect("valid call");
        assert_eq!(out.dims(), [n, channels, s[1], s[2]]);
        let out = out.reshape([n, channels, num_points]);
        let grads = backward(out.clone());
        let grad_points = points.grad(&grads).map(to_vec);
        (out, grads, grad_points)
    } else {
        let points: Tensor<B, 3> = tensor(&case.points, [n, num_points, 2], dtype, device).require_grad();
        let out = point_sample(input.clone(), points.clone(), options).expect("valid call");
        let grads = backward(out.clone());
        let grad_points = points.grad(&grads).map(to_vec);
        (out, grads, grad_points)
    };
    let grad_input = input.grad(&grads).expect("input gradient");
    let grad_input = match layout {
        InputLayout::Nchw => grad_input,
        InputLayout::Nhwc => grad_input.permute([0, 3, 1, 2]),
    };
    let grad_points = grad_points.expect("points gradient");
    Outcome { output: to_vec(output), grad_input: to_vec(grad_input), grad_points }
}

/// Largest `|got - want| / max(1, |want|)`; NaN must meet NaN.
pub fn max_error(name: &str, got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "{name}: length");
    got.iter()
        .zip(want)
        .map(|(g, w)| {
            if w.is_nan() || g.is_nan() {
                assert!(w.is_nan() && g.is_nan(), "{name}: got {g}, want {w}");
                0.0
            } else {
                (g - w).abs() / w.abs().max(1.0)
            }
        })
        .fold(0.0, f64::max)
}

/// Checks a backend's outcome against the reference; returns the three max errors.
pub fn check(case: &Case, got: &Outcome, want: &Outcome, tol: f64, label: &str) -> [f64; 3] {
    let errors = [
        max_error(&format!("{label} {} output", case.name), &got.output, &want.output),
        max_error(&format!("{label} {} grad_input", case.name), &got.grad_input, &want.grad_input),
        if case.dims.num_points == 0 { 0.0 } else { max_error(&format!("{label} {} grad_points", case.name), &got.grad_points, &want.grad_points) },
    ];
    for (what, err) in ["output", "grad_input", "grad_points"].iter().zip(errors) {
        assert!(err <= tol, "{label} case {} {:?} {what}: error {err:e} > {tol:e}", case.name, case.sampling);
    }
    errors
}

/// Runs every case through backend `B` for each dtype and layout; prints the worst errors.
pub fn run_suite<B: PointSampleAutodiffBackend>(label: &str, device: &B::Device, dtypes: &[(DType, f64)], cases: &[Case]) {
    run_suite_with::<B>(label, device, dtypes, cases, false);
}

/// [`run_suite`] with the deterministic gradient (`PointSampleOptions::deterministic`) or not.
pub fn run_suite_with<B: PointSampleAutodiffBackend>(
    label: &str,
    device: &B::Device,
    dtypes: &[(DType, f64)],
    cases: &[Case],
    deterministic: bool,
) {
    let label = if deterministic { format!("{label} deterministic") } else { label.to_string() };
    for &(dtype, tol) in dtypes {
        for layout in [InputLayout::Nchw, InputLayout::Nhwc] {
            let mut worst = [0.0f64; 3];
            for case in cases {
                if std::env::var_os("CUBEOPS_TEST_VERBOSE").is_some() {
                    println!("{label} {dtype:?} {layout:?} {} {:?} {:?}", case.name, case.dims, case.sampling);
                }
                let want = reference_outcome(case, dtype);
                let got = run::<B>(case, dtype, layout, deterministic, device);
                let errs = check(case, &got, &want, tol, &format!("{label} {dtype:?} {layout:?}"));
                for (w, e) in worst.iter_mut().zip(errs) {
                    *w = w.max(e);
                }
            }
            println!(
                "{label} {dtype:?} {layout:?}: {} cases, max rel error output {:.2e} grad_input {:.2e} grad_points {:.2e}",
                cases.len(), worst[0], worst[1], worst[2]
            );
        }
    }
}
