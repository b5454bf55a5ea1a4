//! Where NVRTC finds the CUDA headers the generated kernels include (cuda_fp16.h,
//! cuda_bf16.h, ...): the way a pip user has them, or a toolkit install.

use std::path::PathBuf;
use std::sync::RwLock;

/// Header directories added by the embedding program (the Python package adds the
/// `nvidia/cuda_runtime/include` of PyPI's nvidia-cuda-runtime-cu12, which torch installs).
static EXTRA_INCLUDE_DIRS: RwLock<Vec<PathBuf>> = RwLock::new(Vec::new());

pub fn add_include_dirs(dirs: impl IntoIterator<Item = PathBuf>) {
    let mut extra = EXTRA_INCLUDE_DIRS.write().unwrap_or_else(|e| e.into_inner());
    for dir in dirs {
        if !extra.contains(&dir) {
            extra.push(dir);
        }
    }
}

/// Include directories holding `cuda_fp16.h`, in search order: the embedding program's,
/// then `$CUDA_PATH/include`, `/usr/local/cuda/include`, `/opt/cuda/include`.
pub fn include_dirs() -> Result<Vec<PathBuf>, String> {
    let mut candidates: Vec<PathBuf> = EXTRA_INCLUDE_DIRS.read().unwrap_or_else(|e| e.into_inner()).clone();
    if let Ok(root) = std::env::var("CUDA_PATH") {
        candidates.push(PathBuf::from(root).join("include"));
    }
    candidates.push("/usr/local/cuda/include".into());
    candidates.push("/opt/cuda/include".into());
    let mut found: Vec<PathBuf> = Vec::new();
    for dir in candidates {
        if dir.join("cuda_fp16.h").is_file() && !found.contains(&dir) {
            found.push(dir);
        }
    }
    if found.is_empty() {
        return Err("CUDA headers (cuda_fp16.h) not found: install them with \
                    `pip install nvidia-cuda-runtime-cu12` (torch's CUDA wheels bring it), \
                    or set CUDA_PATH to a CUDA toolkit"
            .into());
    }
    // CCCL headers (cuda/std/...) live in a `cccl` subdirectory in CUDA >= 13.
    let cccl: Vec<PathBuf> = found.iter().map(|d| d.join("cccl")).filter(|d| d.is_dir()).collect();
    Ok(found.into_iter().chain(cccl).collect())
}
