//! Criterion benchmarks: cubeops' `point_sample` against burn's `grid_sample_2d` on the same
//! tensors, forward (plain backend) and forward + backward (under `Autodiff`), on CUDA and
//! wgpu, over PointHead-like shapes, f32 / f16 / bf16, NCHW and channels-last input.
//!
//! ```text
//! cargo bench -p cubeops --features cuda,wgpu --bench point_sample              # full grid, CUDA
//! CUBEOPS_BENCH_BACKENDS=wgpu cargo bench -p cubeops --features wgpu --bench point_sample
//! cargo test -p cubeops --features cuda,wgpu --bench point_sample               # smoke (make test)
//! ```
//!
//! Under `cargo test` criterion runs each benchmark once (its test mode) on small shapes, so
//! the benchmark cannot rot; nothing about speed is asserted. Each timing is `iters` calls
//! then one device sync, divided by `iters`. After criterion's own report a table of medians
//! is printed and written (CSV and markdown) to `$CUBEOPS_BENCH_OUT`
//! (default `target/criterion/cubeops`); the figures are in docs/benchmarks.md.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::ops::GridSampleOptions;
use burn::tensor::{DType, Distribution, Tensor};
use criterion::Criterion;
use cubeops::point_sample::{point_sample, InputLayout, PointSampleBackend, PointSampleOptions};

/// `(N, C, H, W, P)`: DiffBEV PointHead's coarse logits (C = 19 classes) and fine features
/// (C up to 512) on 50x50 .. 400x400 BEV maps, 1k .. 100k points.
const FULL: [[usize; 5]; 8] = [
    [1, 19, 50, 50, 1024],
    [8, 19, 100, 100, 6144],
    [2, 256, 100, 100, 2048],
    [8, 256, 100, 100, 2048],
    [4, 512, 100, 100, 8196],
    [2, 64, 400, 400, 32768],
    [1, 128, 200, 200, 100_000],
    [8, 32, 200, 200, 100_000],
];
const SMOKE: [[usize; 5]; 2] = [[1, 3, 8, 8, 16], [2, 19, 12, 10, 50]];

/// Median per-call seconds of each benchmark, from the last `SAMPLES` timings.
const SAMPLES: usize = 10;

/// Per-call timings by (row, column); rows in the order they were benchmarked.
#[derive(Default)]
struct Results {
    times: RefCell<BTreeMap<(String, String), Vec<f64>>>,
    rows: RefCell<Vec<String>>,
}

impl Results {
    fn record(&self, row: &str, column: &str, seconds: f64) {
        let mut rows = self.rows.borrow_mut();
        if !rows.iter().any(|r| r == row) {
            rows.push(row.to_string());
        }
        self.times.borrow_mut().entry((row.to_string(), column.to_string())).or_default().push(seconds);
    }

    fn median(&self, row: &str, column: &str) -> Option<f64> {
        let map = self.times.borrow();
        let all = map.get(&(row.to_string(), column.to_string()))?;
        let mut last: Vec<f64> = all[all.len().saturating_sub(SAMPLES)..].to_vec();
        last.sort_by(f64::total_cmp);
        Some(last[last.len() / 2])
    }
}

struct Case<B: Backend> {
    row: String,
    /// The input as the caller holds it: `(N, C, H, W)` or `(N, H, W, C)`.
    input: Tensor<B, 4>,
    layout: InputLayout,
    points: Tensor<B, 3>,
    /// `2 * points - 1` as `(N, P, 1, 2)`: grid_sample's form of the same points.
    grid: Tensor<B, 4>,
}

