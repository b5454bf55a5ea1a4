//! Device-side helpers the kernels share: reads of whole vectors of channels, and sums
//! over the threads that share one point.

use cubecl::prelude::*;

/// The vector of `N` channels starting at element `at` (a multiple of `N`), or zeros.
#[cube]
pub fn read_vector<F: Float, A: Float, N: Size>(map: &Array<Vector<F, N>>, at: usize, inside: bool) -> Vector<A, N> {
    let mut cells = Vector::<A, N>::new(A::new(0.0));
    if inside {
        cells = Vector::cast_from(map[at / map.vector_size()]);
    }
    cells
}

/// Sum over a group of `lanes` threads of one plane whose positions differ by multiples of
/// `stride` (`stride = 1`: neighbouring threads; a plane then holds 32 / lanes groups side
/// by side, or interleaved with a larger `stride`). A butterfly of plane shuffles: every
/// thread of the group gets the total. `lanes * stride` must not exceed the plane size.
#[cube]
pub fn group_sum<A: Float>(value: A, #[comptime] lanes: u32, #[comptime] stride: u32) -> A {
    let mut sum = value;
    if comptime!(lanes >= 32) {
        sum += plane_shuffle_xor(sum, comptime!(16 * stride));
    }
    if comptime!(lanes >= 16) {
        sum += plane_shuffle_xor(sum, comptime!(8 * stride));
    }
    if comptime!(lanes >= 8) {
        sum += plane_shuffle_xor(sum, comptime!(4 * stride));
    }
    if comptime!(lanes >= 4) {
        sum += plane_shuffle_xor(sum, comptime!(2 * stride));
    }
    if comptime!(lanes >= 2) {
        sum += plane_shuffle_xor(sum, stride);
    }
    sum
}

/// The vector width (4, else 1) in which a kernel can read or write channels, given their
/// number, the storage's size in bytes and each tensor's byte address and element strides
/// (channels last): 4 needs D a multiple of 4, channels at unit stride,
/// every other stride a multiple of 4 and each base address on a whole vector; f64 stays
/// scalar (vectors of 32 bytes do not exist).
pub fn vector_width(channels: usize, elem_bytes: usize, tensors: &[(u64, &[usize])]) -> usize {
    let fits = |&(address, strides): &(u64, &[usize])| {
        let (last, outer) = strides.split_last().map_or((0, &[][..]), |(l, o)| (*l, o));
        last == 1 && outer.iter().all(|s| s % 4 == 0) && address % (4 * elem_bytes as u64) == 0
    };
    if channels % 4 == 0 && elem_bytes <= 4 && tensors.iter().all(fits) {
        4
    } else {
        1
    }
}

/// Whether `client` adds whole vectors of 4 `accumulation` values atomically.
pub fn supports_vector_add<R: Runtime>(client: &ComputeClient<R>, accumulation: StorageType) -> bool {
    let atomic = cubecl::ir::Type::new(StorageType::Atomic(accumulation.elem_type())).with_vector_size(4);
    client.properties().atomic_type_usage(atomic).contains(cubecl::ir::features::AtomicUsage::Add)
}

