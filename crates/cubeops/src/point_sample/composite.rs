//! point_sample as a composition of burn tensor ops: the path of every backend without
//! fused kernels (NdArray, and any backend that opts in with an empty impl).

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Bool, DType, IndexingUpdateOp, Int, Shape, Tensor, TensorMetadata, TensorPrimitive};

use super::{Interpolation, Padding, Sampling};
use crate::reshape::reshape;

fn wrap<B: Backend, const D: usize>(t: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

fn unwrap<B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<B> {
    t.into_primitive().tensor()
}

/// One bilinear corner for every point, each tensor `(N, 1, P)`.
struct Tap<B: Backend> {
    /// Flat `y * W + x` cell index, clamped into the map.
    index: Tensor<B, 3, Int>,
    outside: Tensor<B, 3, Bool>,
    /// Bilinear weight and its derivatives along pixel x and y; zero outside the map.
    weight: Tensor<B, 3>,
    dw_dx: Tensor<B, 3>,
    dw_dy: Tensor<B, 3>,
}

/// Where every point lands along one axis, `(N, 1, P)` f64 tensors: the cell, the fraction
/// past it, d(pixel)/d(point), and which positions read nothing (`None`: all read).
struct AxisPosition<B: Backend> {
    cell: Tensor<B, 3>,
    frac: Tensor<B, 3>,
    slope: Tensor<B, 3>,
    invalid: Option<Tensor<B, 3, Bool>>,
}

/// One coordinate axis of every point, with torch's padding and its CUDA conventions for
/// non-finite coordinates (see the reference's footprint): `backward` asks for the positions
/// the gradients use.
fn locate_axis<B: Backend>(p: Tensor<B, 3>, size: usize, sampling: Sampling, backward: bool) -> AxisPosition<B> {
    let (size, align) = (size as f64, sampling.align_corners);
    let last = size - 1.0;
    let (scale, offset) = if align { (last, 0.0) } else { (size, 0.5) };
    let pixel = p * scale - offset;
    let ones = pixel.ones_like();
    // Positions that are NaN after padding, and the padded positions with those set to 0.
    let (nan, coord, slope) = match sampling.padding {
        Padding::Zeros => {
            let nan = pixel.clone().is_nan();
            (Some(nan.clone()), pixel.mask_fill(nan, 0.0), ones * scale)
        }
        Padding::Border => {
            let nan = pixel.clone().is_nan();
            let pixel = pixel.mask_fill(nan.clone(), 0.0);
            (Some(nan), pixel.clone().clamp(0.0, last), inside_slope(pixel, last) * scale)
        }
        Padding::Reflection => {
            let (low, span) = if align { (0.0, last) } else { (-0.5, size) };
            if span == 0.0 {
                // One pixel with align_corners: torch answers pixel 0, slope 0, even for NaN.
                (None, ones.zeros_like(), ones.zeros_like())
            } else {
                // Infinite positions reflect to NaN (inf mod span).
                let bad = pixel.clone().is_finite().bool_not();
                let shifted = pixel.mask_fill(bad.clone(), 0.0) - low;
                let sign = ones.clone().mask_fill(shifted.clone().lower_elem(0.0), -1.0);
                let dist = shifted.abs();
                let flips = (dist.clone() / span).floor();
                let extra = dist - flips.clone() * span;
                // torch's int conversion of the flip count saturates at 2^31 - 1 (odd).
                let odd = (flips.clone() - (flips.clone() * 0.5).floor() * 2.0)
                    .not_equal_elem(0.0)
                    .bool_or(flips.greater_equal_elem(2147483648.0));
                let reflected = extra.clone().mask_where(odd.clone(), extra.neg() + span) + low;
                let mirror = sign.clone().mask_where(odd, sign.neg());
                let slope = mirror * inside_slope(reflected.clone(), last) * scale;
                (Some(bad), reflected.clamp(0.0, last), slope)
            }
        }
    };
    let invalid = if sampling.padding == Padding::Zeros || backward { nan } else { None };
    let (cell, frac) = match sampling.mode {
        Interpolation::Nearest => (coord.clone().round(), coord.zeros_like()),
        Interpolation::Bilinear => {
            let cell = coord.clone().floor();
            (cell.clone(), coord - cell)
        }
    };
    AxisPosition { cell, frac, slope, invalid }
}

/// d clip / d position: 1 strictly inside `(0, last)`, else 0 (torch counts the edges out).
fn inside_slope<B: Backend>(pixel: Tensor<B, 3>, last: f64) -> Tensor<B, 3> {
    let outside = pixel.clone().lower_equal_elem(0.0).bool_or(pixel.clone().greater_equal_elem(last));
    pixel.ones_like().mask_fill(outside, 0.0)
}

/// The taps of every point (four for bilinear, one for nearest), plus d(pixel)/d(point) for
/// x and y. Positions and weights are computed in f64 and the weights cast back: in f32 the
/// pixel position alone loses ~6e-6 px on a 100-px map (the fused kernels use an fma).
fn taps<B: Backend>(
    points: Tensor<B, 3>,
    height: usize,
    width: usize,
    sampling: Sampling,
    backward: bool,
) -> (Vec<Tap<B>>, Tensor<B, 3>, Tensor<B, 3>) {
    let [n, p, _] = points.dims();
    let dtype = points.dtype();
    let points = points.cast(DType::F64);
    let axis = |k: usize, size: usize| locate_axis(reshape(points.clone().narrow(2, k, 1), [n, 1, p]), size, sampling, backward);
    let (ax, ay) = (axis(0, width), axis(1, height));
    // Points that read nothing: either axis invalid.
    let invalid = match (ax.invalid.clone(), ay.invalid.clone()) {
        (Some(a), Some(b)) => Some(a.bool_or(b)),
        (a, b) => a.or(b),
    };
    let (tx, ty) = (ax.frac.clone(), ay.frac.clone());
    let nearest = sampling.mode == Interpolation::Nearest;
    let corners: Vec<(f64, f64, Tensor<B, 3>, f64, Tensor<B, 3>, f64)> = if nearest {
        vec![(0.0, 0.0, tx.ones_like(), 0.0, tx.ones_like(), 0.0)]
    } else {
        let mut out = Vec::with_capacity(4);
        for (dy, wy, sy) in [(0.0, ty.ones_like() - ty.clone(), -1.0), (1.0, ty.clone(), 1.0)] {
            for (dx, wx, sx) in [(0.0, tx.ones_like() - tx.clone(), -1.0), (1.0, tx.clone(), 1.0)] {
                out.push((dx, dy, wx, sx, wy.clone(), sy));
            }
        }
        out
    };
    let mut out = Vec::with_capacity(corners.len());
    for (dx, dy, wx, sx, wy, sy) in corners {
        let cx = ax.cell.clone() + dx;
        let cy = ay.cell.clone() + dy;
        let mut inside = cx
            .clone()
            .greater_equal_elem(0.0)
            .bool_and(cx.clone().lower_equal_elem(width as f64 - 1.0))
            .bool_and(cy.clone().greater_equal_elem(0.0))
            .bool_and(cy.clone().lower_equal_elem(height as f64 - 1.0));
        if let Some(invalid) = &invalid {
            inside = inside.bool_and(invalid.clone().bool_not());
        }
        let index = cy.clamp(0.0, height as f64 - 1.0) * width as f64 + cx.clamp(0.0, width as f64 - 1.0);
        let outside = inside.bool_not();
        // Masking also clears the NaN weights of non-finite coordinates.
        out.push(Tap {
            index: index.int(),
            weight: (wx.clone() * wy.clone()).mask_fill(outside.clone(), 0.0).cast(dtype),
            dw_dx: (wy * sx).mask_fill(outside.clone(), 0.0).cast(dtype),
            dw_dy: (wx * sy).mask_fill(outside.clone(), 0.0).cast(dtype),
            outside,
        });
    }
    (out, ax.slope.cast(dtype), ay.slope.cast(dtype))
}

/// The `(N, C, P)` values of one tap's cells, zero where the cell is outside the map.
fn gather_tap<B: Backend>(flat_input: &Tensor<B, 3>, tap: &Tap<B>, channels: usize) -> Tensor<B, 3> {
    let [n, _, p] = tap.index.dims();
    let index = tap.index.clone().expand([n, channels, p]);
    let outside = tap.outside.clone().expand([n, channels, p]);
    flat_input.clone().gather(2, index).mask_fill(outside, 0.0)
}

/// `[N, C, H, W]` and `P` of a call.
fn problem<B: Backend>(input: &FloatTensor<B>, points: &FloatTensor<B>) -> ([usize; 4], usize) {
    let s = input.shape();
    ([s[0], s[1], s[2], s[3]], points.shape()[1])
}

/// Burn's shape helpers reject zero-sized dimensions, so empty problems (no points, no
/// batch, no channels) are answered directly: all their results are zeros.
fn zeros<B: Backend, const D: usize>(like: &FloatTensor<B>, dims: [usize; D]) -> FloatTensor<B> {
    B::float_zeros(Shape::new(dims), &B::float_device(like), like.dtype().into())
}

fn flatten_map<B: Backend>(input: FloatTensor<B>) -> (Tensor<B, 3>, [usize; 4]) {
    let input: Tensor<B, 4> = wrap(input);
    let dims = input.dims();
    (reshape(input, [dims[0], dims[1], dims[2] * dims[3]]), dims)
}

pub(crate) fn forward<B: Backend>(input: FloatTensor<B>, points: FloatTensor<B>, sampling: Sampling) -> FloatTensor<B> {
    let ([n, c, _, _], p) = problem::<B>(&input, &points);
    if n * c * p == 0 {
        return zeros::<B, 3>(&input, [n, c, p]);
    }
    let (flat, [_, _, h, w]) = flatten_map::<B>(input);
    let (taps, _, _) = taps(wrap(points), h, w, sampling, false);
    let mut out = Tensor::<B, 3>::zeros([n, c, p], (&flat.device(), flat.dtype()));
    for tap in &taps {
        out = out + gather_tap(&flat, tap, c) * tap.weight.clone();
    }
    unwrap(out)
}

pub(crate) fn grad_input<B: Backend>(
    grad_output: FloatTensor<B>,
    input: FloatTensor<B>,
    points: FloatTensor<B>,
    sampling: Sampling,
) -> FloatTensor<B> {
    let ([n, c, h, w], p) = problem::<B>(&input, &points);
    if n * c * p == 0 {
        return zeros::<B, 4>(&input, [n, c, h, w]);
    }
    let (flat, _) = flatten_map::<B>(input);
    let grad: Tensor<B, 3> = wrap(grad_output);
    let (taps, _, _) = taps(wrap(points), h, w, sampling, true);
    let mut acc = flat.zeros_like();
    for tap in &taps {
        let contribution = grad.clone() * tap.weight.clone();
        acc = acc.scatter(2, tap.index.clone().expand([n, c, p]), contribution, IndexingUpdateOp::Add);
    }
    unwrap(reshape(acc, [n, c, h, w]))
}

pub(crate) fn grad_points<B: Backend>(
    grad_output: FloatTensor<B>,
    input: FloatTensor<B>,
    points: FloatTensor<B>,
    sampling: Sampling,
) -> FloatTensor<B> {
    let ([n, c, h, w], p) = problem::<B>(&input, &points);
    if n * c * p == 0 || sampling.mode == Interpolation::Nearest {
        return zeros::<B, 3>(&input, [n, p, 2]);
    }
    let (flat, _) = flatten_map::<B>(input);
    let grad: Tensor<B, 3> = wrap(grad_output);
    let (taps, scale_x, scale_y) = taps(wrap(points), h, w, sampling, true);
    let mut gx = Tensor::<B, 3>::zeros([n, 1, p], (&flat.device(), flat.dtype()));
    let mut gy = gx.clone();
    for tap in &taps {
        let weighted = (gather_tap(&flat, tap, c) * grad.clone()).sum_dim(1);
        gx = gx + weighted.clone() * tap.dw_dx.clone();
        gy = gy + weighted * tap.dw_dy.clone();
    }
    let gx = reshape(gx * scale_x, [n, p, 1]);
    let gy = reshape(gy * scale_y, [n, p, 1]);
    unwrap(Tensor::cat(vec![gx, gy], 2))
}
