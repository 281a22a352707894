//! Codec tests: exact sizes (the header is the only framing), round trips
//! (property tests over shapes, selections, dtypes), rejection of malformed
//! payloads (version 1 included), and random bytes that must never make a
//! decoder panic.

use proptest::prelude::*;

use super::*;
use crate::dataset::Pixels;
use crate::artifact::format::{Normalisation, StoredDtype};
use crate::granularity::CellLayout;

fn plan(shape: [usize; 3], sel: &[u32]) -> StaticPlan {
    StaticPlan::new(shape, sel.to_vec()).unwrap()
}

#[test]
fn one_static_u8_item_is_header_plus_n_selected() {
    let p = plan([1, 4, 4], &[0, 3, 5, 15]);
    let item: Vec<u8> = (0..16).collect();
    let bytes = pack_static(
        &p,
        &[ItemRef {
            index: 9,
            values: &item,
        }],
    )
    .unwrap();
    assert_eq!(bytes.len(), HEADER_BYTES + 4);
    // magic, version 2, dtype u8, flags 0, 1 item, 4 values, 0 cells
    assert_eq!(
        &bytes[..HEADER_BYTES],
        &[b'S', b'L', b'M', b'X', 2, 1, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0]
    );
    // No index, no label: the values only.
    assert_eq!(&bytes[HEADER_BYTES..], &[0, 3, 5, 15]);
    assert_eq!(static_payload_bytes(1, 4, StoredDtype::U8), bytes.len());
    assert_eq!(static_payload_bytes(10, 4, StoredDtype::F32), HEADER_BYTES + 160);
    let d = unpack_static(&bytes, &p, &[9]).unwrap();
    assert_eq!((d.indices, d.labels), (vec![9], vec![]));
}

#[test]
fn an_empty_selection_sends_only_the_header() {
    let p = plan([1, 2, 2], &[]);
    let item = [7u8; 4];
    let items = [ItemRef {
        index: 0,
        values: &item[..],
    }; 3];
    let bytes = pack_static(&p, &items).unwrap();
    assert_eq!(bytes.len(), HEADER_BYTES);
    let d = unpack_static(&bytes, &p, &[5, 6, 7]).unwrap();
    assert_eq!((d.len(), d.values.len()), (3, 12));
    let e = pack_static(&p, &[ItemRef { index: 4, values: &item[..2] }]).unwrap_err().to_string();
    assert!(e.contains("item 4 has 2 values, the selection is for 4"), "{e}");
    // Nothing per item to bound the count by: the request bounds it.
    let mut huge = bytes.clone();
    huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = unpack_static(&huge, &p, &[0]).unwrap_err().to_string();
    assert!(e.starts_with("malformed payload:") && e.contains(&u32::MAX.to_string()), "{e}");
}

#[test]
fn sizes_have_no_per_item_framing_beyond_dynamic_mask_bits() {
    let layout = CellLayout::new([3, 4, 4], [1, 3, 3]).unwrap();
    // 9 cells: 2 mask bytes per item, then at most 48 values.
    assert_eq!(
        dynamic_max_payload_bytes(&layout, StoredDtype::U8, 5),
        HEADER_BYTES + 5 * (2 + 48)
    );
    assert_eq!(dynamic_max_payload_bytes(&layout, StoredDtype::F32, 0), HEADER_BYTES);
    let sel = Selection::Static(plan([1, 4, 4], &[1, 2]));
    assert_eq!(sel.max_payload_bytes(StoredDtype::U8, 3), HEADER_BYTES + 6);
    // Saturates instead of wrapping.
    assert_eq!(static_payload_bytes(usize::MAX, 2, StoredDtype::F32), usize::MAX);
}

