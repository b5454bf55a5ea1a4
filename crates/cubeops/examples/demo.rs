//! point_sample forward and backward on every backend present (CUDA, wgpu, CPU), each
//! checked against the float64 reference. `make demo` runs it.
//!
//! cargo run -p cubeops --features cuda,wgpu --example demo [-- --points 4096]

#[path = "common/cli.rs"]
mod cli;

use std::time::Instant;

use cli::{available, flag};
use burn::backend::{Autodiff, NdArray};
use burn::tensor::{DType, Tensor, TensorData};
use cubeops::point_sample::reference::{self, RefDims};
use cubeops::point_sample::{point_sample, PointSampleAutodiffBackend, PointSampleOptions, Sampling};

/// A DiffBEV-like PointHead call: 2 BEV maps of 19 class channels, sampled at P points.
fn problem(num_points: usize) -> (RefDims, Vec<f64>, Vec<f64>, Vec<f64>) {
    let dims = RefDims { n: 2, channels: 19, height: 100, width: 100, num_points };
    // A cheap deterministic generator keeps the demo free of extra dependencies.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    // Values are rounded to f32 first, so the reference sees exactly what the backends get.
    let mut values = |len: usize, lo: f64, span: f64| -> Vec<f64> { (0..len).map(|_| (lo + span * next()) as f32 as f64).collect() };
    let input = values(dims.input_len(), -2.0, 4.0);
    let points = values(dims.points_len(), -0.05, 1.1);
    let grad = values(dims.output_len(), -1.0, 2.0);
    (dims, input, points, grad)
}

/// Largest `|got - want|`, relative to the tensor's scale `max(1, max |want|)`.
fn max_error(got: &[f64], want: &[f64]) -> f64 {
    let scale = want.iter().fold(1.0f64, |m, w| m.max(w.abs()));
    got.iter().zip(want).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max) / scale
}

fn to_vec<B: burn::tensor::backend::Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec().expect("float data")
}

/// Runs forward + backward on `B`, returns [forward, grad_input, grad_points] errors.
fn run<B: PointSampleAutodiffBackend>(device: &B::Device, num_points: usize, align_corners: bool) -> ([f64; 3], f64) {
    let (dims, input, points, grad) = problem(num_points);
    let RefDims { n, channels, height, width, .. } = dims;
    let want_out = reference::forward(dims, &input, &points, Sampling::bilinear(align_corners));
    let (want_gi, want_gp) = reference::backward(dims, &input, &points, &grad, Sampling::bilinear(align_corners));

    let opts = (device, DType::F32);
    let x = Tensor::<B, 4>::from_data(TensorData::new(input, [n, channels, height, width]), opts).require_grad();
    let p = Tensor::<B, 3>::from_data(TensorData::new(points, [n, num_points, 2]), opts).require_grad();
    let g = Tensor::<B, 3>::from_data(TensorData::new(grad, [n, channels, num_points]), opts);
    let start = Instant::now();
    let options = PointSampleOptions { align_corners, ..Default::default() };
    let out = point_sample(x.clone(), p.clone(), options).expect("valid input");
    let grads = (out.clone() * g).sum().backward();
    let (gi, gp) = (x.grad(&grads).expect("grad input"), p.grad(&grads).expect("grad points"));
    let (out, gi, gp) = (to_vec(out), to_vec(gi), to_vec(gp));
    let seconds = start.elapsed().as_secs_f64();
    ([max_error(&out, &want_out), max_error(&gi, &want_gi), max_error(&gp, &want_gp)], seconds)
}



fn main() {
    let args: Vec<String> = std::env::args().collect();
    let num_points = flag(&args, "--points").and_then(|v| v.parse().ok()).unwrap_or(4096);
    // auto: CUDA when a CUDA device answers, else the CPU. wgpu runs only when asked: on a
    // machine without a GPU its adapter is Mesa's llvmpipe, a CPU emulation.
    let wanted = flag(&args, "--backend").unwrap_or_else(|| "auto".into());
    let run_on: Box<dyn Fn(bool) -> ([f64; 3], f64)>;
    let name: &str;
    match wanted.as_str() {
        #[cfg(feature = "cuda")]
        "auto" | "cuda" if available(|| drop(<cubecl::cuda::CudaRuntime as cubecl::Runtime>::client(&Default::default()))) => {
            name = "cuda (fused cubecl kernels)";
            run_on = Box::new(move |ac| run::<Autodiff<burn::backend::Cuda>>(&Default::default(), num_points, ac));
        }
        #[cfg(feature = "wgpu")]
        "wgpu" => {
            name = "wgpu (fused cubecl kernels)";
            run_on = Box::new(move |ac| run::<Autodiff<burn::backend::Wgpu>>(&Default::default(), num_points, ac));
        }
        "auto" | "cpu" => {
            name = "cpu (ndarray, burn tensor ops)";
            run_on = Box::new(move |ac| run::<Autodiff<NdArray>>(&Default::default(), num_points, ac));
        }
        other => {
            eprintln!("backend `{other}` is not available here (choose auto, cpu, wgpu or cuda; cuda and wgpu need their cargo features)");
            std::process::exit(2);
        }
    }

    println!("point_sample forward + backward, f32, input (2, 19, 100, 100), {num_points} points per map, on {name}");
    println!("error = max |got - ref| / max(1, max |ref|) against the float64 reference");
    println!("{:>13} {:>10} {:>10} {:>11} {:>9}", "align_corners", "forward", "grad_input", "grad_points", "time");
    let mut worst = 0.0f64;
    for align_corners in [false, true] {
        let (errors, seconds) = run_on(align_corners);
        worst = errors.iter().copied().fold(worst, f64::max);
        println!("{align_corners:>13} {:>10.2e} {:>10.2e} {:>11.2e} {:>8.3}s", errors[0], errors[1], errors[2], seconds);
    }
    let ok = worst < 1e-5;
    println!("{}: worst error {worst:.2e} (limit 1e-5) on {name}", if ok { "PASS" } else { "FAIL" });
    std::process::exit(if ok { 0 } else { 1 });
}
