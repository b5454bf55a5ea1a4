//! The tensor-op composition path (NdArray backend) against the float64 reference.

mod common;

use burn::backend::{Autodiff, NdArray};
use burn::tensor::DType;
use common::{edge_cases, non_finite_cases, random_cases, run_suite};


#[test]
fn composite_matches_reference() {
    let mut cases = random_cases(1, 16);
    cases.extend(edge_cases());
    cases.extend(non_finite_cases());
    let dtypes = [(DType::F32, 1e-5), (DType::F64, 1e-12)];
    run_suite::<Autodiff<NdArray>>("ndarray", &Default::default(), &dtypes, &cases);
}
