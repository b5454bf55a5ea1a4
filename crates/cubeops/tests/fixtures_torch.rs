//! The float64 reference against PyTorch's F.grid_sample (forward and both gradients), from
//! tests/fixtures/point_sample.safetensors (regenerate: tests/fixtures/make_point_sample_fixtures.py).

use std::collections::BTreeSet;

use cubeops::point_sample::reference::{backward, forward, RefDims};
use cubeops::point_sample::Sampling;
use safetensors::SafeTensors;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/point_sample.safetensors");

fn read(st: &SafeTensors, name: &str) -> (Vec<usize>, Vec<f64>) {
    let view = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(view.dtype(), safetensors::Dtype::F64, "{name}");
    let values = view.data().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect();
    (view.shape().to_vec(), values)
}

fn assert_close(name: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-10 * w.abs().max(1.0), "{name}[{i}]: reference {g}, torch {w}");
    }
}

#[test]
fn reference_matches_torch_grid_sample() {
    let bytes = std::fs::read(FIXTURES).expect("fixture file");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let prefixes: BTreeSet<String> = st.names().iter().map(|n| n.rsplit_once('.').unwrap().0.to_string()).collect();
    assert!(prefixes.len() >= 100, "expected at least 100 fixture cases, found {}", prefixes.len());
    for prefix in &prefixes {
        // "<case>.ac<0|1>.<mode>.<padding>"
        let parts: Vec<&str> = prefix.split('.').collect();
        let sampling = Sampling {
            align_corners: parts[1] == "ac1",
            mode: parts[2].parse().unwrap(),
            padding: parts[3].parse().unwrap(),
        };
        let (in_shape, input) = read(&st, &format!("{prefix}.input"));
        let (pt_shape, points) = read(&st, &format!("{prefix}.points"));
        let (_, grad_output) = read(&st, &format!("{prefix}.grad_output"));
        let dims = RefDims {
            n: in_shape[0],
            channels: in_shape[1],
            height: in_shape[2],
            width: in_shape[3],
            num_points: pt_shape[1..pt_shape.len() - 1].iter().product(),
        };
        let output = forward(dims, &input, &points, sampling);
        let (grad_input, grad_points) = backward(dims, &input, &points, &grad_output, sampling);
        assert_close(&format!("{prefix}.output"), &output, &read(&st, &format!("{prefix}.output")).1);
        assert_close(&format!("{prefix}.grad_input"), &grad_input, &read(&st, &format!("{prefix}.grad_input")).1);
        assert_close(&format!("{prefix}.grad_points"), &grad_points, &read(&st, &format!("{prefix}.grad_points")).1);
    }
    println!("{} torch fixture cases agree with the float64 reference", prefixes.len());
}
