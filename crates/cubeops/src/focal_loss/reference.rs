//! Float64 sigmoid focal loss and its derivative, elementwise, from the definition:
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
