//! Multi-threaded CPU MSDA over strided memory: the CPU path of the Python bridge. Math in
//! f64 with point_sample's footprint (grid_sample's arithmetic); outputs are contiguous
//! buffers owned by the caller. No atomics: every task owns what it writes.

use rayon::prelude::*;

use crate::point_sample::cpu::{CpuElement, View};
use crate::point_sample::footprint::Footprint;
use crate::OpError;
use cubeops_kernels::ms_deform_attn::MSDA_SAMPLING;

/// Where each level lies on the value's key axis: `(height, width, first key)`.
pub type Levels = [(usize, usize, usize)];

/// Value `(N, S, M, D)`, locations `(N, Lq, M, L, P, 2)` and weights `(N, Lq, M, L, P)` of one
/// call, checked against each other and against the levels.
pub struct Inputs<'a, T> {
    pub value: View<'a, T, 4>,
    pub locations: View<'a, T, 6>,
    pub weights: View<'a, T, 5>,
}

impl<T: CpuElement> Inputs<'_, T> {
    /// `(n, num_keys, heads, channels, queries, levels, points)` after checking the shapes.
    fn dims(&self, levels: &Levels) -> Result<[usize; 7], OpError> {
        let [n, s, m, d] = self.value.shape();
        let [ln, q, lm, l, p, two] = self.locations.shape();
        let shape_err = |arg, message: String| Err(OpError::Shape { arg, message });
        if [ln, lm, two] != [n, m, 2] || l != levels.len() {
            return shape_err("sampling_locations", format!("expected ({n}, Lq, {m}, {}, P, 2), got {:?}", levels.len(), self.locations.shape()));
        }
        if self.weights.shape() != [n, q, m, l, p] {
            return shape_err("attention_weights", format!("expected {:?}, got {:?}", [n, q, m, l, p], self.weights.shape()));
        }
        for (i, &(h, w, start)) in levels.iter().enumerate() {
            if start.checked_add(h * w).is_none_or(|end| end > s) {
                return shape_err("value_spatial_shapes", format!("level {i} ({h}x{w} from key {start}) reaches past the value's {s} keys"));
            }
        }
        Ok([n, s, m, d, q, l, p])
    }

    fn footprint(&self, levels: &Levels, [b, q, m, l, p]: [usize; 5], backward: bool) -> Footprint {
        let (h, w, _) = levels[l];
        let x = self.locations.at([b, q, m, l, p, 0]).to_f64();
        let y = self.locations.at([b, q, m, l, p, 1]).to_f64();
        Footprint::locate(x, y, h, w, MSDA_SAMPLING, backward)
    }

    fn key(levels: &Levels, l: usize, y: usize, x: usize) -> usize {
        let (_, w, start) = levels[l];
        start + y * w + x
    }
}

/// `output (N, Lq, M, D)`, contiguous. Parallel over queries.
pub fn forward<T: CpuElement>(inputs: &Inputs<T>, levels: &Levels, output: &mut [T]) -> Result<(), OpError> {
    let [n, _, m, d, q, l, p] = inputs.dims(levels)?;
    check_len("output", output.len(), n * q * m * d)?;
    if output.is_empty() {
        return Ok(());
    }
    output.par_chunks_mut(m * d).enumerate().for_each(|(row, out)| {
        let (b, qi) = (row / q, row % q);
        let mut acc = vec![0.0f64; m * d];
        for mi in 0..m {
            for li in 0..l {
                for pi in 0..p {
                    let weight = inputs.weights.at([b, qi, mi, li, pi]).to_f64();
                    for k in inputs.footprint(levels, [b, qi, mi, li, pi], false).corners() {
                        let key = Inputs::<T>::key(levels, li, k.y, k.x);
                        for (di, a) in acc[mi * d..(mi + 1) * d].iter_mut().enumerate() {
                            *a += weight * k.weight * inputs.value.at([b, key, mi, di]).to_f64();
                        }
                    }
                }
            }
        }
        for (o, a) in out.iter_mut().zip(acc) {
            *o = T::from_f64(a);
        }
    });
    Ok(())
}