/// Fashion-MNIST at Q = 0.05 (41 selected u8 values per item), fetched in
/// batches: the payloads meet `1.01 · Q · raw + 20 · requests` with nothing
/// added, where version 1's 6 bytes per item broke it.
#[test]
fn static_payloads_meet_the_bound_with_only_the_header_per_request() {
    let shape = [1, 28, 28];
    let n = 784;
    let sel: Vec<u32> = (0..41).map(|k| k * 19).collect();
    let p = plan(shape, &sel);
    let bytes_fraction = p.n_selected() as f64 / n as f64;
    let values: Vec<u8> = (0..1000 * n).map(|v| (v * 7 % 251) as u8).collect();
    let items: Vec<ItemRef<'_, u8>> = (0..1000)
        .map(|i| ItemRef {
            index: i as u32,
            values: &values[i * n..(i + 1) * n],
        })
        .collect();
    for batch in [1, 7, 256, 1000] {
        let (mut wire, mut requests) = (0usize, 0usize);
        for chunk in items.chunks(batch) {
            wire += pack_static(&p, chunk).unwrap().len();
            requests += 1;
        }
        let full = items.len() * n;
        assert_eq!(wire, HEADER_BYTES * requests + items.len() * 41, "batch {batch}");
        let bound = 1.01 * bytes_fraction * full as f64 + (HEADER_BYTES * requests) as f64;
        assert!(wire as f64 <= bound, "batch {batch}: {wire} > {bound}");
        let v1 = wire + 6 * items.len();
        assert!(
            v1 as f64 > bound,
            "batch {batch}: the v1 prefix would have met the bound too"
        );
    }
}

#[test]
fn static_round_trip_puts_zeros_where_nothing_was_sent() {
    let p = plan([2, 2, 3], &[1, 2, 7, 11]);
    let a: Vec<u8> = (1..=12).collect();
    let b: Vec<u8> = (101..=112).collect();
    let bytes = pack_static(
        &p,
        &[ItemRef { index: 4, values: &a }, ItemRef { index: 0, values: &b }],
    )
    .unwrap();
    let d = unpack_static(&bytes, &p, &[4, 0]).unwrap();
    assert_eq!(d.indices, vec![4, 0]);
    assert!(d.labels.is_empty(), "payloads carry no labels");
    assert!(
        d.clone()
            .into_image_set()
            .unwrap_err()
            .to_string()
            .contains("2 items but 0 labels")
    );
    let mut labelled = d.clone();
    labelled.labels = vec![1, 9];
    assert_eq!(labelled.into_image_set().unwrap().labels, vec![1, 9]);
    let Pixels::U8(v) = &d.values else { panic!("dtype") };
    assert_eq!(&v[..12], &[0, 2, 3, 0, 0, 0, 0, 8, 0, 0, 0, 12]);
    assert_eq!(&v[12..], &[0, 102, 103, 0, 0, 0, 0, 108, 0, 0, 0, 112]);
}

#[test]
fn plans_reject_bad_selections_and_find_runs() {
    let err = |shape, selected| StaticPlan::new(shape, selected).unwrap_err().to_string();
    assert_eq!(err([1, 2, 2], vec![1, 1]), "malformed payload: selection not strictly ascending at position 1: 1 after 1");
    assert_eq!(err([1, 2, 2], vec![2, 1]), "malformed payload: selection not strictly ascending at position 1: 1 after 2");
    assert_eq!(err([1, 2, 2], vec![4]), "malformed payload: selected index 4 out of range for items of [1, 2, 2] (4 values)");
    assert_eq!(err([0, 2, 2], vec![]), "malformed payload: item shape [0, 2, 2] must hold 1 to 2^32 - 1 values");
    assert_eq!(plan([1, 4, 4], &[0, 1, 2, 5, 6, 9]).n_runs(), 3);
    let all = StaticPlan::all([3, 8, 8]).unwrap();
    assert_eq!((all.n_selected(), all.n_runs()), (192, 1));
}

#[test]
fn encoders_reject_items_of_the_wrong_size() {
    let p = plan([1, 2, 2], &[0]);
    let short = [1u8, 2];
    let e = pack_static(&p, &[ItemRef { index: 0, values: &short }]).unwrap_err().to_string();
    assert!(e.contains("item 0 has 2 values, the selection is for 4"), "{e}");
    let layout = CellLayout::new([1, 2, 2], [1, 1, 2]).unwrap();
    let item = [1u8; 4];
    let it = [ItemRef {
        index: 0,
        values: &item[..],
    }];
    let e = pack_dynamic(&layout, &it, &[vec![true]]).unwrap_err().to_string();
    assert!(e.contains("item 0 has 4 values and 1 mask cells, the layout needs 4 and 2"), "mask of 1 cell for 2: {e}");
    let e = pack_dynamic(&layout, &it, &[]).unwrap_err().to_string();
    assert!(e.contains("0 cell masks for 1 items"), "no mask: {e}");
}

