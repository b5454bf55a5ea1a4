//! Zero-copy launches on foreign CUDA memory (PyTorch's tensors, on PyTorch's stream).
//!
//! cubecl has no public way to wrap a device pointer it did not allocate, so this module
//! launches the same cubecl kernels itself: it builds the kernel with cubecl and compiles
//! it to CUDA C++ with cubecl's own CUDA compiler and options ([`compile`]), turns that into
//! PTX with NVRTC, loads it into the device's primary context (the one PyTorch uses) once
//! per (kernel, variant, dtype, device), and launches it with cudarc on the caller's stream.
//! The kernel parameters follow cubecl-cuda 0.10's layout: one pointer per array, then the
//! info block (scalars, then buffer lengths) by value, packed by cubecl's own `InfoBuilder`.
//! Nothing is copied and nothing synchronises.

pub mod compile;
mod toolkit;

use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::sync::Mutex;

use cubecl::prelude::*;
use cubecl::InfoBuilder;
use cubecl_cuda::{CudaDevice, CudaRuntime};
use cudarc::driver::sys::{CUfunction, CUmodule, CUstream};

pub use compile::{Kernel, MsdaPass, CUBE_DIM};
pub use toolkit::{add_include_dirs, include_dirs};

use crate::point_sample::{Geometry, Variant};
use crate::focal_loss::FocalGeometry;
use crate::ms_deform_attn::MsdaGeometry;
use crate::psamask::PsaGeometry;

/// What [`launch`] needs from a geometry: the kernel's scalar block and its thread count.
pub trait LaunchGeometry {
    fn scalars(&self) -> Result<Vec<u32>, String>;
    fn threads(&self, kernel: Kernel) -> usize;
}

impl LaunchGeometry for Geometry {
    fn scalars(&self) -> Result<Vec<u32>, String> {
        Geometry::scalars(self).map(Vec::from)
    }
    fn threads(&self, kernel: Kernel) -> usize {
        match kernel {
            Kernel::Backward(pass) => pass.threads(self.n * self.num_points),
            Kernel::BackwardInputOrdered => self.ordered_threads(),
            Kernel::BackwardInputShared { cells } => self.shared_blocks(cells as usize) * kernel.cube_dim() as usize,
            Kernel::BackwardInputSharedFixed { cells } => self.shared_blocks(cells as usize) * kernel.cube_dim() as usize,
            Kernel::FixedToFloat => self.n * self.channels * self.height * self.width,
            Kernel::CornerKeys => self.n * self.num_points,
            Kernel::BackwardInputSorted => self.n * self.num_points * crate::point_sample::CORNERS * self.channels,
            Kernel::GradOutputMax => self.output_elements().div_ceil(crate::point_sample::MAX_PER_THREAD),
            _ => self.output_elements(),
        }
    }
}

impl LaunchGeometry for PsaGeometry {
    fn scalars(&self) -> Result<Vec<u32>, String> {
        PsaGeometry::scalars(self).map(Vec::from)
    }
    fn threads(&self, kernel: Kernel) -> usize {
        PsaGeometry::threads(self, matches!(kernel, Kernel::PsaMask { backward: true, .. }))
    }
}

impl LaunchGeometry for MsdaGeometry {
    fn scalars(&self) -> Result<Vec<u32>, String> {
        MsdaGeometry::scalars(self).map(Vec::from)
    }
    fn threads(&self, kernel: Kernel) -> usize {
        match kernel {
            Kernel::Msda { pass: MsdaPass::BackwardSampling, .. } => self.sampling_points(),
            Kernel::Msda { pass: MsdaPass::BackwardFused { lanes, .. }, .. } => self.group_threads(lanes),
            Kernel::Msda { pass: MsdaPass::Forward { per_thread, vector }, .. } => self.forward_threads(per_thread, vector as usize),
            Kernel::Msda { pass: MsdaPass::BackwardValueOrdered, .. } => self.ordered_threads(),
            _ => self.output_elements(),
        }
    }
}

impl LaunchGeometry for FocalGeometry {
    fn scalars(&self) -> Result<Vec<u32>, String> {
        FocalGeometry::scalars(self).map(Vec::from)
    }
    fn threads(&self, kernel: Kernel) -> usize {
        match kernel {
            Kernel::Focal { loss, backward, .. } => FocalGeometry::threads(self, loss, backward),
            _ => unreachable!("a focal geometry launches a focal kernel"),
        }
    }
}

