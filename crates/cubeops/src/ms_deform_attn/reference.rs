//! Float64 plain-Rust MSDA, forward and all three gradients, written from the definition
//! (the bilinear formula of Deformable DETR's CUDA kernel, `h_im = y * H - 0.5`), independent
//! of the kernels and of point_sample's footprint. The oracle of the tests.
//!
//! At a cell edge the derivative is that of the cell to the lower right, as in grid_sample
//! and so in mmcv's `multi_scale_deformable_attn_pytorch`. (mmcv's CUDA kernel differs at
//! exactly `h_im == -1` or `w_im == -1`, where it samples nothing and gives 0.)
//!
//! Tensors are contiguous row-major slices: value `(N, S, M, D)`, sampling locations
//! `(N, Lq, M, L, P, 2)`, attention weights `(N, Lq, M, L, P)`, output `(N, Lq, M * D)`.

/// Shapes of a reference call; `levels` holds each level's `(height, width)`, laid out one
/// after the other along the value's key axis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsdaDims {
    pub n: usize,
    pub num_heads: usize,
    pub channels: usize,
    pub num_queries: usize,
    pub num_points: usize,
    pub levels: Vec<[usize; 2]>,
}

impl MsdaDims {
    pub fn num_keys(&self) -> usize {
        self.levels.iter().map(|[h, w]| h * w).sum()
    }
    pub fn value_len(&self) -> usize {
        self.n * self.num_keys() * self.num_heads * self.channels
    }
    pub fn weights_len(&self) -> usize {
        self.n * self.num_queries * self.num_heads * self.levels.len() * self.num_points
    }
    pub fn locations_len(&self) -> usize {
        self.weights_len() * 2
    }
    pub fn output_len(&self) -> usize {
        self.n * self.num_queries * self.num_heads * self.channels
    }
    /// First key of each level.
    pub fn level_starts(&self) -> Vec<usize> {
        self.levels.iter().scan(0, |start, [h, w]| Some(std::mem::replace(start, *start + h * w))).collect()
    }
}

/// The bilinear read of channel `d` of head `m` of one level at normalised `(x, y)`, and its
/// derivatives by x and y; `cell(y, x)` gives the value's flat index of a cell.
fn sample(value: &[f64], cell: impl Fn(usize, usize) -> usize, [h, w]: [usize; 2], x: f64, y: f64) -> (f64, f64, f64) {
    let (h_im, w_im) = (y * h as f64 - 0.5, x * w as f64 - 0.5);
    if !(h_im.is_finite() && w_im.is_finite()) {
        return (0.0, 0.0, 0.0);
    }
    let (h_low, w_low) = (h_im.floor(), w_im.floor());
    let (lh, lw) = (h_im - h_low, w_im - w_low);
    let (hh, hw) = (1.0 - lh, 1.0 - lw);
    let read = |yy: f64, xx: f64| {
        let inside = yy >= 0.0 && xx >= 0.0 && yy <= h as f64 - 1.0 && xx <= w as f64 - 1.0;
        if inside { value[cell(yy as usize, xx as usize)] } else { 0.0 }
    };
    let (v1, v2) = (read(h_low, w_low), read(h_low, w_low + 1.0));
    let (v3, v4) = (read(h_low + 1.0, w_low), read(h_low + 1.0, w_low + 1.0));
    let out = hh * hw * v1 + hh * lw * v2 + lh * hw * v3 + lh * lw * v4;
    let d_w_im = hh * (v2 - v1) + lh * (v4 - v3);
    let d_h_im = hw * (v3 - v1) + lw * (v4 - v2);
    (out, d_w_im * w as f64, d_h_im * h as f64)
}

/// Calls `f(b, q, m, l, p, flat index of (b, q, m, l, p))` in order.
fn for_each_point(dims: &MsdaDims, mut f: impl FnMut(usize, usize, usize, usize, usize, usize)) {
    let mut i = 0;
    for b in 0..dims.n {
        for q in 0..dims.num_queries {
            for m in 0..dims.num_heads {
                for l in 0..dims.levels.len() {
                    for p in 0..dims.num_points {
                        f(b, q, m, l, p, i);
                        i += 1;
                    }
                }
            }
        }
    }
}

