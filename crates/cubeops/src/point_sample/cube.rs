//! Fused cubecl kernels for burn's cubecl backends (CUDA, wgpu, ...).

use burn::tensor::{DType, Shape};
use burn_cubecl::kernel::cast;
use burn_cubecl::ops::numeric::{empty_device_dtype, zeros_client};
use burn_cubecl::ops::permute;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use cubecl::ir::AddressType;
use cubeops_kernels::point_sample::{
    accumulation_type, launch_backward_input, launch_backward_points, launch_forward, supports_atomic_add, Dims,
    Variant,
};

use super::{composite, PointSampleBackend};

fn dims<R: CubeRuntime>(input: &CubeTensor<R>, points: &CubeTensor<R>) -> Dims {
    let [n, channels, height, width] = input.meta.shape().dims();
    Dims { n, channels, height, width, num_points: points.meta.shape()[1] }
}

/// Kernel variant for this call. `map` is the tensor with the `(N, C, H, W)` layout that the
/// threads should follow (input, or the grad_input buffer).
fn variant<R: CubeRuntime>(map: &CubeTensor<R>, align_corners: bool, tensors: &[&CubeTensor<R>]) -> Variant {
    let strides = map.meta.strides();
    Variant {
        align_corners,
        channels_last: strides[1] < strides[3],
        wide_index: tensors.iter().any(|t| t.required_address_type() == AddressType::U64),
    }
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> PointSampleBackend for CubeBackend<R, F, I, BT> {
    fn point_sample(input: CubeTensor<R>, points: CubeTensor<R>, align_corners: bool) -> CubeTensor<R> {
        let dims = dims(&input, &points);
        let output = empty_device_dtype(
            input.client.clone(),
            input.device.clone(),
            Shape::new([dims.n, dims.channels, dims.num_points]),
            input.dtype,
        );
        let variant = variant(&input, align_corners, &[&input, &points, &output]);
        launch_forward::<R>(
            &output.client,
            dims,
            variant,
            input.dtype.into(),
            input.into_tensor_arg(),
            points.into_tensor_arg(),
            output.clone().into_tensor_arg(),
        );
        output
    }

    fn point_sample_grad_input(
        grad_output: CubeTensor<R>,
        input: CubeTensor<R>,
        points: CubeTensor<R>,
        align_corners: bool,
    ) -> CubeTensor<R> {
        let dims = dims(&input, &points);
        let storage = input.dtype.into();
        let acc_dtype = if input.dtype == DType::F64 { DType::F64 } else { DType::F32 };
        if !supports_atomic_add(&input.client, accumulation_type(storage)) {
            return composite::grad_input::<Self>(grad_output, input, points, align_corners);
        }
        let Dims { n, channels, height, width, .. } = dims;
        // The gradient keeps the input's memory layout, as torch's does.
        let channels_last = variant(&input, align_corners, &[]).channels_last;
        let grad_input = if channels_last {
            let nhwc = zeros_client(input.client.clone(), input.device.clone(), Shape::new([n, height, width, channels]), acc_dtype);
            permute(nhwc, &[0, 3, 1, 2])
        } else {
            zeros_client(input.client.clone(), input.device.clone(), Shape::new([n, channels, height, width]), acc_dtype)
        };
        let variant = variant(&grad_input, align_corners, &[&grad_output, &points, &grad_input]);
        launch_backward_input::<R>(
            &grad_input.client,
            dims,
            variant,
            storage,
            grad_output.into_tensor_arg(),
            points.into_tensor_arg(),
            grad_input.clone().into_tensor_arg(),
        );
        cast(grad_input, input.dtype)
    }

    fn point_sample_grad_points(
        grad_output: CubeTensor<R>,
        input: CubeTensor<R>,
        points: CubeTensor<R>,
        align_corners: bool,
    ) -> CubeTensor<R> {
        let dims = dims(&input, &points);
        let grad_points = empty_device_dtype(
            input.client.clone(),
            input.device.clone(),
            Shape::new([dims.n, dims.num_points, 2]),
            input.dtype,
        );
        let variant = variant(&input, align_corners, &[&grad_output, &input, &points, &grad_points]);
        launch_backward_points::<R>(
            &grad_points.client,
            dims,
            variant,
            input.dtype.into(),
            grad_output.into_tensor_arg(),
            input.into_tensor_arg(),
            points.into_tensor_arg(),
            grad_points.clone().into_tensor_arg(),
        );
        grad_points
    }
}
