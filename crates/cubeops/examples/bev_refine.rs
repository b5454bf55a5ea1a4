//! PointRend inference of a DiffBEV-style BEV segmentation in standalone Rust: the
//! subdivision steps of mmsegmentation's `PointHead.predict` on burn, with cubeops'
//! point_sample.
//!
//! The input file (safetensors, written by `python/examples/diffbev_point_head.py --export`)
//! holds the coarse logits `coarse` (N, K, h, w), the fine features `fine` (N, C, H, W), the
//! point head's weights `fcs.{i}.weight|bias` and `fc_seg.weight|bias`, the test config in its
//! metadata, and optionally Python's result `refined_python` to compare with (`--check`).
//!
//!     cargo run --release -p cubeops --features cuda,wgpu --example bev_refine -- \
//!         --input bev.safetensors [--output refined.safetensors] [--backend auto|cuda|wgpu|cpu] [--check]

#[path = "common/cli.rs"]
mod cli;

use std::collections::HashMap;
use std::time::Instant;

use cli::{available, flag};
use burn::backend::NdArray;
use burn::tensor::{activation::relu, backend::Backend, DType, IndexingUpdateOp, Int, Tensor, TensorData};
use cubeops::point_sample::{point_sample, PointSampleBackend, PointSampleOptions};
use safetensors::SafeTensors;

/// `PointHead`'s test config and layers, as exported.
struct PointHead<B: Backend> {
    /// (weight (out, in), bias (out)) of each shared fc, then of `fc_seg`.
    fcs: Vec<(Tensor<B, 2>, Tensor<B, 1>)>,
    fc_seg: (Tensor<B, 2>, Tensor<B, 1>),
    coarse_pred_each_layer: bool,
    align_corners: bool,
    subdivision_steps: usize,
    subdivision_num_points: usize,
    scale_factor: usize,
}

/// A file's tensors as f32 host data, and its metadata.
struct Exported {
    tensors: HashMap<String, TensorData>,
    meta: HashMap<String, String>,
}

impl Exported {
    fn read(path: &str) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| format!("{path}: {e}"))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let file = SafeTensors::deserialize(&bytes).map_err(|e| format!("{path}: {e}"))?;
        let mut tensors = HashMap::new();
        for (name, view) in file.tensors() {
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(format!("{path}: tensor `{name}` is {:?}, expected F32", view.dtype()));
            }
            let values: Vec<f32> = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            tensors.insert(name, TensorData::new(values, view.shape().to_vec()));
        }
        Ok(Exported { tensors, meta })
    }

    fn data(&self, name: &str) -> Result<TensorData, String> {
        self.tensors.get(name).cloned().ok_or_else(|| format!("the file has no tensor `{name}`"))
    }

    fn tensor<B: Backend, const D: usize>(&self, name: &str, device: &B::Device) -> Result<Tensor<B, D>, String> {
        let data = self.data(name)?;
        if data.shape.len() != D {
            return Err(format!("tensor `{name}` has shape {:?}, expected rank {D}", data.shape));
        }
        Ok(Tensor::from_data(data, (device, DType::F32)))
    }

    fn meta<T: std::str::FromStr>(&self, key: &str) -> Result<T, String> {
        let raw = self.meta.get(key).ok_or_else(|| format!("the file's metadata has no `{key}`"))?;
        raw.parse().map_err(|_| format!("metadata `{key}` = {raw:?} is not valid"))
    }

    fn point_head<B: Backend>(&self, device: &B::Device) -> Result<PointHead<B>, String> {
        let layer = |prefix: &str| -> Result<_, String> {
            Ok((self.tensor::<B, 2>(&format!("{prefix}.weight"), device)?, self.tensor::<B, 1>(&format!("{prefix}.bias"), device)?))
        };
        let fcs = (0..).map_while(|i| self.tensors.contains_key(&format!("fcs.{i}.weight")).then(|| layer(&format!("fcs.{i}"))));
        Ok(PointHead {
            fcs: fcs.collect::<Result<_, _>>()?,
            fc_seg: layer("fc_seg")?,
            coarse_pred_each_layer: self.meta("coarse_pred_each_layer")?,
            align_corners: self.meta("align_corners")?,
            subdivision_steps: self.meta("subdivision_steps")?,
            subdivision_num_points: self.meta("subdivision_num_points")?,
            scale_factor: self.meta("scale_factor")?,
        })
    }
}

