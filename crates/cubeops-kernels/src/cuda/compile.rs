//! cubecl kernel -> CUDA C++ -> PTX, exactly as cubecl-cuda 0.10 would do it for a device of
//! the given compute capability (its compilation options and NVRTC flags, mirrored from
//! cubecl-cuda-0.10.0/src/runtime.rs and compute/context.rs; pinned versions keep them in step).

use std::ffi::{CStr, CString};

use cubecl::ir::{ElemType, IntKind};
use cubecl::prelude::*;
use cubecl::server::ExecutionMode;
use cubecl::CubeTask;
use cubecl_cpp::shared::{CompilationOptions, CppSupportedFeatures};
use cubecl_cuda::CudaCompiler;
use cubecl_runtime::kernel::{CompiledKernel, CubeKernel, KernelTask};

use crate::point_sample::{
    accumulation_type,
    fixed_to_float_kernel as fixed_to_float, grad_output_max_kernel as grad_max, point_sample_backward_input_fixed_kernel as bwd_input_fixed,
    point_sample_backward_input_ordered_kernel as bwd_input_ordered, point_sample_backward_input_shared_kernel as bwd_input_shared,
    point_sample_backward_input_shared_fixed_kernel as bwd_input_shared_fixed,
    point_sample_backward_input_sorted_kernel as bwd_input_sorted, point_sample_corner_keys_kernel as corner_keys,
    point_sample_backward_kernel as bwd,
    point_sample_forward_kernel as fwd, BackwardPass, GeometryArgsCompilationArg, Variant,
};
use crate::focal_loss::{
    sigmoid_focal_loss_kernel as sigmoid_focal, softmax_focal_loss_kernel as softmax_focal, FocalArgsCompilationArg, FocalLoss,
};
use crate::ms_deform_attn::{
    msda_backward_fused_kernel as msda_bwd_fused, msda_backward_sampling_kernel as msda_bwd_sampling, msda_backward_value_kernel as msda_bwd_value,
    msda_backward_value_ordered_kernel as msda_bwd_value_ordered, msda_dtypes,
    msda_forward_kernel as msda_fwd, MsdaGeometryArgsCompilationArg,
};
use crate::psamask::{psamask_kernel, PsaGeometryArgsCompilationArg};

/// Threads per block of every kernel the launcher runs.
pub const CUBE_DIM: u32 = 256;

/// Which kernel: point_sample's three, PSAMask's gather, one of MSDA's, or the focal loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    Forward,
    /// point_sample's backward: to the input (atomic scatter) and/or to the points.
    Backward(BackwardPass),
    /// The deterministic backward to the input (no atomics); ignores `Variant::channels_last`.
    BackwardInputOrdered,
    /// The backward to the input of row-major planes, summed in shared memory and written in
    /// the map's dtype (f16, bf16, f32), in tiles of `cells` cells
    /// (`point_sample::SHARED_CELLS`, or `large_shared_cells`); ignores
    /// `Variant::channels_last`.
    BackwardInputShared { cells: u32 },
    /// The same, deterministic: 64-bit fixed-point sums in shared memory, scaled from
    /// `GradOutputMax`'s result (`point_sample::SHARED_FIXED_CELLS`, or
    /// `large_shared_cells` with `fixed`).
    BackwardInputSharedFixed { cells: u32 },
    /// The deterministic backward to the input with 64-bit integer atomics (float32
    /// accumulation only): the largest finite |grad_output| (`GradOutputMax`), the sums
    /// (`BackwardInputFixed`), their conversion to floats (`FixedToFloat`; only `wide_index`
    /// of the [`Variant`] applies).
    GradOutputMax,
    BackwardInputFixed,
    FixedToFloat,
    /// The deterministic backward to the input by sorted corners: each point's four corner
    /// cells and weights (`CornerKeys`; only the point type and sampling apply), then, after
    /// the caller's stable sort of the keys, each cell's sum in that order written in the
    /// map's dtype (`BackwardInputSorted`; layout-agnostic, no sampling).
    CornerKeys,
    BackwardInputSorted,
    /// PSAMask; the point_sample [`Variant`] passed with it only contributes `wide_index`.
    PsaMask { distribute: bool, backward: bool },
    /// Multi-scale deformable attention; `index64`: the spatial shapes and level start index
    /// are int64 (torch's), else int32 (burn's). Only `wide_index` of the [`Variant`] applies.
    Msda { pass: MsdaPass, index64: bool },
    /// A focal loss (or its derivative, `backward`), with a per-class `weight` or not;
    /// `index64`: int64 targets (torch's), else int32.
    Focal { loss: FocalLoss, weighted: bool, backward: bool, index64: bool },
}