impl<B: Backend> Case<B> {
    fn new(backend: &str, [n, c, h, w, p]: [usize; 5], dtype: DType, layout: InputLayout, device: &B::Device) -> Self {
        let shape = match layout {
            InputLayout::Nchw => [n, c, h, w],
            InputLayout::Nhwc => [n, h, w, c],
        };
        let input = Tensor::random(shape, Distribution::Normal(0.0, 1.0), (device, dtype));
        let points = Tensor::<B, 3>::random([n, p, 2], Distribution::Uniform(0.0, 1.0), (device, dtype));
        let grid = (points.clone() * 2.0 - 1.0).reshape([n, p, 1, 2]);
        let row = format!("{backend} {dtype:?} {layout:?} ({n}, {c}, {h}, {w}, {p})").to_lowercase();
        Case { row, input, layout, points, grid }
    }

    /// burn's grid_sample takes `(N, C, H, W)`: channels-last input as a permuted view.
    fn nchw_view(&self) -> Tensor<B, 4> {
        match self.layout {
            InputLayout::Nchw => self.input.clone(),
            InputLayout::Nhwc => self.input.clone().permute([0, 3, 1, 2]),
        }
    }

    fn options(&self) -> PointSampleOptions {
        PointSampleOptions { layout: self.layout, ..Default::default() }
    }
}

/// Times `f`: `iters` calls, then one sync of the device.
fn timed<B: Backend>(device: &B::Device, results: &Results, row: &str, column: &str, iters: u64, mut f: impl FnMut()) -> Duration {
    B::sync(device).expect("device sync");
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    B::sync(device).expect("device sync");
    let elapsed = start.elapsed();
    results.record(row, column, elapsed.as_secs_f64() / iters as f64);
    elapsed
}

fn bench_backend<B: PointSampleBackend>(
    c: &mut Criterion,
    results: &Results,
    backend: &str,
    device: &B::Device,
    dtypes: &[DType],
    shapes: &[[usize; 5]],
) {
    let mut group = c.benchmark_group(format!("point_sample/{backend}"));
    group.sample_size(SAMPLES).warm_up_time(Duration::from_millis(200)).measurement_time(Duration::from_millis(600));
    for &shape in shapes {
        for &dtype in dtypes {
            for layout in [InputLayout::Nchw, InputLayout::Nhwc] {
                let case = Case::<B>::new(backend, shape, dtype, layout, device);
                let row = case.row.clone();
                let id = |what: &str| format!("{what}/{}", row.split_once(' ').map_or(row.as_str(), |(_, r)| r));

                group.bench_function(id("forward/cubeops"), |b| {
                    b.iter_custom(|iters| {
                        timed::<B>(device, results, &row, "fwd cubeops", iters, || {
                            black_box(point_sample(case.input.clone(), case.points.clone(), case.options()).expect("valid call"));
                        })
                    })
                });
                group.bench_function(id("forward/burn"), |b| {
                    b.iter_custom(|iters| {
                        timed::<B>(device, results, &row, "fwd burn", iters, || {
                            black_box(case.nchw_view().grid_sample_2d(case.grid.clone(), GridSampleOptions::default()));
                        })
                    })
                });

                // Forward + backward to both arguments under Autodiff (loss = sum of samples).
                let input = || Tensor::<Autodiff<B>, 4>::from_inner(case.input.clone()).require_grad();
                group.bench_function(id("forward+backward/cubeops"), |b| {
                    b.iter_custom(|iters| {
                        timed::<B>(device, results, &row, "f+b cubeops", iters, || {
                            let points = Tensor::<Autodiff<B>, 3>::from_inner(case.points.clone()).require_grad();
                            let out = point_sample(input(), points, case.options()).expect("valid call");
                            black_box(out.sum().backward());
                        })
                    })
                });
                group.bench_function(id("forward+backward/burn"), |b| {
                    b.iter_custom(|iters| {
                        timed::<B>(device, results, &row, "f+b burn", iters, || {
                            let x = match case.layout {
                                InputLayout::Nchw => input(),
                                InputLayout::Nhwc => input().permute([0, 3, 1, 2]),
                            };
                            let grid = Tensor::<Autodiff<B>, 4>::from_inner(case.grid.clone()).require_grad();
                            black_box(x.grid_sample_2d(grid, GridSampleOptions::default()).sum().backward());
                        })
                    })
                });
            }
        }
    }
    group.finish();
}

