//! Proves the kernels build for GPUs we cannot run on: generates the CUDA C++ of every
//! kernel variant exactly as cubecl-cuda 0.10 does for a device of a given compute
//! capability, compiles each with NVRTC to a CUBIN for `sm_XX[a]`, and checks the CUBIN's
//! ELF header names that architecture. No GPU needed (the kernel IR is built with a wgpu
//! client; `--client cuda` uses the CUDA device instead, as the zero-copy launcher does).
//!
//! cargo run -p cubeops-kernels --features cuda,wgpu --bin arch-check -- [--arch 120 --arch 90 ...] [--client wgpu|cuda]
//!     [--hashes] (one source hash per variant and arch) [--dump DIR] (write each variant's CUDA C++)
//!     [--only TEXT] (the variants whose label contains TEXT)
//!
//! NVRTC and headers: `pip install nvidia-cuda-nvrtc-cu12==12.8.93 nvidia-cuda-runtime-cu12==12.8.90`
//! (point LD_LIBRARY_PATH at nvidia/cuda_nvrtc/lib and CUBEOPS_CUDA_INCLUDE at
//! nvidia/cuda_runtime/include), or a CUDA toolkit through CUDA_PATH.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::process::ExitCode;

use cubecl::ir::{ElemType, FloatKind, StorageType};
use cubecl::prelude::*;
use cubeops_kernels::cuda::compile::{arch_flag, kernel_source, nvrtc, nvrtc_version, Kernel, MsdaPass};
use cubeops_kernels::focal_loss::FocalLoss;
use cubeops_kernels::cuda::{add_include_dirs, include_dirs};
use cubeops_kernels::point_sample::{large_shared_cells, BackwardPass, Interpolation, Sampling, Variant, SHARED_CELLS, SHARED_FIXED_CELLS};

const DEFAULT_ARCHS: [u32; 7] = [75, 80, 86, 89, 90, 100, 120];

