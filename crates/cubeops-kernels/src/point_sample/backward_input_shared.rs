//! point_sample backward to the input, summed in shared memory: one block per (n, c) plane
//! (or per tile of its rows), float atomics on the SM instead of in L2, then one coalesced
//! write of the tile. For NCHW maps, where the global-atomic kernel spends most of its time
//! on four scattered 4-byte atomics per (n, c, p).

use cubecl::prelude::*;

use super::backward_input_fixed::fixed_scale;
use super::sampling::{locate_point, Footprint, GeometryArgs, Sampling};

/// f32 cells of one block's tile in shared memory (48 KiB, the most a block may hold
/// without opting in): a 100 x 100 map is one tile, a 200 x 200 one four.
pub const SHARED_CELLS: usize = 12288;

/// Most row tiles per plane for which summing in shared memory is used (the bridge's and the
/// Python package's choice): every tile walks all points of its map.
pub const SHARED_MAX_TILES: usize = 8;

/// Cells of one block's tile in [`point_sample_backward_input_shared_fixed_kernel`]: an i64
/// sum and two bits of flags each (47.95 KiB of 48); a 100 x 100 map is two tiles, a
/// 200 x 200 one seven.
pub const SHARED_FIXED_CELLS: usize = 5952;

/// Cells whose non-finite flags share one u32 of shared memory (two bits each).
const FLAG_CELLS_PER_WORD: usize = 16;

/// Shared memory of 16 fixed-point cells: their i64 sums and one flag word.
const SHARED_FIXED_BYTES_PER_16: usize = 16 * 8 + 4;

/// The cells of a 48 KiB tile: [`SHARED_CELLS`], or with `fixed` [`SHARED_FIXED_CELLS`].
pub fn small_shared_cells(fixed: bool) -> usize {
    if fixed {
        SHARED_FIXED_CELLS
    } else {
        SHARED_CELLS
    }
}

/// The cells of the largest tile a block of compute capability `cc` holds when it opts in
/// to more than 48 KiB of shared memory (sm_80 163 KiB, sm_86/89/120 99 KiB, sm_90/100
/// 227 KiB), as a whole multiple of 1024 cells: f32 sums, or with `fixed` the i64 sums and
/// flags of [`point_sample_backward_input_shared_fixed_kernel`]. None where that is not at
/// least twice the 48 KiB tile ([`SHARED_CELLS`], [`SHARED_FIXED_CELLS`]) or the
/// architecture is not known here. Fewer tiles per plane mean fewer walks over the points:
/// on sm_90 a 200 x 200 map is one tile (fixed: two), a 400 x 400 one three (fixed: six).
pub fn large_shared_cells(cc: u32, fixed: bool) -> Option<usize> {
    let bytes = match cc {
        80 | 87 => 163 * 1024,
        86 | 89 | 120 | 121 => 99 * 1024,
        90 | 100 | 103 => 227 * 1024,
        _ => return None,
    };
    let cells = if fixed { bytes / SHARED_FIXED_BYTES_PER_16 * 16 } else { bytes / 4 };
    Some(cells / 1024 * 1024).filter(|cells| *cells >= 2 * small_shared_cells(fixed))
}

/// Bytes of shared memory of a tile of `cells` (`fixed`: sums and flags).
pub fn shared_tile_bytes(cells: usize, fixed: bool) -> usize {
    if fixed {
        cells / 16 * SHARED_FIXED_BYTES_PER_16
    } else {
        cells * 4
    }
}

/// Threads per block of the shared-memory kernels with `cells` per tile (`fixed`: of
/// [`point_sample_backward_input_shared_fixed_kernel`]): 256 for 48 KiB tiles (four blocks
/// per SM), 1024 for larger ones, which leave room for one or two blocks per SM: the walk
/// over the points needs warps in flight.
pub fn shared_cube_dim(cells: usize, fixed: bool) -> u32 {
    if cells > small_shared_cells(fixed) {
        1024
    } else {
        256
    }
}

/// `(tiles per plane, rows per tile)` of [`point_sample_backward_input_shared_kernel`] with
/// tiles of `cells` cells ([`SHARED_CELLS`], or [`large_shared_cells`]; for
/// [`point_sample_backward_input_shared_fixed_kernel`], [`SHARED_FIXED_CELLS`]) for an
/// `height x width` map, or None when the map is empty or a single row does not fit. The
/// kernel computes the same; the launch has `n * channels * tiles` blocks.
pub fn shared_tiles(height: usize, width: usize, cells: usize) -> Option<(usize, usize)> {
    if height == 0 || width == 0 || width > cells {
        return None;
    }
    let rows = (cells / width).min(height);
    Some((height.div_ceil(rows), rows))
}