/// The MSDA kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MsdaPass {
    /// `per_thread` units of `vector` channels per thread (see
    /// [`crate::ms_deform_attn::forward_per_thread`], [`crate::ms_deform_attn::vector_width`]).
    Forward { per_thread: u32, vector: u32 },
    BackwardValue,
    /// The deterministic backward to the value (no atomics).
    BackwardValueOrdered,
    BackwardSampling,
    /// All three gradients in one pass, `lanes` threads per `(n, q, m)`, atomic adds in
    /// vectors of `vector` (see [`crate::ms_deform_attn::fused_lanes`] and
    /// [`crate::ms_deform_attn::fused_vector`]); the value's only when `scatter`.
    BackwardFused { scatter: bool, lanes: u32, vector: u32 },
}

impl Kernel {
    /// How many arrays the kernel takes (see [`super::launch`]).
    pub fn arity(self) -> usize {
        match self {
            Kernel::Backward(_) | Kernel::BackwardInputFixed | Kernel::BackwardInputSorted => 5,
            Kernel::BackwardInputSharedFixed { .. } => 4,
            Kernel::PsaMask { .. } | Kernel::GradOutputMax => 2,
            Kernel::Msda { pass: MsdaPass::BackwardSampling, .. } => 8,
            Kernel::Msda { pass: MsdaPass::BackwardFused { .. }, .. } => 9,
            Kernel::Msda { .. } => 6,
            Kernel::Focal { .. } => 4,
            _ => 3,
        }
    }

    /// Threads per block: [`CUBE_DIM`], but for the shared-memory sums in large tiles.
    pub fn cube_dim(self) -> u32 {
        match self {
            Kernel::BackwardInputShared { cells } => crate::point_sample::shared_cube_dim(cells as usize, false),
            Kernel::BackwardInputSharedFixed { cells } => crate::point_sample::shared_cube_dim(cells as usize, true),
            _ => CUBE_DIM,
        }
    }
}

/// The compilation options cubecl-cuda 0.10 derives for a device of compute capability `cc`
/// (e.g. 90 for sm_90, 120 for sm_120).
pub fn compilation_options(cc: u32) -> CompilationOptions {
    let mut supports = CppSupportedFeatures { fast_math: true, ..Default::default() };
    if cc >= 70 {
        supports.grid_constants = true;
    }
    if cc >= 75 {
        supports.fast_tanh = cudarc::driver::sys::CUDA_VERSION >= 12080;
    }
    if cc >= 90 {
        supports.clusters = true;
        supports.elect_sync = true;
    }
    CompilationOptions { warp_size: 32, supports_features: supports }
}

/// NVRTC's `--gpu-architecture` for `cc`, as cubecl-cuda passes it (`sm_XXa` from sm_90 on).
pub fn arch_flag(cc: u32) -> String {
    if cc >= 90 {
        format!("--gpu-architecture=sm_{cc}a")
    } else {
        format!("--gpu-architecture=sm_{cc}")
    }
}

fn array() -> ArrayCompilationArg {
    ArrayCompilationArg { inplace: None }
}

fn geometry() -> GeometryArgsCompilationArg {
    GeometryArgsCompilationArg {
        n: (),
        channels: (),
        height: (),
        width: (),
        num_points: (),
        map_n: (),
        map_c: (),
        map_h: (),
        map_w: (),
        points_n: (),
        points_p: (),
        points_k: (),
        out_n: (),
        out_c: (),
        out_p: (),
    }
}