/// Every variant we ship for `sm_{cc}`: point_sample kernel (the backward: x pass x vector
/// width; the fixed-point backward without f64) x dtype (16-bit maps also with f32 points:
/// autocast) x layout x sampling (align_corners x mode x padding) x index width, then PSAMask x psa_type x pass x dtype x
/// index width, then MSDA x pass (with its channels per thread, lanes and vector width: float4
/// atomics from sm_90) x dtype x shape-index type (torch's int64, burn's int32) x index width,
/// then the focal losses (sigmoid, softmax) x weighted x pass x dtype x target type x index width.
fn variants(cc: u32) -> Vec<(Kernel, StorageType, Variant)> {
    let dtypes = [FloatKind::F16, FloatKind::BF16, FloatKind::F32, FloatKind::F64];
    let mut out = Vec::new();
    for kernel in [Kernel::Forward, Kernel::BackwardInputOrdered] {
        for kind in dtypes {
            // The ordered kernel walks channels itself: no layout variant.
            let layouts: &[bool] = if kernel == Kernel::BackwardInputOrdered { &[false] } else { &[false, true] };
            for &channels_last in layouts {
                for sampling in Sampling::all() {
                    for wide_index in [false, true] {
                        for &f32_points in point_types(kind) {
                            let variant = Variant { sampling, channels_last, wide_index, f32_points };
                            out.push((kernel, StorageType::Scalar(ElemType::Float(kind)), variant));
                        }
                    }
                }
            }
        }
    }
    // The fixed-point deterministic backward and the shared-memory one (row-major planes,
    // no layout variant) accumulate in f32 only (f64 maps take the ordered or the atomic
    // kernel); the conversion kernel has no type or sampling choices.
    for kind in [FloatKind::F16, FloatKind::BF16, FloatKind::F32] {
        for channels_last in [false, true] {
            for sampling in Sampling::all() {
                for wide_index in [false, true] {
                    for &f32_points in point_types(kind) {
                        let variant = Variant { sampling, channels_last, wide_index, f32_points };
                        out.push((Kernel::BackwardInputFixed, StorageType::Scalar(ElemType::Float(kind)), variant));
                        if !channels_last {
                            // 48 KiB tiles, and the architecture's large ones (opt-in shared memory).
                            for cells in std::iter::once(SHARED_CELLS).chain(large_shared_cells(cc, false)) {
                                let kernel = Kernel::BackwardInputShared { cells: cells as u32 };
                                out.push((kernel, StorageType::Scalar(ElemType::Float(kind)), variant));
                            }
                            for cells in std::iter::once(SHARED_FIXED_CELLS).chain(large_shared_cells(cc, true)) {
                                let kernel = Kernel::BackwardInputSharedFixed { cells: cells as u32 };
                                out.push((kernel, StorageType::Scalar(ElemType::Float(kind)), variant));
                            }
                        }
                        if sampling == Sampling::default() {
                            out.push((Kernel::GradOutputMax, StorageType::Scalar(ElemType::Float(kind)), variant));
                        }
                    }
                }
            }
        }
    }
    for wide_index in [false, true] {
        out.push((Kernel::FixedToFloat, StorageType::Scalar(ElemType::Float(FloatKind::F32)), Variant::index_width(wide_index)));
    }
    // The sorted deterministic backward: the keys by point type and sampling, the sums by
    // map and point type (no layout or sampling choice in either).
    for kind in [FloatKind::F16, FloatKind::BF16, FloatKind::F32] {
        for wide_index in [false, true] {
            for sampling in Sampling::all() {
                let variant = Variant { sampling, channels_last: false, wide_index, f32_points: false };
                out.push((Kernel::CornerKeys, StorageType::Scalar(ElemType::Float(kind)), variant));
            }
            for &f32_points in point_types(kind) {
                let variant = Variant { sampling: Sampling::default(), channels_last: false, wide_index, f32_points };
                out.push((Kernel::BackwardInputSorted, StorageType::Scalar(ElemType::Float(kind)), variant));
            }
        }
    }
    for kind in dtypes {
        for sampling in Sampling::all() {
            for (channels_last, pass) in backward_passes(cc, kind, sampling) {
                for wide_index in [false, true] {
                    for &f32_points in point_types(kind) {
                        let variant = Variant { sampling, channels_last, wide_index, f32_points };
                        out.push((Kernel::Backward(pass), StorageType::Scalar(ElemType::Float(kind)), variant));
                    }
                }
            }
        }
    }
    for distribute in [false, true] {
        for backward in [false, true] {
            for kind in dtypes {
                for wide_index in [false, true] {
                    let variant = Variant::index_width(wide_index);
                    out.push((Kernel::PsaMask { distribute, backward }, StorageType::Scalar(ElemType::Float(kind)), variant));
                }
            }
        }
    }
    let forward = [1, 4].into_iter().flat_map(|vector| [1, 2, 4].map(move |per_thread| MsdaPass::Forward { per_thread, vector }));
    let passes = [MsdaPass::BackwardValue, MsdaPass::BackwardValueOrdered, MsdaPass::BackwardSampling];
    // The fused backward's scalar adds (8..32 lanes), and from sm_90 its float4 adds (1..32
    // lanes: D = 4 ... >= 128) for float32 accumulation.
    let fused = |vector: u32, lanes: &[u32]| {
        let lanes = lanes.to_vec();
        lanes.into_iter().flat_map(move |lanes| [true, false].map(|scatter| MsdaPass::BackwardFused { scatter, lanes, vector }))
    };
    let vector4 = if cc >= 90 { fused(4, &[1, 2, 4, 8, 16, 32]).collect() } else { Vec::new() };
    for pass in forward.into_iter().chain(passes).chain(fused(1, &[8, 16, 32])).chain(vector4) {
        for kind in dtypes {
            let vector4 = matches!(pass, MsdaPass::BackwardFused { vector: 4, .. } | MsdaPass::Forward { vector: 4, .. });
            if vector4 && kind == FloatKind::F64 {
                continue;
            }
            for index64 in [true, false] {
                for wide_index in [false, true] {
                    let variant = Variant::index_width(wide_index);
                    out.push((Kernel::Msda { pass, index64 }, StorageType::Scalar(ElemType::Float(kind)), variant));
                }
            }
        }
    }
    for loss in [FocalLoss::Sigmoid, FocalLoss::Softmax] {
        for weighted in [false, true] {
            for backward in [false, true] {
                for kind in dtypes {
                    for index64 in [true, false] {
                        for wide_index in [false, true] {
                            let variant = Variant::index_width(wide_index);
                            let kernel = Kernel::Focal { loss, weighted, backward, index64 };
                            out.push((kernel, StorageType::Scalar(ElemType::Float(kind)), variant));
                        }
                    }
                }
            }
        }
    }
    out
}

