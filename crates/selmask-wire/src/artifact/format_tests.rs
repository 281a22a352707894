//! Artifact tests: write/read round trips of every mask kind, atomic
//! overwrite behaviour, and one test per reader error.

use std::path::Path;

use super::*;
use crate::artifact::npy::to_npy_bytes;
use crate::transfer::fixtures::{artifact_spec, dataset_section, random_cells};

const SHAPE: [usize; 3] = [3, 10, 10];

fn static_spec() -> ArtifactSpec {
    let cells = random_cells(4, 0.5, 1); // quadrant: 2 of 4 cells
    artifact_spec(
        dataset_section("toy", SHAPE, StoredDtype::U8),
        MaskSpec::Static {
            granularity: "quadrant".parse().unwrap(),
            cells,
        },
    )
}

fn write_static(dir: &Path) -> Manifest {
    write_artifact(dir, &static_spec(), false).unwrap()
}

/// Replaces `name` in the artifact and updates its hash and size in the
/// manifest, so only the content check under test can fail.
fn replace_file(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
    edit_manifest(dir, |m| {
        let f = m["files"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|f| f["name"] == name)
            .unwrap();
        f["sha256"] = sha256_hex(bytes).into();
        f["bytes"] = (bytes.len() as u64).into();
    });
}

fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join(MANIFEST_FILE);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

fn invalid_field(err: Error) -> (String, String) {
    match err {
        Error::Invalid { file, field, reason } => (
            format!("{}:{field}", file.file_name().unwrap().to_string_lossy()),
            reason,
        ),
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

#[test]
fn static_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let written = write_static(&dir);
    let a = read_artifact(&dir).unwrap();
    assert_eq!(a.manifest, written);
    assert_eq!(a.manifest.format, "selmask-artifact");
    assert_eq!(a.manifest.format_version, 1);
    assert_eq!(a.manifest.mask.shape, Some([1, 2, 2]));
    assert_eq!(a.manifest.mask.q, 0.5);
    assert_eq!(a.weights, static_spec().weights);
    let ArtifactMask::Static {
        cells,
        selected,
        layout,
    } = &a.mask
    else {
        panic!("static")
    };
    assert_eq!(cells, &random_cells(4, 0.5, 1));
    assert_eq!(selected, &selected_values(layout, cells));
    assert!(selected.windows(2).all(|w| w[0] < w[1]));
    // Every cell covers 5x5 pixels x 3 channels; 2 cells = 150 of 300 values.
    assert_eq!(selected.len(), 150);
    assert_eq!(a.manifest.mask.bytes_fraction, 0.5);
    let names: Vec<&str> = a.manifest.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["weights.safetensors", "mask.npy", "selected.npy"]);
    // Nothing but the artifact is left in the parent (no temp dirs).
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
}

#[test]
fn dynamic_and_none_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let mut mask_model = TensorMap::new();
    mask_model.insert(
        "g.weight".into(),
        crate::artifact::F32Tensor {
            shape: vec![4, 300],
            values: vec![0.001; 1200],
        },
    );
    let spec = artifact_spec(
        dataset_section("toy", SHAPE, StoredDtype::F32),
        MaskSpec::Dynamic {
            granularity: Granularity::Pixel,
            q: 0.1,
            bytes_fraction: 0.1,
            mask_model: mask_model.clone(),
        },
    );
    write_artifact(&tmp.path().join("d"), &spec, false).unwrap();
    let a = read_artifact(&tmp.path().join("d")).unwrap();
    assert_eq!(a.manifest.mask.kind, MaskKind::Dynamic);
    assert_eq!(a.manifest.dataset.normalisation.scale, 1.0);
    let ArtifactMask::Dynamic { mask_model: m, layout } = &a.mask else {
        panic!("dynamic")
    };
    assert_eq!(m, &mask_model);
    assert_eq!(layout.mask, [1, 10, 10]);

    let none = artifact_spec(dataset_section("toy", SHAPE, StoredDtype::U8), MaskSpec::None);
    write_artifact(&tmp.path().join("n"), &none, false).unwrap();
    let a = read_artifact(&tmp.path().join("n")).unwrap();
    assert_eq!(
        (a.manifest.mask.kind, a.manifest.mask.q, &a.mask),
        (MaskKind::None, 1.0, &ArtifactMask::None)
    );
}