/// `grad_value (N, S, M, D)`, contiguous, from `grad_output (N, Lq, M, D)`. Each (n, m) head
/// is owned by one task, which adds its queries in order: deterministic.
pub fn grad_value<T: CpuElement>(inputs: &Inputs<T>, levels: &Levels, grad_output: View<T, 4>, grad_value: &mut [T]) -> Result<(), OpError> {
    let [n, s, m, d, q, l, p] = inputs.dims(levels)?;
    check_grad_output(&grad_output, [n, q, m, d])?;
    check_len("grad_value", grad_value.len(), n * s * m * d)?;
    let heads: Vec<Vec<f64>> = (0..n * m)
        .into_par_iter()
        .map(|head| {
            let (b, mi) = (head / m, head % m);
            let mut acc = vec![0.0f64; s * d];
            for qi in 0..q {
                for li in 0..l {
                    for pi in 0..p {
                        let weight = inputs.weights.at([b, qi, mi, li, pi]).to_f64();
                        for k in inputs.footprint(levels, [b, qi, mi, li, pi], true).corners() {
                            let key = Inputs::<T>::key(levels, li, k.y, k.x);
                            for (di, a) in acc[key * d..(key + 1) * d].iter_mut().enumerate() {
                                *a += weight * k.weight * grad_output.at([b, qi, mi, di]).to_f64();
                            }
                        }
                    }
                }
            }
            acc
        })
        .collect();
    grad_value.par_chunks_mut(m * d).enumerate().for_each(|(row, out)| {
        let (b, key) = (row / s, row % s);
        for (mi, chunk) in out.chunks_mut(d).enumerate() {
            for (di, o) in chunk.iter_mut().enumerate() {
                *o = T::from_f64(heads[b * m + mi][key * d + di]);
            }
        }
    });
    Ok(())
}

/// `grad_locations (N, Lq, M, L, P, 2)` and `grad_weights (N, Lq, M, L, P)`, contiguous.
/// Parallel over sampling points, each walking all channels.
pub fn grad_sampling<T: CpuElement>(
    inputs: &Inputs<T>,
    levels: &Levels,
    grad_output: View<T, 4>,
    grad_locations: &mut [T],
    grad_weights: &mut [T],
) -> Result<(), OpError> {
    let [n, _, m, d, q, l, p] = inputs.dims(levels)?;
    check_grad_output(&grad_output, [n, q, m, d])?;
    check_len("grad_sampling_locations", grad_locations.len(), n * q * m * l * p * 2)?;
    check_len("grad_attention_weights", grad_weights.len(), n * q * m * l * p)?;
    grad_locations.par_chunks_mut(2).zip(grad_weights.par_iter_mut()).enumerate().for_each(|(i, (gl, gw))| {
        let (pi, li, mi) = (i % p, (i / p) % l, (i / (p * l)) % m);
        let (qi, b) = ((i / (p * l * m)) % q, i / (p * l * m * q));
        let fp = inputs.footprint(levels, [b, qi, mi, li, pi], true);
        let (mut sw, mut sx, mut sy) = (0.0, 0.0, 0.0);
        for k in fp.corners() {
            let key = Inputs::<T>::key(levels, li, k.y, k.x);
            for di in 0..d {
                let v = grad_output.at([b, qi, mi, di]).to_f64() * inputs.value.at([b, key, mi, di]).to_f64();
                sw += v * k.weight;
                sx += v * k.dw_dx;
                sy += v * k.dw_dy;
            }
        }
        let weight = inputs.weights.at([b, qi, mi, li, pi]).to_f64();
        *gw = T::from_f64(sw);
        gl[0] = T::from_f64(weight * sx * fp.scale_x);
        gl[1] = T::from_f64(weight * sy * fp.scale_y);
    });
    Ok(())
}

fn check_len(arg: &'static str, len: usize, want: usize) -> Result<(), OpError> {
    if len == want {
        Ok(())
    } else {
        Err(OpError::Shape { arg, message: format!("buffer holds {len} elements, {want} needed") })
    }
}

fn check_grad_output<T: CpuElement>(grad_output: &View<T, 4>, want: [usize; 4]) -> Result<(), OpError> {
    if grad_output.shape() == want {
        Ok(())
    } else {
        Err(OpError::Shape { arg: "grad_output", message: format!("expected {want:?}, got {:?}", grad_output.shape()) })
    }
}