fn psa_geometry() -> PsaGeometryArgsCompilationArg {
    PsaGeometryArgsCompilationArg {
        n: (),
        height: (),
        width: (),
        mask_h: (),
        mask_w: (),
        half_h: (),
        half_w: (),
        src_n: (),
        src_c: (),
        src_h: (),
        src_w: (),
        dst_n: (),
        dst_c: (),
        dst_h: (),
        dst_w: (),
    }
}

fn msda_geometry() -> MsdaGeometryArgsCompilationArg {
    MsdaGeometryArgsCompilationArg {
        n: (),
        num_keys: (),
        num_heads: (),
        channels: (),
        num_levels: (),
        num_queries: (),
        num_points: (),
        value_n: (),
        value_s: (),
        value_m: (),
        value_d: (),
        loc_n: (),
        loc_q: (),
        loc_m: (),
        loc_l: (),
        loc_p: (),
        loc_k: (),
        attn_n: (),
        attn_q: (),
        attn_m: (),
        attn_l: (),
        attn_p: (),
        out_n: (),
        out_q: (),
        out_m: (),
        out_d: (),
    }
}

fn focal_args() -> FocalArgsCompilationArg {
    FocalArgsCompilationArg {
        n: (),
        classes: (),
        gamma_hi: (),
        gamma_lo: (),
        alpha_hi: (),
        alpha_lo: (),
        in_n: (),
        in_c: (),
        out_n: (),
        out_c: (),
    }
}

fn compile_task<K: CubeKernel>(kernel: K, cc: u32, addr: AddressType) -> Result<CompiledKernel<CudaCompiler>, String> {
    KernelTask::<CudaCompiler, K>::new(kernel)
        .compile(&mut Default::default(), &compilation_options(cc), ExecutionMode::Checked, addr.unsigned_type())
        .map_err(|e| format!("cubecl could not compile the kernel: {e:?}"))
}

