//! PSAMask on every backend here (NdArray tensor ops, wgpu fused kernels on llvmpipe, the
//! CPU kernels of the Python bridge) against the float64 reference, forward and autodiff
//! backward, both psa_types, odd/even/non-square masks, masks larger than the map,
//! non-contiguous input. Pure copies: results must be exact.

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{DType, Tensor, TensorData};
use cubeops::psamask::{cpu, psamask, reference, PsaMaskAutodiffBackend, PsaMaskOptions, PsaType};
use cubeops::point_sample::cpu::View;
use cubeops::OpError;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// (n, h, w, mask_h, mask_w)
const SHAPES: [(usize, usize, usize, usize, usize); 7] =
    [(2, 5, 6, 3, 3), (1, 4, 4, 5, 7), (2, 3, 7, 2, 4), (1, 1, 1, 1, 1), (1, 2, 3, 9, 9), (3, 6, 5, 1, 3), (0, 3, 3, 3, 3)];

fn values(rng: &mut StdRng, len: usize) -> Vec<f64> {
    // Multiples of 1/8: exact in every dtype, so results compare exactly.
    (0..len).map(|_| (rng.random_range(-64i32..64) as f64) / 8.0).collect()
}

fn to_vec<B: burn::tensor::backend::Backend>(t: Tensor<B, 4>) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec().unwrap()
}

/// `with_empty`: include the N = 0 case (cubecl-cuda 0.10 cannot copy zero-sized tensors
/// between host and device, so the CUDA run leaves it to the other backends).
fn run_suite<B: PsaMaskAutodiffBackend>(label: &str, device: &B::Device, dtype: DType, with_empty: bool) {
    let mut rng = StdRng::seed_from_u64(7);
    for (n, h, w, mh, mw) in SHAPES.into_iter().filter(|s| with_empty || s.0 > 0) {
        for psa_type in [PsaType::Collect, PsaType::Distribute] {
            for transposed in [false, true] {
                let options = PsaMaskOptions { psa_type, mask_size: (mh, mw) };
                let mask = values(&mut rng, n * mh * mw * h * w);
                let grad = values(&mut rng, n * h * w * h * w);
                let want = reference::forward(&mask, [n, h, w], (mh, mw), psa_type);
                let want_grad = reference::backward(&grad, [n, h, w], (mh, mw), psa_type);

                let opts = (device, dtype);
                // Non-contiguous input: stored (N, H, W, C), viewed (N, C, H, W).
                let x = if transposed {
                    let nhwc: Vec<f64> = (0..n * h * w * mh * mw)
                        .map(|i| {
                            let (c, rest) = (i % (mh * mw), i / (mh * mw));
                            let (xx, rest) = (rest % w, rest / w);
                            let (yy, b) = (rest % h, rest / h);
                            mask[((b * mh * mw + c) * h + yy) * w + xx]
                        })
                        .collect();
                    Tensor::<B, 4>::from_data(TensorData::new(nhwc, [n, h, w, mh * mw]), opts).permute([0, 3, 1, 2])
                } else {
                    Tensor::<B, 4>::from_data(TensorData::new(mask.clone(), [n, mh * mw, h, w]), opts)
                };
                let x = x.require_grad();
                let out = psamask(x.clone(), options).unwrap();
                assert_eq!(out.dims(), [n, h * w, h, w]);
                let g = Tensor::<B, 4>::from_data(TensorData::new(grad, [n, h * w, h, w]), opts);
                if n == 0 {
                    // Empty batch: forward only (burn-cubecl 0.21's elementwise ops panic on
                    // broadcasting zero-sized tensors, so no loss can be formed).
                    assert!(to_vec(out).is_empty());
                    continue;
                }
                let grads = (out.clone() * g).sum().backward();
                let got_grad = x.grad(&grads).map(to_vec::<B::InnerBackend>).unwrap_or_default();
                let case = format!("{label} {dtype:?} {psa_type:?} n={n} {h}x{w} mask {mh}x{mw} transposed={transposed}");
                assert_eq!(to_vec(out), want, "forward: {case}");
                assert_eq!(got_grad, want_grad, "backward: {case}");
            }
        }
    }
}

#[test]
fn ndarray_matches_reference() {
    run_suite::<Autodiff<NdArray>>("ndarray", &Default::default(), DType::F32, true);
    run_suite::<Autodiff<NdArray<f64>>>("ndarray", &Default::default(), DType::F64, true);
}

#[cfg(feature = "wgpu")]
#[test]
fn wgpu_kernels_match_reference() {
    let device = burn::backend::wgpu::WgpuDevice::default();
    run_suite::<Autodiff<burn::backend::Wgpu>>("wgpu", &device, DType::F32, true);
    run_suite::<Autodiff<burn::backend::Wgpu>>("wgpu", &device, DType::F16, true);
}