/// Whether point_sample's points (output, gradients) may be f32 for maps of `kind`: the
/// autocast variants of 16-bit maps ([`Variant::f32_points`]).
fn point_types(kind: FloatKind) -> &'static [bool] {
    if matches!(kind, FloatKind::F16 | FloatKind::BF16) {
        &[false, true]
    } else {
        &[false]
    }
}

/// The backward passes the launchers pick for a layout: to the input, to the points (bilinear
/// only: nearest's gradient is zero and nothing is launched) or both, scalar or in vectors of
/// 4 channels (channels-last, not f64; adding vectors needs float4 atomics, sm_90+).
fn backward_passes(cc: u32, kind: FloatKind, sampling: Sampling) -> Vec<(bool, BackwardPass)> {
    let mut out = Vec::new();
    for (scatter, gather) in [(true, false), (false, true), (true, true)] {
        if gather && sampling.mode != Interpolation::Bilinear {
            continue;
        }
        for channels_last in [false, true] {
            let vector4 = channels_last && kind != FloatKind::F64 && (!scatter || cc >= 90);
            for vector in if vector4 { &[1, 4][..] } else { &[1][..] } {
                out.push((channels_last, BackwardPass::new(scatter, gather, channels_last, true, *vector, None)));
            }
        }
    }
    out
}

fn label(kernel: Kernel, storage: StorageType, v: Variant) -> String {
    if let Kernel::PsaMask { distribute, backward } = kernel {
        let (kind, pass) = (if distribute { "distribute" } else { "collect" }, if backward { "backward" } else { "forward" });
        return format!("PsaMask/{kind}/{pass}/{storage}/{}", if v.wide_index { "u64" } else { "u32" });
    }
    if let Kernel::Focal { loss, weighted, backward, index64 } = kernel {
        let (w, pass) = (if weighted { "weighted" } else { "unweighted" }, if backward { "backward" } else { "forward" });
        let (int, width) = (if index64 { "i64" } else { "i32" }, if v.wide_index { "u64" } else { "u32" });
        return format!("{loss:?}Focal/{w}/{pass}/{storage}/{int}/{width}");
    }
    if let Kernel::Msda { pass, index64 } = kernel {
        let (int, width) = (if index64 { "i64" } else { "i32" }, if v.wide_index { "u64" } else { "u32" });
        return format!("Msda/{pass:?}/{storage}/{int}/{width}");
    }
    format!(
        "{kernel:?}/{storage}{}/{}/ac{}/{:?}/{:?}/{}",
        if v.f32_points { "+f32points" } else { "" },
        if v.channels_last { "nhwc" } else { "nchw" },
        v.sampling.align_corners as u8,
        v.sampling.mode,
        v.sampling.padding,
        if v.wide_index { "u64" } else { "u32" }
    )
}

/// The SM number a CUDA ELF (e_machine 190) is built for, from its header flags.
fn cubin_sm(cubin: &[u8]) -> Result<u32, String> {
    if cubin.len() < 52 || &cubin[..4] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    let machine = u16::from_le_bytes([cubin[18], cubin[19]]);
    if machine != 190 {
        return Err(format!("e_machine {machine}, not EM_CUDA (190)"));
    }
    let flags = u32::from_le_bytes(cubin[48..52].try_into().unwrap());
    // CUDA >= 12.8 cubins keep the SM in bits 8..16 (ABI v8); older ones in bits 0..8.
    let low = flags & 0xff;
    Ok(if (30..=200).contains(&low) { low } else { (flags >> 8) & 0xff })
}

