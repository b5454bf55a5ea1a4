//! Bad input gives an `OpError` naming the argument, never a panic.

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{DType, Tensor};
use cubeops::point_sample::{point_sample, InputLayout, Interpolation, Padding, PointSampleOptions};
use cubeops::OpError;

type B = Autodiff<NdArray>;

fn zeros<const D: usize>(dims: [usize; D], dtype: DType) -> Tensor<B, D> {
    Tensor::zeros(dims, (&Default::default(), dtype))
}

fn err<const D: usize>(input: Tensor<B, 4>, points: Tensor<B, D>) -> OpError {
    point_sample(input, points, PointSampleOptions::default()).expect_err("bad input must be rejected")
}

#[test]
fn points_of_wrong_rank() {
    let e = err(zeros([1, 2, 3, 3], DType::F32), zeros([1, 4], DType::F32));
    assert_eq!(e.arg(), Some("points"));
    assert!(matches!(e, OpError::Rank { got: 2, .. }), "{e}");
    let e = err(zeros([1, 2, 3, 3], DType::F32), zeros([1, 4, 1, 1, 2], DType::F32));
    assert!(matches!(e, OpError::Rank { got: 5, .. }), "{e}");
    assert!(e.to_string().contains("`points` must have 3 (N, P, 2) or 4 (N, Hp, Wp, 2) dimensions, got 5"), "{e}");
}

#[test]
fn points_last_dim_not_two() {
    let e = err(zeros([1, 2, 3, 3], DType::F32), zeros([1, 4, 3], DType::F32));
    assert_eq!(e.arg(), Some("points"));
    assert!(e.to_string().contains("last dimension must be 2"), "{e}");
}

#[test]
fn batch_mismatch() {
    let e = err(zeros([2, 2, 3, 3], DType::F32), zeros([3, 4, 2], DType::F32));
    assert_eq!(e.arg(), Some("points"));
    assert!(e.to_string().contains("batch size 3 does not match input's 2"), "{e}");
}

#[test]
fn empty_map() {
    let e = err(zeros([1, 2, 0, 3], DType::F32), zeros([1, 4, 2], DType::F32));
    assert_eq!(e.arg(), Some("input"));
    assert!(e.to_string().contains("H=0, W=3"), "{e}");
}

#[test]
fn dtype_mismatch() {
    let e = err(zeros([1, 2, 3, 3], DType::F32), zeros([1, 4, 2], DType::F64));
    assert_eq!(e.arg(), Some("points"));
    assert!(matches!(e, OpError::DType { .. }), "{e}");
    assert!(e.to_string().contains("F64 does not match input's F32"), "{e}");
}

#[test]
fn nhwc_layout_is_validated_after_permutation() {
    // (N, H, W, C) = (1, 3, 5, 2): fine with Nhwc, and the output is (N, C, P).
    let opts = PointSampleOptions { layout: InputLayout::Nhwc, ..Default::default() };
    let out = point_sample(zeros([1, 3, 5, 2], DType::F32), zeros([1, 7, 2], DType::F32), opts).unwrap();
    assert_eq!(out.dims(), [1, 2, 7]);
    // Batch checked on N, whichever layout.
    let e = point_sample(zeros([1, 3, 5, 2], DType::F32), zeros([2, 7, 2], DType::F32), opts).unwrap_err();
    assert!(e.to_string().contains("batch size 2 does not match input's 1"), "{e}");
}

#[test]
fn options_round_trip_through_serde() {
    let opts = PointSampleOptions {
        align_corners: true,
        layout: InputLayout::Nhwc,
        mode: Interpolation::Nearest,
        padding_mode: Padding::Reflection,
        deterministic: true,
    };
    let json = serde_json::to_string(&opts).unwrap();
    assert_eq!(
        json,
        r#"{"align_corners":true,"mode":"nearest","padding_mode":"reflection","layout":"nhwc","deterministic":true}"#
    );
    assert_eq!(serde_json::from_str::<PointSampleOptions>(&json).unwrap(), opts);
    assert_eq!(serde_json::from_str::<PointSampleOptions>("{}").unwrap(), PointSampleOptions::default());
}
