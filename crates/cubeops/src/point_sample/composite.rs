//! point_sample as a composition of burn tensor ops: the path of every backend without
//! fused kernels (NdArray, and any backend that opts in with an empty impl).

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Bool, DType, IndexingUpdateOp, Int, Shape, Tensor, TensorMetadata, TensorPrimitive};

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

/// The four taps of every point, plus d(pixel)/d(point) for x and y.
/// Positions and weights are computed in f64 and the weights cast back: in f32 the pixel
/// position alone loses ~6e-6 px on a 100-px map (the fused kernels use an fma instead).
fn taps<B: Backend>(points: Tensor<B, 3>, height: usize, width: usize, align_corners: bool) -> (Vec<Tap<B>>, f64, f64) {
    let [n, p, _] = points.dims();
    let dtype = points.dtype();
    let points = points.cast(DType::F64);
    let (scale_x, scale_y, offset) = if align_corners {
        (width as f64 - 1.0, height as f64 - 1.0, 0.0)
    } else {
        (width as f64, height as f64, 0.5)
    };
    let axis = |k: usize, scale: f64| {
        let pixel = reshape(points.clone().narrow(2, k, 1), [n, 1, p]) * scale - offset;
        let nan = pixel.clone().is_nan();
        // A NaN position is off the map (torch's CUDA kernel); cell 0 keeps indices valid.
        let cell = pixel.clone().floor().mask_fill(nan.clone(), 0.0);
        let frac = pixel - cell.clone();
        (cell, frac, nan)
    };
    let (x0, tx, nan_x) = axis(0, scale_x);
    let (y0, ty, nan_y) = axis(1, scale_y);
    let finite = nan_x.bool_or(nan_y).bool_not();

    let mut out = Vec::with_capacity(4);
    for (dy, wy, sy) in [(0.0, tx.ones_like() - ty.clone(), -1.0), (1.0, ty.clone(), 1.0)] {
        for (dx, wx, sx) in [(0.0, tx.ones_like() - tx.clone(), -1.0), (1.0, tx.clone(), 1.0)] {
            let cx = x0.clone() + dx;
            let cy = y0.clone() + dy;
            let inside = finite
                .clone()
                .bool_and(cx.clone().greater_equal_elem(0.0))
                .bool_and(cx.clone().lower_equal_elem(width as f64 - 1.0))
                .bool_and(cy.clone().greater_equal_elem(0.0))
                .bool_and(cy.clone().lower_equal_elem(height as f64 - 1.0));
            let index = cy.clamp(0.0, height as f64 - 1.0) * width as f64 + cx.clamp(0.0, width as f64 - 1.0);
            let outside = inside.bool_not();
            // Masking also clears the NaN weights of non-finite coordinates.
            out.push(Tap {
                index: index.int(),
                weight: (wx.clone() * wy.clone()).mask_fill(outside.clone(), 0.0).cast(dtype),
                dw_dx: (wy.clone() * sx).mask_fill(outside.clone(), 0.0).cast(dtype),
                dw_dy: (wx * sy).mask_fill(outside.clone(), 0.0).cast(dtype),
                outside,
            });
        }
    }
    (out, scale_x, scale_y)
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

pub(crate) fn forward<B: Backend>(input: FloatTensor<B>, points: FloatTensor<B>, align_corners: bool) -> FloatTensor<B> {
    let ([n, c, _, _], p) = problem::<B>(&input, &points);
    if n * c * p == 0 {
        return zeros::<B, 3>(&input, [n, c, p]);
    }
    let (flat, [_, _, h, w]) = flatten_map::<B>(input);
    let (taps, _, _) = taps(wrap(points), h, w, align_corners);
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
    align_corners: bool,
) -> FloatTensor<B> {
    let ([n, c, h, w], p) = problem::<B>(&input, &points);
    if n * c * p == 0 {
        return zeros::<B, 4>(&input, [n, c, h, w]);
    }
    let (flat, _) = flatten_map::<B>(input);
    let grad: Tensor<B, 3> = wrap(grad_output);
    let (taps, _, _) = taps(wrap(points), h, w, align_corners);
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
    align_corners: bool,
) -> FloatTensor<B> {
    let ([n, c, h, w], p) = problem::<B>(&input, &points);
    if n * c * p == 0 {
        return zeros::<B, 3>(&input, [n, p, 2]);
    }
    let (flat, _) = flatten_map::<B>(input);
    let grad: Tensor<B, 3> = wrap(grad_output);
    let (taps, scale_x, scale_y) = taps(wrap(points), h, w, align_corners);
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