fn cell_index(dims: &MsdaDims, starts: &[usize], b: usize, l: usize, m: usize, d: usize) -> impl Fn(usize, usize) -> usize {
    let (s, heads, channels, width) = (dims.num_keys(), dims.num_heads, dims.channels, dims.levels[l][1]);
    let start = starts[l];
    move |y, x| ((b * s + start + y * width + x) * heads + m) * channels + d
}

fn check_lengths(dims: &MsdaDims, value: &[f64], locations: &[f64], weights: &[f64]) {
    assert_eq!(value.len(), dims.value_len(), "value length");
    assert_eq!(locations.len(), dims.locations_len(), "sampling_locations length");
    assert_eq!(weights.len(), dims.weights_len(), "attention_weights length");
}

/// `output (N, Lq, M * D)`.
pub fn forward(dims: &MsdaDims, value: &[f64], locations: &[f64], weights: &[f64]) -> Vec<f64> {
    check_lengths(dims, value, locations, weights);
    let starts = dims.level_starts();
    let mut out = vec![0.0; dims.output_len()];
    for_each_point(dims, |b, q, m, l, _p, i| {
        for d in 0..dims.channels {
            let (v, _, _) = sample(value, cell_index(dims, &starts, b, l, m, d), dims.levels[l], locations[2 * i], locations[2 * i + 1]);
            out[((b * dims.num_queries + q) * dims.num_heads + m) * dims.channels + d] += weights[i] * v;
        }
    });
    out
}

/// The three gradients for `grad_output (N, Lq, M * D)`: `(grad_value, grad_locations,
/// grad_weights)`, shaped as value, locations and weights.
pub fn backward(dims: &MsdaDims, value: &[f64], locations: &[f64], weights: &[f64], grad_output: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    check_lengths(dims, value, locations, weights);
    assert_eq!(grad_output.len(), dims.output_len(), "grad_output length");
    let starts = dims.level_starts();
    let mut grad_value = vec![0.0; value.len()];
    let mut grad_locations = vec![0.0; locations.len()];
    let mut grad_weights = vec![0.0; weights.len()];
    for_each_point(dims, |b, q, m, l, _p, i| {
        let [h, w] = dims.levels[l];
        let (x, y) = (locations[2 * i], locations[2 * i + 1]);
        for d in 0..dims.channels {
            let g = grad_output[((b * dims.num_queries + q) * dims.num_heads + m) * dims.channels + d];
            let cell = cell_index(dims, &starts, b, l, m, d);
            let (v, dv_dx, dv_dy) = sample(value, &cell, [h, w], x, y);
            grad_weights[i] += g * v;
            grad_locations[2 * i] += g * weights[i] * dv_dx;
            grad_locations[2 * i + 1] += g * weights[i] * dv_dy;
            // d output / d value: the same bilinear read of a one-hot value, cell by cell.
            let (h_im, w_im) = (y * h as f64 - 0.5, x * w as f64 - 0.5);
            if h_im.is_finite() && w_im.is_finite() {
                let (h_low, w_low) = (h_im.floor(), w_im.floor());
                let (lh, lw) = (h_im - h_low, w_im - w_low);
                for (yy, wy) in [(h_low, 1.0 - lh), (h_low + 1.0, lh)] {
                    for (xx, wx) in [(w_low, 1.0 - lw), (w_low + 1.0, lw)] {
                        if yy >= 0.0 && xx >= 0.0 && yy <= h as f64 - 1.0 && xx <= w as f64 - 1.0 {
                            grad_value[cell(yy as usize, xx as usize)] += g * weights[i] * wy * wx;
                        }
                    }
                }
            }
        }
    });
    (grad_value, grad_locations, grad_weights)
}
