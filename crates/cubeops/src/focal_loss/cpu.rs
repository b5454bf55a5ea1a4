//! Multi-threaded CPU sigmoid focal loss over strided memory: the Python bridge's CPU path.
//! Math in f64 (the reference's formulas); the output is contiguous.

use rayon::prelude::*;

use super::reference::element;
use crate::point_sample::cpu::{CpuElement, View};
use crate::OpError;

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
    if target.len() != n {
        return Err(OpError::Shape { arg: "target", message: format!("has {} entries, `input` has {n} rows", target.len()) });
    }
    if let Some(w) = &weight {
        if w.shape() != [c] {
            return Err(OpError::Shape { arg: "weight", message: format!("must be ({c},), got {:?}", w.shape()) });
        }
    }
    if out.len() != n * c {
        return Err(OpError::Shape { arg: "output", message: format!("buffer holds {} elements, {} needed", out.len(), n * c) });
    }
    if c == 0 {
        return Ok(());
    }
    out.par_chunks_mut(c).enumerate().for_each(|(row, out)| {
        let t = target[row];
        let w = match &weight {
            Some(w) if t >= 0 && (t as usize) < c => w.at([t as usize]).to_f64(),
            _ => 1.0,
        };
        for (ci, o) in out.iter_mut().enumerate() {
            let (loss, grad) = element(input.at([row, ci]).to_f64(), t == ci as i64, gamma, alpha);
            *o = T::from_f64(w * if backward { grad } else { loss });
        }
    });
    Ok(())
}