/// The medians as a markdown table and a CSV, printed and written to `$CUBEOPS_BENCH_OUT`.
fn report(results: &Results) {
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |s| format!("{:.3}", s * 1e3));
    let ratio = |ours: Option<f64>, theirs: Option<f64>| match (ours, theirs) {
        (Some(o), Some(t)) if o > 0.0 => format!("{:.2}", t / o),
        _ => "-".to_string(),
    };
    let mut md = String::from(
        "| backend dtype layout (N, C, H, W, P) | fwd cubeops ms | fwd burn ms | x | f+b cubeops ms | f+b burn ms | x |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut csv = String::from("case,fwd_cubeops_ms,fwd_burn_ms,fwd_speedup,fb_cubeops_ms,fb_burn_ms,fb_speedup\n");
    for row in results.rows.borrow().iter() {
        let get = |col: &str| results.median(row, col);
        let (fo, fb, bo, bb) = (get("fwd cubeops"), get("fwd burn"), get("f+b cubeops"), get("f+b burn"));
        let cells = [ms(fo), ms(fb), ratio(fo, fb), ms(bo), ms(bb), ratio(bo, bb)];
        let _ = writeln!(md, "| {row} | {} |", cells.join(" | "));
        let _ = writeln!(csv, "\"{row}\",{}", cells.join(","));
    }
    println!("\nMedians per call (x = burn time / cubeops time):\n{md}");
    let dir = std::env::var_os("CUBEOPS_BENCH_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/criterion/cubeops"));
    let written = std::fs::create_dir_all(&dir)
        .and_then(|_| std::fs::write(dir.join("point_sample_burn.md"), &md))
        .and_then(|_| std::fs::write(dir.join("point_sample_burn.csv"), &csv));
    match written {
        Ok(()) => println!("written: {}", dir.join("point_sample_burn.{md,csv}").display()),
        Err(e) => eprintln!("could not write the table to {}: {e}", dir.display()),
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    // `cargo bench` passes --bench; `cargo test` does not (criterion's test mode).
    let full = std::env::args().any(|a| a == "--bench") && std::env::var("CUBEOPS_BENCH_GRID").as_deref() != Ok("smoke");
    let shapes: &[[usize; 5]] = if full { &FULL } else { &SMOKE };
    let default_backends = if full { "cuda" } else { "wgpu" };
    let backends = std::env::var("CUBEOPS_BENCH_BACKENDS").unwrap_or_else(|_| default_backends.to_string());
    let results = Results::default();
    for backend in backends.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        match backend {
            #[cfg(feature = "cuda")]
            "cuda" => {
                let device = burn::backend::cuda::CudaDevice::default();
                let dtypes = [DType::F32, DType::F16, DType::BF16];
                bench_backend::<burn::backend::Cuda>(&mut criterion, &results, "cuda", &device, &dtypes, shapes);
            }
            #[cfg(feature = "wgpu")]
            "wgpu" => {
                use cubecl::Runtime;
                let device = burn::backend::wgpu::WgpuDevice::default();
                let props = burn::backend::wgpu::WgpuRuntime::client(&device).properties().clone();
                // What the device stores (Mesa's llvmpipe: f32 and f16).
                let dtypes: Vec<DType> = [DType::F32, DType::F16, DType::BF16]
                    .into_iter()
                    .filter(|d| props.supports_type(cubecl::ir::StorageType::from(*d)))
                    .collect();
                bench_backend::<burn::backend::Wgpu>(&mut criterion, &results, "wgpu", &device, &dtypes, shapes);
            }
            other => {
                eprintln!("CUBEOPS_BENCH_BACKENDS: unknown or not built backend '{other}' (cuda, wgpu)");
                std::process::exit(2);
            }
        }
    }
    criterion.final_summary();
    report(&results);
}
