//! Float64 plain-Rust point_sample: forward and both gradients, straight from the
//! definition. The oracle of the tests and the CPU path of later bridges.
//!
//! Tensors are contiguous row-major slices: input `(N, C, H, W)`, points `(N, P, 2)`,
//! output and grad_output `(N, C, P)`.

use super::footprint::Footprint;
use cubeops_kernels::point_sample::Sampling;

/// Shapes of a reference call: input `(n, channels, height, width)`, `num_points` points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefDims {
    pub n: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub num_points: usize,
}

impl RefDims {
    pub fn input_len(&self) -> usize {
        self.n * self.channels * self.height * self.width
    }
    pub fn points_len(&self) -> usize {
        self.n * self.num_points * 2
    }
    pub fn output_len(&self) -> usize {
        self.n * self.channels * self.num_points
    }
}

/// `output (N, C, P)` of `point_sample(input, points, ...)` with `sampling`'s
/// align_corners, mode and padding.
pub fn forward(dims: RefDims, input: &[f64], points: &[f64], sampling: Sampling) -> Vec<f64> {
    check_lengths(dims, input, points);
    let RefDims { n, channels, height, width, num_points } = dims;
    let map = height * width;
    let mut output = vec![0.0; dims.output_len()];
    for b in 0..n {
        for p in 0..num_points {
            let pt = (b * num_points + p) * 2;
            let fp = Footprint::locate(points[pt], points[pt + 1], height, width, sampling, false);
            for c in 0..channels {
                let base = (b * channels + c) * map;
                output[(b * channels + c) * num_points + p] =
                    fp.corners().iter().map(|k| input[base + k.y * width + k.x] * k.weight).sum();
            }
        }
    }
    output
}

/// Gradients `(grad_input (N, C, H, W), grad_points (N, P, 2))` for `grad_output (N, C, P)`.
/// Nearest sampling gives zero gradients to the points, as torch does.
pub fn backward(
    dims: RefDims,
    input: &[f64],
    points: &[f64],
    grad_output: &[f64],
    sampling: Sampling,
) -> (Vec<f64>, Vec<f64>) {
    check_lengths(dims, input, points);
    assert_eq!(grad_output.len(), dims.output_len(), "grad_output length");
    let RefDims { n, channels, height, width, num_points } = dims;
    let map = height * width;
    let mut grad_input = vec![0.0; dims.input_len()];
    let mut grad_points = vec![0.0; dims.points_len()];
    for b in 0..n {
        for p in 0..num_points {
            let pt = (b * num_points + p) * 2;
            let fp = Footprint::locate(points[pt], points[pt + 1], height, width, sampling, true);
            let (mut gx, mut gy) = (0.0, 0.0);
            for c in 0..channels {
                let base = (b * channels + c) * map;
                let g = grad_output[(b * channels + c) * num_points + p];
                for k in fp.corners() {
                    let cell = base + k.y * width + k.x;
                    grad_input[cell] += g * k.weight;
                    gx += g * input[cell] * k.dw_dx;
                    gy += g * input[cell] * k.dw_dy;
                }
            }
            grad_points[pt] = gx * fp.scale_x;
            grad_points[pt + 1] = gy * fp.scale_y;
        }
    }
    (grad_input, grad_points)
}

fn check_lengths(dims: RefDims, input: &[f64], points: &[f64]) {
    assert_eq!(input.len(), dims.input_len(), "input length does not match dims");
    assert_eq!(points.len(), dims.points_len(), "points length does not match dims");
}

#[cfg(test)]
mod tests {
    use super::*;
    use cubeops_kernels::point_sample::{Interpolation, Padding};

