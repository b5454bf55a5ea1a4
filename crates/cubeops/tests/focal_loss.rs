//! Sigmoid and softmax focal losses on every backend here (NdArray tensor ops, wgpu fused
//! kernels on llvmpipe, the CPU kernels of the Python bridge) against the float64 reference:
//! loss and gradient, with and without class weights, background targets (index C) and -1,
//! large logits, gamma 0 / 1.5 / 2; bad input is an error.

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{DType, Int, Tensor, TensorData};
use cubeops::focal_loss::{cpu, reference, sigmoid_focal_loss, softmax_focal_loss, FocalLossAutodiffBackend, FocalLossOptions};
use cubeops::point_sample::cpu::View;
use cubeops::OpError;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

struct Case {
    n: usize,
    c: usize,
    input: Vec<f64>,
    target: Vec<i64>,
    weight: Option<Vec<f64>>,
    grad: Vec<f64>,
    options: FocalLossOptions,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Loss {
    Sigmoid,
    Softmax,
}

/// `(loss, d loss / d input)` of the float64 reference: sigmoid `(N, C)` and `(N, C)`, softmax
/// `(N,)` and `(N, C)`.
fn reference(loss: Loss, case: &Case) -> (Vec<f64>, Vec<f64>) {
    let FocalLossOptions { gamma, alpha } = case.options;
    let f = if loss == Loss::Sigmoid { reference::sigmoid_focal_loss } else { reference::softmax_focal_loss };
    f(&case.input, case.c, &case.target, case.weight.as_deref(), gamma, alpha)
}

/// Logits up to +-12 (f16 keeps them), a few up to +-60 in wider types for the sigmoid loss;
/// the softmax loss's probabilities would underflow there (mmcv clamps at FLT_MIN), so it
/// gets up to +-12 (+-4 in f16).
fn cases(kind: Loss, dtype: DType) -> Vec<Case> {
    let mut rng = StdRng::seed_from_u64(13);
    let round = |x: f64| match dtype {
        DType::F16 => half::f16::from_f64(x).to_f64(),
        DType::F32 => x as f32 as f64,
        _ => x,
    };
    let mut out = Vec::new();
    for (n, c) in [(7, 5), (1, 1), (33, 80), (4, 3)] {
        for (gamma, alpha, weighted) in [(2.0, 0.25, false), (0.0, 0.5, true), (1.5, 0.75, true)] {
            let wide = match (kind, dtype) {
                (Loss::Sigmoid, DType::F16) | (Loss::Softmax, DType::F32 | DType::F64) => 12.0,
                (Loss::Sigmoid, _) => 60.0,
                (Loss::Softmax, _) => 4.0,
            };
            let input = (0..n * c).map(|i| round(if i % 7 == 3 { rng.random_range(-wide..wide) } else { rng.random_range(-4.0..4.0) })).collect();
            // Classes, mmdet's background index C, and -1.
            let target = (0..n).map(|_| rng.random_range(-1..=c as i64)).collect();
            let weight = weighted.then(|| (0..c).map(|_| round(rng.random_range(0.1..2.0))).collect());
            let grad = (0..n * c).map(|_| round(rng.random_range(-1.0..1.0))).collect();
            out.push(Case { n, c, input, target, weight, grad, options: FocalLossOptions { gamma, alpha } });
        }
    }
    out
}

fn max_rel_err(got: &[f64], want: &[f64]) -> f64 {
    got.iter().zip(want).map(|(g, w)| (g - w).abs() / w.abs().max(1.0)).fold(0.0, f64::max)
}

fn run_suite<B: FocalLossAutodiffBackend>(label: &str, device: &B::Device, dtype: DType, tol: f64) {
    for loss in [Loss::Sigmoid, Loss::Softmax] {
        for case in cases(loss, dtype) {
            check_case::<B>(label, device, dtype, tol, loss, &case);
        }
    }
}

fn check_case<B: FocalLossAutodiffBackend>(label: &str, device: &B::Device, dtype: DType, tol: f64, kind: Loss, case: &Case) {
    let opts = (device, dtype);
    let x = Tensor::<B, 2>::from_data(TensorData::new(case.input.clone(), [case.n, case.c]), opts).require_grad();
    let t = Tensor::<B, 1, Int>::from_data(TensorData::new(case.target.clone(), [case.n]), device);
    let w = case.weight.clone().map(|w| Tensor::<B, 1>::from_data(TensorData::new(w, [case.c]), opts));
    // The output gradient: (N, C) for the sigmoid loss, (N,) for the softmax loss.
    let (loss, grads, rows) = if kind == Loss::Sigmoid {
        let loss = sigmoid_focal_loss(x.clone(), t, w, case.options).unwrap();
        let g = Tensor::<B, 2>::from_data(TensorData::new(case.grad.clone(), [case.n, case.c]), opts);
        let grads = (loss.clone() * g).sum().backward();
        (loss.into_data(), grads, case.n * case.c)
    } else {
        let loss = softmax_focal_loss(x.clone(), t, w, case.options).unwrap();
        let g = Tensor::<B, 1>::from_data(TensorData::new(case.grad[..case.n].to_vec(), [case.n]), opts);
        let grads = (loss.clone() * g).sum().backward();
        (loss.into_data(), grads, case.n)
    };
    let got_loss: Vec<f64> = loss.convert::<f64>().to_vec().unwrap();
    let got_grad: Vec<f64> = x.grad(&grads).unwrap().into_data().convert::<f64>().to_vec().unwrap();
    let (want_loss, want_d) = reference(kind, case);
    // Each derivative times the output gradient of its element (sigmoid) or row (softmax).
    let per = if kind == Loss::Softmax { case.c } else { 1 };
    let want_grad: Vec<f64> = want_d.iter().enumerate().map(|(i, d)| d * case.grad[i / per]).collect();
    let what = format!("{label} {kind:?} {dtype:?} {}x{} {:?} weighted={}", case.n, case.c, case.options, case.weight.is_some());
    assert_eq!(got_loss.len(), rows, "{what}");
    assert!(max_rel_err(&got_loss, &want_loss) <= tol, "loss {:e}: {what}", max_rel_err(&got_loss, &want_loss));
    assert!(max_rel_err(&got_grad, &want_grad) <= tol, "grad {:e}: {what}", max_rel_err(&got_grad, &want_grad));
}

#[test]
fn ndarray_matches_reference() {
    run_suite::<Autodiff<NdArray<f64>>>("ndarray", &Default::default(), DType::F64, 1e-12);
    run_suite::<Autodiff<NdArray>>("ndarray", &Default::default(), DType::F32, 1e-5);
}

#[cfg(feature = "wgpu")]
#[test]
fn wgpu_kernel_matches_reference() {
    let device = burn::backend::wgpu::WgpuDevice::default();
    run_suite::<Autodiff<burn::backend::Wgpu>>("wgpu", &device, DType::F32, 1e-5);
    run_suite::<Autodiff<burn::backend::Wgpu>>("wgpu", &device, DType::F16, 1e-2);
}

#[test]
fn cpu_kernels_match_reference() {
    for case in cases(Loss::Sigmoid, DType::F64) {
        let FocalLossOptions { gamma, alpha } = case.options;
        let (want_loss, want_d) = reference::sigmoid_focal_loss(&case.input, case.c, &case.target, case.weight.as_deref(), gamma, alpha);
        // The input read transposed: stored (C, N).
        let stored: Vec<f64> = (0..case.n * case.c).map(|i| case.input[(i % case.n) * case.c + i / case.n]).collect();
        let input = View::new("input", &stored, [case.n, case.c], [1, case.n]).unwrap();
        let weight = case.weight.as_ref().map(|w| View::new("weight", w, [case.c], [1]).unwrap());
        for (backward, want) in [(false, &want_loss), (true, &want_d)] {
            let mut out = vec![f64::NAN; case.n * case.c];
            cpu::sigmoid_focal_loss(input, &case.target, weight, &mut out, gamma, alpha, backward).unwrap();
            assert!(max_rel_err(&out, want) < 1e-14, "cpu backward={backward} {}x{}", case.n, case.c);
        }
    }
}

/// The bridge's CPU softmax kernel on probabilities (as mmcv passes them), read transposed.
#[test]
fn cpu_softmax_kernel_matches_reference() {
    for case in cases(Loss::Softmax, DType::F64) {
        let FocalLossOptions { gamma, alpha } = case.options;
        let (want_loss, want_d) = reference(Loss::Softmax, &case);
        let (n, c) = (case.n, case.c);
        let mut probs = vec![0.0; n * c];
        for (row, out) in case.input.chunks(c).zip(probs.chunks_mut(c)) {
            let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = row.iter().map(|x| (x - max).exp()).sum();
            out.iter_mut().zip(row).for_each(|(p, x)| *p = (x - max).exp() / sum);
        }
        let stored: Vec<f64> = (0..n * c).map(|i| probs[(i % n) * c + i / n]).collect();
        let input = View::new("input", &stored, [n, c], [1, n]).unwrap();
        let weight = case.weight.as_ref().map(|w| View::new("weight", w, [c], [1]).unwrap());
        for (backward, want) in [(false, &want_loss), (true, &want_d)] {
            let mut out = vec![f64::NAN; want.len()];
            cpu::softmax_focal_loss(input, &case.target, weight, &mut out, gamma, alpha, backward).unwrap();
            // 1 - p from probabilities loses ~1e-16 absolute against the log-softmax's expm1.
            assert!(max_rel_err(&out, want) < 1e-12, "cpu softmax backward={backward} {n}x{c}: {:e}", max_rel_err(&out, want));
        }
    }
}

/// The softmax reference's gradient against central differences of its loss, and its loss
/// against cross-entropy (gamma 0, alpha 1).
#[test]
fn softmax_reference_matches_finite_differences() {
    let row = [0.3, -1.2, 2.0, 0.0, -0.4];
    for (t, gamma, alpha, w) in [(2, 2.0, 0.25, 1.0), (1, 0.5, 0.75, 1.7), (4, 1.0, 0.5, 0.3), (0, 0.0, 1.0, 1.0)] {
        let (loss, grad) = reference::softmax_row(&row, t, w, gamma, alpha);
        for c in 0..row.len() {
            let h = 1e-6;
            let at = |d: f64| {
                let mut r = row;
                r[c] += d;
                reference::softmax_row(&r, t, w, gamma, alpha).0
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            assert!((grad[c] - fd).abs() < 1e-8, "t={t} gamma={gamma} c={c}: {} vs {fd}", grad[c]);
        }
        if gamma == 0.0 {
            let lse = row.iter().map(|x: &f64| x.exp()).sum::<f64>().ln();
            assert!((loss - (lse - row[t])).abs() < 1e-14);
        }
    }
}

/// The reference against mmcv's plain formulas where those are exact (moderate logits).
#[test]
fn reference_matches_the_textbook_formula() {
    for x in [-3.0f64, -0.5, 0.0, 0.7, 2.5] {
        let p = 1.0 / (1.0 + (-x).exp());
        let (loss, d) = reference::element(x, true, 2.0, 0.25);
        assert!((loss - (-0.25 * (1.0 - p).powi(2) * p.ln())).abs() < 1e-13);
        let (loss_n, d_n) = reference::element(x, false, 2.0, 0.25);
        assert!((loss_n - (-0.75 * p.powi(2) * (1.0 - p).ln())).abs() < 1e-13);
        // Central differences of the loss.
        let h = 1e-6;
        let fd = (reference::element(x + h, true, 2.0, 0.25).0 - reference::element(x - h, true, 2.0, 0.25).0) / (2.0 * h);
        let fd_n = (reference::element(x + h, false, 2.0, 0.25).0 - reference::element(x - h, false, 2.0, 0.25).0) / (2.0 * h);
        assert!((d - fd).abs() < 1e-8 && (d_n - fd_n).abs() < 1e-8, "{x}: {d} {fd} {d_n} {fd_n}");
    }
    // Large logits: log(1 - p) = -x to double precision, where 1 - p underflows to 0 in f32.
    assert!((reference::element(100.0, false, 0.0, 0.0).0 - 100.0).abs() < 1e-12);
}

#[test]
fn bad_input_is_an_error() {
    type B = NdArray;
    let device = Default::default();
    let x = Tensor::<B, 2>::zeros([4, 3], &device);
    let t = Tensor::<B, 1, Int>::zeros([4], &device);
    let opts = FocalLossOptions::default();
    let err = sigmoid_focal_loss(x.clone(), Tensor::<B, 1, Int>::zeros([3], &device), None, opts).unwrap_err();
    assert!(matches!(err, OpError::Shape { arg: "target", .. }), "{err}");
    let err = sigmoid_focal_loss(x.clone(), t.clone(), Some(Tensor::zeros([4], &device)), opts).unwrap_err();
    assert!(matches!(err, OpError::Shape { arg: "weight", .. }), "{err}");
    let err = sigmoid_focal_loss(x.clone(), t.clone(), Some(Tensor::<B, 1>::zeros([3], &device).cast(DType::F64)), opts).unwrap_err();
    assert!(matches!(err, OpError::DType { arg: "weight", .. }), "{err}");
    let err = sigmoid_focal_loss(x.clone(), t.clone(), None, FocalLossOptions { gamma: -1.0, alpha: 0.25 }).unwrap_err();
    assert!(matches!(err, OpError::Shape { arg: "gamma", .. }), "{err}");
    let storage = vec![0.0f32; 12];
    let view = View::new("input", &storage, [4, 3], [3, 1]).unwrap();
    let mut out = vec![0.0f32; 12];
    assert!(matches!(cpu::sigmoid_focal_loss(view, &[0, 1], None, &mut out, 2.0, 0.25, false), Err(OpError::Shape { arg: "target", .. })));
    // The softmax loss writes (N,) forward: a (N, C) buffer is the wrong size.
    let err = cpu::softmax_focal_loss(view, &[0, 1, 2, -1], None, &mut out, 2.0, 0.25, false).unwrap_err();
    assert!(matches!(err, OpError::Shape { arg: "output", .. }), "{err}");
    let err = softmax_focal_loss(x.clone(), Tensor::<B, 1, Int>::zeros([5], &device), None, opts).unwrap_err();
    assert!(matches!(err, OpError::Shape { arg: "target", .. }), "{err}");
    let err = softmax_focal_loss(x, t, Some(Tensor::zeros([2], &device)), opts).unwrap_err();
    assert!(matches!(err, OpError::Shape { arg: "weight", .. }), "{err}");
}
