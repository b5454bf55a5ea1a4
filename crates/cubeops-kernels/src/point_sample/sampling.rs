//! Shared device-side pieces of point_sample: the launch geometry, where a point lands on
//! the feature map and which four cells (with which weights) it reads.

use cubecl::prelude::*;

/// Sizes and strides (in elements) of a point_sample launch, all `u32` kernel scalars.
///
/// Kernels take plain `Array`s plus this struct rather than cubecl `Tensor`s: the kernel
/// parameters are then only buffer pointers and one by-value info block (no per-launch
/// device buffer of tensor metadata), which the zero-copy launcher fills for foreign memory.
#[derive(CubeLaunch, CubeType)]
pub struct GeometryArgs {
    pub n: u32,
    pub channels: u32,
    pub height: u32,
    pub width: u32,
    pub num_points: u32,
    /// Strides of the `(N, C, H, W)` map: the input, or grad_input in the scatter kernel.
    pub map_n: u32,
    pub map_c: u32,
    pub map_h: u32,
    pub map_w: u32,
    /// Strides of the `(N, P, 2)` points.
    pub points_n: u32,
    pub points_p: u32,
    pub points_k: u32,
    /// Strides of the `(N, C, P)` output, or of grad_output in the backward kernels.
    pub out_n: u32,
    pub out_c: u32,
    pub out_p: u32,
}

/// The bilinear footprint of one point on an `H x W` map.
///
/// Corners are named by compass: `nw` = (x0, y0), `ne` = (x0 + 1, y0), `sw` = (x0, y0 + 1),
/// `se` = (x0 + 1, y0 + 1). A corner outside the map reads zero (grid_sample's
/// `padding_mode='zeros'`); its `*_in` flag is false and its offset must not be used.
#[derive(CubeType)]
pub struct Footprint<A: Float> {
    /// Fractional position inside the cell, in [0, 1).
    pub tx: A,
    pub ty: A,
    /// d(pixel x) / d(point x): the map width for align_corners=False, width - 1 otherwise.
    pub scale_x: A,
    pub scale_y: A,
    pub x0_in: bool,
    pub x1_in: bool,
    pub y0_in: bool,
    pub y1_in: bool,
    /// Element offsets (in the map's own strides) of column x0 / x1 and row y0 / y1.
    pub off_x0: usize,
    pub off_x1: usize,
    pub off_y0: usize,
    pub off_y1: usize,
}

