//! Fused cubecl kernels for burn's cubecl backends (CUDA, wgpu, ...).

use burn::tensor::{DType, Shape};
use burn_cubecl::kernel::cast;
use burn_cubecl::ops::numeric::{empty_device_contiguous_dtype, empty_device_dtype, zeros_client};
use burn_cubecl::ops::permute;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use cubeops_kernels::lanes::supports_vector_add;
use cubeops_kernels::point_sample::{
    accumulation_type, backward_vector, launch_backward, launch_backward_input_ordered, launch_forward, supports_atomic_add,
    supports_plane_sums, BackwardPass, Geometry, Interpolation, Sampling, Variant,
};

use super::{composite, PointSampleBackend};
use crate::cube_args::{array, byte_offset, strides, vectors, wide_index};

/// Launch geometry; `map` is the `(N, C, H, W)` tensor the kernel indexes (input or
/// grad_input) and `out` the `(N, C, P)` one (output or grad_output).
fn geometry<R: CubeRuntime>(map: &CubeTensor<R>, points: &CubeTensor<R>, out: &CubeTensor<R>) -> Geometry {
    let [n, channels, height, width] = map.meta.shape().dims();
    Geometry {
        n,
        channels,
        height,
        width,
        num_points: points.meta.shape()[1],
        map_strides: strides(map),
        points_strides: strides(points),
        out_strides: strides(out),
    }
}

/// Kernel variant for this call. `map` sets the thread order (channels fastest for
/// channels-last memory).
fn variant<R: CubeRuntime>(map: &CubeTensor<R>, sampling: Sampling, tensors: &[&CubeTensor<R>]) -> Variant {
    Variant::for_map(map.meta.strides(), sampling, wide_index(tensors))
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> PointSampleBackend for CubeBackend<R, F, I, BT> {
    fn point_sample(input: CubeTensor<R>, points: CubeTensor<R>, sampling: Sampling, _deterministic: bool) -> CubeTensor<R> {
        let [n, c, _, _] = input.meta.shape().dims();
        let shape = Shape::new([n, c, points.meta.shape()[1]]);
        let output = empty_device_dtype(input.client.clone(), input.device.clone(), shape, input.dtype);
        let geo = geometry(&input, &points, &output);
        if geo.scalars().is_err() {
            return composite::forward::<Self>(input, points, sampling);
        }
        let variant = variant(&input, sampling, &[&input, &points, &output]);
        launch_forward::<R>(&output.client, &geo, variant, input.dtype.into(), array(&input), array(&points), array(&output));
        output
    }

    fn point_sample_grad_input(
        grad_output: CubeTensor<R>,
        input: CubeTensor<R>,
        points: CubeTensor<R>,
        sampling: Sampling,
        deterministic: bool,
    ) -> CubeTensor<R> {
        let storage = input.dtype.into();
        // Without atomic float adds the ordered kernel needs none.
        let ordered = deterministic || !supports_atomic_add(&input.client, accumulation_type(storage));
        let acc_dtype = if input.dtype == DType::F64 { DType::F64 } else { DType::F32 };
        let [n, c, h, w] = input.meta.shape().dims();
        let (client, device) = (input.client.clone(), input.device.clone());
        // The gradient keeps the input's memory layout, as torch's does.
        let grad_input = if variant(&input, sampling, &[]).channels_last {
            permute(zeros_client(client, device, Shape::new([n, h, w, c]), acc_dtype), &[0, 3, 1, 2])
        } else {
            zeros_client(client, device, Shape::new([n, c, h, w]), acc_dtype)
        };
        let geo = geometry(&grad_input, &points, &grad_output);
        if geo.scalars().is_err() {
            return composite::grad_input::<Self>(grad_output, input, points, sampling);
        }
        let variant = variant(&grad_input, sampling, &[&grad_output, &input, &points, &grad_input]);
        let client = &grad_input.client;
        if ordered {
            launch_backward_input_ordered::<R>(client, &geo, variant, storage, array(&grad_output), array(&points), array(&grad_input));
        } else {
            let vector = vector_for(&grad_output, &input, Some(&grad_input), supports_vector_add(client, accumulation_type(storage)));
            let pass = BackwardPass::new(true, false, variant.channels_last, true, vector, None);
            // The points' gradient is not touched by this pass.
            let unused = spare::<R>(&input, input.dtype);
            let arrays = [vectors(&grad_output, vector), vectors(&input, vector), array(&points), vectors(&grad_input, vector), array(&unused)];
            launch_backward::<R>(client, &geo, variant, storage, pass, arrays);
        }
        cast(grad_input, input.dtype)
    }

    fn point_sample_grad_points(
        grad_output: CubeTensor<R>,
        input: CubeTensor<R>,
        points: CubeTensor<R>,
        sampling: Sampling,
    ) -> CubeTensor<R> {
        let [n, p, _] = points.meta.shape().dims();
        let (client, device) = (input.client.clone(), input.device.clone());
        if sampling.mode == Interpolation::Nearest {
            return zeros_client(client, device, Shape::new([n, p, 2]), input.dtype);
        }
        // Contiguous: the kernel writes point i at 2 * i.
        let grad_points = empty_device_contiguous_dtype(client, device, Shape::new([n, p, 2]), input.dtype);
        let geo = geometry(&input, &points, &grad_output);
        if geo.scalars().is_err() {
            return composite::grad_points::<Self>(grad_output, input, points, sampling);
        }
        let variant = variant(&input, sampling, &[&grad_output, &input, &points, &grad_points]);
        let client = &grad_points.client;
        let vector = vector_for(&grad_output, &input, None, true);
        let pass = BackwardPass::new(false, true, variant.channels_last, supports_plane_sums(client, 32), vector, None);
        // The input's gradient is not touched by this pass (its buffer type is then f32).
        let unused = spare::<R>(&input, DType::F32);
        let arrays = [vectors(&grad_output, vector), vectors(&input, vector), array(&points), vectors(&unused, vector), array(&grad_points)];
        launch_backward::<R>(client, &geo, variant, input.dtype.into(), pass, arrays);
        grad_points
    }
}

/// The vector width of a backward pass over `grad_output` and `input` (and the accumulation
/// buffer `acc` when it scatters, then with `vector_add`: adds of 4 floats).
fn vector_for<R: CubeRuntime>(grad_output: &CubeTensor<R>, input: &CubeTensor<R>, acc: Option<&CubeTensor<R>>, vector_add: bool) -> usize {
    let c = input.meta.shape()[1];
    let (go, inp) = (strides::<R, 3>(grad_output), strides::<R, 4>(input));
    let acc_strides = acc.map(strides::<R, 4>);
    let mut tensors = vec![(grad_output.dtype.size(), byte_offset(grad_output), &go[..]), (input.dtype.size(), byte_offset(input), &inp[..])];
    if let (Some(acc), Some(acc_strides)) = (acc, &acc_strides) {
        tensors.push((acc.dtype.size(), byte_offset(acc), &acc_strides[..]));
    }
    backward_vector(c, &tensors, vector_add)
}

/// A small buffer of `dtype` for a kernel argument a pass does not touch (a separate buffer:
/// wgpu refuses one buffer bound both read-only and writable).
fn spare<R: CubeRuntime>(like: &CubeTensor<R>, dtype: DType) -> CubeTensor<R> {
    empty_device_contiguous_dtype(like.client.clone(), like.device.clone(), Shape::new([4]), dtype)
}
