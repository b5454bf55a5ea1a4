//! The strided multi-threaded CPU kernels (Python bridge's CPU path) against the reference,
//! with NCHW and channels-last input and transposed (non-contiguous) points.

mod common;

use common::{edge_cases, max_error, non_finite_cases, random_cases, reference_outcome, Case};
use cubeops::point_sample::cpu::{self, CpuElement, View};
use cubeops::point_sample::reference::RefDims;
use burn::tensor::DType;

fn run<T: CpuElement>(case: &Case, channels_last: bool) -> [Vec<f64>; 3] {
    let RefDims { n, channels: c, height: h, width: w, num_points: p } = case.dims;
    let cast = |v: &[f64]| v.iter().map(|x| T::from_f64(*x)).collect::<Vec<T>>();
    // Input memory either NCHW or NHWC; the view always has the logical (N, C, H, W) shape.
    let (input_mem, in_strides) = if channels_last {
        let mut nhwc = vec![0.0; case.input.len()];
        for (i, v) in case.input.iter().enumerate() {
            let (b, ch, y, x) = (i / (c * h * w), i / (h * w) % c, i / w % h, i % w);
            nhwc[((b * h + y) * w + x) * c + ch] = *v;
        }
        (cast(&nhwc), [h * w * c, 1, w * c, c])
    } else {
        (cast(&case.input), [c * h * w, h * w, w, 1])
    };
    // Points stored as (N, 2, P) memory and viewed as (N, P, 2): a transposed view.
    let mut pts_t = vec![0.0; case.points.len()];
    for (i, v) in case.points.iter().enumerate() {
        let (b, q, k) = (i / (p * 2), i / 2 % p, i % 2);
        pts_t[(b * 2 + k) * p + q] = *v;
    }
    let pts_mem = cast(&pts_t);
    let go_mem = cast(&case.grad_output);

    let input = View::new("input", &input_mem, [n, c, h, w], in_strides).unwrap();
    let points = View::new("points", &pts_mem, [n, p, 2], [2 * p, 1, p]).unwrap();
    let grad_output = View::new("grad_output", &go_mem, [n, c, p], [c * p, p, 1]).unwrap();
    let mut out = vec![T::from_f64(0.0); n * c * p];
    let mut gi = vec![T::from_f64(0.0); n * c * h * w];
    let mut gp = vec![T::from_f64(0.0); n * p * 2];
    cpu::forward(input, points, &mut out, case.sampling).unwrap();
    cpu::grad_input(grad_output, points, &mut gi, [n, c, h, w], case.sampling).unwrap();
    cpu::grad_points(grad_output, input, points, &mut gp, case.sampling).unwrap();
    let back = |v: Vec<T>| v.into_iter().map(T::to_f64).collect::<Vec<_>>();
    [back(out), back(gi), back(gp)]
}

fn suite<T: CpuElement>(dtype: DType, tol: f64) {
    let mut cases = random_cases(4, 24);
    cases.extend(edge_cases());
    cases.extend(non_finite_cases());
    for channels_last in [false, true] {
        let mut worst = 0.0f64;
        for case in &cases {
            let want = reference_outcome(case, dtype);
            let got = run::<T>(case, channels_last);
            for (what, g, w) in [("output", &got[0], &want.output), ("grad_input", &got[1], &want.grad_input), ("grad_points", &got[2], &want.grad_points)] {
                let err = max_error(&format!("cpu {dtype:?} {} {what}", case.name), g, w);
                assert!(err <= tol, "cpu {dtype:?} channels_last={channels_last} {} {what}: {err:e}", case.name);
                worst = worst.max(err);
            }
        }
        println!("cpu {dtype:?} channels_last={channels_last}: {} cases, max rel error {worst:.2e}", cases.len());
    }
}

#[test]
fn cpu_kernels_match_reference() {
    suite::<f64>(DType::F64, 1e-12);
    suite::<f32>(DType::F32, 1e-6);
    suite::<half::f16>(DType::F16, 1e-2);
    suite::<half::bf16>(DType::BF16, 1e-2);
}

#[test]
fn views_reaching_past_their_memory_are_rejected() {
    let data = [0.0f32; 10];
    let e = View::new("input", &data, [1, 1, 3, 4], [12, 12, 4, 1]).unwrap_err();
    assert_eq!(e.arg(), Some("input"));
    assert!(e.to_string().contains("reaches past its 10 elements"), "{e}");
    // Overflowing strides are an error too, not a wrap-around.
    assert!(View::new("points", &data, [2, 2, 2], [usize::MAX, 1, 1]).is_err());
    // Empty tensors reach nothing.
    assert!(View::new("points", &data[..0], [2, 0, 2], [0, 2, 1]).is_ok());
}
