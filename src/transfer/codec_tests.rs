//! Codec tests: exact sizes, round trips (property tests over shapes,
//! selections, dtypes), rejection of malformed payloads, and random bytes
//! that must never make a decoder panic.

use proptest::prelude::*;

use super::*;
use crate::data::Pixels;
use crate::export::format::{Normalisation, StoredDtype};
use crate::masks::granularity::CellLayout;

fn plan(shape: [usize; 3], sel: &[u32]) -> StaticPlan {
    StaticPlan::new(shape, sel.to_vec()).unwrap()
}

#[test]
fn one_static_u8_item_is_header_plus_6_plus_n_selected() {
    let p = plan([1, 4, 4], &[0, 3, 5, 15]);
    let item: Vec<u8> = (0..16).collect();
    let bytes = pack_static(
        &p,
        &[ItemRef {
            index: 9,
            label: 3,
            values: &item,
        }],
    )
    .unwrap();
    assert_eq!(bytes.len(), HEADER_BYTES + 4 + 2 + 4);
    assert_eq!(&bytes[..4], b"SLMX");
    assert_eq!(&bytes[HEADER_BYTES..], &[9, 0, 0, 0, 3, 0, 0, 3, 5, 15]);
    assert_eq!(static_payload_bytes(1, 4, StoredDtype::U8), bytes.len());
}

#[test]
fn static_round_trip_puts_zeros_where_nothing_was_sent() {
    let p = plan([2, 2, 3], &[1, 2, 7, 11]);
    let a: Vec<u8> = (1..=12).collect();
    let b: Vec<u8> = (101..=112).collect();
    let bytes = pack_static(
        &p,
        &[
            ItemRef {
                index: 4,
                label: 1,
                values: &a,
            },
            ItemRef {
                index: 0,
                label: 9,
                values: &b,
            },
        ],
    )
    .unwrap();
    let d = unpack_static(&bytes, &p).unwrap();
    assert_eq!(d.indices, vec![4, 0]);
    assert_eq!(d.labels, vec![1, 9]);
    let Pixels::U8(v) = &d.values else { panic!("dtype") };
    assert_eq!(&v[..12], &[0, 2, 3, 0, 0, 0, 0, 8, 0, 0, 0, 12]);
    assert_eq!(&v[12..], &[0, 102, 103, 0, 0, 0, 0, 108, 0, 0, 0, 112]);
}

#[test]
fn plans_reject_bad_selections_and_find_runs() {
    assert!(StaticPlan::new([1, 2, 2], vec![1, 1]).is_err());
    assert!(StaticPlan::new([1, 2, 2], vec![2, 1]).is_err());
    assert!(StaticPlan::new([1, 2, 2], vec![4]).is_err());
    assert!(StaticPlan::new([0, 2, 2], vec![]).is_err());
    assert_eq!(plan([1, 4, 4], &[0, 1, 2, 5, 6, 9]).n_runs(), 3);
    let all = StaticPlan::all([3, 8, 8]).unwrap();
    assert_eq!((all.n_selected(), all.n_runs()), (192, 1));
}

#[test]
fn encoders_reject_items_of_the_wrong_size() {
    let p = plan([1, 2, 2], &[0]);
    let short = [1u8, 2];
    assert!(
        pack_static(
            &p,
            &[ItemRef {
                index: 0,
                label: 0,
                values: &short
            }]
        )
        .is_err()
    );
    let layout = CellLayout::new([1, 2, 2], [1, 1, 2]).unwrap();
    let item = [1u8; 4];
    let it = [ItemRef {
        index: 0,
        label: 0,
        values: &item[..],
    }];
    assert!(
        pack_dynamic(&layout, &it, &[vec![true]]).is_err(),
        "mask of 1 cell for 2"
    );
    assert!(pack_dynamic(&layout, &it, &[]).is_err(), "no mask");
}