/// The CUDA C++ of one kernel variant for compute capability `cc`. `client` supplies the
/// device properties cubecl consults while building the kernel's IR: the launcher passes the
/// device's own CUDA client; the arch check, with no GPU, a wgpu client, and shows on a GPU
/// that both give the same source.
pub fn kernel_source<R: Runtime>(
    client: &ComputeClient<R>,
    cc: u32,
    kernel: Kernel,
    variant: Variant,
    storage: StorageType,
) -> Result<CompiledKernel<CudaCompiler>, String> {
    let addr = crate::address_type(variant.wide_index);
    let settings = KernelSettings::default().cube_dim(CubeDim::new_1d(kernel.cube_dim())).address_type(addr);
    let client = client.clone();
    let (sampling, cl) = (variant.sampling, variant.channels_last);
    match kernel {
        Kernel::Forward => compile_task(
            fwd::PointSampleForwardKernel::<R>::new(
                settings,
                client,
                array(),
                array(),
                array(),
                geometry(),
                sampling,
                cl,
                variant.forward_dtypes(storage),
            ),
            cc,
            addr,
        ),
        Kernel::Backward(pass) => compile_task(
            bwd::PointSampleBackwardKernel::<R>::new(
                settings, client, array(), array(), array(), array(), array(), geometry(), pass.vector as usize, sampling, pass.lanes,
                pass.stride, pass.scatter, pass.gather, pass.dtypes(&variant, storage),
            ),
            cc,
            addr,
        ),
        Kernel::BackwardInputShared { cells } => compile_task(
            bwd_input_shared::PointSampleBackwardInputSharedKernel::<R>::new(
                settings, client, array(), array(), array(), geometry(), sampling, cells as usize, [variant.point_type(storage), storage],
            ),
            cc,
            addr,
        ),
        Kernel::BackwardInputSharedFixed { cells } => compile_task(
            bwd_input_shared_fixed::PointSampleBackwardInputSharedFixedKernel::<R>::new(
                settings, client, array(), array(), array(), array(), geometry(), sampling, cells as usize, [variant.point_type(storage), storage],
            ),
            cc,
            addr,
        ),
        Kernel::BackwardInputOrdered => compile_task(
            bwd_input_ordered::PointSampleBackwardInputOrderedKernel::<R>::new(
                settings, client, array(), array(), array(), geometry(), sampling, variant.ordered_dtypes(storage),
            ),
            cc,
            addr,
        ),
        Kernel::BackwardInputFixed => compile_task(
            bwd_input_fixed::PointSampleBackwardInputFixedKernel::<R>::new(
                settings,
                client,
                array(),
                array(),
                array(),
                array(),
                array(),
                geometry(),
                sampling,
                cl,
                variant.point_type(storage),
            ),
            cc,
            addr,
        ),
        Kernel::GradOutputMax => compile_task(
            grad_max::GradOutputMaxKernel::<R>::new(settings, client, array(), array(), geometry(), cl, variant.point_type(storage)),
            cc,
            addr,
        ),
        Kernel::CornerKeys => compile_task(
            corner_keys::PointSampleCornerKeysKernel::<R>::new(settings, client, array(), array(), array(), geometry(), sampling, storage),
            cc,
            addr,
        ),
        Kernel::BackwardInputSorted => compile_task(
            bwd_input_sorted::PointSampleBackwardInputSortedKernel::<R>::new(
                settings, client, array(), array(), array(), array(), array(), geometry(), [variant.point_type(storage), storage],
            ),
            cc,
            addr,
        ),
        Kernel::FixedToFloat => compile_task(
            fixed_to_float::FixedToFloatKernel::<R>::new(settings, client, array(), array(), array(), geometry()),
            cc,
            addr,
        ),
        Kernel::PsaMask { distribute, backward } => compile_task(
            psamask_kernel::PsamaskKernel::<R>::new(settings, client, array(), array(), psa_geometry(), distribute, backward, storage),
            cc,
            addr,
        ),
        Kernel::Msda { pass, index64 } => {
            let int = if index64 { IntKind::I64 } else { IntKind::I32 };
            let dtypes = msda_dtypes(storage, StorageType::Scalar(ElemType::Int(int)));
            let a = array;
            match pass {
                MsdaPass::Forward { per_thread, vector } => compile_task(
                    msda_fwd::MsdaForwardKernel::<R>::new(
                        settings, client, a(), a(), a(), a(), a(), a(), msda_geometry(), vector as usize, per_thread, dtypes,
                    ),
                    cc,
                    addr,
                ),
                MsdaPass::BackwardValue => compile_task(
                    msda_bwd_value::MsdaBackwardValueKernel::<R>::new(settings, client, a(), a(), a(), a(), a(), a(), msda_geometry(), dtypes),
                    cc,
                    addr,
                ),
                MsdaPass::BackwardValueOrdered => compile_task(
                    msda_bwd_value_ordered::MsdaBackwardValueOrderedKernel::<R>::new(
                        settings, client, a(), a(), a(), a(), a(), a(), msda_geometry(), dtypes,
                    ),
                    cc,
                    addr,
                ),
                MsdaPass::BackwardFused { scatter, lanes, vector } => compile_task(
                    msda_bwd_fused::MsdaBackwardFusedKernel::<R>::new(
                        settings, client, a(), a(), a(), a(), a(), a(), a(), a(), a(), msda_geometry(), vector as usize, lanes, scatter,
                        dtypes,
                    ),
                    cc,
                    addr,
                ),
                MsdaPass::BackwardSampling => compile_task(
                    msda_bwd_sampling::MsdaBackwardSamplingKernel::<R>::new(
                        settings, client, a(), a(), a(), a(), a(), a(), a(), a(), msda_geometry(), dtypes,
                    ),
                    cc,
                    addr,
                ),
            }
        }
        Kernel::Focal { loss, weighted, backward, index64 } => {
            let int = if index64 { IntKind::I64 } else { IntKind::I32 };
            let dtypes = [storage, accumulation_type(storage), StorageType::Scalar(ElemType::Int(int))];
            let [a, b, c, d] = [array(), array(), array(), array()];
            match loss {
                FocalLoss::Sigmoid => compile_task(
                    sigmoid_focal::SigmoidFocalLossKernel::<R>::new(settings, client, a, b, c, d, focal_args(), weighted, backward, dtypes),
                    cc,
                    addr,
                ),
                FocalLoss::Softmax => compile_task(
                    softmax_focal::SoftmaxFocalLossKernel::<R>::new(settings, client, a, b, c, d, focal_args(), weighted, backward, dtypes),
                    cc,
                    addr,
                ),
            }
        }
    }
}

