//! The public entry point: validation, shape handling, dispatch.

use burn::tensor::{DType, Tensor};

use super::{InputLayout, PointSampleBackend, PointSampleOptions};
use crate::reshape::reshape;
use crate::OpError;

/// mmcv's `point_sample`: samples `input` at `points`, as
/// `grid_sample(input, 2 * points - 1, mode, padding_mode, align_corners)` does (defaults:
/// bilinear, zeros outside the map).
///
/// - `input`: `(N, C, H, W)`, or `(N, H, W, C)` with [`InputLayout::Nhwc`].
/// - `points`: `(N, P, 2)` giving `(N, C, P)`, or `(N, Hp, Wp, 2)` giving `(N, C, Hp, Wp)`;
///   `(x, y)` normalised to [0, 1].
///
/// Under `Autodiff<B>` gradients flow to both `input` and `points` (nearest sampling gives the
/// points a zero gradient, as torch does); `options.deterministic` makes the gradient to the
/// input the same bit for bit on every run.
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use cubeops::point_sample::{point_sample, PointSampleOptions};
///
/// let device = Default::default();
/// let input = Tensor::<NdArray, 1>::from_floats([1.0, 2.0, 3.0, 4.0], &device).reshape([1, 1, 2, 2]);
/// let points = Tensor::<NdArray, 1>::from_floats([0.5, 0.5], &device).reshape([1, 1, 2]);
/// let out = point_sample(input, points, PointSampleOptions::default()).unwrap();
/// assert_eq!(out.into_data().to_vec::<f32>().unwrap(), vec![2.5]);
///
/// // grid_sample's other modes: the nearest cell, coordinates clamped to the border.
/// use cubeops::point_sample::{Interpolation, Padding};
/// let input = Tensor::<NdArray, 1>::from_floats([1.0, 2.0, 3.0, 4.0], &device).reshape([1, 1, 2, 2]);
/// let points = Tensor::<NdArray, 1>::from_floats([1.7, 0.2], &device).reshape([1, 1, 2]);
/// let opts = PointSampleOptions { mode: Interpolation::Nearest, padding_mode: Padding::Border, ..Default::default() };
/// let out = point_sample(input, points, opts).unwrap();
/// assert_eq!(out.into_data().to_vec::<f32>().unwrap(), vec![2.0]);
/// ```
pub fn point_sample<B: PointSampleBackend, const D: usize>(
    input: Tensor<B, 4>,
    points: Tensor<B, D>,
    options: PointSampleOptions,
) -> Result<Tensor<B, D>, OpError> {
    let input = match options.layout {
        InputLayout::Nchw => input,
        // A view: the kernels read channels-last memory through its strides.
        InputLayout::Nhwc => input.permute([0, 3, 1, 2]),
    };
    let [n, c, _, _] = input.dims();
    let point_dims = points.dims();
    validate(&input, &points)?;

    let num_points = point_dims[1..D - 1].iter().product();
    let points = reshape(points, [n, num_points, 2]);
    let output = B::point_sample(
        input.into_primitive().tensor(),
        points.into_primitive().tensor(),
        options.sampling(),
        options.deterministic,
    );
    let output = Tensor::<B, 3>::from_primitive(burn::tensor::TensorPrimitive::Float(output));
    let mut out_dims = [0; D];
    out_dims[0] = n;
    out_dims[1] = c;
    out_dims[2..].copy_from_slice(&point_dims[1..D - 1]);
    Ok(reshape(output, out_dims))
}

fn validate<B: PointSampleBackend, const D: usize>(input: &Tensor<B, 4>, points: &Tensor<B, D>) -> Result<(), OpError> {
    let [n, _, h, w] = input.dims();
    let point_dims = points.dims();
    if D != 3 && D != 4 {
        return Err(OpError::Rank { arg: "points", expected: "3 (N, P, 2) or 4 (N, Hp, Wp, 2)".into(), got: D });
    }
    if h == 0 || w == 0 {
        return Err(OpError::Shape {
            arg: "input",
            message: format!("the spatial dimensions must be non-empty, got H={h}, W={w}"),
        });
    }
    if point_dims[D - 1] != 2 {
        return Err(OpError::Shape {
            arg: "points",
            message: format!("the last dimension must be 2 (x, y), got {}", point_dims[D - 1]),
        });
    }
    if point_dims[0] != n {
        return Err(OpError::Shape {
            arg: "points",
            message: format!("batch size {} does not match input's {n}", point_dims[0]),
        });
    }
    let (in_dtype, pt_dtype) = (input.dtype(), points.dtype());
    if !matches!(in_dtype, DType::F64 | DType::F32 | DType::F16 | DType::BF16) {
        return Err(OpError::DType { arg: "input", message: format!("unsupported dtype {in_dtype:?}") });
    }
    if in_dtype != pt_dtype {
        return Err(OpError::DType {
            arg: "points",
            message: format!("dtype {pt_dtype:?} does not match input's {in_dtype:?}"),
        });
    }
    if input.device() != points.device() {
        return Err(OpError::Device {
            arg: "points",
            message: format!("on device {:?}, input on {:?}", points.device(), input.device()),
        });
    }
    Ok(())
}
