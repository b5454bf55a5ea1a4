//! Fused cubecl kernel for burn's cubecl backends (CUDA, wgpu, ...).

use burn::tensor::Shape;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use cubeops_kernels::psamask::{launch_psamask, PsaGeometry, PsaVariant};

use super::{composite, PsaMaskBackend, PsaMaskOptions};
use crate::cube_args::{array, strides, wide_index};

/// `src (N, Cs, H, W)` -> new contiguous `(N, Cd, H, W)`, all written by the kernel.
fn run<R: CubeRuntime>(src: CubeTensor<R>, options: PsaMaskOptions, backward: bool) -> Result<CubeTensor<R>, CubeTensor<R>> {
    let [n, _, h, w] = src.meta.shape().dims();
    let (mask_h, mask_w) = options.mask_size;
    let channels = if backward { mask_h * mask_w } else { h * w };
    let dst = empty_device_contiguous_dtype(src.client.clone(), src.device.clone(), Shape::new([n, channels, h, w]), src.dtype);
    let geo = PsaGeometry { n, height: h, width: w, mask_h, mask_w, src_strides: strides(&src), dst_strides: strides(&dst) };
    if geo.scalars().is_err() {
        return Err(src);
    }
    let variant = PsaVariant { distribute: options.distribute(), backward, wide_index: wide_index(&[&src, &dst]) };
    launch_psamask::<R>(&dst.client, &geo, variant, src.dtype.into(), array(&src), array(&dst));
    Ok(dst)
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> PsaMaskBackend for CubeBackend<R, F, I, BT> {
    fn psamask(mask: CubeTensor<R>, options: PsaMaskOptions) -> CubeTensor<R> {
        run(mask, options, false).unwrap_or_else(|mask| {
            let [_, _, h, w] = mask.meta.shape().dims();
            composite::remap::<Self>(mask, h, w, &options, false)
        })
    }

    fn psamask_backward(grad_map: CubeTensor<R>, options: PsaMaskOptions) -> CubeTensor<R> {
        run(grad_map, options, true).unwrap_or_else(|grad| {
            let [_, _, h, w] = grad.meta.shape().dims();
            composite::remap::<Self>(grad, h, w, &options, true)
        })
    }
}
