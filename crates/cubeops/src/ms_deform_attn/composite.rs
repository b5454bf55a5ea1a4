//! MSDA as point_sample's tensor-op path, level by level (mmcv's own
//! `multi_scale_deformable_attn_pytorch`): each level's value is an `(N*M, D, H, W)` map
//! sampled at `(N*M, Lq*P, 2)` points, weighted and summed.

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};

use crate::point_sample::{composite as ps, Sampling};
use crate::reshape::reshape;

fn wrap<B: Backend, const D: usize>(t: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

fn unwrap<B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<B> {
    t.into_primitive().tensor()
}

/// One level's operands in point_sample's shapes.
struct Level<B: Backend> {
    /// `(N*M, D, H, W)`.
    map: FloatTensor<B>,
    /// `(N*M, Lq*P, 2)`.
    points: FloatTensor<B>,
    /// `(N*M, 1, Lq, P)`.
    weights: Tensor<B, 4>,
}

fn levels<B: Backend>(value: &Tensor<B, 4>, shapes: &[[usize; 2]], locations: &Tensor<B, 6>, weights: &Tensor<B, 5>) -> Vec<Level<B>> {
    let [n, _, m, d] = value.dims();
    let [_, lq, _, _, p, _] = locations.dims();
    let mut start = 0;
    shapes
        .iter()
        .enumerate()
        .map(|(l, &[h, w])| {
            let v = value.clone().narrow(1, start, h * w).permute([0, 2, 3, 1]);
            start += h * w;
            let pts = locations.clone().narrow(3, l, 1).permute([0, 2, 1, 3, 4, 5]);
            let wts = weights.clone().narrow(3, l, 1).permute([0, 2, 1, 3, 4]);
            Level {
                map: unwrap(reshape(v, [n * m, d, h, w])),
                points: unwrap(reshape(pts, [n * m, lq * p, 2])),
                weights: reshape(wts, [n * m, 1, lq, p]),
            }
        })
        .collect()
}

/// `(N, Lq, M, D)`.
pub(crate) fn forward<B: Backend>(value: FloatTensor<B>, shapes: &[[usize; 2]], locations: FloatTensor<B>, weights: FloatTensor<B>) -> FloatTensor<B> {
    let (value, locations, weights) = (wrap::<B, 4>(value), wrap::<B, 6>(locations), wrap::<B, 5>(weights));
    let [n, _, m, d] = value.dims();
    let [_, lq, _, _, p, _] = locations.dims();
    let mut out: Option<Tensor<B, 3>> = None;
    for level in levels(&value, shapes, &locations, &weights) {
        let samples = reshape::<B, 3, 4>(wrap(ps::forward::<B>(level.map, level.points, Sampling::bilinear(false))), [n * m, d, lq, p]);
        let sum = reshape::<B, 4, 3>((samples * level.weights).sum_dim(3), [n * m, d, lq]);
        out = Some(match out {
            Some(acc) => acc + sum,
            None => sum,
        });
    }
    let out = out.expect("at least one level (checked by the API)");
    unwrap(reshape::<B, 3, 4>(out, [n, m, d, lq]).permute([0, 3, 1, 2]))
}

/// Gradients `(value (N, S, M, D), locations (N, Lq, M, L, P, 2), weights (N, Lq, M, L, P))`.
pub(crate) fn backward<B: Backend>(
    grad_output: FloatTensor<B>,
    value: FloatTensor<B>,
    shapes: &[[usize; 2]],
    locations: FloatTensor<B>,
    weights: FloatTensor<B>,
) -> super::MsdaGrads<B> {
    let (value, locations, weights) = (wrap::<B, 4>(value), wrap::<B, 6>(locations), wrap::<B, 5>(weights));
    let [n, _, m, d] = value.dims();
    let [_, lq, _, _, p, _] = locations.dims();
    let sampling = Sampling::bilinear(false);
    // (N*M, D, Lq, 1): the output gradient per head, broadcast over points.
    let grad = reshape::<B, 4, 4>(wrap::<B, 4>(grad_output).permute([0, 2, 3, 1]), [n * m, d, lq, 1]);
    let (mut grad_value, mut grad_locations, mut grad_weights) = (Vec::new(), Vec::new(), Vec::new());
    for (level, &[h, w]) in levels(&value, shapes, &locations, &weights).into_iter().zip(shapes) {
        let samples = reshape::<B, 3, 4>(wrap(ps::forward::<B>(level.map.clone(), level.points.clone(), sampling)), [n * m, d, lq, p]);
        let gw = reshape::<B, 4, 4>((grad.clone() * samples).sum_dim(1), [n, m, lq, p]).permute([0, 2, 1, 3]);
        grad_weights.push(reshape::<B, 4, 5>(gw, [n, lq, m, 1, p]));
        let grad_samples = unwrap(reshape::<B, 4, 3>(grad.clone() * level.weights, [n * m, d, lq * p]));
        let gv = ps::grad_input::<B>(grad_samples.clone(), level.map.clone(), level.points.clone(), sampling);
        grad_value.push(reshape::<B, 4, 4>(wrap(gv), [n, m, d, h * w]).permute([0, 3, 1, 2]));
        let gl = reshape::<B, 3, 5>(wrap(ps::grad_points::<B>(grad_samples, level.map, level.points, sampling)), [n, m, lq, p, 2]);
        grad_locations.push(reshape::<B, 5, 6>(gl.permute([0, 2, 1, 3, 4]), [n, lq, m, 1, p, 2]));
    }
    (unwrap(Tensor::cat(grad_value, 1)), unwrap(Tensor::cat(grad_locations, 3)), unwrap(Tensor::cat(grad_weights, 3)))
}