/// `grad_input[n, c, rows of one tile] = sum over points p of weight * grad_output[n, c, p]`,
/// written whole in the map's dtype `G` (zeros included: the buffer needs no zero fill, and
/// 16-bit maps no float32 buffer and cast).
///
/// Tiles hold `cells` cells ([`SHARED_CELLS`], or [`large_shared_cells`] with
/// [`shared_cube_dim`] threads and the launch's opt-in to that much shared memory).
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
    #[comptime] cells: usize,
    #[define(Q, G)] _dtypes: [StorageType; 2],
) {
    // Launched for non-empty maps whose rows fit (`shared_tiles`): `rows` >= 1.
    let mut tile_sums = SharedMemory::<Atomic<f32>>::new(cells);
    let tile = block_tile(geo, cells);
    let step = CUBE_DIM as usize;
    clear_float_sums(&mut tile_sums, tile.cells);

    let num_points = geo.num_points as usize;
    let mut p = UNIT_POS as usize;
    while p < num_points {
        let fp = locate_point::<Q, f32>(points, geo, tile.n, p, sampling, true);
        let (top, bottom) = rows_in_tile(&fp, &tile);
        if top || bottom {
            let grad = f32::cast_from(grad_output[tile.grad_base + p * geo.out_p as usize]);
            if top {
                add_row(&mut tile_sums, (fp.y0 - tile.first_row) * tile.width, &fp, grad * (1.0 - fp.ty));
            }
            if bottom {
                add_row(&mut tile_sums, (fp.y1 - tile.first_row) * tile.width, &fp, grad * fp.ty);
            }
        }
        p += step;
    }
    sync_cube();

    let mut i = UNIT_POS as usize;
    while i < tile.cells {
        grad_input[tile.map_base + i] = G::cast_from(tile_sums[i].load());
        i += step;
    }
}

/// The rows of one plane a block owns: block `b` of `n * channels * tiles` takes tile
/// `b % tiles` of plane `b / tiles`, tiles of `capacity / width` rows.
#[derive(CubeType)]
struct BlockTile {
    n: usize,
    width: usize,
    first_row: usize,
    end_row: usize,
    /// Cells of the tile, `(end_row - first_row) * width`.
    cells: usize,
    /// Where the plane's gradients start in `grad_output`, the tile's first cell in `grad_input`.
    grad_base: usize,
    map_base: usize,
}

#[cube]
fn block_tile(geo: &GeometryArgs, #[comptime] capacity: usize) -> BlockTile {
    let channels = geo.channels as usize;
    let height = geo.height as usize;
    let width = geo.width as usize;
    let rows = select(capacity / width < height, capacity / width, height);
    let tiles = (height + rows - 1) / rows;
    let plane = CUBE_POS / tiles;
    let c = plane % channels;
    let n = plane / channels;
    let first_row = (CUBE_POS % tiles) * rows;
    let end_row = select(first_row + rows < height, first_row + rows, height);
    BlockTile {
        n,
        width,
        first_row,
        end_row,
        cells: (end_row - first_row) * width,
        grad_base: n * geo.out_n as usize + c * geo.out_c as usize,
        map_base: n * geo.map_n as usize + c * geo.map_c as usize + first_row * width,
    }
}

/// Zeroes the first `cells` sums, then waits for the block.
#[cube]
fn clear_float_sums(sums: &mut SharedMemory<Atomic<f32>>, cells: usize) {
    let mut i = UNIT_POS as usize;
    while i < cells {
        sums[i].store(0.0);
        i += CUBE_DIM as usize;
    }
    sync_cube();
}

/// Zeroes the first `cells` sums and their flag words, then waits for the block.
#[cube]
fn clear_fixed_sums(sums: &mut SharedMemory<Atomic<u64>>, flags: &mut SharedMemory<Atomic<u32>>, cells: usize) {
    let mut i = UNIT_POS as usize;
    while i < cells {
        sums[i].store(0);
        if i % FLAG_CELLS_PER_WORD == 0 {
            flags[i / FLAG_CELLS_PER_WORD].store(0);
        }
        i += CUBE_DIM as usize;
    }
    sync_cube();
}

/// Whether the point's top (`y0`) and bottom (`y1`) rows are inside the map and the tile.
#[cube]
fn rows_in_tile(fp: &Footprint<f32>, tile: &BlockTile) -> (bool, bool) {
    let top = fp.y0_in && fp.y0 >= tile.first_row && fp.y0 < tile.end_row;
    let bottom = fp.y1_in && fp.y1 >= tile.first_row && fp.y1 < tile.end_row;
    (top, bottom)
}

