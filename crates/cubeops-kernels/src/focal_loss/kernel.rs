//! The focal loss kernels: sigmoid (one thread per `(n, c)` element) and softmax (one thread
//! per row forward, per element backward).

use cubecl::prelude::*;

/// Sizes, strides (in elements) and the loss parameters, all `u32` kernel scalars: gamma and
/// alpha as pairs of f32 bit patterns (hi + lo = the f64 value to ~48 bits, so f64 losses get
/// f64 parameters), which the zero-copy launcher packs like the rest.
#[derive(CubeLaunch, CubeType)]
pub struct FocalArgs {
    pub n: u32,
    pub classes: u32,
    pub gamma_hi: u32,
    pub gamma_lo: u32,
    pub alpha_hi: u32,
    pub alpha_lo: u32,
    /// Strides of the `(N, C)` logits and of the `(N, C)` output.
    pub in_n: u32,
    pub in_c: u32,
    pub out_n: u32,
    pub out_c: u32,
}

/// gamma and alpha in the accumulation type, from their hi + lo f32 pairs.
#[cube]
fn parameters<A: Float>(args: &FocalArgs) -> (A, A) {
    let gamma = A::cast_from(f32::reinterpret(args.gamma_hi)) + A::cast_from(f32::reinterpret(args.gamma_lo));
    let alpha = A::cast_from(f32::reinterpret(args.alpha_hi)) + A::cast_from(f32::reinterpret(args.alpha_lo));
    (gamma, alpha)
}

/// `base^gamma` with `0^gamma` = 0 (1 for gamma = 0), which `pow` as `exp2(gamma * log2(base))`
/// (WGSL) does not give.
#[cube]
fn pow_or_zero<A: Float>(base: A, gamma: A) -> A {
    let zero_base = select(gamma == A::new(0.0), A::new(1.0), A::new(0.0));
    select(base > A::new(0.0), A::powf(base, gamma), zero_base)
}

/// `log(1 + exp(z))` without overflow or cancellation.
#[cube]
fn softplus<A: Float>(z: A) -> A {
    select(z > A::new(0.0), z, A::new(0.0)) + A::log1p(A::exp(-A::abs(z)))
}

/// Forward: `out[n, c]` = the loss of logit `x = input[n, c]` with `t = target[n]`:
/// `-alpha (1 - p)^gamma log p` if `c == t`, else `-(1 - alpha) p^gamma log(1 - p)`, with
/// `p = sigmoid(x)`, times `weight[t]` when `weighted` (1 for a target outside [0, C): the
/// background class of mmdet's targets). Backward: `out` = d loss / d x.
///
/// `log p = -softplus(-x)` and `log(1 - p) = -softplus(x)` are computed directly, so large
/// logits keep their precision (mmcv's kernel clamps `log(max(p, FLT_MIN))`, which saturates
/// at -87 where the true value is, e.g., -100 for x = 100).
#[cube(launch, address_type = "dynamic")]
pub fn sigmoid_focal_loss_kernel<F: Float, A: Float, I: Int>(
    input: &Array<F>,
    target: &Array<I>,
    weight: &Array<F>,
    output: &mut Array<F>,
    args: &FocalArgs,
    #[comptime] weighted: bool,
    #[comptime] backward: bool,
    #[define(F, A, I)] _dtypes: [StorageType; 3],
) {
    let classes = args.classes as usize;
    if ABSOLUTE_POS >= args.n as usize * classes {
        terminate!();
    }
    let c = ABSOLUTE_POS % classes;
    let n = ABSOLUTE_POS / classes;
    let t = i32::cast_from(target[n]);
    let (gamma, alpha) = parameters::<A>(args);
    let x = A::cast_from(input[n * args.in_n as usize + c * args.in_c as usize]);
    let one = A::new(1.0);
    let p = one / (one + A::exp(-x));
    let q = one / (one + A::exp(x));
    let log_p = -softplus::<A>(-x);
    let log_q = -softplus::<A>(x);
    let positive = t == c as i32;
    let mut value = if backward {
        if positive {
            -alpha * pow_or_zero::<A>(q, gamma) * (q - gamma * p * log_p)
        } else {
            -(one - alpha) * pow_or_zero::<A>(p, gamma) * (gamma * q * log_q - p)
        }
    } else if positive {
        -alpha * pow_or_zero::<A>(q, gamma) * log_p
    } else {
        -(one - alpha) * pow_or_zero::<A>(p, gamma) * log_q
    };
    if weighted && t >= 0 && t < classes as i32 {
        value *= A::cast_from(weight[t as usize]);
    }
    output[n * args.out_n as usize + c * args.out_c as usize] = F::cast_from(value);
}

/// Softmax focal loss on the softmax probabilities `input (N, C)` (what mmcv's `_ext` gets),
/// with `p = input[n, t]`, `t = target[n]`, `w = weight[t]` (1 unweighted):
/// forward, one thread per row: `out[n] = -alpha (1 - p)^gamma log p * w`; backward, one thread
/// per element: `out[n, c] = b (delta(c, t) - input[n, c])`, the derivative of row n's loss by
/// logit `c`, with `b = alpha (gamma (1 - p)^(gamma - 1) p log p - (1 - p)^gamma) * w`. `log p`
/// is `log max(p, FLT_MIN)`, as mmcv's kernel. A row whose target is outside [0, C) gives 0.
#[cube(launch, address_type = "dynamic")]
pub fn softmax_focal_loss_kernel<F: Float, A: Float, I: Int>(
    input: &Array<F>,
    target: &Array<I>,
    weight: &Array<F>,
    output: &mut Array<F>,
    args: &FocalArgs,
    #[comptime] weighted: bool,
    #[comptime] backward: bool,
    #[define(F, A, I)] _dtypes: [StorageType; 3],
) {
    let classes = args.classes as usize;
    let threads = if backward { args.n as usize * classes } else { args.n as usize };
    if ABSOLUTE_POS >= threads {
        terminate!();
    }
    let mut n = ABSOLUTE_POS;
    let mut c = 0usize;
    if backward {
        n = ABSOLUTE_POS / classes;
        c = ABSOLUTE_POS % classes;
    }
    let t = i32::cast_from(target[n]);
    let mut value = A::new(0.0);
    if t >= 0 && t < classes as i32 {
        let (gamma, alpha) = parameters::<A>(args);
        let p = A::cast_from(input[n * args.in_n as usize + t as usize * args.in_c as usize]);
        let q = A::new(1.0) - p;
        // FLT_MIN, as mmcv's kernel clamps.
        let log_p = A::ln(A::max(p, A::new(1.175_494_4e-38)));
        if backward {
            let b = alpha * (gamma * pow_or_zero::<A>(q, gamma - A::new(1.0)) * p * log_p - pow_or_zero::<A>(q, gamma));
            let own = select(c == t as usize, A::new(1.0), A::new(0.0));
            value = b * (own - A::cast_from(input[n * args.in_n as usize + c * args.in_c as usize]));
        } else {
            value = -alpha * pow_or_zero::<A>(q, gamma) * log_p;
        }
        if weighted {
            value *= A::cast_from(weight[t as usize]);
        }
    }
    output[n * args.out_n as usize + c * args.out_c as usize] = F::cast_from(value);
}
