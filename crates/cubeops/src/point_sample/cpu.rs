//! Multi-threaded CPU point_sample over strided memory: the CPU path of the Python bridge,
//! which hands torch's CPU tensors over in place. Math in f64 (the reference's footprint);
//! outputs are contiguous buffers owned by the caller.

use half::{bf16, f16};
use rayon::prelude::*;

use super::footprint::Footprint;
use cubeops_kernels::point_sample::{Interpolation, Sampling};
use crate::OpError;

/// An element type the CPU kernels read and write.
pub trait CpuElement: Copy + Send + Sync + 'static {
    fn to_f64(self) -> f64;
    fn from_f64(value: f64) -> Self;
}

impl CpuElement for f64 {
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline]
    fn from_f64(value: f64) -> Self {
        value
    }
}

impl CpuElement for f32 {
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline]
    fn from_f64(value: f64) -> Self {
        value as f32
    }
}

impl CpuElement for f16 {
    #[inline]
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    #[inline]
    fn from_f64(value: f64) -> Self {
        f16::from_f64(value)
    }
}

impl CpuElement for bf16 {
    #[inline]
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    #[inline]
    fn from_f64(value: f64) -> Self {
        bf16::from_f64(value)
    }
}

/// A read-only strided tensor: element `idx` is `data[sum(idx[d] * strides[d])]`.
#[derive(Clone, Copy, Debug)]
pub struct View<'a, T, const D: usize> {
    data: &'a [T],
    shape: [usize; D],
    strides: [usize; D],
}

impl<'a, T: Copy, const D: usize> View<'a, T, D> {
    /// Checks that every element the shape and strides reach lies inside `data`.
    pub fn new(arg: &'static str, data: &'a [T], shape: [usize; D], strides: [usize; D]) -> Result<Self, OpError> {
        if shape.iter().product::<usize>() > 0 {
            let last = shape.iter().zip(&strides).try_fold(0usize, |acc, (&n, &s)| acc.checked_add((n - 1).checked_mul(s)?));
            if last.is_none_or(|last| last >= data.len()) {
                return Err(OpError::Shape {
                    arg,
                    message: format!("shape {shape:?} with strides {strides:?} reaches past its {} elements of memory", data.len()),
                });
            }
        }
        Ok(View { data, shape, strides })
    }

    pub fn shape(&self) -> [usize; D] {
        self.shape
    }

    #[inline]
    pub(crate) fn at(&self, idx: [usize; D]) -> T {
        self.data[idx.iter().zip(&self.strides).map(|(i, s)| i * s).sum::<usize>()]
    }
}

fn check_out(arg: &'static str, len: usize, want: usize) -> Result<(), OpError> {
    if len == want {
        Ok(())
    } else {
        Err(OpError::Shape { arg, message: format!("buffer holds {len} elements, {want} needed") })
    }
}

fn check_points<T: Copy>(points: &View<T, 3>, n: usize) -> Result<usize, OpError> {
    let [pn, p, two] = points.shape;
    if pn != n || two != 2 {
        return Err(OpError::Shape { arg: "points", message: format!("expected ({n}, P, 2), got {:?}", points.shape) });
    }
    Ok(p)
}

fn locate<T: CpuElement>(points: &View<T, 3>, n: usize, p: usize, h: usize, w: usize, sampling: Sampling, backward: bool) -> Footprint {
    Footprint::locate(points.at([n, p, 0]).to_f64(), points.at([n, p, 1]).to_f64(), h, w, sampling, backward)
}

/// Every point's footprint, `[b * P + q]`: located once, not once per channel.
fn footprints<T: CpuElement>(points: &View<T, 3>, h: usize, w: usize, sampling: Sampling, backward: bool) -> Vec<Footprint> {
    let [n, p, _] = points.shape;
    (0..n * p).into_par_iter().map(|i| locate(points, i / p, i % p, h, w, sampling, backward)).collect()
}

