//! Fused cubecl kernels for burn's cubecl backends (CUDA, wgpu, ...).

use burn::tensor::activation::softmax;
use burn::tensor::{Shape, Tensor, TensorPrimitive};
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use cubeops_kernels::focal_loss::{launch_focal_loss, FocalGeometry, FocalLoss, FocalVariant};

use super::{composite, FocalLossBackend, FocalLossOptions};
use crate::cube_args::{array, strides, wide_index};

/// The kernel on `input (N, C)` (logits for the sigmoid loss, probabilities for the softmax
/// one); `None` where it does not apply (sizes past 32 bits, strided target or weight).
fn run<R: CubeRuntime>(
    loss: FocalLoss,
    input: &CubeTensor<R>,
    target: &CubeTensor<R>,
    weight: Option<&CubeTensor<R>>,
    options: FocalLossOptions,
    backward: bool,
) -> Option<CubeTensor<R>> {
    let [n, classes] = input.meta.shape().dims();
    // The softmax loss's forward writes one value per row.
    let rows = loss == FocalLoss::Softmax && !backward;
    let shape = if rows { Shape::new([n]) } else { Shape::new([n, classes]) };
    let output = empty_device_contiguous_dtype(input.client.clone(), input.device.clone(), shape, input.dtype);
    let output_strides = if rows { [strides::<R, 1>(&output)[0], 0] } else { strides(&output) };
    let geo = FocalGeometry { n, classes, gamma: options.gamma, alpha: options.alpha, input_strides: strides(input), output_strides };
    geo.scalars().ok()?;
    // Contiguity of target and weight is what the kernel assumes (index n, index t).
    if strides::<R, 1>(target)[0] != 1 && n > 1 || weight.is_some_and(|w| strides::<R, 1>(w)[0] != 1 && classes > 1) {
        return None;
    }
    let variant = FocalVariant { loss, weighted: weight.is_some(), backward, wide_index: wide_index(&[input, &output]) };
    // Without a weight the kernel never reads that array: the input stands in.
    let arrays = [array(input), array(target), array(weight.unwrap_or(input)), array(&output)];
    launch_focal_loss::<R>(&input.client, &geo, variant, input.dtype.into(), target.dtype.into(), arrays);
    Some(output)
}

type Cube<R, F, I, BT> = CubeBackend<R, F, I, BT>;

/// Softmax over the classes of logits `(N, C)`, by burn.
fn probabilities<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement>(input: CubeTensor<R>) -> CubeTensor<R> {
    let x: Tensor<Cube<R, F, I, BT>, 2> = Tensor::from_primitive(TensorPrimitive::Float(input));
    softmax(x, 1).into_primitive().tensor()
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> FocalLossBackend for CubeBackend<R, F, I, BT> {
    fn sigmoid_focal_loss(input: CubeTensor<R>, target: CubeTensor<R>, weight: Option<CubeTensor<R>>, options: FocalLossOptions) -> CubeTensor<R> {
        run(FocalLoss::Sigmoid, &input, &target, weight.as_ref(), options, false)
            .unwrap_or_else(|| composite::sigmoid_focal_loss::<Self>(input, target, weight, options, false))
    }

    fn sigmoid_focal_loss_grad(input: CubeTensor<R>, target: CubeTensor<R>, weight: Option<CubeTensor<R>>, options: FocalLossOptions) -> CubeTensor<R> {
        run(FocalLoss::Sigmoid, &input, &target, weight.as_ref(), options, true)
            .unwrap_or_else(|| composite::sigmoid_focal_loss::<Self>(input, target, weight, options, true))
    }

    fn softmax_focal_loss(input: CubeTensor<R>, target: CubeTensor<R>, weight: Option<CubeTensor<R>>, options: FocalLossOptions) -> CubeTensor<R> {
        let p = probabilities::<R, F, I, BT>(input.clone());
        run(FocalLoss::Softmax, &p, &target, weight.as_ref(), options, false)
            .unwrap_or_else(|| composite::softmax_focal_loss::<Self>(input, target, weight, options, false))
    }

    fn softmax_focal_loss_grad(input: CubeTensor<R>, target: CubeTensor<R>, weight: Option<CubeTensor<R>>, options: FocalLossOptions) -> CubeTensor<R> {
        let p = probabilities::<R, F, I, BT>(input.clone());
        run(FocalLoss::Softmax, &p, &target, weight.as_ref(), options, true)
            .unwrap_or_else(|| composite::softmax_focal_loss::<Self>(input, target, weight, options, true))
    }
}
