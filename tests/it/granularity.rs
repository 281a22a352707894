//! Every granularity name of METHOD.md, and PyTorch's nearest rule.

use selmask_wire::error::Error;
use selmask_wire::granularity::{CellLayout, Granularity, nearest_source_index};

#[test]
fn every_name_gives_its_mask_shape() {
    let input = [3, 32, 32];
    let table: [(&str, [usize; 3]); 20] = [
        ("subpixel", [3, 32, 32]),
        ("pixel", [1, 32, 32]),
        ("channel", [3, 1, 1]),
        ("version", [1, 1, 1]),
        ("quadsubpixel", [3, 8, 8]),
        ("quadpixel", [1, 8, 8]),
        ("subquadrant", [3, 2, 2]),
        ("quadrant", [1, 2, 2]),
        ("subnondrant", [3, 3, 3]),
        ("nondrant", [1, 3, 3]),
        ("sub5drant", [3, 5, 5]),
        ("5drant", [1, 5, 5]),
        ("subCXLIVdrant", [3, 12, 12]),
        ("CXLIVdrant", [1, 12, 12]),
        ("grid:12", [1, 12, 12]),
        ("subgrid:12", [3, 12, 12]),
        ("block:4", [1, 8, 8]),
        ("subblock:5", [3, 6, 6]),
        ("grid:7", [1, 7, 7]),
        ("block:32", [1, 1, 1]),
    ];
    for (name, shape) in table {
        let g: Granularity = name.parse().unwrap();
        assert_eq!(g.mask_shape(input).unwrap(), shape, "{name}");
    }
    // 48x48 grids need inputs of at least 48 pixels (ships: 384).
    assert_eq!("sub48drant".parse::<Granularity>().unwrap().mask_shape([3, 384, 384]).unwrap(), [3, 48, 48]);
    assert_eq!("48drant".parse::<Granularity>().unwrap().mask_shape([3, 384, 384]).unwrap(), [1, 48, 48]);
}

#[test]
fn unknown_names_list_the_valid_ones() {
    let err = "hexadrant".parse::<Granularity>().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::UnknownGranularity { .. }));
    for valid in ["subpixel", "quadpixel", "sub5drant", "CXLIVdrant", "48drant", "grid:N", "block:N"] {
        assert!(msg.contains(valid), "{valid} missing from: {msg}");
    }
}

#[test]
fn grids_finer_than_the_input_are_rejected() {
    let msg = "48drant".parse::<Granularity>().unwrap().mask_shape([1, 28, 28]).unwrap_err().to_string();
    assert!(msg.contains("48x48") && msg.contains("[1, 28, 28]"), "{msg}");
}

/// Source indices PyTorch's `interpolate(mode="nearest")` gives, computed
/// with float32 arithmetic exactly as ATen does (not with integer floor).
const PYTORCH_NEAREST: [(usize, usize, &[usize]); 6] = [
    (12, 32, &[0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 6, 6, 6, 7, 7, 7, 8, 8, 9, 9, 9, 10, 10, 10, 11, 11]),
    (5, 28, &[0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4]),
    (3, 28, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2]),
    (12, 35, &[0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6, 7, 7, 7, 8, 8, 8, 9, 9, 9, 10, 10, 10, 11, 11]),
    (7, 28, &[0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6]),
    (2, 5, &[0, 0, 0, 1, 1]),
];

#[test]
fn nearest_upsampling_matches_pytorch_on_uneven_grids() {
    for (cells, pixels, expected) in PYTORCH_NEAREST {
        let got: Vec<usize> = (0..pixels).map(|d| nearest_source_index(d, cells, pixels)).collect();
        assert_eq!(got, expected, "{cells} cells on {pixels} pixels");
        // Through a full layout: row r of a [1, cells, cells] mask on [1, pixels, pixels].
        let layout = CellLayout::new([1, pixels, pixels], [1, cells, cells]).unwrap();
        let first_column: Vec<usize> = (0..pixels).map(|y| layout.cell_of_value[y * pixels] / cells).collect();
        assert_eq!(first_column, expected);
    }
}

#[test]
fn float32_rounding_cases_follow_pytorch_not_integer_floor() {
    // floor(41 * 2 / 82) = 1, but ATen's float32 0.024390243 * 41 < 1.
    for (cells, pixels, dst, pytorch) in [(2, 82, 41, 0), (14, 46, 23, 6), (48, 74, 37, 23), (12, 74, 37, 5)] {
        assert_eq!(nearest_source_index(dst, cells, pixels), pytorch, "{cells} on {pixels} at {dst}");
        assert_eq!(dst * cells / pixels, pytorch + 1);
    }
}

