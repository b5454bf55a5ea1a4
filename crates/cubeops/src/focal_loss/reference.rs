//! Float64 focal losses and their derivatives from the definitions. Sigmoid, elementwise:
//! `p = sigmoid(x)`; target class `-alpha (1 - p)^gamma log p`, other classes
//! `-(1 - alpha) p^gamma log(1 - p)`, times the target class's weight (1 for a target outside
//! [0, C)). `log p` and `log(1 - p)` are evaluated as `-ln(1 + e^-x)` and `-ln(1 + e^x)`.

/// `(loss, d loss / d x)` for one logit; `positive`: this is the target's class.
pub fn element(x: f64, positive: bool, gamma: f64, alpha: f64) -> (f64, f64) {
    // e^-x overflows past x = -709: there log p = x to double precision.
    let log_p = if x < -700.0 { x } else { -(-x).exp().ln_1p() };
    let log_q = if x > 700.0 { -x } else { -x.exp().ln_1p() };
    let (p, q) = (log_p.exp(), log_q.exp());
    if positive {
        (-alpha * q.powf(gamma) * log_p, -alpha * q.powf(gamma) * (q - gamma * p * log_p))
    } else {
        (-(1.0 - alpha) * p.powf(gamma) * log_q, -(1.0 - alpha) * p.powf(gamma) * (gamma * q * log_q - p))
    }
}

/// `(loss (N, C), d loss / d input (N, C))` for contiguous `input (N, C)` and `target (N,)`.
pub fn sigmoid_focal_loss(input: &[f64], classes: usize, target: &[i64], weight: Option<&[f64]>, gamma: f64, alpha: f64) -> (Vec<f64>, Vec<f64>) {
    let mut loss = vec![0.0; input.len()];
    let mut grad = vec![0.0; input.len()];
    for (i, &x) in input.iter().enumerate() {
        let t = target[i / classes];
        let (l, g) = element(x, t == (i % classes) as i64, gamma, alpha);
        let w = match weight {
            Some(w) if t >= 0 && (t as usize) < classes => w[t as usize],
            _ => 1.0,
        };
        loss[i] = l * w;
        grad[i] = g * w;
    }
    (loss, grad)
}

/// Softmax focal loss of one row of logits, from the definition: with `p = softmax(row)`,
/// `loss = -alpha (1 - p_t)^gamma log p_t`, and its derivative by each logit,
/// `alpha (gamma (1 - p_t)^(gamma - 1) p_t log p_t - (1 - p_t)^gamma) (delta(c, t) - p_c)`; both
/// times `weight` (of class t). `log p_t` is the log-softmax, `1 - p_t` its `-expm1`.
pub fn softmax_row(row: &[f64], t: usize, weight: f64, gamma: f64, alpha: f64) -> (f64, Vec<f64>) {
    let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = max + row.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
    let log_p = row[t] - lse;
    let (p, q) = (log_p.exp(), -log_p.exp_m1());
    // (1 - p)^(gamma - 1) p log p -> 0 as p -> 1 for every gamma >= 0.
    let focus = if q == 0.0 { 0.0 } else { gamma * q.powf(gamma - 1.0) * p * log_p };
    let b = alpha * (focus - q.powf(gamma)) * weight;
    let grad = row.iter().enumerate().map(|(c, x)| b * (f64::from(c == t) - (x - lse).exp())).collect();
    (-alpha * q.powf(gamma) * log_p * weight, grad)
}

/// `(loss (N,), d loss / d input (N, C))` for contiguous logits `input (N, C)` and `target (N,)`;
/// a row whose target is outside [0, C) has loss and gradient 0.
pub fn softmax_focal_loss(input: &[f64], classes: usize, target: &[i64], weight: Option<&[f64]>, gamma: f64, alpha: f64) -> (Vec<f64>, Vec<f64>) {
    let mut loss = vec![0.0; target.len()];
    let mut grad = vec![0.0; input.len()];
    for (n, &t) in target.iter().enumerate() {
        if t < 0 || t as usize >= classes {
            continue;
        }
        let w = weight.map_or(1.0, |w| w[t as usize]);
        let (l, g) = softmax_row(&input[n * classes..(n + 1) * classes], t as usize, w, gamma, alpha);
        loss[n] = l;
        grad[n * classes..(n + 1) * classes].copy_from_slice(&g);
    }
    (loss, grad)
}
