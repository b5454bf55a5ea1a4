//! Shared device-side pieces of point_sample: the launch geometry, the sampling options
//! (align_corners, mode, padding), where a point lands on the feature map and which cells
//! (with which weights) it reads.

use cubecl::prelude::*;
use serde::{Deserialize, Serialize};

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

/// grid_sample's `mode`: how a point reads the map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    /// Weighted sum of the four surrounding cells (mmcv's point_sample default).
    #[default]
    Bilinear,
    /// The cell whose centre is nearest (ties to even, as torch's `nearbyint`); no
    /// gradient flows to the points.
    Nearest,
}

/// grid_sample's `padding_mode`: what a point off the map reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Padding {
    /// Zeros outside the map (mmcv's point_sample default).
    #[default]
    Zeros,
    /// The coordinate is clamped to the map's edge pixels.
    Border,
    /// The coordinate is reflected at the map's edges (at pixel centres with
    /// align_corners, at the outer edges without), then clamped.
    Reflection,
}

/// Everything that fixes where a point reads: grid_sample's `align_corners`, `mode` and
/// `padding_mode`. Compile-time in the kernels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(default)]
pub struct Sampling {
    pub align_corners: bool,
    pub mode: Interpolation,
    pub padding: Padding,
}

impl Sampling {
    /// Bilinear with zero padding (mmcv's point_sample without kwargs).
    pub fn bilinear(align_corners: bool) -> Self {
        Sampling { align_corners, ..Default::default() }
    }

    /// All 12 combinations of align_corners x mode x padding, the default first.
    pub fn all() -> Vec<Sampling> {
        let mut out = Vec::with_capacity(12);
        for mode in [Interpolation::Bilinear, Interpolation::Nearest] {
            for padding in [Padding::Zeros, Padding::Border, Padding::Reflection] {
                for align_corners in [false, true] {
                    out.push(Sampling { align_corners, mode, padding });
                }
            }
        }
        out
    }
}

impl std::str::FromStr for Interpolation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "bilinear" => Ok(Interpolation::Bilinear),
            "nearest" => Ok(Interpolation::Nearest),
            _ => Err(format!("mode must be 'bilinear' or 'nearest', got '{s}'")),
        }
    }
}

impl std::str::FromStr for Padding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "zeros" => Ok(Padding::Zeros),
            "border" => Ok(Padding::Border),
            "reflection" => Ok(Padding::Reflection),
            _ => Err(format!("padding_mode must be 'zeros', 'border' or 'reflection', got '{s}'")),
        }
    }
}

/// The footprint of one point on an `H x W` map: four cells for bilinear, one for nearest.
///
/// Corners are named by compass: `nw` = (x0, y0), `ne` = (x0 + 1, y0), `sw` = (x0, y0 + 1),
/// `se` = (x0 + 1, y0 + 1). A corner outside the map reads zero; its `*_in` flag is false and
/// its offset must not be used. Nearest sampling is the `nw` corner alone (fractions 0, the
/// other corners never in), so the kernels' bilinear arithmetic serves both modes.
#[derive(CubeType)]
pub struct Footprint<A: Float> {
    /// Fractional position inside the cell, in [0, 1).
    pub tx: A,
    pub ty: A,
    /// d(pixel x) / d(point x): the map width for align_corners=False, width - 1 otherwise,
    /// times the padding's derivative (0 where clamped, -1 where reflected).
    pub scale_x: A,
    pub scale_y: A,
    pub x0_in: bool,
    pub x1_in: bool,
    pub y0_in: bool,
    pub y1_in: bool,
    /// Rows y0 and y1 and columns x0 and x1 (clamped into the map; meaningful where `y0_in`
    /// / `y1_in` / `x0_in` / `x1_in`).
    pub y0: usize,
    pub y1: usize,
    pub x0: usize,
    pub x1: usize,
    /// Element offsets (in the map's own strides) of column x0 / x1 and row y0 / y1.
    pub off_x0: usize,
    pub off_x1: usize,
    pub off_y0: usize,
    pub off_y1: usize,
}