#[test]
fn decoders_reject_malformed_payloads_with_reasons() {
    let p = plan([1, 2, 2], &[0, 3]);
    let item = [1u8, 2, 3, 4];
    let good = pack_static(
        &p,
        &[ItemRef {
            index: 0,
            label: 0,
            values: &item,
        }],
    )
    .unwrap();
    let check = |bytes: &[u8], want: &str| {
        let e = unpack_static(bytes, &p).unwrap_err().to_string();
        assert!(e.contains(want), "expected '{want}' in '{e}'");
    };
    check(&good[..10], "shorter than the 20-byte header");
    check(&good[..good.len() - 1], "need 8 bytes after the header, found 7");
    let mut longer = good.clone();
    longer.push(0);
    check(&longer, "found 9");
    let mut m = good.clone();
    m[0] = b'X';
    check(&m, "magic");
    let mut m = good.clone();
    m[4] = 2;
    check(&m, "wire version 2");
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
    check(&m, "4294967295 items");
    m = good.clone();
    m[6] = 1;
    check(&m, "dynamic payload");
    // Dynamic decoders: static payload, padding bits, wrong cell count.
    let layout = CellLayout::new([1, 2, 2], [1, 1, 2]).unwrap();
    assert!(
        unpack_dynamic(&good, &layout)
            .unwrap_err()
            .to_string()
            .contains("static payload")
    );
    let dyn_bytes = pack_dynamic(
        &layout,
        &[ItemRef {
            index: 1,
            label: 2,
            values: &item[..],
        }],
        &[vec![true, false]],
    )
    .unwrap();
    let mut pad = dyn_bytes.clone();
    pad[HEADER_BYTES + ITEM_PREFIX_BYTES] |= 0x80;
    assert!(
        unpack_dynamic(&pad, &layout)
            .unwrap_err()
            .to_string()
            .contains("padding bits")
    );
    let other = CellLayout::new([1, 2, 2], [1, 2, 2]).unwrap();
    assert!(
        unpack_dynamic(&dyn_bytes, &other)
            .unwrap_err()
            .to_string()
            .contains("cells")
    );
    assert!(unpack_dynamic(&dyn_bytes[..dyn_bytes.len() - 1], &layout).is_err());
    let mut longer = dyn_bytes.clone();
    longer.push(0);
    assert!(
        unpack_dynamic(&longer, &layout)
            .unwrap_err()
            .to_string()
            .contains("1 trailing bytes")
    );
    let mut more = dyn_bytes.clone();
    more[8] = 2; // two items announced, one present
    assert!(
        unpack_dynamic(&more, &layout)
            .unwrap_err()
            .to_string()
            .contains("2 items cannot fit in 9 bytes")
    );
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
            label: 0,
            values: &item,
        }],
        &[mask],
    )
    .unwrap();
    // prefix, 2 mask bytes, 2 values
    assert_eq!(&b[HEADER_BYTES + 6..], &[0b10, 0b1, 11, 18]);
}

