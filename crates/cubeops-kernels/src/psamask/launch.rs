//! Host side of PSAMask: geometry, compile-time variant, and the launcher generic over the
//! cubecl runtime.

use cubecl::prelude::*;
use cubecl::{calculate_cube_count_elemwise, CubeDim};

use super::kernel::{psamask_kernel, PsaGeometryArgsLaunch};

/// One PSAMask launch: feature map `height x width`, mask `mask_h x mask_w`, the strides of
/// what is read (`src`) and written (`dst`), each `(N, C, H, W)` in elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PsaGeometry {
    pub n: usize,
    pub height: usize,
    pub width: usize,
    pub mask_h: usize,
    pub mask_w: usize,
    pub src_strides: [usize; 4],
    pub dst_strides: [usize; 4],
}

impl PsaGeometry {
    /// The kernel scalars, in `PsaGeometryArgs` field order; all must fit `u32`.
    pub fn scalars(&self) -> Result<[u32; 15], String> {
        let [sn, sc, sh, sw] = self.src_strides;
        let [dn, dc, dh, dw] = self.dst_strides;
        let (half_h, half_w) = (self.mask_h.saturating_sub(1) / 2, self.mask_w.saturating_sub(1) / 2);
        let all = [self.n, self.height, self.width, self.mask_h, self.mask_w, half_h, half_w, sn, sc, sh, sw, dn, dc, dh, dw];
        let mut out = [0u32; 15];
        for (o, v) in out.iter_mut().zip(all) {
            *o = u32::try_from(v).map_err(|_| format!("size or stride {v} does not fit 32 bits"))?;
        }
        Ok(out)
    }

    /// Threads of a launch: one per element written.
    pub fn threads(&self, backward: bool) -> usize {
        let hw = self.height * self.width;
        let channels = if backward { self.mask_h * self.mask_w } else { hw };
        self.n * channels * hw
    }
}

/// The compile-time choices of a PSAMask launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PsaVariant {
    /// mmcv's `psa_type`: false = 'collect' (0), true = 'distribute' (1).
    pub distribute: bool,
    pub backward: bool,
    /// 64-bit indexing, needed once a buffer holds more than `u32::MAX` elements.
    pub wide_index: bool,
}

/// Writes every element of `dst`: the attention map (forward) or the mask's gradient
/// (backward). The geometry must fit `u32` ([`PsaGeometry::scalars`] is `Ok`).
pub fn launch_psamask<R: Runtime>(
    client: &ComputeClient<R>,
    geo: &PsaGeometry,
    variant: PsaVariant,
    storage: StorageType,
    src: ArrayArg<R>,
    dst: ArrayArg<R>,
) {
    let threads = geo.threads(variant.backward);
    if threads == 0 {
        return;
    }
    let s = geo.scalars().expect("geometry checked by the caller");
    let args = PsaGeometryArgsLaunch::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9], s[10], s[11], s[12], s[13], s[14]);
    let cube_dim = CubeDim::new(client, threads);
    let count = calculate_cube_count_elemwise(client, threads, cube_dim);
    let addr = crate::address_type(variant.wide_index);
    psamask_kernel::launch::<R>(client, count, cube_dim, addr, src, dst, args, variant.distribute, variant.backward, storage);
}
