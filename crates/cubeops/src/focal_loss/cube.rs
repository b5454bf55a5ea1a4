//! Fused cubecl kernel for burn's cubecl backends (CUDA, wgpu, ...).

use burn::tensor::Shape;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use cubeops_kernels::focal_loss::{launch_sigmoid_focal_loss, FocalGeometry, FocalVariant};

use super::{composite, FocalLossBackend, FocalLossOptions};
use crate::cube_args::{array, strides, wide_index};

fn run<R: CubeRuntime>(
    input: &CubeTensor<R>,
    target: &CubeTensor<R>,
    weight: Option<&CubeTensor<R>>,
    options: FocalLossOptions,
    backward: bool,
) -> Option<CubeTensor<R>> {
    let [n, classes] = input.meta.shape().dims();
    let output = empty_device_contiguous_dtype(input.client.clone(), input.device.clone(), Shape::new([n, classes]), input.dtype);
    let geo = FocalGeometry {
        n,
        classes,
        gamma: options.gamma,
        alpha: options.alpha,
        input_strides: strides(input),
        output_strides: strides(&output),
    };
    geo.scalars().ok()?;
    // Contiguity of target and weight is what the kernel assumes (index n, index t).
    if strides::<R, 1>(target)[0] != 1 && n > 1 || weight.is_some_and(|w| strides::<R, 1>(w)[0] != 1 && classes > 1) {
        return None;
    }
    let variant = FocalVariant { weighted: weight.is_some(), backward, wide_index: wide_index(&[input, &output]) };
    // Without a weight the kernel never reads that array: the input stands in.
    let arrays = [array(input), array(target), array(weight.unwrap_or(input)), array(&output)];
    launch_sigmoid_focal_loss::<R>(&input.client, &geo, variant, input.dtype.into(), target.dtype.into(), arrays);
    Some(output)
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> FocalLossBackend for CubeBackend<R, F, I, BT> {
    fn sigmoid_focal_loss(input: CubeTensor<R>, target: CubeTensor<R>, weight: Option<CubeTensor<R>>, options: FocalLossOptions) -> CubeTensor<R> {
        run(&input, &target, weight.as_ref(), options, false)
            .unwrap_or_else(|| composite::sigmoid_focal_loss::<Self>(input, target, weight, options, false))
    }

    fn sigmoid_focal_loss_grad(input: CubeTensor<R>, target: CubeTensor<R>, weight: Option<CubeTensor<R>>, options: FocalLossOptions) -> CubeTensor<R> {
        run(&input, &target, weight.as_ref(), options, true)
            .unwrap_or_else(|| composite::sigmoid_focal_loss::<Self>(input, target, weight, options, true))
    }
}