/// `out (N, C, P)`, contiguous, `= point_sample(input, points)`. Parallel over (n, c) rows.
pub fn forward<T: CpuElement>(input: View<T, 4>, points: View<T, 3>, out: &mut [T], sampling: Sampling) -> Result<(), OpError> {
    let [n, c, h, w] = input.shape;
    let p = check_points(&points, n)?;
    check_out("output", out.len(), n * c * p)?;
    if p == 0 {
        return Ok(());
    }
    let fps = footprints(&points, h, w, sampling, false);
    out.par_chunks_mut(p).enumerate().for_each(|(row, out)| {
        let (b, ch) = (row / c, row % c);
        for (value, fp) in out.iter_mut().zip(&fps[b * p..(b + 1) * p]) {
            let sum: f64 = fp.corners().iter().map(|k| input.at([b, ch, k.y, k.x]).to_f64() * k.weight).sum();
            *value = T::from_f64(sum);
        }
    });
    Ok(())
}

/// `grad_input (N, C, H, W)`, contiguous. Each (n, c) map is owned by one task, so the
/// scatter-add needs no atomics and the result does not depend on thread timing.
pub fn grad_input<T: CpuElement>(
    grad_output: View<T, 3>,
    points: View<T, 3>,
    grad_input: &mut [T],
    input_shape: [usize; 4],
    sampling: Sampling,
) -> Result<(), OpError> {
    let [n, c, h, w] = input_shape;
    let p = check_points(&points, n)?;
    if grad_output.shape != [n, c, p] {
        return Err(OpError::Shape { arg: "grad_output", message: format!("expected ({n}, {c}, {p}), got {:?}", grad_output.shape) });
    }
    check_out("grad_input", grad_input.len(), n * c * h * w)?;
    if h * w == 0 {
        return Ok(());
    }
    let fps = footprints(&points, h, w, sampling, true);
    grad_input.par_chunks_mut(h * w).enumerate().for_each(|(row, map)| {
        let (b, ch) = (row / c, row % c);
        let mut acc = vec![0.0f64; h * w];
        for (q, fp) in fps[b * p..(b + 1) * p].iter().enumerate() {
            let g = grad_output.at([b, ch, q]).to_f64();
            for k in fp.corners() {
                acc[k.y * w + k.x] += g * k.weight;
            }
        }
        for (out, v) in map.iter_mut().zip(acc) {
            *out = T::from_f64(v);
        }
    });
    Ok(())
}

/// `grad_points (N, P, 2)`, contiguous (zeros for nearest sampling). Parallel over points,
/// each walking all channels.
pub fn grad_points<T: CpuElement>(
    grad_output: View<T, 3>,
    input: View<T, 4>,
    points: View<T, 3>,
    grad_points: &mut [T],
    sampling: Sampling,
) -> Result<(), OpError> {
    let [n, c, h, w] = input.shape;
    let p = check_points(&points, n)?;
    if grad_output.shape != [n, c, p] {
        return Err(OpError::Shape { arg: "grad_output", message: format!("expected ({n}, {c}, {p}), got {:?}", grad_output.shape) });
    }
    check_out("grad_points", grad_points.len(), n * p * 2)?;
    if sampling.mode == Interpolation::Nearest {
        grad_points.fill(T::from_f64(0.0));
        return Ok(());
    }
    grad_points.par_chunks_mut(2).enumerate().for_each(|(i, out)| {
        let (b, q) = (i / p, i % p);
        let fp = locate(&points, b, q, h, w, sampling, true);
        let (mut gx, mut gy) = (0.0, 0.0);
        for ch in 0..c {
            let g = grad_output.at([b, ch, q]).to_f64();
            for k in fp.corners() {
                let v = g * input.at([b, ch, k.y, k.x]).to_f64();
                gx += v * k.dw_dx;
                gy += v * k.dw_dy;
            }
        }
        out[0] = T::from_f64(gx * fp.scale_x);
        out[1] = T::from_f64(gy * fp.scale_y);
    });
    Ok(())
}