#[test]
fn cpu_kernels_match_reference() {
    let mut rng = StdRng::seed_from_u64(11);
    for (n, h, w, mh, mw) in SHAPES {
        for psa_type in [PsaType::Collect, PsaType::Distribute] {
            let options = PsaMaskOptions { psa_type, mask_size: (mh, mw) };
            let (hw, m) = (h * w, mh * mw);
            // The source sits at a storage offset, with padded rows.
            let mask = values(&mut rng, n * m * hw);
            let pitch = w + 2;
            let mut storage = vec![f64::NAN; 3 + n * m * h * pitch];
            for b in 0..n {
                for c in 0..m {
                    for y in 0..h {
                        for x in 0..w {
                            storage[3 + ((b * m + c) * h + y) * pitch + x] = mask[((b * m + c) * h + y) * w + x];
                        }
                    }
                }
            }
            let view = View::new("input", &storage[3..], [n, m, h, w], [m * h * pitch, h * pitch, pitch, 1]).unwrap();
            let mut out = vec![f64::NAN; n * hw * hw];
            cpu::remap(view, &mut out, options, false).unwrap();
            assert_eq!(out, reference::forward(&mask, [n, h, w], (mh, mw), psa_type), "cpu forward {psa_type:?} {h}x{w} {mh}x{mw}");

            let grad = values(&mut rng, n * hw * hw);
            let view = View::new("grad_output", &grad, [n, hw, h, w], [hw * hw, hw, w, 1]).unwrap();
            let mut out = vec![f64::NAN; n * m * hw];
            cpu::remap(view, &mut out, options, true).unwrap();
            assert_eq!(out, reference::backward(&grad, [n, h, w], (mh, mw), psa_type), "cpu backward {psa_type:?}");
        }
    }
}

#[test]
fn bad_input_is_an_error() {
    let device = Default::default();
    let x = Tensor::<NdArray, 4>::zeros([1, 8, 3, 3], &device);
    let err = psamask(x.clone(), PsaMaskOptions { psa_type: PsaType::Collect, mask_size: (3, 3) }).unwrap_err();
    assert!(matches!(err, OpError::Shape { arg: "input", .. }), "{err}");
    assert!(err.to_string().contains("8 channels"), "{err}");
    let err = psamask(x, PsaMaskOptions { psa_type: PsaType::Collect, mask_size: (0, 8) }).unwrap_err();
    assert!(matches!(err, OpError::Shape { arg: "mask_size", .. }), "{err}");
    let storage = vec![0.0f32; 10];
    let view = View::new("input", &storage, [1, 1, 2, 5], [10, 10, 5, 1]).unwrap();
    let mut out = vec![0.0f32; 3];
    let options = PsaMaskOptions { psa_type: PsaType::Distribute, mask_size: (1, 1) };
    assert!(matches!(cpu::remap(view, &mut out, options, false), Err(OpError::Shape { arg: "output", .. })));
}

/// The reference itself against a hand-worked case: a 3x3 mask on a 2x2 map.
#[test]
fn reference_by_hand() {
    // mask[c, y, x] = 100 * c + 10 * y + x (c = i*3 + j); half = 1.
    let mask: Vec<f64> = (0..9).flat_map(|c| (0..2).flat_map(move |y| (0..2).map(move |x| (100 * c + 10 * y + x) as f64))).collect();
    let collect = reference::forward(&mask, [1, 2, 2], (3, 3), PsaType::Collect);
    // Position (0, 0), cell (i, j) = (1, 1) targets (0, 0): map[target 0, 0, 0] = mask[4, 0, 0] = 400.
    assert_eq!(collect[0], 400.0);
    // Position (1, 1), cell (0, 0) targets (0, 0): map[target 0, 1, 1] = mask[0, 1, 1] = 11.
    assert_eq!(collect[3], 11.0);
    let distribute = reference::forward(&mask, [1, 2, 2], (3, 3), PsaType::Distribute);
    // Position (1, 1) = channel 3, cell (0, 0) targets (0, 0): map[3, 0, 0] = mask[0, 1, 1] = 11.
    assert_eq!(distribute[3 * 4], 11.0);
    // Position (0, 0) = channel 0, cell (2, 2) targets (1, 1): map[0, 1, 1] = mask[8, 0, 0] = 800.
    assert_eq!(distribute[3], 800.0);
}

/// On a CUDA GPU (`cargo test --features cuda -- --ignored`; see docs/gpu-testing.md).
#[cfg(feature = "cuda")]
#[test]
#[ignore]
fn cuda_kernels_match_reference() {
    let device = burn::backend::cuda::CudaDevice::default();
    for dtype in [DType::F32, DType::F16, DType::BF16, DType::F64] {
        run_suite::<Autodiff<burn::backend::Cuda>>("cuda", &device, dtype, false);
    }
}