/// How the point head's 1x1 convolutions multiply.
#[derive(Clone, Copy)]
enum Linear {
    /// burn's `matmul`: plain f32 on the CPU and on wgpu.
    Matmul,
    /// Multiply + sum over chunks of input channels. burn's CUDA matmul runs f32 on TF32
    /// tensor cores (10-bit mantissas), which would shift which cells count as most uncertain.
    MultiplySum,
}

/// A 1x1 Conv1d over points: (N, in, P) -> (N, out, P).
fn conv1d<B: Backend>(x: Tensor<B, 3>, (weight, bias): &(Tensor<B, 2>, Tensor<B, 1>), linear: Linear) -> Tensor<B, 3> {
    const CHUNK: usize = 32;
    let [n, inp, p] = x.dims();
    let out = weight.dims()[0];
    let bias = bias.clone().reshape([1, out, 1]).expand([n, out, p]);
    match linear {
        Linear::Matmul => weight.clone().unsqueeze::<3>().expand([n, out, inp]).matmul(x) + bias,
        Linear::MultiplySum => (0..inp).step_by(CHUNK).fold(bias, |acc, start| {
            let len = CHUNK.min(inp - start);
            let w = weight.clone().narrow(1, start, len).reshape([1, out, len, 1]).expand([n, out, len, p]);
            let xs = x.clone().narrow(1, start, len).reshape([n, 1, len, p]).expand([n, out, len, p]);
            acc + (w * xs).sum_dim(2).reshape([n, out, p])
        }),
    }
}

/// Source index, its neighbour and the neighbour's weight along one axis, as torch's
/// `interpolate(mode="bilinear", align_corners=False, scale_factor=s)` computes them (f32).
fn linear_taps(input: usize, scale_factor: usize) -> (Vec<i64>, Vec<i64>, Vec<f32>) {
    let scale = 1.0f32 / scale_factor as f32;
    let mut taps = (vec![], vec![], vec![]);
    for dst in 0..input * scale_factor {
        let src = (scale * (dst as f32 + 0.5) - 0.5).max(0.0);
        let i0 = src as usize;
        taps.0.push(i0 as i64);
        taps.1.push((i0 + usize::from(i0 < input - 1)) as i64);
        taps.2.push(src - i0 as f32);
    }
    taps
}

/// Bilinear upsampling by an integer factor, align_corners=False (mmseg's `resize`).
fn upsample<B: Backend>(x: Tensor<B, 4>, factor: usize) -> Tensor<B, 4> {
    let device = x.device();
    let [n, c, h, w] = x.dims();
    let axis = |x: Tensor<B, 4>, dim: usize, size: usize| {
        let (i0, i1, lambda) = linear_taps(size, factor);
        let len = lambda.len();
        let mut shape = [1, 1, 1, 1];
        shape[dim] = len;
        let lambda = Tensor::<B, 1>::from_data(TensorData::new(lambda, [len]), (&device, DType::F32)).reshape(shape);
        let index = |v: Vec<i64>| Tensor::<B, 1, Int>::from_data(TensorData::new(v, [len]), &device);
        let mut full = x.dims();
        full[dim] = len;
        let lambda = lambda.expand(full);
        let (a, b) = (x.clone().select(dim, index(i0)), x.select(dim, index(i1)));
        a * (lambda.clone().neg() + 1.0) + b * lambda
    };
    axis(axis(x, 2, h), 3, w).reshape([n, c, h * factor, w * factor])
}

/// mmseg's `calculate_uncertainty`: second-best minus best logit, (N, H * W).
fn uncertainty<B: Backend>(logits: Tensor<B, 4>) -> Tensor<B, 2> {
    let [n, _, h, w] = logits.dims();
    let top = logits.sort_descending(1);
    let [best, second] = [0, 1].map(|i| top.clone().narrow(1, i, 1));
    (second - best).reshape([n, h * w])
}