#[test]
fn masked_normalised_is_zero_where_not_sent() {
    let p = plan([1, 1, 4], &[1, 2]);
    let item = [255u8, 255, 0, 255];
    let bytes = pack_static(
        &p,
        &[ItemRef {
            index: 0,
            label: 0,
            values: &item,
        }],
    )
    .unwrap();
    let d = unpack_static(&bytes, &p).unwrap();
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
    items: Vec<(u32, u16, Vec<T>)>,
    get: impl Fn(&Pixels) -> Vec<T>,
) -> Result<(), TestCaseError> {
    let p = StaticPlan::new(shape, sel).unwrap();
    let refs: Vec<ItemRef<'_, T>> = items
        .iter()
        .map(|(i, l, v)| ItemRef {
            index: *i,
            label: *l,
            values: v,
        })
        .collect();
    let bytes = pack_static(&p, &refs).unwrap();
    prop_assert_eq!(bytes.len(), static_payload_bytes(items.len(), p.n_selected(), T::DTYPE));
    let d = unpack(&bytes, &Selection::Static(p.clone())).unwrap();
    prop_assert_eq!(d.len(), items.len());
    let dense = get(&d.values);
    let n = p.n_values();
    for (k, (i, l, v)) in items.iter().enumerate() {
        prop_assert_eq!(d.indices[k], *i);
        prop_assert_eq!(d.labels[k], *l);
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
    items: Vec<(u32, u16, Vec<T>)>,
    masks: Vec<Vec<bool>>,
    get: impl Fn(&Pixels) -> Vec<T>,
) -> Result<(), TestCaseError> {
    let refs: Vec<ItemRef<'_, T>> = items
        .iter()
        .map(|(i, l, v)| ItemRef {
            index: *i,
            label: *l,
            values: v,
        })
        .collect();
    let bytes = pack_dynamic(layout, &refs, &masks).unwrap();
    let d = unpack(&bytes, &Selection::Dynamic(layout.clone())).unwrap();
    let dense = get(&d.values);
    let cm = d.cell_masks.clone().unwrap();
    let (n, nc) = (layout.n_values(), layout.n_cells());
    let mut sent_total = 0;
    for (k, (i, l, v)) in items.iter().enumerate() {
        prop_assert_eq!(d.indices[k], *i);
        prop_assert_eq!(d.labels[k], *l);
        prop_assert_eq!(&cm[k * nc..(k + 1) * nc], &masks[k][..]);
        for x in 0..n {
            let on = masks[k][layout.cell_of_value[x]];
            sent_total += on as usize;
            let want = if on { v[x] } else { T::default() };
            prop_assert_eq!(dense[k * n + x], want);
        }
    }
    let expected = HEADER_BYTES + items.len() * (ITEM_PREFIX_BYTES + nc.div_ceil(8)) + sent_total * T::BYTES;
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
        seeds in prop::collection::vec((any::<u32>(), any::<u16>(), any::<u64>()), 0..5),
    ) {
        let n: usize = shape.iter().product();
        let sel = selection_for(n, &bits, blocky);
        let items = seeds.iter().map(|&(i, l, s)| {
            let mut r = crate::transfer::fixtures::SplitMix64(s);
            (i, l, (0..n).map(|_| r.next_u64() as u8).collect())
        }).collect();
        check_static_round_trip::<u8>(shape, sel, items, u8s)?;
    }

    #[test]
    fn static_f32_round_trips(
        shape in shape_strategy(),
        bits in prop::collection::vec(any::<bool>(), 1..40),
        blocky in any::<bool>(),
        seeds in prop::collection::vec((any::<u32>(), any::<u16>(), any::<u64>()), 0..5),
    ) {
        let n: usize = shape.iter().product();
        let sel = selection_for(n, &bits, blocky);
        let items = seeds.iter().map(|&(i, l, s)| {
            let mut r = crate::transfer::fixtures::SplitMix64(s);
            // Any finite bit pattern survives exactly (NaNs would not compare equal).
            (i, l, (0..n).map(|_| (r.next_u64() as i32) as f32 * 1e-3).collect())
        }).collect();
        check_static_round_trip::<f32>(shape, sel, items, f32s)?;
    }

    #[test]
    fn dynamic_u8_round_trips(
        layout in layout_strategy(),
        seeds in prop::collection::vec((any::<u32>(), any::<u16>(), any::<u64>()), 0..5),
    ) {
        let (n, nc) = (layout.n_values(), layout.n_cells());
        let mut items = Vec::new();
        let mut masks = Vec::new();
        for &(i, l, s) in &seeds {
            let mut r = crate::transfer::fixtures::SplitMix64(s);
            items.push((i, l, (0..n).map(|_| r.next_u64() as u8).collect::<Vec<u8>>()));
            masks.push((0..nc).map(|_| r.next_u64().is_multiple_of(3)).collect::<Vec<bool>>());
        }
        check_dynamic_round_trip::<u8>(&layout, items, masks, u8s)?;
    }

    #[test]
    fn dynamic_f32_round_trips(
        layout in layout_strategy(),
        seeds in prop::collection::vec((any::<u32>(), any::<u16>(), any::<u64>()), 0..5),
    ) {
        let (n, nc) = (layout.n_values(), layout.n_cells());
        let mut items = Vec::new();
        let mut masks = Vec::new();
        for &(i, l, s) in &seeds {
            let mut r = crate::transfer::fixtures::SplitMix64(s);
            items.push((i, l, (0..n).map(|_| (r.next_u64() as i16) as f32 / 7.0).collect::<Vec<f32>>()));
            masks.push((0..nc).map(|_| r.next_u64().is_multiple_of(2)).collect::<Vec<bool>>());
        }
        check_dynamic_round_trip::<f32>(&layout, items, masks, f32s)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary bytes, and arbitrary bytes behind a valid magic + version
    /// (so they get past the first checks), never panic any decoder.
    #[test]
    fn random_bytes_never_panic(
        mut bytes in prop::collection::vec(any::<u8>(), 0..160),
        with_magic in any::<bool>(),
        dtype in 0u8..4,
    ) {
        if with_magic && bytes.len() >= 6 {
            bytes[..4].copy_from_slice(&MAGIC);
            bytes[4] = WIRE_VERSION;
            bytes[5] = dtype;
        }
        let p = plan([1, 3, 3], &[0, 4, 8]);
        let _ = Header::parse(&bytes);
        let _ = unpack_static(&bytes, &p);
        let _ = unpack_static(&bytes, &StaticPlan::all([2, 2, 2]).unwrap());
        let l1 = CellLayout::new([1, 3, 3], [1, 2, 2]).unwrap();
        let l2 = CellLayout::new([2, 4, 4], [2, 4, 4]).unwrap();
        let _ = unpack_dynamic(&bytes, &l1);
        let _ = unpack_dynamic(&bytes, &l2);
    }

    /// Valid payloads with one byte changed, or cut, never panic either.
    #[test]
    fn mutated_payloads_never_panic(pos in 0usize..400, byte in any::<u8>(), cut in any::<bool>()) {
        let p = plan([1, 3, 3], &[0, 4, 8]);
        let layout = CellLayout::new([1, 3, 3], [1, 2, 2]).unwrap();
        let item: Vec<u8> = (0..9).collect();
        let items = [ItemRef { index: 1, label: 2, values: &item[..] }, ItemRef { index: 3, label: 4, values: &item[..] }];
        for (bytes, is_static) in [
            (pack_static(&p, &items).unwrap(), true),
            (pack_dynamic(&layout, &items, &[vec![true, false, true, true], vec![false; 4]]).unwrap(), false),
        ] {
            let mut b = bytes.clone();
            let i = pos % b.len();
            if cut { b.truncate(i) } else { b[i] = byte }
            let r = if is_static { unpack_static(&b, &p).map(|_| ()) } else { unpack_dynamic(&b, &layout).map(|_| ()) };
            if cut {
                prop_assert!(r.is_err(), "a truncated payload must not decode");
            }
        }
    }
}
