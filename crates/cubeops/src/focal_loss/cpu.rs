//! Multi-threaded CPU focal losses over strided memory: the Python bridge's CPU path.
//! Math in f64; the output is contiguous.

use rayon::prelude::*;

use super::reference::element;
use crate::point_sample::cpu::{CpuElement, View};
use crate::OpError;

/// `weight[t]` of a row's target, 1 without a weight or for a target outside [0, C).
fn class_weight<T: CpuElement>(weight: &Option<View<T, 1>>, t: i64, classes: usize) -> f64 {
    match weight {
        Some(w) if t >= 0 && (t as usize) < classes => w.at([t as usize]).to_f64(),
        _ => 1.0,
    }
}

/// `base^e`, 0 for `base <= 0` (1 when `e` is 0): the kernel's `pow_or_zero`.
fn pow_or_zero(base: f64, e: f64) -> f64 {
    if base > 0.0 {
        base.powf(e)
    } else {
        f64::from(e == 0.0)
    }
}

fn check<T: CpuElement>(input: &View<T, 2>, target: &[i64], weight: &Option<View<T, 1>>, out: &[T], out_len: usize) -> Result<(), OpError> {
    let [n, c] = input.shape();
    if target.len() != n {
        return Err(OpError::Shape { arg: "target", message: format!("has {} entries, `input` has {n} rows", target.len()) });
    }
    if let Some(w) = weight {
        if w.shape() != [c] {
            return Err(OpError::Shape { arg: "weight", message: format!("must be ({c},), got {:?}", w.shape()) });
        }
    }
    if out.len() != out_len {
        return Err(OpError::Shape { arg: "output", message: format!("buffer holds {} elements, {out_len} needed", out.len()) });
    }
    Ok(())
}

/// `out (N, C)`: the loss (or, `backward`, its derivative by the logits) of `input (N, C)`
/// with `target (N,)` and optional `weight (C,)`.
pub fn sigmoid_focal_loss<T: CpuElement>(
    input: View<T, 2>,
    target: &[i64],
    weight: Option<View<T, 1>>,
    out: &mut [T],
    gamma: f64,
    alpha: f64,
    backward: bool,
) -> Result<(), OpError> {
    let [n, c] = input.shape();
    check(&input, target, &weight, out, n * c)?;
    if c == 0 {
        return Ok(());
    }
    out.par_chunks_mut(c).enumerate().for_each(|(row, out)| {
        let t = target[row];
        let w = class_weight(&weight, t, c);
        for (ci, o) in out.iter_mut().enumerate() {
            let (loss, grad) = element(input.at([row, ci]).to_f64(), t == ci as i64, gamma, alpha);
            *o = T::from_f64(w * if backward { grad } else { loss });
        }
    });
    Ok(())
}

/// The softmax focal loss on softmax probabilities `input (N, C)`, as the CUDA kernel computes
/// it (`log max(p, FLT_MIN)`): `out (N,)`, the loss of each row, or (`backward`) `out (N, C)`,
/// its derivative by the logits. Rows whose target is outside [0, C) give 0.
pub fn softmax_focal_loss<T: CpuElement>(
    input: View<T, 2>,
    target: &[i64],
    weight: Option<View<T, 1>>,
    out: &mut [T],
    gamma: f64,
    alpha: f64,
    backward: bool,
) -> Result<(), OpError> {
    let [n, c] = input.shape();
    check(&input, target, &weight, out, if backward { n * c } else { n })?;
    let row_len = if backward { c } else { 1 };
    if row_len == 0 {
        return Ok(());
    }
    out.par_chunks_mut(row_len).enumerate().for_each(|(row, out)| {
        let t = target[row];
        if t < 0 || t as usize >= c {
            out.fill(T::from_f64(0.0));
            return;
        }
        let w = class_weight(&weight, t, c);
        let p = input.at([row, t as usize]).to_f64();
        let (q, log_p) = (1.0 - p, p.max(f32::MIN_POSITIVE as f64).ln());
        if !backward {
            out[0] = T::from_f64(-alpha * pow_or_zero(q, gamma) * log_p * w);
            return;
        }
        let b = alpha * (gamma * pow_or_zero(q, gamma - 1.0) * p * log_p - pow_or_zero(q, gamma)) * w;
        for (ci, o) in out.iter_mut().enumerate() {
            *o = T::from_f64(b * (f64::from(ci as i64 == t) - input.at([row, ci]).to_f64()));
        }
    });
    Ok(())
}