/// The `num_points` most uncertain cells (N, P) and their centres, normalised (N, P, 2).
fn most_uncertain<B: Backend>(logits: Tensor<B, 4>, num_points: usize) -> (Tensor<B, 2, Int>, Tensor<B, 3>) {
    let device = logits.device();
    let [n, _, h, w] = logits.dims();
    let num_points = num_points.min(h * w);
    let (_, indices) = uncertainty(logits).topk_with_indices(num_points, 1);
    // Centres in f32 in torch's order: step / 2 + (index % width) * step.
    let flat: Vec<i64> = indices.clone().into_data().convert::<i64>().to_vec().expect("int indices");
    let (w_step, h_step) = (1.0 / w as f64, 1.0 / h as f64);
    let coords: Vec<f32> = flat
        .iter()
        .flat_map(|&i| {
            let (x, y) = ((i as usize % w) as f32, (i as usize / w) as f32);
            [(w_step / 2.0) as f32 + x * w_step as f32, (h_step / 2.0) as f32 + y * h_step as f32]
        })
        .collect();
    let points = Tensor::from_data(TensorData::new(coords, [n, num_points, 2]), (&device, DType::F32));
    (indices, points)
}

/// `PointHead.predict` before its final resize: upsample, re-predict the most uncertain
/// cells from fine and coarse features sampled there, write them back; `subdivision_steps` times.
fn refine<B: PointSampleBackend>(
    head: &PointHead<B>,
    coarse: Tensor<B, 4>,
    fine: Tensor<B, 4>,
    linear: Linear,
) -> Result<Tensor<B, 4>, String> {
    let options = PointSampleOptions { align_corners: head.align_corners, ..Default::default() };
    let sample = |map: &Tensor<B, 4>, points: &Tensor<B, 3>| -> Result<Tensor<B, 3>, String> {
        point_sample(map.clone(), points.clone(), options).map_err(|e| e.to_string())
    };
    let mut refined = coarse.clone();
    for _ in 0..head.subdivision_steps {
        refined = upsample(refined, head.scale_factor);
        let [n, k, h, w] = refined.dims();
        let (indices, points) = most_uncertain(refined.clone(), head.subdivision_num_points);
        let coarse_feats = sample(&coarse, &points)?;
        let mut x = Tensor::cat(vec![sample(&fine, &points)?, coarse_feats.clone()], 1);
        for fc in &head.fcs {
            x = relu(conv1d(x, fc, linear));
            if head.coarse_pred_each_layer {
                x = Tensor::cat(vec![x, coarse_feats.clone()], 1);
            }
        }
        let point_logits = conv1d(x, &head.fc_seg, linear);
        // burn's scatter adds: scatter into zeros, then take those cells from it.
        let p = point_logits.dims()[2];
        let indices = indices.unsqueeze_dim::<3>(1).expand([n, k, p]);
        let flat = refined.reshape([n, k, h * w]);
        let written = flat.zeros_like().scatter(2, indices.clone(), point_logits.clone(), IndexingUpdateOp::Add);
        let mask = flat.zeros_like().scatter(2, indices, point_logits.ones_like(), IndexingUpdateOp::Add).greater_elem(0.5);
        refined = flat.mask_where(mask, written).reshape([n, k, h, w]);
    }
    Ok(refined)
}

struct Outcome {
    refined: TensorData,
    seconds: f64,
}

fn run<B: PointSampleBackend>(file: &Exported, device: &B::Device, linear: Linear) -> Result<Outcome, String> {
    let head = file.point_head::<B>(device)?;
    let coarse = file.tensor::<B, 4>("coarse", device)?;
    let fine = file.tensor::<B, 4>("fine", device)?;
    // Once to compile kernels, once timed.
    refine(&head, coarse.clone(), fine.clone(), linear)?.into_data();
    let start = Instant::now();
    let refined = refine(&head, coarse, fine, linear)?.into_data();
    Ok(Outcome { refined, seconds: start.elapsed().as_secs_f64() })
}

