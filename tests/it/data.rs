//! Dataset files: IDX reading, locating data, and their errors.

use selmask::data::locate::find_data_dir_in;
use selmask::data::{self, DatasetName, Pixels, mnist};
use selmask::error::Error;

use crate::fixtures::write_mnist;

#[test]
fn mnist_files_round_trip_raw_and_gzip() {
    for gzip in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        write_mnist(dir.path(), 12, 5, gzip);
        let d = mnist::load(DatasetName::FashionMnist, dir.path()).unwrap();
        assert_eq!((d.train.len(), d.test.len(), d.info.shape), (12, 5, [1, 28, 28]));
        let Pixels::U8(px) = &d.train.pixels else { panic!("u8 pixels") };
        assert_eq!(px[..4], [0, 7, 14, 21]);
        assert_eq!(d.test.labels[..5], [0, 1, 2, 3, 4]);
        // Normalisation as the paper: (v/255 - 0.1307) / 0.3081.
        let norm = d.train.normalised(&d.info);
        assert!((norm[1] - (7.0 / 255.0 - 0.1307) / 0.3081).abs() < 1e-6);
    }
}

#[test]
fn missing_data_names_the_apt_package() {
    let empty = tempfile::tempdir().unwrap();
    let err = find_data_dir_in(DatasetName::FashionMnist, Some(empty.path()), None).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::DataNotFound { .. }));
    assert!(msg.contains("apt-get install dataset-fashion-mnist"), "{msg}");
    assert!(msg.contains(&empty.path().display().to_string()), "{msg}");
    assert!(msg.contains("train-images-idx3-ubyte.gz"), "{msg}");
    // MNIST has no Debian package: the message says which files to place.
    let msg = find_data_dir_in(DatasetName::Mnist, None, None).unwrap_err().to_string();
    assert!(msg.contains("SELMASK_DATA") && msg.contains("t10k-labels-idx1-ubyte.gz"), "{msg}");
}

#[test]
fn data_is_found_in_a_dataset_subdirectory_of_the_data_root() {
    let root = tempfile::tempdir().unwrap();
    let sub = root.path().join("fashion-mnist");
    std::fs::create_dir(&sub).unwrap();
    write_mnist(&sub, 3, 2, true);
    assert_eq!(find_data_dir_in(DatasetName::FashionMnist, None, Some(root.path())).unwrap(), sub);
}

#[test]
fn truncated_idx_names_file_and_sizes() {
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), 4, 2, false);
    let path = dir.path().join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let err = mnist::load(DatasetName::Mnist, dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::IdxSize { .. }), "{msg}");
    assert!(msg.contains("train-images-idx3-ubyte"), "{msg}");
    assert!(msg.contains("needs 3136 bytes") && msg.contains("found 3036"), "{msg}");
}

#[test]
fn wrong_magic_names_file_and_both_numbers() {
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), 4, 2, false);
    // A label file where images are expected.
    std::fs::copy(dir.path().join("t10k-labels-idx1-ubyte"), dir.path().join("t10k-images-idx3-ubyte")).unwrap();
    let msg = mnist::load(DatasetName::Mnist, dir.path()).unwrap_err().to_string();
    assert!(msg.contains("t10k-images-idx3-ubyte"), "{msg}");
    assert!(msg.contains("0x00000801") && msg.contains("expected 0x00000803"), "{msg}");
}

#[test]
fn mismatched_counts_and_bad_labels_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), 4, 2, false);
    std::fs::write(dir.path().join("train-labels-idx1-ubyte"), selmask::data::idx::encode(&[3], &[0, 1, 2])).unwrap();
    let err = mnist::load(DatasetName::Mnist, dir.path()).unwrap_err();
    assert!(matches!(err, Error::CountMismatch { n_images: 4, n_labels: 3, .. }), "{err}");
    std::fs::write(dir.path().join("train-labels-idx1-ubyte"), selmask::data::idx::encode(&[4], &[0, 1, 12, 2])).unwrap();
    let msg = mnist::load(DatasetName::Mnist, dir.path()).unwrap_err().to_string();
    assert!(msg.contains("label 12 at item 2 is outside 0..10"), "{msg}");
}

#[test]
fn dataset_names_accept_the_papers_spellings() {
    for name in ["fashion_mnist", "f-mnist", "fashion-mnist", "FMNIST"] {
        assert_eq!(name.parse::<DatasetName>().unwrap(), DatasetName::FashionMnist);
    }
    let msg = "cifar11".parse::<DatasetName>().unwrap_err().to_string();
    assert!(msg.contains("unknown dataset 'cifar11'") && msg.contains("fashion_mnist"), "{msg}");
}

#[test]
fn synthetic_dataset_needs_no_files() {
    let d = data::load(DatasetName::Synthetic, None).unwrap();
    assert_eq!((d.info.shape, d.info.n_classes, d.train.len()), ([1, 28, 28], 4, 6000));
}
