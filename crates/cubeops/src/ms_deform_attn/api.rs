//! The public entry point: validation and dispatch.

use burn::tensor::{DType, Tensor, TensorPrimitive};

use super::MsDeformAttnBackend;
use crate::OpError;

/// mmcv's `multi_scale_deformable_attn` (Deformable DETR's multi-scale deformable attention
/// core): every query samples `P` points on each of `L` feature levels per head, bilinearly
/// (grid_sample's align_corners=False, zeros outside the level), and sums them weighted by
/// its attention weights. Gradients flow to all three tensors under `Autodiff<B>`.
///
/// - `value`: `(N, S, M, D)`: `M` heads of `D` channels at `S` keys, the levels' `H x W`
///   maps one after the other (row-major);
/// - `spatial_shapes`: each level's `[H, W]`; their areas must sum to `S`;
/// - `sampling_locations`: `(N, Lq, M, L, P, 2)`, (x, y) normalised to [0, 1];
/// - `attention_weights`: `(N, Lq, M, L, P)`.
///
/// Returns `(N, Lq, M * D)`.
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use cubeops::ms_deform_attn::ms_deform_attn;
///
/// let device = Default::default();
/// // One level of 1x2 keys, one head of one channel, one query sampling the centre of key 1.
/// let value = Tensor::<NdArray, 1>::from_floats([3.0, 5.0], &device).reshape([1, 2, 1, 1]);
/// let locations = Tensor::<NdArray, 1>::from_floats([0.75, 0.5], &device).reshape([1, 1, 1, 1, 1, 2]);
/// let weights = Tensor::<NdArray, 1>::from_floats([2.0], &device).reshape([1, 1, 1, 1, 1]);
/// let out = ms_deform_attn(value, &[[1, 2]], locations, weights).unwrap();
/// assert_eq!(out.into_data().to_vec::<f32>().unwrap(), vec![10.0]);
/// ```
pub fn ms_deform_attn<B: MsDeformAttnBackend>(
    value: Tensor<B, 4>,
    spatial_shapes: &[[usize; 2]],
    sampling_locations: Tensor<B, 6>,
    attention_weights: Tensor<B, 5>,
) -> Result<Tensor<B, 3>, OpError> {
    validate(&value, spatial_shapes, &sampling_locations, &attention_weights)?;
    let [n, _, m, d] = value.dims();
    let lq = sampling_locations.dims()[1];
    let out = B::ms_deform_attn(
        value.into_primitive().tensor(),
        spatial_shapes.to_vec(),
        sampling_locations.into_primitive().tensor(),
        attention_weights.into_primitive().tensor(),
    );
    Ok(crate::reshape::reshape(Tensor::<B, 4>::from_primitive(TensorPrimitive::Float(out)), [n, lq, m * d]))
}

fn validate<B: MsDeformAttnBackend>(
    value: &Tensor<B, 4>,
    spatial_shapes: &[[usize; 2]],
    locations: &Tensor<B, 6>,
    weights: &Tensor<B, 5>,
) -> Result<(), OpError> {
    let [n, s, m, _] = value.dims();
    let keys: usize = spatial_shapes.iter().map(|[h, w]| h * w).sum();
    if spatial_shapes.is_empty() || spatial_shapes.iter().any(|[h, w]| *h == 0 || *w == 0) {
        return Err(OpError::Shape { arg: "spatial_shapes", message: format!("needs at least one level, each non-empty, got {spatial_shapes:?}") });
    }
    if keys != s {
        return Err(OpError::Shape {
            arg: "spatial_shapes",
            message: format!("levels {spatial_shapes:?} hold {keys} keys, `value` has {s}"),
        });
    }
    let [ln, lq, lm, l, p, two] = locations.dims();
    if [ln, lm, l, two] != [n, m, spatial_shapes.len(), 2] {
        return Err(OpError::Shape {
            arg: "sampling_locations",
            message: format!("expected ({n}, Lq, {m}, {}, P, 2), got {:?}", spatial_shapes.len(), locations.dims()),
        });
    }
    if weights.dims() != [n, lq, m, l, p] {
        return Err(OpError::Shape { arg: "attention_weights", message: format!("expected {:?}, got {:?}", [n, lq, m, l, p], weights.dims()) });
    }
    let dtype = value.dtype();
    if !matches!(dtype, DType::F64 | DType::F32 | DType::F16 | DType::BF16) {
        return Err(OpError::DType { arg: "value", message: format!("unsupported dtype {dtype:?}") });
    }
    for (arg, other) in [("sampling_locations", locations.dtype()), ("attention_weights", weights.dtype())] {
        if other != dtype {
            return Err(OpError::DType { arg, message: format!("has dtype {other:?}, `value` has {dtype:?}") });
        }
    }
    let device = value.device();
    for (arg, other) in [("sampling_locations", locations.device()), ("attention_weights", weights.device())] {
        if other != device {
            return Err(OpError::Device { arg, message: format!("is on {other:?}, `value` on {device:?}") });
        }
    }
    Ok(())
}