/// A buffer in device memory: its address and how many elements of the kernel's type can
/// be read from there (the kernels bounds-check every access against it).
#[derive(Clone, Copy, Debug)]
pub struct DeviceArray {
    pub ptr: u64,
    pub len: usize,
}

struct Loaded {
    _module: CUmodule,
    function: CUfunction,
    /// Bytes of shared memory the kernel declares (cubecl compiles it as dynamic).
    shared_bytes: u32,
}

// SAFETY: CUmodule/CUfunction are driver handles valid in any thread of the process.
unsafe impl Send for Loaded {}

type Key = (Kernel, Variant, StorageType, usize);

static LOADED: Mutex<Option<HashMap<Key, Loaded>>> = Mutex::new(None);

/// How many kernel modules are loaded (one per kernel, variant, dtype and device used so
/// far): bounded by the variants shipped, whatever the shapes (shapes are runtime arguments).
pub fn loaded_kernels() -> usize {
    LOADED.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(0, HashMap::len)
}

fn driver<T>(what: &str, result: Result<T, cudarc::driver::DriverError>) -> Result<T, String> {
    result.map_err(|e| format!("CUDA driver: {what} failed: {e:?}"))
}

/// A device's retained primary context (the one PyTorch uses), compute capability and the
/// most shared memory a block may opt in to.
#[derive(Clone, Copy)]
struct DeviceContext {
    context: cudarc::driver::sys::CUcontext,
    cc: u32,
    shared_opt_in: usize,
}

// SAFETY: a CUcontext handle may be made current on any thread.
unsafe impl Send for DeviceContext {}

static CONTEXTS: Mutex<Vec<Option<DeviceContext>>> = Mutex::new(Vec::new());

/// Makes device `index`'s primary context current on this thread (retained once per
/// process) and returns its compute capability (e.g. 90).
fn enter_device(index: usize) -> Result<u32, String> {
    enter(index).map(|dc| dc.cc)
}

fn enter(index: usize) -> Result<DeviceContext, String> {
    use cudarc::driver::result::{ctx, device, init, primary_ctx};
    use cudarc::driver::sys::CUdevice_attribute::*;
    let mut contexts = CONTEXTS.lock().unwrap_or_else(|e| e.into_inner());
    if contexts.len() <= index {
        contexts.resize(index + 1, None);
    }
    let dc = match contexts[index] {
        Some(dc) => dc,
        None => {
            driver("cuInit", init())?;
            let dev = driver("cuDeviceGet", device::get(index as i32))?;
            // SAFETY: `dev` is a valid device; its primary context is PyTorch's too.
            let dc = unsafe {
                let context = driver("cuDevicePrimaryCtxRetain", primary_ctx::retain(dev))?;
                let major = driver("compute capability", device::get_attribute(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR))?;
                let minor = driver("compute capability", device::get_attribute(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR))?;
                let opt_in = driver("shared memory opt-in", device::get_attribute(dev, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN))?;
                DeviceContext { context, cc: (major * 10 + minor) as u32, shared_opt_in: opt_in.max(0) as usize }
            };
            contexts[index] = Some(dc);
            dc
        }
    };
    // SAFETY: the context was retained above and is never released while the process runs.
    unsafe {
        if driver("cuCtxGetCurrent", ctx::get_current())? != Some(dc.context) {
            driver("cuCtxSetCurrent", ctx::set_current(dc.context))?;
        }
    }
    Ok(dc)
}

