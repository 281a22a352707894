//! Where dataset files are looked for.
//!
//! Order: `--data-dir`, then `$SELMASK_DATA`, then the dataset's Debian
//! package directory. In each, the files may sit directly or in a
//! sub-directory named after the dataset (so one `$SELMASK_DATA` can hold
//! several datasets).

use std::path::{Path, PathBuf};

use super::DatasetName;
use crate::error::{Error, Result};

/// Environment variable naming a directory of datasets.
pub const DATA_ENV: &str = "SELMASK_DATA";

/// Debian's Fashion-MNIST directory (package `dataset-fashion-mnist`).
pub const DEBIAN_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// The four IDX files of (Fashion-)MNIST, without the optional `.gz`.
pub const MNIST_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Sub-directory names tried under a data root.
fn subdirs(name: DatasetName) -> &'static [&'static str] {
    match name {
        DatasetName::Mnist => &["mnist", "MNIST", "MNIST/raw"],
        DatasetName::FashionMnist => &["fashion-mnist", "fashion_mnist", "FashionMNIST", "FashionMNIST/raw"],
        DatasetName::Cifar10 => &["cifar10", "cifar-10"],
        DatasetName::Svhn => &["svhn", "SVHN"],
        DatasetName::Galaxy10 => &["galaxy10", "Galaxy10"],
        // The paper's code read data/remote_sensing_change.
        DatasetName::Remote => &["remote", "remote_sensing_change"],
        DatasetName::Ships => &["ships", "airbus-ship"],
        DatasetName::Synthetic => &[],
    }
}

/// The directory a file-backed dataset (other than the IDX ones) is read
/// from: `--data-dir` as given, else the first existing of
/// `$SELMASK_DATA/<name>` (any of the dataset's usual directory names) and
/// `$SELMASK_DATA`. The loader then reports which file is missing there.
pub fn dataset_root(name: DatasetName, data_dir: Option<&Path>) -> Result<PathBuf> {
    if let Some(d) = data_dir {
        return Ok(d.to_path_buf());
    }
    let env_dir = std::env::var_os(DATA_ENV).map(PathBuf::from);
    let Some(root) = env_dir else {
        return Err(Error::DataNotFound {
            dataset: name.to_string(),
            looked: format!("no --data-dir and ${DATA_ENV} is not set"),
            hint: format!("pass --data-dir, or set ${DATA_ENV} to a directory holding a `{}` folder", name.as_str()),
        });
    };
    Ok(subdirs(name)
        .iter()
        .map(|s| root.join(s))
        .find(|p| p.is_dir())
        .unwrap_or(root))
}

/// Finds `stem` or `stem.gz` in `dir`.
pub fn find_file(dir: &Path, stem: &str) -> Option<PathBuf> {
    [stem.to_string(), format!("{stem}.gz")]
        .into_iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
}

/// Whether `dir` holds every file of the dataset.
fn holds_dataset(dir: &Path, name: DatasetName) -> bool {
    match name {
        DatasetName::Mnist | DatasetName::FashionMnist => {
            MNIST_FILES.iter().all(|f| find_file(dir, f).is_some())
        }
        _ => true,
    }
}

/// How a user gets the files, for the not-found message.
fn hint(name: DatasetName) -> String {
    let files = MNIST_FILES.map(|f| format!("{f}.gz")).join(", ");
    match name {
        DatasetName::FashionMnist => format!(
            "install Debian's package with `sudo apt-get install dataset-fashion-mnist` \
             (files land in {DEBIAN_FASHION_MNIST}), or place the official files \
             {files} from https://github.com/zalandoresearch/fashion-mnist in a directory \
             given by --data-dir or ${DATA_ENV}"
        ),
        DatasetName::Mnist => format!(
            "place the official files {files} (from http://yann.lecun.com/exdb/mnist/ or a \
             mirror) in a directory given by --data-dir or ${DATA_ENV}, \
             directly or in a sub-directory `mnist`"
        ),
        _ => "see the dataset's loader for its files".into(),
    }
}

/// Resolves the directory holding `name`'s files.
pub fn find_data_dir(name: DatasetName, data_dir: Option<&Path>) -> Result<PathBuf> {
    let env_dir = std::env::var_os(DATA_ENV).map(PathBuf::from);
    find_data_dir_in(name, data_dir, env_dir.as_deref())
}

/// [`find_data_dir`] with the environment passed in (testable without
/// touching the process environment).
pub fn find_data_dir_in(name: DatasetName, data_dir: Option<&Path>, env_dir: Option<&Path>) -> Result<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Some(d) = data_dir {
        roots.push(d.to_path_buf());
    } else {
        if let Some(d) = env_dir {
            roots.push(d.to_path_buf());
        }
        if name == DatasetName::FashionMnist {
            roots.push(PathBuf::from(DEBIAN_FASHION_MNIST));
        }
    }
    let mut looked = Vec::new();
    for root in &roots {
        let candidates = std::iter::once(root.clone()).chain(subdirs(name).iter().map(|s| root.join(s)));
        for dir in candidates {
            if holds_dataset(&dir, name) {
                return Ok(dir);
            }
            looked.push(dir.display().to_string());
        }
    }
    if roots.is_empty() {
        looked.push(format!("no --data-dir and ${DATA_ENV} is not set"));
    }
    Err(Error::DataNotFound {
        dataset: name.to_string(),
        looked: looked.join(", "),
        hint: hint(name),
    })
}