    /// Central differences of the forward reference must match its analytic gradients, for
    /// every mode and padding (points well outside the map exercise border and reflection).
    #[test]
    fn gradients_match_finite_differences() {
        let dims = RefDims { n: 2, channels: 3, height: 4, width: 5, num_points: 6 };
        let input: Vec<f64> = (0..dims.input_len()).map(|i| ((i * 37 % 11) as f64 - 5.0) / 3.0).collect();
        // Points away from cell edges (and mirror lines), where the function is differentiable.
        let points: Vec<f64> = (0..dims.points_len()).map(|i| -1.13 + 3.27 * ((i * 29 % 17) as f64 + 0.31) / 17.0).collect();
        let grad_out: Vec<f64> = (0..dims.output_len()).map(|i| ((i * 13 % 7) as f64 - 3.0) / 2.0).collect();
        for sampling in Sampling::all() {
            let (gi, gp) = backward(dims, &input, &points, &grad_out, sampling);
            let loss = |inp: &[f64], pts: &[f64]| -> f64 {
                forward(dims, inp, pts, sampling).iter().zip(&grad_out).map(|(a, b)| a * b).sum()
            };
            let eps = 1e-6;
            for i in 0..input.len() {
                let (mut a, mut b) = (input.clone(), input.clone());
                a[i] += eps;
                b[i] -= eps;
                let fd = (loss(&a, &points) - loss(&b, &points)) / (2.0 * eps);
                assert!((fd - gi[i]).abs() < 1e-6, "{sampling:?}: grad_input[{i}] {fd} vs {}", gi[i]);
            }
            for i in 0..points.len() {
                let (mut a, mut b) = (points.clone(), points.clone());
                a[i] += eps;
                b[i] -= eps;
                let fd = (loss(&input, &a) - loss(&input, &b)) / (2.0 * eps);
                assert!((fd - gp[i]).abs() < 1e-5, "{sampling:?}: grad_points[{i}] {fd} vs {}", gp[i]);
            }
        }
    }

    #[test]
    fn corners_and_outside_points() {
        // 1x1x2x2 map [[1, 2], [3, 4]]; align_corners=True puts (0,0) and (1,1) on cell centres.
        let dims = RefDims { n: 1, channels: 1, height: 2, width: 2, num_points: 4 };
        let input = [1.0, 2.0, 3.0, 4.0];
        let points = [0.0, 0.0, 1.0, 1.0, 0.5, 0.5, 2.0, 2.0];
        assert_eq!(forward(dims, &input, &points, Sampling::bilinear(true)), vec![1.0, 4.0, 2.5, 0.0]);
        // align_corners=False: (0, 0) is the outer corner, a quarter of cell (0, 0).
        assert_eq!(forward(dims, &input, &points, Sampling::bilinear(false)), vec![0.25, 1.0, 2.5, 0.0]);
        let with = |mode, padding| Sampling { align_corners: false, mode, padding };
        // Border: the outer corner reads cell (0, 0); (2, 2) clamps to cell (1, 1).
        assert_eq!(forward(dims, &input, &points, with(Interpolation::Bilinear, Padding::Border)), vec![1.0, 4.0, 2.5, 4.0]);
        // Reflection about the outer edges: (2, 2) is pixel 3.5, mirrored at 1.5 to -0.5,
        // clamped to 0.
        assert_eq!(forward(dims, &input, &points, with(Interpolation::Bilinear, Padding::Reflection)), vec![1.0, 4.0, 2.5, 1.0]);
        // Nearest rounds ties to even: pixel 0.5 -> 0, 1.5 -> 2 (off the map), -0.5 -> 0.
        // (Values checked against torch 2.9.1's grid_sample.)
        assert_eq!(forward(dims, &input, &points, with(Interpolation::Nearest, Padding::Zeros)), vec![1.0, 0.0, 1.0, 0.0]);
    }

    /// Under border/reflection a NaN coordinate reads pixel 0 but gets and gives no gradient
    /// (torch's CUDA kernels); under zeros it reads nothing.
    #[test]
    fn nan_points() {
        let dims = RefDims { n: 1, channels: 1, height: 2, width: 2, num_points: 1 };
        let input = [1.0, 2.0, 3.0, 4.0];
        let points = [f64::NAN, 0.75];
        let border = Sampling { padding: Padding::Border, ..Sampling::bilinear(false) };
        assert_eq!(forward(dims, &input, &points, border), vec![3.0]);
        assert_eq!(forward(dims, &input, &points, Sampling::bilinear(false)), vec![0.0]);
        let (gi, gp) = backward(dims, &input, &points, &[1.0], border);
        assert_eq!((gi, gp), (vec![0.0; 4], vec![0.0; 2]));
    }
}