#[test]
fn manifest_holds_the_documented_fields() {
    let tmp = tempfile::tempdir().unwrap();
    write_static(&tmp.path().join("a"));
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("a/manifest.json")).unwrap()).unwrap();
    assert_eq!(v["dataset"]["shape"], serde_json::json!([3, 10, 10]));
    assert_eq!(v["dataset"]["dtype"], "u8");
    assert!((v["dataset"]["normalisation"]["scale"].as_f64().unwrap() - 1.0 / 255.0).abs() < 1e-15);
    assert_eq!(v["mask"]["type"], "static");
    assert_eq!(v["mask"]["granularity"], "quadrant");
    assert_eq!(v["mask"]["input_drop_upscaling"], 1.0);
    assert_eq!(v["accuracy"]["test"], 0.88);
    assert_eq!(v["network"]["kind"], "fixture");
    assert_eq!(v["source"]["checkpoint"], "runs/fixture/checkpoints/best-q0.05");
    assert!(v["created_by"].as_str().unwrap().starts_with("selmask-transfer"));
    assert_eq!(v["files"][0]["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn refuses_to_overwrite_unless_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    write_static(&dir);
    let err = write_artifact(&dir, &static_spec(), false).unwrap_err();
    assert!(matches!(err, Error::OutputExists { .. }), "{err}");
    assert!(err.to_string().contains("already exists"));
    let mut spec = static_spec();
    spec.epoch = 42;
    write_artifact(&dir, &spec, true).unwrap();
    assert_eq!(read_artifact(&dir).unwrap().manifest.epoch, 42);
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "old copy and temp dir removed"
    );
}

#[test]
fn writer_rejects_inconsistent_specs() {
    let tmp = tempfile::tempdir().unwrap();
    let mut soft = static_spec();
    soft.mask = MaskSpec::Static {
        granularity: "quadrant".parse().unwrap(),
        cells: vec![0.5, 1.0, 0.0, 1.0],
    };
    let e = write_artifact(&tmp.path().join("x"), &soft, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("mask.cells") && e.contains("0.5"), "{e}");
    let mut short = static_spec();
    short.mask = MaskSpec::Static {
        granularity: "quadrant".parse().unwrap(),
        cells: vec![1.0; 3],
    };
    assert!(
        write_artifact(&tmp.path().join("x"), &short, false)
            .unwrap_err()
            .to_string()
            .contains("3 cells given")
    );
    let mut bad_norm = static_spec();
    bad_norm.dataset.normalisation.std = vec![0.3];
    assert!(
        write_artifact(&tmp.path().join("x"), &bad_norm, false)
            .unwrap_err()
            .to_string()
            .contains("dataset.normalisation")
    );
    let mut bad_name = static_spec();
    bad_name.dataset.name = "../toy".into();
    assert!(
        write_artifact(&tmp.path().join("x"), &bad_name, false)
            .unwrap_err()
            .to_string()
            .contains("dataset.name")
    );
    assert!(!tmp.path().join("x").exists());
}

#[test]
fn missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    write_static(&dir);
    std::fs::remove_file(dir.join(MASK_FILE)).unwrap();
    let err = read_artifact(&dir).unwrap_err();
    assert!(
        matches!(&err, Error::MissingFile { file } if file.ends_with("mask.npy")),
        "{err}"
    );
    assert!(err.to_string().contains("mask.npy: missing"));
    std::fs::remove_dir_all(&dir).unwrap();
    write_static(&dir);
    std::fs::remove_file(dir.join(MANIFEST_FILE)).unwrap();
    assert!(matches!(
        read_artifact(&dir).unwrap_err(),
        Error::MissingFile { .. }
    ));
}

#[test]
fn wrong_version_and_format() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    write_static(&dir);
    edit_manifest(&dir, |m| m["format_version"] = 2.into());
    let (field, reason) = invalid_field(read_artifact(&dir).unwrap_err());
    assert_eq!(field, "manifest.json:format_version");
    assert!(reason.contains("unsupported version 2"), "{reason}");
    edit_manifest(&dir, |m| m["format"] = "something-else".into());
    let (field, _) = invalid_field(read_artifact(&dir).unwrap_err());
    assert_eq!(field, "manifest.json:format");
    std::fs::write(dir.join(MANIFEST_FILE), b"{not json").unwrap();
    assert!(matches!(read_artifact(&dir).unwrap_err(), Error::Json { .. }));
}

#[test]
fn bad_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    write_static(&dir);
    let path = dir.join(WEIGHTS_FILE);
    let mut b = std::fs::read(&path).unwrap();
    let last = b.len() - 1;
    b[last] ^= 1;
    std::fs::write(&path, &b).unwrap();
    let err = read_artifact(&dir).unwrap_err();
    assert!(
        matches!(&err, Error::HashMismatch { file, .. } if file.ends_with(WEIGHTS_FILE)),
        "{err}"
    );
    assert!(err.to_string().contains("sha-256 mismatch"));
}

