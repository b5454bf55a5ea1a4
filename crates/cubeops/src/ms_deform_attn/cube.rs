//! Fused cubecl kernels for burn's cubecl backends (CUDA, wgpu, ...).

use burn::tensor::ops::IntTensorOps;
use burn::tensor::{DType, Shape, TensorData};
use burn_cubecl::kernel::cast;
use burn_cubecl::ops::numeric::{empty_device_contiguous_dtype, zeros_client};
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use cubeops_kernels::ms_deform_attn::{
    vector_width, fused_lanes, fused_vector, launch_backward_fused, launch_backward_sampling, launch_backward_value, launch_forward,
    supports_fused_backward, supports_vector_add, MsdaGeometry, MsdaVariant,
};
use cubeops_kernels::point_sample::{accumulation_type, supports_atomic_add};

use super::{composite, MsDeformAttnBackend, MsdaGrads};
use crate::cube_args::{array, byte_offset, strides, vectors, wide_index};

/// Launch geometry; `value_like` is the `(N, S, M, D)` tensor the kernel indexes (the value,
/// or the value-gradient buffer) and `out` the `(N, Lq, M, D)` one (output or its gradient).
fn geometry<R: CubeRuntime>(value_like: &CubeTensor<R>, locations: &CubeTensor<R>, weights: &CubeTensor<R>, out: &CubeTensor<R>) -> MsdaGeometry {
    let [n, num_keys, num_heads, channels] = value_like.meta.shape().dims();
    let [_, num_queries, _, num_levels, num_points, _] = locations.meta.shape().dims();
    MsdaGeometry {
        n,
        num_keys,
        num_heads,
        channels,
        num_levels,
        num_queries,
        num_points,
        value_strides: strides(value_like),
        loc_strides: strides(locations),
        attn_strides: strides(weights),
        out_strides: strides(out),
    }
}

type Backend<R, F, I, BT> = CubeBackend<R, F, I, BT>;