/// Where a point lands along one axis: the cell (x0) as a float, the fraction past it, the
/// derivative of the pixel position by the point coordinate, and whether the position is
/// usable at all (false for NaN under zero padding, see [`locate_axis`]).
#[derive(CubeType)]
struct Axis<A: Float> {
    cell: A,
    frac: A,
    slope: A,
    valid: bool,
}

/// Locates one normalised coordinate `p` on an axis of `size` pixels, as torch's
/// grid_sample does (`grid_sampler_compute_source_index`): pixel = p * (size - 1) with
/// align_corners, p * size - 0.5 without; then border / reflection padding.
///
/// Non-finite input follows torch's CUDA kernels: under zero padding a NaN position is off the
/// map (infinite ones fail the bounds tests); under border/reflection a position that is
/// NaN after padding reads pixel 0 in the forward pass (`fmax` clamping) and is off the map in
/// the backward passes (`backward`), so it gets and gives no gradient.
#[cube]
fn locate_axis<A: Float>(p: A, size: A, #[comptime] sampling: Sampling, #[comptime] backward: bool) -> Axis<A> {
    let align_corners = comptime!(sampling.align_corners);
    let last = size - A::new(1.0);
    let scale = if align_corners { last } else { size };
    let offset = if align_corners { A::new(0.0) } else { A::new(0.5) };
    // `scaled` is rounded once; `scale_error` is that rounding, exactly (fma), added back to
    // the fraction below: far outside the map (border, reflection) the pixel position is
    // large and its rounding would otherwise reach the bilinear weights (~2e-6 px at 27 px).
    let scaled = p * scale;
    let scale_error = fma(p, scale, -scaled);
    let pixel = scaled - offset;
    let padded = match sampling.padding {
        Padding::Zeros => Padded::<A> { coord: pixel, dir: A::new(1.0) },
        Padding::Border => Padded::<A> { coord: clip::<A>(pixel, last), dir: inside_slope::<A>(pixel, last) },
        Padding::Reflection => reflect::<A>(pixel, size, align_corners),
    };
    let nan = is_nan::<A>(padded.coord);
    let valid = if comptime!(sampling.padding == Padding::Zeros || backward) { !nan } else { true.runtime() };
    // NaN -> pixel 0 (unused when invalid); infinities stay and fail the bounds tests.
    let coord = select(nan, A::new(0.0), padded.coord);
    let (cell, frac) = match sampling.mode {
        Interpolation::Nearest => (round_half_even::<A>(coord), A::new(0.0)),
        Interpolation::Bilinear => {
            let floor = A::floor(coord);
            match sampling.padding {
                // Unpadded positions are recomputed with one rounding (see `fraction`). When
                // the rounded product reached a cell edge the exact one falls short of
                // (13/14 * 7 -> 6.5), that fraction is negative: the point lies in the cell
                // below, which also decides the location gradient. (Exact where fma is fused,
                // as on CUDA; WGSL lets fma round twice, and llvmpipe does.)
                Padding::Zeros => {
                    let raw = fraction::<A>(p, scale, offset, floor);
                    let below = raw < A::new(0.0);
                    let cell = select(below, floor - A::new(1.0), floor);
                    (cell, select(nan, A::new(0.0), select(below, raw + A::new(1.0), raw)))
                }
                // d coord / d pixel is +-1 where not clamped, 0 where clamped (an exact edge,
                // and the only case an infinite or NaN position reaches here).
                _ => (floor, coord - floor + select(padded.dir == A::new(0.0), A::new(0.0), padded.dir * scale_error)),
            }
        }
    };
    Axis::<A> { cell, frac, slope: scale * padded.dir, valid }
}

/// A pixel position after padding, and its derivative by the unpadded position (+1, -1 where
/// mirrored, 0 where clamped).
#[derive(CubeType)]
struct Padded<A: Float> {
    coord: A,
    dir: A,
}

