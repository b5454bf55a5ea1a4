//! Where a point lands on a map, in float64: shared by the reference and the CPU kernels.

/// One in-bounds corner of a bilinear footprint: its cell, its weight, and d(weight) per
/// pixel along x and y.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Corner {
    pub x: usize,
    pub y: usize,
    pub weight: f64,
    pub dw_dx: f64,
    pub dw_dy: f64,
}

/// The in-bounds corners of a point (at most four) and d(pixel)/d(point) per axis.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Footprint {
    corners: [Corner; 4],
    len: usize,
    pub scale_x: f64,
    pub scale_y: f64,
}

impl Footprint {
    /// Locates point `(x, y)` (normalised to [0, 1]) on a `height x width` map, as
    /// `grid_sample(input, 2 * points - 1, align_corners=...)` with zero padding does.
    /// NaN, infinite and huge coordinates fail every bounds test: the point is off the map,
    /// as in torch's CUDA kernel.
    #[inline]
    pub fn locate(x: f64, y: f64, height: usize, width: usize, align_corners: bool) -> Self {
        let (scale_x, scale_y, offset) = if align_corners {
            (width as f64 - 1.0, height as f64 - 1.0, 0.0)
        } else {
            (width as f64, height as f64, 0.5)
        };
        let ix = x * scale_x - offset;
        let iy = y * scale_y - offset;
        let (x0, y0) = (ix.floor(), iy.floor());
        let (tx, ty) = (ix - x0, iy - y0);
        let mut fp = Footprint { scale_x, scale_y, ..Default::default() };
        for (dy, wy, dwy) in [(0.0, 1.0 - ty, -1.0), (1.0, ty, 1.0)] {
            for (dx, wx, dwx) in [(0.0, 1.0 - tx, -1.0), (1.0, tx, 1.0)] {
                let (cx, cy) = (x0 + dx, y0 + dy);
                if cx >= 0.0 && cx <= width as f64 - 1.0 && cy >= 0.0 && cy <= height as f64 - 1.0 {
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