/// Locates point `(px, py)` (normalised to [0, 1], as mmcv's point_sample takes it) on an
/// `h x w` map with strides `stride_h`, `stride_w`.
///
/// Same arithmetic as `grid_sample(input, 2 * points - 1, align_corners=...)`:
/// pixel = p * (size - 1) with align_corners, p * size - 0.5 without.
/// Bounds are tested in floating point, so huge, infinite or NaN coordinates never reach an
/// integer conversion; they sample zero and get zero gradients, as in torch's CUDA kernel.
#[cube]
pub fn footprint<A: Float>(
    px: A,
    py: A,
    h: usize,
    w: usize,
    stride_h: usize,
    stride_w: usize,
    #[comptime] align_corners: bool,
) -> Footprint<A> {
    let w_f = A::cast_from(w);
    let h_f = A::cast_from(h);
    let (scale_x, scale_y) = if align_corners {
        (w_f - A::new(1.0), h_f - A::new(1.0))
    } else {
        (w_f, h_f)
    };
    let offset = if align_corners { A::new(0.0) } else { A::new(0.5) };
    let ix = px * scale_x - offset;
    let iy = py * scale_y - offset;

    // A NaN coordinate puts the point off the map, as torch's CUDA kernel does. The test is
    // explicit: WGSL lets compilers assume no NaN, so comparisons alone are not enough.
    let finite = !is_nan::<A>(ix) && !is_nan::<A>(iy);
    let x0f = select(finite, ix.floor(), A::new(0.0));
    let y0f = select(finite, iy.floor(), A::new(0.0));
    let last_x = w_f - A::new(1.0);
    let last_y = h_f - A::new(1.0);

    let x0_in = finite && x0f >= A::new(0.0) && x0f <= last_x;
    let x1_in = finite && x0f >= A::new(-1.0) && x0f < last_x;
    let y0_in = finite && y0f >= A::new(0.0) && y0f <= last_y;
    let y1_in = finite && y0f >= A::new(-1.0) && y0f < last_y;

    // Clamped so that an out-of-bounds corner still yields an in-range (unused) offset.
    let x0 = usize::cast_from(clamp(x0f, A::new(0.0), last_x));
    let x1 = usize::cast_from(clamp(x0f + A::new(1.0), A::new(0.0), last_x));
    let y0 = usize::cast_from(clamp(y0f, A::new(0.0), last_y));
    let y1 = usize::cast_from(clamp(y0f + A::new(1.0), A::new(0.0), last_y));

    // A point with no corner on the map (outside, infinite or NaN) samples exactly zero:
    // zeroed fractions keep its NaN weights (inf - inf) away from the zero reads.
    let any_in = (x0_in || x1_in) && (y0_in || y1_in);
    Footprint::<A> {
        tx: select(any_in, fraction::<A>(px, scale_x, offset, x0f), A::new(0.0)),
        ty: select(any_in, fraction::<A>(py, scale_y, offset, y0f), A::new(0.0)),
        scale_x,
        scale_y,
        x0_in,
        x1_in,
        y0_in,
        y1_in,
        off_x0: x0 * stride_w,
        off_x1: x1 * stride_w,
        off_y0: y0 * stride_h,
        off_y1: y1 * stride_h,
    }
}

/// Reads point `(n, p)` and locates it on the map described by `geo`.
#[cube]
pub fn locate_point<F: Float, A: Float>(
    points: &Array<F>,
    geo: &GeometryArgs,
    n: usize,
    p: usize,
    #[comptime] align_corners: bool,
) -> Footprint<A> {
    let at = n * geo.points_n as usize + p * geo.points_p as usize;
    let px = A::cast_from(points[at]);
    let py = A::cast_from(points[at + geo.points_k as usize]);
    footprint::<A>(
        px,
        py,
        geo.height as usize,
        geo.width as usize,
        geo.map_h as usize,
        geo.map_w as usize,
        align_corners,
    )
}

/// `p * scale - offset - cell` with one rounding (fma). `ix - cell` would inherit the
/// rounding of the pixel position `ix`, which grows with the map: ~6e-6 px on a 100-px map
/// in f32, against ~6e-8 here.
#[cube]
fn fraction<A: Float>(p: A, scale: A, offset: A, cell: A) -> A {
    fma(p, scale, -(offset + cell))
}

/// NaN test on the bits: WGSL lets shader compilers assume no float is NaN (`x != x` was
/// folded to false on Mesa's llvmpipe). A NaN f64 stays NaN when narrowed to f32.
#[cube]
fn is_nan<A: Float>(x: A) -> bool {
    let bits = u32::reinterpret(f32::cast_from(x));
    (bits & 0x7fff_ffffu32) > 0x7f80_0000u32
}

/// Reads one cell as the accumulation type, zero when `inside` is false.
#[cube]
pub fn read_or_zero<F: Float, A: Float>(map: &Array<F>, index: usize, inside: bool) -> A {
    let mut value = A::new(0.0);
    if inside {
        value = A::cast_from(map[index]);
    }
    value
}

/// Splits a flat output position into (n, c, p). `channels_fastest` follows the input's
/// memory order: channels-last input is read along C by neighbouring threads.
#[cube]
pub fn split_position(
    pos: usize,
    channels: usize,
    num_points: usize,
    #[comptime] channels_fastest: bool,
) -> (usize, usize, usize) {
    if channels_fastest {
        let c = pos % channels;
        let rest = pos / channels;
        (rest / num_points, c, rest % num_points)
    } else {
        let p = pos % num_points;
        let rest = pos / num_points;
        (rest / channels, rest % channels, p)
    }
}