fn load(kernel: Kernel, variant: Variant, storage: StorageType, device: usize, cc: u32) -> Result<Loaded, String> {
    if cc < 70 {
        return Err(format!("compute capability {cc} is below 7.0, the oldest cubeops supports"));
    }
    compile::check_nvrtc_for(cc)?;
    let client = CudaRuntime::client(&CudaDevice::new(device));
    let compiled = compile::kernel_source(&client, cc, kernel, variant, storage)?;
    let ptx = cached_ptx(&compiled.source, cc)?;
    let shared_bytes = u32::try_from(compiled.repr.as_ref().map_or(0, |r| r.shared_memory_size())).map_err(|e| e.to_string())?;
    let ptx = CString::new(ptx.into_iter().take_while(|b| *b != 0).collect::<Vec<u8>>()).map_err(|e| e.to_string())?;
    let name = CString::new(compiled.entrypoint_name.clone()).map_err(|e| e.to_string())?;
    // SAFETY: the primary context is current (enter_device); PTX and name are NUL-terminated.
    unsafe {
        let module = driver("cuModuleLoadData", cudarc::driver::result::module::load_data(ptx.as_ptr().cast()))?;
        let function = driver("cuModuleGetFunction", cudarc::driver::result::module::get_function(module, name))?;
        if shared_bytes > 48 * 1024 {
            // Dynamic shared memory above 48 KiB is opt-in, per function.
            let attribute = cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES;
            driver("cuFuncSetAttribute", cudarc::driver::result::function::set_function_attribute(function, attribute, shared_bytes as i32))?;
        }
        Ok(Loaded { _module: module, function, shared_bytes })
    }
}

