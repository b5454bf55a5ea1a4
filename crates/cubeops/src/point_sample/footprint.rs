//! Where a point lands on a map, in float64: shared by the reference and the CPU kernels.

use cubeops_kernels::point_sample::{Interpolation, Padding, Sampling};

/// One in-bounds corner of a footprint: its cell, its weight, and d(weight) per pixel
/// along x and y.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Corner {
    pub x: usize,
    pub y: usize,
    pub weight: f64,
    pub dw_dx: f64,
    pub dw_dy: f64,
}

/// The in-bounds corners of a point (at most four; one for nearest) and d(pixel)/d(point)
/// per axis, padding included.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Footprint {
    corners: [Corner; 4],
    len: usize,
    pub scale_x: f64,
    pub scale_y: f64,
}

/// Where a point lands along one axis; `valid` is false for a position that reads nothing.
struct Axis {
    cell: f64,
    frac: f64,
    slope: f64,
    valid: bool,
}

impl Footprint {
    /// Locates point `(x, y)` (normalised to [0, 1]) on a `height x width` map, as
    /// `grid_sample(input, 2 * points - 1, ...)` does, with torch's CUDA conventions for
    /// non-finite coordinates: see [`locate_axis`]. `backward` asks for the footprint the
    /// gradients use.
    #[inline]
    pub fn locate(x: f64, y: f64, height: usize, width: usize, sampling: Sampling, backward: bool) -> Self {
        let ax = locate_axis(x, width, sampling, backward);
        let ay = locate_axis(y, height, sampling, backward);
        let mut fp = Footprint { scale_x: ax.slope, scale_y: ay.slope, ..Default::default() };
        if !(ax.valid && ay.valid) {
            return fp;
        }
        let inside = |cx: f64, cy: f64| cx >= 0.0 && cx <= width as f64 - 1.0 && cy >= 0.0 && cy <= height as f64 - 1.0;
        if sampling.mode == Interpolation::Nearest {
            if inside(ax.cell, ay.cell) {
                fp.corners[0] = Corner { x: ax.cell as usize, y: ay.cell as usize, weight: 1.0, dw_dx: 0.0, dw_dy: 0.0 };
                fp.len = 1;
            }
            return fp;
        }
        let (tx, ty) = (ax.frac, ay.frac);
        for (dy, wy, dwy) in [(0.0, 1.0 - ty, -1.0), (1.0, ty, 1.0)] {
            for (dx, wx, dwx) in [(0.0, 1.0 - tx, -1.0), (1.0, tx, 1.0)] {
                let (cx, cy) = (ax.cell + dx, ay.cell + dy);
                if inside(cx, cy) {
                    fp.corners[fp.len] =
                        Corner { x: cx as usize, y: cy as usize, weight: wx * wy, dw_dx: dwx * wy, dw_dy: wx * dwy };
                    fp.len += 1;
                }
            }
        }
        fp
    }

    #[inline]
    pub fn corners(&self) -> &[Corner] {
        &self.corners[..self.len]
    }
}

/// One normalised coordinate `p` on an axis of `size` pixels: pixel = p * (size - 1) with
/// align_corners, p * size - 0.5 without, then grid_sample's padding.
///
/// Non-finite coordinates follow torch's CUDA kernels: under zero padding a NaN position
/// reads nothing (infinite ones fail the bounds tests); under border/reflection a position
/// that is NaN after padding reads pixel 0 in the forward pass and nothing in the backward
/// pass, so it gets and gives no gradient.
#[inline]
fn locate_axis(p: f64, size: usize, sampling: Sampling, backward: bool) -> Axis {
    let size = size as f64;
    let last = size - 1.0;
    let (scale, offset) = if sampling.align_corners { (last, 0.0) } else { (size, 0.5) };
    let pixel = p * scale - offset;
    let (coord, slope) = match sampling.padding {
        Padding::Zeros => (pixel, scale),
        Padding::Border => (clip(pixel, last), scale * inside_slope(pixel, last)),
        Padding::Reflection => {
            let (reflected, mirror) = reflect(pixel, size, sampling.align_corners);
            (clip(reflected, last), scale * mirror * inside_slope(reflected, last))
        }
    };
    let nan = coord.is_nan();
    let valid = !(nan && (sampling.padding == Padding::Zeros || backward));
    let coord = if nan { 0.0 } else { coord };
    let cell = match sampling.mode {
        Interpolation::Nearest => coord.round_ties_even(),
        Interpolation::Bilinear => coord.floor(),
    };
    let frac = if sampling.mode == Interpolation::Bilinear { coord - cell } else { 0.0 };
    Axis { cell, frac, slope, valid }
}

/// Into `[0, last]`; NaN stays NaN.
#[inline]
fn clip(coord: f64, last: f64) -> f64 {
    if coord.is_nan() {
        coord
    } else {
        coord.clamp(0.0, last)
    }
}

/// d clip / d coord: 0 on and past the edges (torch counts the edges as outside).
#[inline]
fn inside_slope(coord: f64, last: f64) -> f64 {
    if coord > 0.0 && coord < last {
        1.0
    } else {
        0.0
    }
}

/// Reflection at pixel centres 0 and size - 1 (align_corners) or at the outer edges
/// -0.5 and size - 0.5: the reflected position and d reflected / d pixel (+-1).
#[inline]
fn reflect(pixel: f64, size: f64, align_corners: bool) -> (f64, f64) {
    let (low, span) = if align_corners { (0.0, size - 1.0) } else { (-0.5, size) };
    if span == 0.0 {
        return (0.0, 0.0);
    }
    let shifted = pixel - low;
    let sign = if shifted < 0.0 { -1.0 } else { 1.0 };
    let dist = shifted.abs();
    let flips = (dist / span).floor();
    let extra = dist % span;
    // torch converts the flip count to a 32-bit int, which saturates (at an odd number).
    let odd = flips >= 2147483648.0 || flips % 2.0 != 0.0;
    if odd {
        (span - extra + low, -sign)
    } else {
        (extra + low, sign)
    }
}