fn hash(source: &str) -> String {
    let mut h = DefaultHasher::new();
    source.hash(&mut h);
    format!("{:016x}", h.finish())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let mut archs: Vec<u32> = args.windows(2).filter(|w| w[0] == "--arch").filter_map(|w| w[1].parse().ok()).collect();
    if archs.is_empty() {
        archs = DEFAULT_ARCHS.to_vec();
    }
    // `--only TEXT`: the variants whose label contains TEXT (while developing one kernel).
    let only = args.windows(2).find(|w| w[0] == "--only").map(|w| w[1].clone()).unwrap_or_default();
    let client_kind = args.windows(2).find(|w| w[0] == "--client").map(|w| w[1].clone()).unwrap_or_else(|| "wgpu".into());
    if let Ok(dirs) = std::env::var("CUBEOPS_CUDA_INCLUDE") {
        add_include_dirs(std::env::split_paths(&dirs).collect::<Vec<PathBuf>>());
    }
    let includes = match include_dirs() {
        Ok(dirs) => dirs,
        Err(e) => {
            eprintln!("arch-check: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (major, minor) = match nvrtc_version() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("arch-check: {e}: pip install nvidia-cuda-nvrtc-cu12==12.8.93 and put its lib/ on LD_LIBRARY_PATH");
            return ExitCode::FAILURE;
        }
    };
    println!("arch-check: NVRTC {major}.{minor}, headers {includes:?}, kernel IR from a {client_kind} client");

    let sources: Vec<Vec<(String, String)>> = archs
        .iter()
        .map(|&cc| {
            variants(cc)
                .iter()
                .filter(|&&(k, s, v)| label(k, s, v).contains(&only))
                .map(|&(k, s, v)| {
                    let compiled = match client_kind.as_str() {
                        "cuda" => kernel_source(&cubecl::cuda::CudaRuntime::client(&Default::default()), cc, k, v, s),
                        _ => kernel_source(&cubecl::wgpu::WgpuRuntime::client(&Default::default()), cc, k, v, s),
                    };
                    let source = compiled.map(|c| c.source).unwrap_or_else(|e| format!("// {e}"));
                    (label(k, s, v), source)
                })
                .collect()
        })
        .collect();

    // NVRTC compiles independent programs concurrently: one worker per core. Archs may have
    // different variant lists (float4 atomics from sm_90): jobs are (arch, its variant).
    let jobs: Vec<(usize, usize)> = (0..archs.len()).flat_map(|a| (0..sources[a].len()).map(move |i| (a, i))).collect();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let results: Vec<Result<u32, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(jobs.len().div_ceil(workers).max(1))
            .map(|chunk| {
                let (sources, archs, includes) = (&sources, &archs, &includes);
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|&(a, i)| nvrtc(&sources[a][i].1, archs[a], includes, true).and_then(|cubin| cubin_sm(&cubin)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("NVRTC worker panicked")).collect()
    });
    let cells: std::collections::HashMap<(usize, &str), &Result<u32, String>> =
        jobs.iter().zip(&results).map(|(&(a, i), r)| ((a, sources[a][i].0.as_str()), r)).collect();

    // One row per variant of the arch with the most; "-" where an arch has no such variant.
    let widest = (0..archs.len()).max_by_key(|&a| sources[a].len()).unwrap_or(0);
    let mut failures = 0;
    println!("{:<58} {}", "kernel variant", archs.iter().map(|a| format!("{:>9}", format!("sm_{a}"))).collect::<String>());
    for (name, _) in &sources[widest] {
        let mut row = format!("{name:<58}");
        for (a, &cc) in archs.iter().enumerate() {
            let cell = match cells.get(&(a, name.as_str())) {
                None => "-".to_string(),
                Some(Ok(sm)) if *sm == cc => "OK".to_string(),
                Some(Ok(sm)) => {
                    failures += 1;
                    eprintln!("{name} {}: CUBIN is for sm_{sm}", arch_flag(cc));
                    format!("sm_{sm}?")
                }
                Some(Err(log)) => {
                    failures += 1;
                    eprintln!("{name} {}: {log}", arch_flag(cc));
                    "ERROR".to_string()
                }
            };
            row.push_str(&format!("{cell:>9}"));
        }
        println!("{row}");
    }
    for (a, &cc) in archs.iter().enumerate() {
        let mut h = DefaultHasher::new();
        for (_, source) in &sources[a] {
            source.hash(&mut h);
        }
        println!("sources for sm_{cc}: {} variants, combined hash {:016x}", sources[a].len(), h.finish());
    }
    if args.iter().any(|a| a == "--hashes") {
        for (a, &cc) in archs.iter().enumerate() {
            for (name, source) in &sources[a] {
                println!("hash sm_{cc} {name} {}", hash(source));
            }
        }
    }
    if let Some(dir) = args.iter().position(|a| a == "--dump").and_then(|i| args.get(i + 1)) {
        for (a, &cc) in archs.iter().enumerate() {
            for (name, source) in &sources[a] {
                let _ = std::fs::write(format!("{dir}/sm_{cc}_{}.cu", name.replace('/', "_")), source);
            }
        }
    }
    let total = jobs.len();
    println!("{}: {}/{total} compiled and checked", if failures == 0 { "PASS" } else { "FAIL" }, total - failures);
    if failures == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
