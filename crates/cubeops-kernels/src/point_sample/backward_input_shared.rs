//! point_sample backward to the input, summed in shared memory: one block per (n, c) plane
//! (or per tile of its rows), float atomics on the SM instead of in L2, then one coalesced
//! write of the tile. For NCHW maps, where the global-atomic kernel spends most of its time
//! on four scattered 4-byte atomics per (n, c, p).

use cubecl::prelude::*;

use super::sampling::{locate_point, Footprint, GeometryArgs, Sampling};

/// f32 cells of one block's tile in shared memory (48 KiB, the most a block may hold
/// without opting in): a 100 x 100 map is one tile, a 200 x 200 one four.
pub const SHARED_CELLS: usize = 12288;

/// Most row tiles per plane for which summing in shared memory is used (the bridge's and the
/// Python package's choice): every tile walks all points of its map.
pub const SHARED_MAX_TILES: usize = 8;

/// `(tiles per plane, rows per tile)` of [`point_sample_backward_input_shared_kernel`] for
/// an `height x width` map, or None when the map is empty or a single row does not fit
/// [`SHARED_CELLS`]. The kernel computes the same; the launch has `n * channels * tiles`
/// blocks.
pub fn shared_tiles(height: usize, width: usize) -> Option<(usize, usize)> {
    if height == 0 || width == 0 || width > SHARED_CELLS {
        return None;
    }
    let rows = (SHARED_CELLS / width).min(height);
    Some((height.div_ceil(rows), rows))
}

/// `grad_input[n, c, rows of one tile] = sum over points p of weight * grad_output[n, c, p]`,
/// written whole in the map's dtype `G` (zeros included: the buffer needs no zero fill, and
/// 16-bit maps no float32 buffer and cast).
///
/// Block `b` (of `n * channels * tiles` blocks, [`shared_tiles`]) owns tile `b % tiles` of
/// plane `b / tiles`: its threads zero the tile in shared memory, walk all points of `n`
/// (neighbouring threads, neighbouring points: coalesced reads of `grad_output`), add the
/// corners that fall in the tile with shared-memory float atomics, and write the tile out.
/// Sums are order-dependent in the last bits where points share a cell, as with the global
/// atomics. `grad_input`'s planes are row-major (`map_w = 1`, `map_h = width`), at `map_n` /
/// `map_c`; `Q` is the type of `grad_output` and the points (this kernel never reads the
/// map). Sums are f32 (f64 maps take the global-atomic kernel).
#[cube(launch, address_type = "dynamic")]
pub fn point_sample_backward_input_shared_kernel<Q: Float, G: Float>(
    grad_output: &Array<Q>,
    points: &Array<Q>,
    grad_input: &mut Array<G>,
    geo: &GeometryArgs,
    #[comptime] sampling: Sampling,
    #[define(Q, G)] _dtypes: [StorageType; 2],
) {
    // Launched for non-empty maps whose rows fit (`shared_tiles`): `rows` >= 1.
    let cells = comptime!(SHARED_CELLS);
    let mut tile_sums = SharedMemory::<Atomic<f32>>::new(cells);
    let channels = geo.channels as usize;
    let height = geo.height as usize;
    let width = geo.width as usize;
    let rows = select(cells / width < height, cells / width, height);
    let tiles = (height + rows - 1) / rows;
    let tile = CUBE_POS % tiles;
    let plane = CUBE_POS / tiles;
    let c = plane % channels;
    let n = plane / channels;
    let first_row = tile * rows;
    let end_row = select(first_row + rows < height, first_row + rows, height);
    let tile_cells = (end_row - first_row) * width;
    let step = CUBE_DIM as usize;

    let mut i = UNIT_POS as usize;
    while i < tile_cells {
        tile_sums[i].store(0.0);
        i += step;
    }
    sync_cube();

    let grad_base = n * geo.out_n as usize + c * geo.out_c as usize;
    let num_points = geo.num_points as usize;
    let mut p = UNIT_POS as usize;
    while p < num_points {
        let fp = locate_point::<Q, f32>(points, geo, n, p, sampling, true);
        let top = fp.y0_in && fp.y0 >= first_row && fp.y0 < end_row;
        let bottom = fp.y1_in && fp.y1 >= first_row && fp.y1 < end_row;
        if top || bottom {
            let grad = f32::cast_from(grad_output[grad_base + p * geo.out_p as usize]);
            if top {
                add_row(&mut tile_sums, (fp.y0 - first_row) * width, &fp, grad * (1.0 - fp.ty));
            }
            if bottom {
                add_row(&mut tile_sums, (fp.y1 - first_row) * width, &fp, grad * fp.ty);
            }
        }
        p += step;
    }
    sync_cube();

    let base = n * geo.map_n as usize + c * geo.map_c as usize + first_row * width;
    let mut i = UNIT_POS as usize;
    while i < tile_cells {
        grad_input[base + i] = G::cast_from(tile_sums[i].load());
        i += step;
    }
}

/// Adds `row_grad` (the gradient times the row's weight) into the x0 / x1 cells of one tile
/// row starting at `row`.
#[cube]
fn add_row(tile_sums: &mut SharedMemory<Atomic<f32>>, row: usize, fp: &Footprint<f32>, row_grad: f32) {
    if fp.x0_in {
        tile_sums[row + fp.x0].fetch_add(row_grad * (1.0 - fp.tx));
    }
    if fp.x1_in {
        tile_sums[row + fp.x1].fetch_add(row_grad * fp.tx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_the_rows_and_fit_shared_memory() {
        assert_eq!(shared_tiles(100, 100), Some((1, 100)));
        assert_eq!(shared_tiles(200, 200), Some((4, 61)));
        assert_eq!(shared_tiles(1, SHARED_CELLS), Some((1, 1)));
        assert_eq!(shared_tiles(3, SHARED_CELLS + 1), None);
        assert_eq!(shared_tiles(0, 10), None);
        assert_eq!(shared_tiles(10, 0), None);
        for (h, w) in [(7, 13), (1000, 20), (2000, 100), (61, 200), (62, 200)] {
            let (tiles, rows) = shared_tiles(h, w).unwrap();
            assert!(rows * w <= SHARED_CELLS && tiles * rows >= h && (tiles - 1) * rows < h, "{h}x{w}");
        }
    }
}