/// torch's `reflect_coordinates` then `clip_coordinates` (with their `_set_grad` slopes) of
/// `pixel` on an axis of `size` pixels.
#[cube]
fn reflect<A: Float>(pixel: A, size: A, #[comptime] align_corners: bool) -> Padded<A> {
    let last = size - A::new(1.0);
    // Mirror lines: pixel centres 0 and size - 1, or outer edges -0.5 and size - 0.5.
    let low = if align_corners { A::new(0.0) } else { A::new(-0.5) };
    let span = if align_corners { last } else { size };
    let shifted = pixel - low;
    let sign = select(shifted < A::new(0.0), A::new(-1.0), A::new(1.0));
    let dist = A::abs(shifted);
    let flips = A::floor(dist / span);
    let extra = dist - flips * span;
    // torch converts `flips` to int, which saturates at 2^31 - 1 (odd).
    let odd = flips >= A::new(2147483648.0) || flips - A::new(2.0) * A::floor(flips * A::new(0.5)) != A::new(0.0);
    // One pixel with align_corners: no room to reflect, torch answers pixel 0.
    let degenerate = span == A::new(0.0);
    let reflected = select(degenerate, A::new(0.0), select(odd, span - extra, extra) + low);
    let mirror = select(degenerate, A::new(0.0), select(odd, -sign, sign));
    Padded::<A> { coord: clip::<A>(reflected, last), dir: mirror * inside_slope::<A>(reflected, last) }
}

/// torch's `clip_coordinates` in the forward kernel: into [0, last], NaN kept (the caller
/// decides what a NaN position means).
#[cube]
fn clip<A: Float>(coord: A, last: A) -> A {
    let clipped = select(coord > A::new(0.0), select(coord < last, coord, last), A::new(0.0));
    select(is_nan::<A>(coord), coord, clipped)
}

/// d clip / d coord: 1 strictly inside, 0 on or past the edges (torch's
/// `clip_coordinates_set_grad` counts the edges as outside).
#[cube]
fn inside_slope<A: Float>(coord: A, last: A) -> A {
    select(coord > A::new(0.0) && coord < last, A::new(1.0), A::new(0.0))
}

/// `nearbyint`: round to nearest, ties to even.
#[cube]
fn round_half_even<A: Float>(x: A) -> A {
    let down = A::floor(x);
    let rest = x - down;
    let down_odd = down - A::new(2.0) * A::floor(down * A::new(0.5)) != A::new(0.0);
    let up = rest > A::new(0.5) || (rest == A::new(0.5) && down_odd);
    select(up, down + A::new(1.0), down)
}