#[test]
fn cells_map_channels_and_count_values() {
    // Per-channel grid on a 2-channel input: channel c uses cells of channel c.
    let layout = "subquadrant".parse::<Granularity>().unwrap().layout([2, 4, 4]).unwrap();
    assert_eq!(layout.mask, [2, 2, 2]);
    assert_eq!(layout.cell_of_value[16], 4); // channel 1, pixel (0, 0)
    assert_eq!(layout.values_per_cell, vec![4; 8]);
    // A shared grid covers all channels.
    let layout = "quadrant".parse::<Granularity>().unwrap().layout([2, 5, 5]).unwrap();
    assert_eq!(layout.cell_of_value[0], layout.cell_of_value[25]);
    // 2 cells on 5 pixels: 3 + 2 per row, so the four cells cover 9, 6, 6, 4 pixels, times 2 channels.
    assert_eq!(layout.values_per_cell, vec![18, 12, 12, 8]);
    assert!((layout.value_fraction(&[0.0, 0.0, 0.0, 1.0]) - 8.0 / 50.0).abs() < 1e-12);
}

/// Rows (or columns) of each of `cells` grid cells on `pixels`, by the nearest rule.
fn cell_extents(cells: usize, pixels: usize) -> Vec<usize> {
    let mut extents = vec![0; cells];
    for d in 0..pixels {
        extents[nearest_source_index(d, cells, pixels)] += 1;
    }
    extents
}

#[test]
fn channel_masks_on_the_36_band_remote_shape_select_whole_bands() {
    let layout = "channel".parse::<Granularity>().unwrap().layout([36, 35, 35]).unwrap();
    assert_eq!(layout.mask, [36, 1, 1]);
    assert_eq!(layout.values_per_cell, vec![35 * 35; 36]);
    // Band k's values all map to cell k, in channel-major order.
    for (v, &cell) in layout.cell_of_value.iter().enumerate() {
        assert_eq!(cell, v / (35 * 35));
    }
    // Keeping 9 of 36 bands: Q = bytes = 0.25 (equal cells).
    let mut keep = vec![0.0f32; 36];
    keep[..9].iter_mut().for_each(|k| *k = 1.0);
    assert!((layout.value_fraction(&keep) - 0.25).abs() < 1e-12);
    let up = layout.upsample(&keep);
    assert_eq!(up.iter().filter(|&&v| v == 1.0).count(), 9 * 35 * 35);
}

#[test]
fn twelve_by_twelve_grids_make_uneven_blocks_on_32_pixels_and_32_pixel_blocks_on_384() {
    // 32 px in 12 cells (METHOD.md: "on sizes that do not divide evenly the
    // nearest rule makes uneven blocks"): 8 cells of 3 rows and 4 of 2.
    let rows = cell_extents(12, 32);
    assert_eq!(rows.iter().sum::<usize>(), 32);
    assert_eq!((rows.iter().filter(|&&r| r == 3).count(), rows.iter().filter(|&&r| r == 2).count()), (8, 4));
    let layout = "CXLIVdrant".parse::<Granularity>().unwrap().layout([3, 32, 32]).unwrap();
    assert_eq!(layout.mask, [1, 12, 12]);
    for (cell, &n) in layout.values_per_cell.iter().enumerate() {
        assert_eq!(n, 3 * rows[cell / 12] * rows[cell % 12], "cell {cell}");
    }
    // Q counts cells, bytes count values: one 3x3 cell of 144 is Q 1/144
    // but 27/3072 of the bytes; one 2x2 cell moves 12/3072.
    let big = rows.iter().position(|&r| r == 3).unwrap();
    let small = rows.iter().position(|&r| r == 2).unwrap();
    let mut one = vec![0.0f32; 144];
    one[big * 12 + big] = 1.0;
    assert!((layout.value_fraction(&one) - 27.0 / 3072.0).abs() < 1e-12);
    one[big * 12 + big] = 0.0;
    one[small * 12 + small] = 1.0;
    assert!((layout.value_fraction(&one) - 12.0 / 3072.0).abs() < 1e-12);

    // Ships, 384 px: the 12x12 grid is 32-pixel blocks, per channel with "sub".
    assert_eq!(cell_extents(12, 384), vec![32; 12]);
    let layout = "subCXLIVdrant".parse::<Granularity>().unwrap().layout([3, 384, 384]).unwrap();
    assert_eq!(layout.mask, [3, 12, 12]);
    assert_eq!(layout.values_per_cell, vec![32 * 32; 3 * 144]);
    // Value (c, y, x) belongs to cell (c, y / 32, x / 32).
    for (c, y, x) in [(0, 0, 0), (1, 31, 32), (2, 383, 383), (1, 200, 17)] {
        assert_eq!(layout.cell_of_value[(c * 384 + y) * 384 + x], c * 144 + (y / 32) * 12 + x / 32);
    }
}