/// [`point_sample_backward_input_shared_kernel`] without float atomics: deterministic. Each
/// contribution is added as a 64-bit integer (two's complement) of units `1 / scale` in
/// shared memory (the scale and rounding of `point_sample_backward_input_fixed_kernel`, from
/// `largest` as `grad_output_max_kernel` leaves it), so the sums do not depend on the order
/// of the atomics, and the result has the bits of the global fixed-point path. A
/// contribution that is not finite sets a flag of its cell instead (+inf, -inf, NaN): such a
/// cell becomes the sum of its non-finite contributions, which those flags determine. Tiles
/// of `cells` cells: [`SHARED_FIXED_CELLS`], or [`large_shared_cells`] with `fixed`.
#[cube(launch, address_type = "dynamic")]
pub fn point_sample_backward_input_shared_fixed_kernel<Q: Float, G: Float>(
    grad_output: &Array<Q>,
    points: &Array<Q>,
    largest: &Array<u32>,
    grad_input: &mut Array<G>,
    geo: &GeometryArgs,
    #[comptime] sampling: Sampling,
    #[comptime] cells: usize,
    #[define(Q, G)] _dtypes: [StorageType; 2],
) {
    // Launched for non-empty maps whose rows fit (`shared_tiles` of `cells`, a multiple of
    // FLAG_CELLS_PER_WORD).
    let mut sums = SharedMemory::<Atomic<u64>>::new(cells);
    let mut flags = SharedMemory::<Atomic<u32>>::new(comptime!(cells / FLAG_CELLS_PER_WORD));
    let tile = block_tile(geo, cells);
    let step = CUBE_DIM as usize;
    let scale = fixed_scale(largest[0], geo.num_points);
    clear_fixed_sums(&mut sums, &mut flags, tile.cells);

    let mut p = UNIT_POS as usize;
    while p < geo.num_points as usize {
        let fp = locate_point::<Q, f32>(points, geo, tile.n, p, sampling, true);
        let (top, bottom) = rows_in_tile(&fp, &tile);
        if top || bottom {
            let grad = f32::cast_from(grad_output[tile.grad_base + p * geo.out_p as usize]);
            // The products in the global fixed-point kernel's order: the same roundings.
            let (wx0, wy0) = (1.0 - fp.tx, 1.0 - fp.ty);
            if top {
                let row = (fp.y0 - tile.first_row) * tile.width;
                add_fixed(&mut sums, &mut flags, row + fp.x0, grad * wx0 * wy0, scale, fp.x0_in);
                add_fixed(&mut sums, &mut flags, row + fp.x1, grad * fp.tx * wy0, scale, fp.x1_in);
            }
            if bottom {
                let row = (fp.y1 - tile.first_row) * tile.width;
                add_fixed(&mut sums, &mut flags, row + fp.x0, grad * wx0 * fp.ty, scale, fp.x0_in);
                add_fixed(&mut sums, &mut flags, row + fp.x1, grad * fp.tx * fp.ty, scale, fp.x1_in);
            }
        }
        p += step;
    }
    sync_cube();

    let mut i = UNIT_POS as usize;
    while i < tile.cells {
        let flag = (flags[i / FLAG_CELLS_PER_WORD].load() >> flag_shift(i)) & NON_FINITE_NAN;
        let mut value = f32::cast_from(i64::cast_from(sums[i].load())) / scale;
        if flag != 0 {
            let bits = select(flag == NON_FINITE_NAN, 0x7fc0_0000u32, select(flag == NON_FINITE_POS, 0x7f80_0000u32, 0xff80_0000u32));
            value = f32::reinterpret(bits);
        }
        grad_input[tile.map_base + i] = G::cast_from(value);
        i += step;
    }
}

// A cell's two flag bits: OR-ing both infinities gives NaN, their sum.
const NON_FINITE_POS: u32 = 1;
const NON_FINITE_NEG: u32 = 2;
const NON_FINITE_NAN: u32 = 3;

/// Where cell `at`'s two flag bits sit in its word.
#[cube]
fn flag_shift(at: usize) -> u32 {
    u32::cast_from(at % FLAG_CELLS_PER_WORD) * 2
}