/// NVRTC: CUDA C++ -> PTX for `cc`, with cubecl-cuda's flags. `cubin` asks for machine code
/// instead (used by the arch check).
pub fn nvrtc(source: &str, cc: u32, include_dirs: &[std::path::PathBuf], cubin: bool) -> Result<Vec<u8>, String> {
    let mut options = vec![arch_flag(cc), "-lineinfo".to_string()];
    options.extend(include_dirs.iter().map(|d| format!("--include-path={}", d.display())));
    let source = CString::new(source).map_err(|e| e.to_string())?;
    // SAFETY: NVRTC FFI through cudarc; the program is created from a NUL-terminated source
    // that outlives it and destroyed on every path.
    unsafe {
        let program = cudarc::nvrtc::result::create_program(source.as_c_str(), None)
            .map_err(|e| format!("NVRTC is not available ({e:?}): install it with `pip install nvidia-cuda-nvrtc-cu12`"))?;
        let result = match cudarc::nvrtc::result::compile_program(program, &options) {
            Ok(()) if cubin => get_cubin(program),
            Ok(()) => cudarc::nvrtc::result::get_ptx(program)
                .map(|code| code.iter().map(|c| *c as u8).collect::<Vec<u8>>())
                .map_err(|e| format!("{e:?}")),
            Err(e) => {
                let log = cudarc::nvrtc::result::get_program_log(program)
                    .map(|l| CStr::from_ptr(l.as_ptr()).to_string_lossy().into_owned())
                    .unwrap_or_default();
                Err(format!("NVRTC failed ({e:?}) for {}:\n{log}", arch_flag(cc)))
            }
        };
        let _ = cudarc::nvrtc::result::destroy_program(program);
        result
    }
}

/// # Safety
/// `program` must be a successfully compiled NVRTC program.
unsafe fn get_cubin(program: cudarc::nvrtc::sys::nvrtcProgram) -> Result<Vec<u8>, String> {
    use cudarc::nvrtc::sys;
    let mut size = 0usize;
    unsafe {
        sys::nvrtcGetCUBINSize(program, &mut size).result().map_err(|e| format!("{e:?}"))?;
        let mut cubin = vec![0u8; size];
        sys::nvrtcGetCUBIN(program, cubin.as_mut_ptr().cast()).result().map_err(|e| format!("{e:?}"))?;
        Ok(cubin)
    }
}

/// NVRTC's (major, minor) version, or why it could not be loaded.
pub fn nvrtc_version() -> Result<(i32, i32), String> {
    std::panic::catch_unwind(|| {
        let (mut major, mut minor) = (0, 0);
        // SAFETY: plain out-parameters.
        unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) }.result().map(|_| (major, minor))
    })
    .map_err(|_| "NVRTC library not found".to_string())?
    .map_err(|e| format!("{e:?}"))
}

/// The oldest NVRTC that compiles for `cc` with the flag [`arch_flag`] gives.
pub fn min_nvrtc(cc: u32) -> (i32, i32) {
    match cc {
        0..=79 => (10, 0),
        80..=85 => (11, 0),
        86..=88 => (11, 1),
        89 => (11, 8),
        90..=99 => (12, 0),
        _ => (12, 8), // sm_100a, sm_120a (Blackwell)
    }
}

/// Fails with what to install when the loaded NVRTC is too old for `cc`.
pub fn check_nvrtc_for(cc: u32) -> Result<(i32, i32), String> {
    let version = nvrtc_version().map_err(|e| format!("{e}: install it with `pip install nvidia-cuda-nvrtc-cu12`"))?;
    let min = min_nvrtc(cc);
    if version < min {
        return Err(format!(
            "NVRTC {}.{} cannot compile for sm_{cc} (needs >= {}.{}): `pip install \"nvidia-cuda-nvrtc-cu12>={}.{}\"`",
            version.0, version.1, min.0, min.1, min.0, min.1
        ));
    }
    Ok(version)
}