#[test]
fn wrong_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    write_static(&dir);
    // mask.npy of the wrong shape (consistent hash).
    replace_file(
        &dir,
        MASK_FILE,
        &to_npy_bytes("m", &[4], &[1f32, 0.0, 1.0, 0.0]).unwrap(),
    );
    let (field, reason) = invalid_field(read_artifact(&dir).unwrap_err());
    assert_eq!(field, "mask.npy:shape");
    assert!(reason.contains("[4]") && reason.contains("[1, 2, 2]"), "{reason}");
    // The manifest's mask shape must be the granularity's.
    std::fs::remove_dir_all(&dir).unwrap();
    write_static(&dir);
    edit_manifest(&dir, |m| m["mask"]["shape"] = serde_json::json!([1, 3, 3]));
    let (field, reason) = invalid_field(read_artifact(&dir).unwrap_err());
    assert_eq!(field, "manifest.json:mask.shape");
    assert!(reason.contains("quadrant"), "{reason}");
    // selected.npy must be one-dimensional.
    std::fs::remove_dir_all(&dir).unwrap();
    write_static(&dir);
    replace_file(&dir, SELECTED_FILE, &to_npy_bytes("s", &[1, 2], &[0u32, 1]).unwrap());
    let (field, _) = invalid_field(read_artifact(&dir).unwrap_err());
    assert_eq!(field, "selected.npy:shape");
    // Normalisation with the wrong number of channels.
    std::fs::remove_dir_all(&dir).unwrap();
    write_static(&dir);
    edit_manifest(&dir, |m| {
        m["dataset"]["normalisation"]["mean"] = serde_json::json!([0.1])
    });
    let (field, _) = invalid_field(read_artifact(&dir).unwrap_err());
    assert_eq!(field, "manifest.json:dataset.normalisation");
    // A mask.npy in the wrong dtype.
    std::fs::remove_dir_all(&dir).unwrap();
    write_static(&dir);
    replace_file(
        &dir,
        MASK_FILE,
        &to_npy_bytes("m", &[1, 2, 2], &[1u8, 0, 1, 0]).unwrap(),
    );
    let (field, reason) = invalid_field(read_artifact(&dir).unwrap_err());
    assert_eq!(field, "mask.npy:npy");
    assert!(reason.contains("'|u1'"), "{reason}");
}

#[test]
fn unsorted_duplicate_and_out_of_range_indices() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    for (sel, want) in [
        (vec![5u32, 3, 9], "not strictly ascending"),
        (vec![3u32, 3, 9], "not strictly ascending"),
        (vec![3u32, 9, 300], "index 300 is out of range"),
    ] {
        let _ = std::fs::remove_dir_all(&dir);
        write_static(&dir);
        replace_file(&dir, SELECTED_FILE, &to_npy_bytes("s", &[sel.len()], &sel).unwrap());
        let (field, reason) = invalid_field(read_artifact(&dir).unwrap_err());
        assert_eq!(field, "selected.npy:values");
        assert!(reason.contains(want), "{reason}");
    }
}

#[test]
fn selection_must_match_the_mask() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    write_static(&dir);
    replace_file(&dir, SELECTED_FILE, &to_npy_bytes("s", &[3], &[0u32, 1, 2]).unwrap());
    let (field, reason) = invalid_field(read_artifact(&dir).unwrap_err());
    assert_eq!(field, "selected.npy:values");
    assert!(reason.contains("does not match mask.npy"), "{reason}");
    // A soft (non-0/1) mask value.
    let _ = std::fs::remove_dir_all(&dir);
    write_static(&dir);
    replace_file(
        &dir,
        MASK_FILE,
        &to_npy_bytes("m", &[1, 2, 2], &[1f32, 0.5, 1.0, 0.0]).unwrap(),
    );
    let (field, _) = invalid_field(read_artifact(&dir).unwrap_err());
    assert_eq!(field, "mask.npy:values");
    // A manifest Q that disagrees with the mask.
    let _ = std::fs::remove_dir_all(&dir);
    write_static(&dir);
    edit_manifest(&dir, |m| m["mask"]["q"] = 0.25.into());
    let (field, _) = invalid_field(read_artifact(&dir).unwrap_err());
    assert_eq!(field, "manifest.json:mask.q");
}

#[test]
fn listed_files_must_be_plain_and_required_ones_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    write_static(&dir);
    edit_manifest(&dir, |m| m["files"][0]["name"] = "../weights.safetensors".into());
    let (field, reason) = invalid_field(read_artifact(&dir).unwrap_err());
    assert_eq!(field, "manifest.json:files[0].name");
    assert!(reason.contains("../weights.safetensors"));
    let _ = std::fs::remove_dir_all(&dir);
    write_static(&dir);
    edit_manifest(&dir, |m| {
        m["files"]
            .as_array_mut()
            .unwrap()
            .retain(|f| f["name"] != SELECTED_FILE);
    });
    let (field, reason) = invalid_field(read_artifact(&dir).unwrap_err());
    assert_eq!(field, "manifest.json:files");
    assert!(reason.contains("selected.npy"), "{reason}");
}