/// The spatial shapes (`(L, 2)` as `(2L,)`) and `(L,)` level starts as the backend's integer
/// tensors.
fn index_arrays<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement>(
    like: &CubeTensor<R>,
    levels: &[[usize; 2]],
) -> (CubeTensor<R>, CubeTensor<R>) {
    let shapes: Vec<i64> = levels.iter().flat_map(|&[h, w]| [h as i64, w as i64]).collect();
    let starts: Vec<i64> = levels.iter().scan(0i64, |s, &[h, w]| Some(std::mem::replace(s, *s + (h * w) as i64))).collect();
    let upload = |data: Vec<i64>, shape: Vec<usize>| {
        Backend::<R, F, I, BT>::int_from_data(TensorData::new(data, shape).convert::<I>(), &like.device)
    };
    // Flat (2L,): burn-cuda pads the rows of a (L, 2) tensor to 16 bytes, and the kernels
    // read the shapes as contiguous pairs.
    (upload(shapes, vec![2 * levels.len()]), upload(starts, vec![levels.len()]))
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> MsDeformAttnBackend for CubeBackend<R, F, I, BT> {
    fn ms_deform_attn(value: CubeTensor<R>, levels: Vec<[usize; 2]>, locations: CubeTensor<R>, weights: CubeTensor<R>) -> CubeTensor<R> {
        let [n, _, m, d] = value.meta.shape().dims();
        let lq = locations.meta.shape()[1];
        let (client, device) = (value.client.clone(), value.device.clone());
        let output = empty_device_contiguous_dtype(client, device, Shape::new([n, lq, m, d]), value.dtype);
        let geo = geometry(&value, &locations, &weights, &output);
        if geo.scalars().is_err() {
            return composite::forward::<Self>(value, &levels, locations, weights);
        }
        let (shapes, starts) = index_arrays::<R, F, I, BT>(&value, &levels);
        let variant = MsdaVariant { wide_index: wide_index(&[&value, &locations, &weights, &output]) };
        let layouts = [(byte_offset(&value), strides::<R, 4>(&value)), (byte_offset(&output), strides::<R, 4>(&output))];
        let vector = vector_width(d, value.dtype.size(), &layouts.each_ref().map(|(a, s)| (*a, &s[..])));
        let arrays = [vectors(&value, vector), array(&shapes), array(&starts), array(&locations), array(&weights), vectors(&output, vector)];
        launch_forward::<R>(&output.client, &geo, variant, value.dtype.into(), shapes.dtype.into(), vector, arrays);
        output
    }

    fn ms_deform_attn_backward(
        grad_output: CubeTensor<R>,
        value: CubeTensor<R>,
        levels: Vec<[usize; 2]>,
        locations: CubeTensor<R>,
        weights: CubeTensor<R>,
    ) -> MsdaGrads<Self> {
        let storage = value.dtype.into();
        let [n, s, m, d] = value.meta.shape().dims();
        let [_, lq, _, l, p, _] = locations.meta.shape().dims();
        let (client, device) = (value.client.clone(), value.device.clone());
        let acc_dtype = if value.dtype == DType::F64 { DType::F64 } else { DType::F32 };
        let grad_value = zeros_client(client.clone(), device.clone(), Shape::new([n, s, m, d]), acc_dtype);
        let grad_locations = empty_device_contiguous_dtype(client.clone(), device.clone(), Shape::new([n, lq, m, l, p, 2]), value.dtype);
        let grad_weights = empty_device_contiguous_dtype(client, device, Shape::new([n, lq, m, l, p]), value.dtype);
        let geo_value = geometry(&grad_value, &locations, &weights, &grad_output);
        let geo_sampling = geometry(&value, &locations, &weights, &grad_output);
        if geo_value.scalars().is_err() || geo_sampling.scalars().is_err() {
            return composite::backward::<Self>(grad_output, value, &levels, locations, weights);
        }
        let (shapes, starts) = index_arrays::<R, F, I, BT>(&value, &levels);
        let index = shapes.dtype.into();
        let all = [&grad_output, &value, &locations, &weights, &grad_value, &grad_locations, &grad_weights];
        let variant = MsdaVariant { wide_index: wide_index(&all) };
        let client = &value.client;
        let (go, sh, st, lo, we) = (array(&grad_output), array(&shapes), array(&starts), array(&locations), array(&weights));
        // Without atomic float adds (f64 on many wgpu devices) the deterministic kernel needs none.
        let ordered = !supports_atomic_add(&value.client, accumulation_type(storage));
        let layouts = [(byte_offset(&value), strides::<R, 4>(&value)), (byte_offset(&grad_output), strides::<R, 4>(&grad_output))];
        let loads = vector_width(d, value.dtype.size(), &layouts.each_ref().map(|(a, s)| (*a, &s[..])));
        let vector = fused_vector(d, loads == 4 && supports_vector_add(client, accumulation_type(storage)));
        // The fused kernel indexes the value's gradient as contiguous; burn-cuda pads rows of
        // D elements to 16 bytes (D = 5 -> 8), which the two-kernel path below handles.
        let contiguous = strides::<R, 4>(&grad_value) == [s * m * d, m * d, d, 1];
        if !ordered && contiguous && supports_fused_backward(client, fused_lanes(d, vector)) {
            let arrays = [
                vectors(&grad_output, vector),
                vectors(&value, vector),
                sh,
                st,
                lo,
                we,
                array(&grad_value),
                array(&grad_locations),
                array(&grad_weights),
            ];
            launch_backward_fused::<R>(client, &geo_sampling, variant, storage, index, true, vector, arrays);
            return (cast(grad_value, value.dtype), grad_locations, grad_weights);
        }
        launch_backward_value::<R>(client, &geo_value, variant, storage, index, ordered, [go, sh, st, lo, we, array(&grad_value)]);
        let arrays = [
            array(&grad_output),
            array(&value),
            array(&shapes),
            array(&starts),
            array(&locations),
            array(&weights),
            array(&grad_locations),
            array(&grad_weights),
        ];
        launch_backward_sampling::<R>(client, &geo_sampling, variant, storage, index, arrays);
        (cast(grad_value, value.dtype), grad_locations, grad_weights)
    }
}