/// PTX for `source`, from the on-disk cache when this exact source was compiled before for
/// this architecture (NVRTC takes most of a first call's time). The cache lives in
/// `$CUBEOPS_CACHE_DIR`, else `$XDG_CACHE_HOME/cubeops`, else `~/.cache/cubeops`; any I/O
/// problem just means compiling again.
fn cached_ptx(source: &str, cc: u32) -> Result<Vec<u8>, String> {
    use std::hash::{Hash, Hasher};
    let dir = std::env::var_os("CUBEOPS_CACHE_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| std::path::PathBuf::from(d).join("cubeops")))
        .or_else(|| std::env::var_os("HOME").map(|d| std::path::PathBuf::from(d).join(".cache/cubeops")));
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (source, compile::arch_flag(cc), env!("CARGO_PKG_VERSION")).hash(&mut hasher);
    let path = dir.map(|d| d.join(format!("{:016x}.ptx", hasher.finish())));
    if let Some(ptx) = path.as_ref().and_then(|p| std::fs::read(p).ok()) {
        return Ok(ptx);
    }
    let ptx = compile::nvrtc(source, cc, &include_dirs()?, false)?;
    if let Some(path) = path {
        // Written whole then renamed, so a concurrent reader never sees half a file.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::create_dir_all(path.parent().unwrap_or(&path))
            .and_then(|_| std::fs::write(&tmp, &ptx))
            .and_then(|_| std::fs::rename(&tmp, &path));
    }
    Ok(ptx)
}

/// The info block the kernel reads: the geometry's scalars, then each array's buffer
/// length and length, exactly as cubecl's launcher would pack them.
fn info_block(geo: &impl LaunchGeometry, arrays: &[DeviceArray], variant: &Variant) -> Result<Vec<u64>, String> {
    let addr = crate::address_type(variant.wide_index);
    let mut info = InfoBuilder::default();
    for a in arrays {
        info.metadata.register_array(a.len as u64, a.len as u64, addr);
    }
    for s in geo.scalars()? {
        info.scalars.push(s);
    }
    let block = info.finish(addr);
    if block.dynamic_metadata_offset != block.data.len() {
        return Err("internal: cubeops kernels must not need dynamic metadata".into());
    }
    Ok(block.data)
}

/// The compute capability of device `device` (e.g. 90 for sm_90), making its primary context
/// current on this thread.
pub fn compute_capability(device: usize) -> Result<u32, String> {
    enter_device(device)
}

/// The compute capability of device `device` and the most bytes of shared memory a block
/// there may opt in to (`CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN`).
pub fn device_limits(device: usize) -> Result<(u32, usize), String> {
    enter(device).map(|dc| (dc.cc, dc.shared_opt_in))
}

/// Launches one kernel on `stream` (a `CUstream`, e.g. PyTorch's current stream) of device
/// `device`. `arrays` in kernel order: point_sample forward (input, points, output),
/// backward (grad_output, input, points, grad_input as f32/f64 accumulation buffer,
/// grad_points), backward to input ordered (grad_output, points, grad_input) and shared
/// (grad_output, points, grad_input in the map's dtype; deterministic: grad_output, points,
/// largest as u32, grad_input), backward to
/// input fixed-point: the largest |grad_output| (grad_output, largest as u32), the sums
/// (grad_output, points, largest, fixed sums as i64, special as f32) and their conversion
/// (fixed, largest, special -> gradient); PSAMask (src, dst); MSDA
/// forward (value, shapes, starts, locations, weights, output), backward to the value
/// (grad_output, shapes, starts, locations, weights, grad_value as f32/f64 accumulation
/// buffer), backward to the sampling (grad_output, value, shapes, starts, locations, weights,
/// grad_locations, grad_weights); sigmoid focal loss (input, target, weight, output).
pub fn launch(
    kernel: Kernel,
    device: usize,
    stream: u64,
    geo: &impl LaunchGeometry,
    variant: Variant,
    storage: StorageType,
    arrays: &[DeviceArray],
) -> Result<(), String> {
    if arrays.len() != kernel.arity() {
        return Err(format!("{kernel:?} takes {} arrays, got {}", kernel.arity(), arrays.len()));
    }
    let threads = geo.threads(kernel);
    if threads == 0 {
        return Ok(());
    }
    let cube_dim = kernel.cube_dim();
    let blocks = u32::try_from(threads.div_ceil(cube_dim as usize))
        .ok()
        .filter(|b| *b < i32::MAX as u32)
        .ok_or_else(|| format!("{threads} threads exceed one launch"))?;
    let mut info = info_block(geo, arrays, &variant)?;
    // One module where a kernel ignores a choice: the ordered kernel the layout, the
    // fixed-point maximum the sampling, their conversion all but the index width.
    let variant = match kernel {
        Kernel::BackwardInputOrdered | Kernel::BackwardInputShared { .. } | Kernel::BackwardInputSharedFixed { .. } => Variant { channels_last: false, ..variant },
        Kernel::FixedToFloat => Variant::index_width(variant.wide_index),
        Kernel::GradOutputMax => Variant { sampling: Default::default(), ..variant },
        // The keys read the points only (the caller passes their type as the storage type).
        Kernel::CornerKeys => Variant { channels_last: false, f32_points: false, ..variant },
        Kernel::BackwardInputSorted => Variant { channels_last: false, sampling: Default::default(), ..variant },
        _ => variant,
    };

    let cc = enter_device(device)?;
    let key = (kernel, variant, storage, device);
    let mut cache = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    if !cache.contains_key(&key) {
        // cubecl and NVRTC are loaded lazily; a missing library must not take the process down.
        let loaded = std::panic::catch_unwind(|| load(kernel, variant, storage, device, cc))
            .map_err(|_| "loading the CUDA driver or NVRTC failed: install NVRTC with `pip install nvidia-cuda-nvrtc-cu12`".to_string())??;
        cache.insert(key, loaded);
    }
    let (function, shared_bytes) = (cache[&key].function, cache[&key].shared_bytes);

    let mut pointers: Vec<u64> = arrays.iter().map(|a| a.ptr).collect();
    let mut params: Vec<*mut c_void> = pointers.iter_mut().map(|p| p as *mut u64 as *mut c_void).collect();
    params.push(info.as_mut_ptr() as *mut c_void);
    // SAFETY: `function` was loaded in this device's primary context, which is current;
    // `params` match the kernel's parameters (arrays, then the by-value info block), the
    // arrays' lengths are bounds-checked in the kernel, and `stream` is the caller's.
    unsafe {
        driver(
            "cuLaunchKernel",
            cudarc::driver::result::launch_kernel(function, (blocks, 1, 1), (cube_dim, 1, 1), shared_bytes, stream as CUstream, &mut params),
        )
    }
}

/// Zeroes `bytes` bytes from `ptr` on `stream` of device `device` (`cuMemsetD8Async`): in
/// stream order before the kernels launched after it, with no torch op and no sync.
pub fn zero(device: usize, stream: u64, ptr: u64, bytes: usize) -> Result<(), String> {
    if bytes == 0 {
        return Ok(());
    }
    enter_device(device)?;
    // SAFETY: the caller's allocation holds `bytes` bytes from `ptr` on this device, whose
    // primary context is current; `stream` is the caller's.
    unsafe { driver("cuMemsetD8Async", cudarc::driver::result::memset_d8_async(ptr, 0, bytes, stream as CUstream)) }
}