fn write(path: &str, refined: &TensorData) -> Result<(), String> {
    let bytes: Vec<u8> = refined.as_slice::<f32>().map_err(|e| format!("{e:?}"))?.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, refined.shape.to_vec(), &bytes).map_err(|e| e.to_string())?;
    safetensors::serialize_to_file([("refined", view)], None, path.as_ref()).map_err(|e| e.to_string())
}

/// Compares with Python's refined logits: (max |diff| / max(1, max |python|), cells whose
/// arg-max class differs, cells).
fn compare(ours: &TensorData, python: &TensorData) -> Result<(f64, usize, usize), String> {
    if ours.shape != python.shape {
        return Err(format!("shapes differ: Rust {:?}, Python {:?}", ours.shape, python.shape));
    }
    let (a, b) = (ours.as_slice::<f32>().map_err(|e| format!("{e:?}"))?, python.as_slice::<f32>().map_err(|e| format!("{e:?}"))?);
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs() as f64));
    let error = a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).fold(0.0, f64::max) / scale;
    let (n, k, hw) = (ours.shape[0], ours.shape[1], ours.shape[2] * ours.shape[3]);
    let argmax = |v: &[f32], b: usize, cell: usize| (0..k).max_by(|&i, &j| v[(b * k + i) * hw + cell].total_cmp(&v[(b * k + j) * hw + cell]));
    let differ = (0..n).flat_map(|b| (0..hw).map(move |c| (b, c))).filter(|&(bi, c)| argmax(a, bi, c) != argmax(b, bi, c)).count();
    Ok((error, differ, n * hw))
}



fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(input) = flag(&args, "--input") else {
        eprintln!("usage: bev_refine --input FILE [--output FILE] [--backend auto|cuda|wgpu|cpu] [--check]");
        std::process::exit(2);
    };
    let file = Exported::read(&input).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2)
    });
    let wanted = flag(&args, "--backend").unwrap_or_else(|| "auto".into());
    let (name, outcome) = match wanted.as_str() {
        #[cfg(feature = "cuda")]
        "auto" | "cuda" if available(|| drop(<cubecl::cuda::CudaRuntime as cubecl::Runtime>::client(&Default::default()))) => {
            ("cuda (fused cubecl kernels)", run::<burn::backend::Cuda>(&file, &Default::default(), Linear::MultiplySum))
        }
        #[cfg(feature = "wgpu")]
        "wgpu" => ("wgpu (fused cubecl kernels)", run::<burn::backend::Wgpu>(&file, &Default::default(), Linear::Matmul)),
        "auto" | "cpu" => ("cpu (ndarray)", run::<NdArray>(&file, &Default::default(), Linear::Matmul)),
        other => {
            eprintln!("backend `{other}` is not available here (choose auto, cpu, wgpu or cuda; cuda and wgpu need their cargo features)");
            std::process::exit(2);
        }
    };
    let outcome = outcome.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1)
    });
    let shape = &outcome.refined.shape.as_slice();
    println!("bev_refine: {input} -> refined logits {shape:?} on {name} in {:.1} ms", outcome.seconds * 1e3);
    if let Some(output) = flag(&args, "--output") {
        write(&output, &outcome.refined).unwrap_or_else(|e| {
            eprintln!("error: cannot write {output}: {e}");
            std::process::exit(1)
        });
        println!("wrote {output}");
    }
    if args.iter().any(|a| a == "--check") {
        const TOL: f64 = 1e-4;
        let result = file.data("refined_python").and_then(|python| compare(&outcome.refined, &python));
        match result {
            Ok((error, differ, cells)) => {
                let ok = error <= TOL;
                println!(
                    "{}: Rust refined logits match Python's within {error:.1e} (tol {TOL:e}); arg-max differs at {differ} of {cells} cells",
                    if ok { "PASS" } else { "FAIL" }
                );
                std::process::exit(if ok { 0 } else { 1 });
            }
            Err(e) => {
                println!("FAIL: {e}");
                std::process::exit(1);
            }
        }
    }
}