/// Locates point `(px, py)` (normalised to [0, 1], as mmcv's point_sample takes it) on an
/// `h x w` map with strides `stride_h`, `stride_w`, with grid_sample's arithmetic
/// (`grid_sample(input, 2 * points - 1, ...)`). Bounds are tested in floating point, so huge,
/// infinite or NaN coordinates never reach an integer conversion. `backward` selects the
/// backward kernels' treatment of NaN (see [`locate_axis`]).
#[cube]
pub fn footprint<A: Float>(
    px: A,
    py: A,
    h: usize,
    w: usize,
    stride_h: usize,
    stride_w: usize,
    #[comptime] sampling: Sampling,
    #[comptime] backward: bool,
) -> Footprint<A> {
    let w_f = A::cast_from(w);
    let h_f = A::cast_from(h);
    let ax = locate_axis::<A>(px, w_f, sampling, backward);
    let ay = locate_axis::<A>(py, h_f, sampling, backward);
    let valid = ax.valid && ay.valid;
    let last_x = w_f - A::new(1.0);
    let last_y = h_f - A::new(1.0);

    let x0_in = valid && ax.cell >= A::new(0.0) && ax.cell <= last_x;
    let y0_in = valid && ay.cell >= A::new(0.0) && ay.cell <= last_y;
    let bilinear = comptime!(sampling.mode == Interpolation::Bilinear);
    let x1_in = if bilinear { valid && ax.cell >= A::new(-1.0) && ax.cell < last_x } else { false.runtime() };
    let y1_in = if bilinear { valid && ay.cell >= A::new(-1.0) && ay.cell < last_y } else { false.runtime() };

    // Clamped so that an out-of-bounds corner still yields an in-range (unused) offset.
    let x0 = usize::cast_from(clamp(ax.cell, A::new(0.0), last_x));
    let x1 = usize::cast_from(clamp(ax.cell + A::new(1.0), A::new(0.0), last_x));
    let y0 = usize::cast_from(clamp(ay.cell, A::new(0.0), last_y));
    let y1 = usize::cast_from(clamp(ay.cell + A::new(1.0), A::new(0.0), last_y));

    // A point with no corner on the map (outside, infinite or NaN) samples exactly zero:
    // zeroed fractions keep its NaN weights (inf - inf) away from the zero reads.
    let any_in = (x0_in || x1_in) && (y0_in || y1_in);
    Footprint::<A> {
        tx: select(any_in, ax.frac, A::new(0.0)),
        ty: select(any_in, ay.frac, A::new(0.0)),
        scale_x: ax.slope,
        scale_y: ay.slope,
        x0_in,
        x1_in,
        y0_in,
        y1_in,
        y0,
        y1,
        x0,
        x1,
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
    #[comptime] sampling: Sampling,
    #[comptime] backward: bool,
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
        sampling,
        backward,
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
fn read_or_zero<F: Float, A: Float>(map: &Array<F>, index: usize, inside: bool) -> A {
    let mut value = A::new(0.0);
    if inside {
        value = A::cast_from(map[index]);
    }
    value
}

/// The four cells of a [`Footprint`] (zero off the map), as the accumulation type.
#[derive(CubeType)]
pub struct Corners<A: Float> {
    pub nw: A,
    pub ne: A,
    pub sw: A,
    pub se: A,
}

#[cube]
impl<A: Float> Corners<A> {
    /// The bilinear sample.
    pub fn interpolate(&self, fp: &Footprint<A>) -> A {
        let one = A::new(1.0);
        let top = self.nw * (one - fp.tx) + self.ne * fp.tx;
        let bottom = self.sw * (one - fp.tx) + self.se * fp.tx;
        top * (one - fp.ty) + bottom * fp.ty
    }

    /// The sample's derivatives by the pixel position x and y (times `fp.scale_*` for the
    /// derivatives by the point coordinates).
    pub fn gradient(&self, fp: &Footprint<A>) -> (A, A) {
        let one = A::new(1.0);
        let dx = (self.ne - self.nw) * (one - fp.ty) + (self.se - self.sw) * fp.ty;
        let dy = (self.sw - self.nw) * (one - fp.tx) + (self.se - self.ne) * fp.tx;
        (dx, dy)
    }
}

/// Reads the four cells of `fp` from `map`, `base` being the offset of the plane.
#[cube]
pub fn read_corners<F: Float, A: Float>(map: &Array<F>, base: usize, fp: &Footprint<A>) -> Corners<A> {
    Corners::<A> {
        nw: read_or_zero::<F, A>(map, base + fp.off_y0 + fp.off_x0, fp.y0_in && fp.x0_in),
        ne: read_or_zero::<F, A>(map, base + fp.off_y0 + fp.off_x1, fp.y0_in && fp.x1_in),
        sw: read_or_zero::<F, A>(map, base + fp.off_y1 + fp.off_x0, fp.y1_in && fp.x0_in),
        se: read_or_zero::<F, A>(map, base + fp.off_y1 + fp.off_x1, fp.y1_in && fp.x1_in),
    }
}

/// Adds `grad` times each corner's bilinear weight into the cells of `fp` that are on the map
/// (float atomics), `base` being the offset of the plane in `buffer`.
#[cube]
pub fn scatter_corners<A: Float>(buffer: &mut Array<Atomic<A>>, base: usize, fp: &Footprint<A>, grad: A) {
    let one = A::new(1.0);
    if fp.y0_in && fp.x0_in {
        buffer[base + fp.off_y0 + fp.off_x0].fetch_add(grad * (one - fp.tx) * (one - fp.ty));
    }
    if fp.y0_in && fp.x1_in {
        buffer[base + fp.off_y0 + fp.off_x1].fetch_add(grad * fp.tx * (one - fp.ty));
    }
    if fp.y1_in && fp.x0_in {
        buffer[base + fp.off_y1 + fp.off_x0].fetch_add(grad * (one - fp.tx) * fp.ty);
    }
    if fp.y1_in && fp.x1_in {
        buffer[base + fp.off_y1 + fp.off_x1].fetch_add(grad * fp.tx * fp.ty);
    }
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