/// Adds one contribution inside the map: finite as an integer of units `1 / scale`, else as
/// its flag.
#[cube]
fn add_fixed(sums: &mut SharedMemory<Atomic<u64>>, flags: &mut SharedMemory<Atomic<u32>>, at: usize, value: f32, scale: f32, inside: bool) {
    if inside {
        let bits = u32::reinterpret(value);
        // Finite on the bits (see `sampling::is_nan` for why not a float comparison).
        if (bits & 0x7f80_0000u32) != 0x7f80_0000u32 {
            // Two's complement: unsigned wrapping adds give the signed sum's bits (CUDA has no
            // shared-memory atomics on signed 64-bit integers).
            sums[at].fetch_add(u64::cast_from(i64::cast_from(f32::round(value * scale))));
        } else {
            let infinite = (bits & 0x007f_ffffu32) == 0;
            let flag = select(infinite, select(bits == 0x7f80_0000u32, NON_FINITE_POS, NON_FINITE_NEG), NON_FINITE_NAN);
            flags[at / FLAG_CELLS_PER_WORD].fetch_or(flag << flag_shift(at));
        }
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
        assert_eq!(shared_tiles(100, 100, SHARED_CELLS), Some((1, 100)));
        assert_eq!(shared_tiles(200, 200, SHARED_CELLS), Some((4, 61)));
        assert_eq!(shared_tiles(1, SHARED_CELLS, SHARED_CELLS), Some((1, 1)));
        assert_eq!(shared_tiles(3, SHARED_CELLS + 1, SHARED_CELLS), None);
        assert_eq!(shared_tiles(0, 10, SHARED_CELLS), None);
        assert_eq!(shared_tiles(10, 0, SHARED_CELLS), None);
        for cells in [SHARED_CELLS, SHARED_FIXED_CELLS, 57344, 24576] {
            for (h, w) in [(7, 13), (1000, 20), (2000, 100), (61, 200), (62, 200), (400, 400)] {
                let (tiles, rows) = shared_tiles(h, w, cells).unwrap();
                assert!(rows * w <= cells && tiles * rows >= h && (tiles - 1) * rows < h, "{h}x{w} in {cells}");
            }
        }
        assert_eq!(shared_tiles(100, 100, SHARED_FIXED_CELLS), Some((2, 59)));
        assert_eq!(shared_tiles(200, 200, SHARED_FIXED_CELLS), Some((7, 29)));
        assert_eq!(SHARED_FIXED_CELLS % FLAG_CELLS_PER_WORD, 0);
        // Sums and flag words within the 48 KiB a block may hold without opting in.
        assert!(SHARED_FIXED_CELLS * 8 + SHARED_FIXED_CELLS / FLAG_CELLS_PER_WORD * 4 <= 48 * 1024);
        assert_eq!(shared_tiles(1, SHARED_FIXED_CELLS + 1, SHARED_FIXED_CELLS), None);
    }

    #[test]
    fn large_tiles_fit_each_architecture_opt_in() {
        assert_eq!(large_shared_cells(90, false), Some(57344));
        assert_eq!(shared_tiles(200, 200, 57344), Some((1, 200)));
        assert_eq!(shared_tiles(400, 400, 57344), Some((3, 143)));
        assert_eq!(large_shared_cells(90, true), Some(27648));
        assert_eq!(shared_tiles(200, 200, 27648), Some((2, 138)));
        assert_eq!(shared_tiles(400, 400, 27648), Some((6, 69)));
        assert_eq!(large_shared_cells(120, false), Some(24576));
        assert_eq!(large_shared_cells(120, true), Some(12288));
        assert_eq!(large_shared_cells(80, false), Some(40960));
        assert_eq!((large_shared_cells(75, false), large_shared_cells(75, true)), (None, None));
        assert_eq!(large_shared_cells(70, false), None);
        let opt_in = |cc| match cc {
            80 | 87 => 163 * 1024,
            90 | 100 | 103 => 227 * 1024,
            _ => 99 * 1024,
        };
        for cc in [80, 86, 87, 89, 90, 100, 103, 120, 121] {
            for fixed in [false, true] {
                let cells = large_shared_cells(cc, fixed).unwrap();
                let bytes = shared_tile_bytes(cells, fixed);
                assert_eq!(bytes, if fixed { cells * 8 + cells / FLAG_CELLS_PER_WORD * 4 } else { cells * 4 });
                assert!(cells % 1024 == 0 && bytes <= opt_in(cc) && bytes > 48 * 1024, "sm_{cc} {fixed}");
                assert_eq!(shared_cube_dim(cells, fixed), 1024);
            }
        }
        assert_eq!((shared_cube_dim(SHARED_CELLS, false), shared_cube_dim(SHARED_FIXED_CELLS, true)), (256, 256));
    }
}