#[test]
fn decoders_reject_malformed_payloads_with_reasons() {
    let p = plan([1, 2, 2], &[0, 3]);
    let item = [1u8, 2, 3, 4];
    let good = pack_static(
        &p,
        &[ItemRef {
            index: 0,
            values: &item,
        }],
    )
    .unwrap();
    assert_eq!(good.len(), HEADER_BYTES + 2);
    let check_asked = |bytes: &[u8], asked: &[u32], want: &str| {
        let e = unpack_static(bytes, &p, asked).unwrap_err().to_string();
        assert!(e.contains(want), "expected '{want}' in '{e}'");
    };
    let check = |bytes: &[u8], want: &str| check_asked(bytes, &[0], want);
    check(&good[..10], "shorter than the 20-byte header");
    check(&good[..good.len() - 1], "need 2 bytes after the header, found 1");
    let mut longer = good.clone();
    longer.push(0);
    check(&longer, "found 3");
    let mut m = good.clone();
    m[0] = b'X';
    check(&m, "magic");
    let mut m = good.clone();
    m[5] = 9;
    check(&m, "dtype code 9");
    let mut m = good.clone();
    m[6] = 0x02;
    check(&m, "unknown flags");
    let mut m = good.clone();
    m[12] = 3;
    check(&m, "3 values per item");
    let mut m = good.clone();
    m[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    check(&m, "4294967295 items in the payload, 1 asked for");
    check_asked(&good, &[0, 1], "1 items in the payload, 2 asked for");
    check_asked(&good, &[], "1 items in the payload, 0 asked for");
    m = good.clone();
    m[6] = 1;
    check(&m, "dynamic payload");
    // Other versions, version 1 above all (same magic, 6-byte item prefix):
    // refused by number, never decoded with shifted values.
    let mut v1 = good[..HEADER_BYTES].to_vec();
    v1[4] = 1;
    v1.extend_from_slice(&[0, 0, 0, 0, 7, 0, 1, 4]);
    check(&v1, "wire version 1 not supported");
    check(&v1, "speaks version 2");
    let mut m = good.clone();
    m[4] = 3;
    check(&m, "wire version 3 not supported");
    assert!(Header::parse(&v1).unwrap_err().to_string().contains("wire version 1"));
    // Dynamic decoders: static payload, padding bits, wrong cell count,
    // counts that do not match the request or the bytes.
    let layout = CellLayout::new([1, 2, 2], [1, 1, 2]).unwrap();
    let check_dyn = |bytes: &[u8], asked: &[u32], want: &str| {
        let e = unpack_dynamic(bytes, &layout, asked).unwrap_err().to_string();
        assert!(e.contains(want), "expected '{want}' in '{e}'");
    };
    check_dyn(&good, &[0], "static payload");
    let dyn_bytes = pack_dynamic(
        &layout,
        &[ItemRef {
            index: 1,
            values: &item[..],
        }],
        &[vec![true, false]],
    )
    .unwrap();
    // 1 mask byte, then the 2 values of cell 0 (column 0).
    assert_eq!(&dyn_bytes[HEADER_BYTES..], &[0b01, 1, 3]);
    let mut pad = dyn_bytes.clone();
    pad[HEADER_BYTES] |= 0x80;
    check_dyn(&pad, &[1], "padding bits");
    let other = CellLayout::new([1, 2, 2], [1, 2, 2]).unwrap();
    assert!(
        unpack_dynamic(&dyn_bytes, &other, &[1])
            .unwrap_err()
            .to_string()
            .contains("cells")
    );
    check_dyn(
        &dyn_bytes[..dyn_bytes.len() - 1],
        &[1],
        "2 values (2 bytes), 1 bytes left",
    );
    let mut longer = dyn_bytes.clone();
    longer.push(0);
    check_dyn(&longer, &[1], "1 trailing bytes");
    let mut more = dyn_bytes.clone();
    more[8] = 2; // two items announced, one present
    check_dyn(&more, &[1], "2 items in the payload, 1 asked for");
    check_dyn(&more, &[1, 2], "item 1 of 2 is truncated");
    more[8] = 5;
    check_dyn(&more, &[1, 2, 3, 4, 5], "5 items cannot fit in 3 bytes");
}

#[test]
fn dynamic_bits_are_lsb_first() {
    assert_eq!(
        pack_bits(&[true, false, false, false, false, false, false, false, false, true]),
        vec![0x01, 0x02]
    );
    let layout = CellLayout::new([1, 1, 9], [1, 1, 9]).unwrap();
    let item: Vec<u8> = (10..19).collect();
    let mut mask = vec![false; 9];
    mask[1] = true;
    mask[8] = true;
    let b = pack_dynamic(
        &layout,
        &[ItemRef {
            index: 0,
            values: &item,
        }],
        &[mask],
    )
    .unwrap();
    // 2 mask bytes, 2 values: nothing else per item
    assert_eq!(&b[HEADER_BYTES..], &[0b10, 0b1, 11, 18]);
}

#[test]
fn masked_normalised_is_zero_where_not_sent() {
    let p = plan([1, 1, 4], &[1, 2]);
    let item = [255u8, 255, 0, 255];
    let bytes = pack_static(
        &p,
        &[ItemRef {
            index: 0,
            values: &item,
        }],
    )
    .unwrap();
    let d = unpack_static(&bytes, &p, &[0]).unwrap();
    let norm = Normalisation {
        mean: vec![0.5],
        std: vec![0.25],
        scale: 1.0 / 255.0,
    };
    let x = d.masked_normalised(&Selection::Static(p), &norm, 2.0).unwrap();
    assert_eq!(x.len(), 4);
    assert_eq!(x[0], 0.0);
    assert!((x[1] - 4.0).abs() < 1e-5, "(1 - 0.5) / 0.25 * 2 = 4, got {}", x[1]);
    assert!((x[2] + 4.0).abs() < 1e-5, "a sent 0 is normalised: -4, got {}", x[2]);
    assert_eq!(x[3], 0.0);
}

/// A shape, a set of cells and items: inputs to the property tests.
fn shape_strategy() -> impl Strategy<Value = [usize; 3]> {
    (1usize..4, 1usize..9, 1usize..9).prop_map(|(c, h, w)| [c, h, w])
}

/// A selection that is either scattered or made of runs.
fn selection_for(n: usize, bits: &[bool], blocky: bool) -> Vec<u32> {
    if blocky {
        // Runs: keep whole stretches of 5 values decided by one bit each.
        (0..n)
            .filter(|&i| bits[(i / 5) % bits.len()])
            .map(|i| i as u32)
            .collect()
    } else {
        (0..n).filter(|&i| bits[i % bits.len()]).map(|i| i as u32).collect()
    }
}

fn check_static_round_trip<T: WireValue + PartialEq + std::fmt::Debug>(
    shape: [usize; 3],
    sel: Vec<u32>,
    items: Vec<(u32, Vec<T>)>,
    get: impl Fn(&Pixels) -> Vec<T>,
) -> Result<(), TestCaseError> {
    let p = StaticPlan::new(shape, sel).unwrap();
    let refs: Vec<ItemRef<'_, T>> = items.iter().map(|(i, v)| ItemRef { index: *i, values: v }).collect();
    let bytes = pack_static(&p, &refs).unwrap();
    prop_assert_eq!(bytes.len(), static_payload_bytes(items.len(), p.n_selected(), T::DTYPE));
    prop_assert_eq!(bytes.len(), HEADER_BYTES + items.len() * p.n_selected() * T::BYTES);
    let indices: Vec<u32> = items.iter().map(|(i, _)| *i).collect();
    let d = unpack(&bytes, &Selection::Static(p.clone()), &indices).unwrap();
    prop_assert_eq!(d.len(), items.len());
    prop_assert_eq!(&d.indices, &indices);
    prop_assert!(d.labels.is_empty());
    let dense = get(&d.values);
    let n = p.n_values();
    for (k, (_, v)) in items.iter().enumerate() {
        let mut expected = vec![T::default(); n];
        for &s in p.selected() {
            expected[s as usize] = v[s as usize];
        }
        prop_assert_eq!(&dense[k * n..(k + 1) * n], &expected[..]);
    }
    Ok(())
}

fn check_dynamic_round_trip<T: WireValue + PartialEq + std::fmt::Debug>(
    layout: &CellLayout,
    items: Vec<(u32, Vec<T>)>,
    masks: Vec<Vec<bool>>,
    get: impl Fn(&Pixels) -> Vec<T>,
) -> Result<(), TestCaseError> {
    let refs: Vec<ItemRef<'_, T>> = items.iter().map(|(i, v)| ItemRef { index: *i, values: v }).collect();
    let bytes = pack_dynamic(layout, &refs, &masks).unwrap();
    let indices: Vec<u32> = items.iter().map(|(i, _)| *i).collect();
    let d = unpack(&bytes, &Selection::Dynamic(layout.clone()), &indices).unwrap();
    prop_assert_eq!(&d.indices, &indices);
    prop_assert!(d.labels.is_empty());
    let dense = get(&d.values);
    let cm = d.cell_masks.clone().unwrap();
    let (n, nc) = (layout.n_values(), layout.n_cells());
    let mut sent_total = 0;
    for (k, (_, v)) in items.iter().enumerate() {
        prop_assert_eq!(&cm[k * nc..(k + 1) * nc], &masks[k][..]);
        for x in 0..n {
            let on = masks[k][layout.cell_of_value[x]];
            sent_total += on as usize;
            let want = if on { v[x] } else { T::default() };
            prop_assert_eq!(dense[k * n + x], want);
        }
    }
    let expected = HEADER_BYTES + items.len() * nc.div_ceil(8) + sent_total * T::BYTES;
    prop_assert_eq!(bytes.len(), expected);
    Ok(())
}

fn u8s(p: &Pixels) -> Vec<u8> {
    match p {
        Pixels::U8(v) => v.clone(),
        Pixels::F32(_) => panic!("expected u8"),
    }
}

fn f32s(p: &Pixels) -> Vec<f32> {
    match p {
        Pixels::F32(v) => v.clone(),
        Pixels::U8(_) => panic!("expected f32"),
    }
}

/// A layout over `shape` with a random mask shape (1 or C channels).
fn layout_strategy() -> impl Strategy<Value = CellLayout> {
    shape_strategy().prop_flat_map(|[c, h, w]| {
        (prop::bool::ANY, 1..=h, 1..=w).prop_map(move |(per_channel, mh, mw)| {
            CellLayout::new([c, h, w], [if per_channel { c } else { 1 }, mh, mw]).unwrap()
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn static_u8_round_trips(
        shape in shape_strategy(),
        bits in prop::collection::vec(any::<bool>(), 1..40),
        blocky in any::<bool>(),
        seeds in prop::collection::vec((any::<u32>(), any::<u64>()), 0..5),
    ) {
        let n: usize = shape.iter().product();
        let sel = selection_for(n, &bits, blocky);
        let items = seeds.iter().map(|&(i, s)| {
            let mut r = crate::transfer::fixtures::SplitMix64(s);
            (i, (0..n).map(|_| r.next_u64() as u8).collect())
        }).collect();
        check_static_round_trip::<u8>(shape, sel, items, u8s)?;
    }

    #[test]
    fn static_f32_round_trips(
        shape in shape_strategy(),
        bits in prop::collection::vec(any::<bool>(), 1..40),
        blocky in any::<bool>(),
        seeds in prop::collection::vec((any::<u32>(), any::<u64>()), 0..5),
    ) {
        let n: usize = shape.iter().product();
        let sel = selection_for(n, &bits, blocky);
        let items = seeds.iter().map(|&(i, s)| {
            let mut r = crate::transfer::fixtures::SplitMix64(s);
            // Any finite bit pattern survives exactly (NaNs would not compare equal).
            (i, (0..n).map(|_| (r.next_u64() as i32) as f32 * 1e-3).collect())
        }).collect();
        check_static_round_trip::<f32>(shape, sel, items, f32s)?;
    }

    #[test]
    fn dynamic_u8_round_trips(
        layout in layout_strategy(),
        seeds in prop::collection::vec((any::<u32>(), any::<u64>()), 0..5),
    ) {
        let (n, nc) = (layout.n_values(), layout.n_cells());
        let mut items = Vec::new();
        let mut masks = Vec::new();
        for &(i, s) in &seeds {
            let mut r = crate::transfer::fixtures::SplitMix64(s);
            items.push((i, (0..n).map(|_| r.next_u64() as u8).collect::<Vec<u8>>()));
            masks.push((0..nc).map(|_| r.next_u64().is_multiple_of(3)).collect::<Vec<bool>>());
        }
        check_dynamic_round_trip::<u8>(&layout, items, masks, u8s)?;
    }

    #[test]
    fn dynamic_f32_round_trips(
        layout in layout_strategy(),
        seeds in prop::collection::vec((any::<u32>(), any::<u64>()), 0..5),
    ) {
        let (n, nc) = (layout.n_values(), layout.n_cells());
        let mut items = Vec::new();
        let mut masks = Vec::new();
        for &(i, s) in &seeds {
            let mut r = crate::transfer::fixtures::SplitMix64(s);
            items.push((i, (0..n).map(|_| (r.next_u64() as i16) as f32 / 7.0).collect::<Vec<f32>>()));
            masks.push((0..nc).map(|_| r.next_u64().is_multiple_of(2)).collect::<Vec<bool>>());
        }
        check_dynamic_round_trip::<f32>(&layout, items, masks, f32s)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary bytes, and arbitrary bytes behind a valid magic + version
    /// (so they get past the first checks), never panic any decoder: asked
    /// for as many items as the bytes announce (to get past the count
    /// check) or for an arbitrary number.
    #[test]
    fn random_bytes_never_panic(
        mut bytes in prop::collection::vec(any::<u8>(), 0..160),
        with_magic in any::<bool>(),
        dtype in 0u8..4,
        small_count in 0u32..8,
        asked_any in 0usize..8,
    ) {
        if with_magic && bytes.len() >= 6 {
            bytes[..4].copy_from_slice(&MAGIC);
            bytes[4] = WIRE_VERSION;
            bytes[5] = dtype;
        }
        if with_magic && bytes.len() >= 12 {
            bytes[8..12].copy_from_slice(&small_count.to_le_bytes());
        }
        let announced = Header::parse(&bytes).map(|h| h.item_count as usize).unwrap_or(0);
        let p = plan([1, 3, 3], &[0, 4, 8]);
        let empty = plan([1, 3, 3], &[]);
        let l1 = CellLayout::new([1, 3, 3], [1, 2, 2]).unwrap();
        let l2 = CellLayout::new([2, 4, 4], [2, 4, 4]).unwrap();
        for n in [announced.min(1 << 16), asked_any] {
            let asked: Vec<u32> = (0..n as u32).collect();
            let _ = unpack_static(&bytes, &p, &asked);
            let _ = unpack_static(&bytes, &empty, &asked);
            let _ = unpack_static(&bytes, &StaticPlan::all([2, 2, 2]).unwrap(), &asked);
            let _ = unpack_dynamic(&bytes, &l1, &asked);
            let _ = unpack_dynamic(&bytes, &l2, &asked);
        }
    }

    /// Valid payloads with one byte changed, or cut, never panic either.
    #[test]
    fn mutated_payloads_never_panic(pos in 0usize..400, byte in any::<u8>(), cut in any::<bool>()) {
        let p = plan([1, 3, 3], &[0, 4, 8]);
        let layout = CellLayout::new([1, 3, 3], [1, 2, 2]).unwrap();
        let item: Vec<u8> = (0..9).collect();
        let items = [ItemRef { index: 1, values: &item[..] }, ItemRef { index: 3, values: &item[..] }];
        for (bytes, is_static) in [
            (pack_static(&p, &items).unwrap(), true),
            (pack_dynamic(&layout, &items, &[vec![true, false, true, true], vec![false; 4]]).unwrap(), false),
        ] {
            let mut b = bytes.clone();
            let i = pos % b.len();
            if cut { b.truncate(i) } else { b[i] = byte }
            let r = if is_static {
                unpack_static(&b, &p, &[1, 3]).map(|_| ())
            } else {
                unpack_dynamic(&b, &layout, &[1, 3]).map(|_| ())
            };
            if cut {
                prop_assert!(r.is_err(), "a truncated payload must not decode");
            }
        }
    }
}
