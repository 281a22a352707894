//! Finding and reading the files of a dataset, with errors that say which
//! file was missing, where it was looked for and where it is published.

use std::fs;
use std::path::{Path, PathBuf};

use super::DatasetName;
use crate::error::{Error, Result};

/// The first of `dir/sub/name` for `sub` in `subdirs` (`""` for `dir`
/// itself) that is a file; otherwise [`Error::DataNotFound`] naming every
/// path tried and `hint` (where the dataset is published).
pub fn require_file(dataset: DatasetName, dir: &Path, subdirs: &[&str], name: &str, hint: &str) -> Result<PathBuf> {
    let candidates: Vec<PathBuf> = subdirs
        .iter()
        .map(|sub| {
            if sub.is_empty() {
                dir.join(name)
            } else {
                dir.join(sub).join(name)
            }
        })
        .collect();
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    Err(Error::DataNotFound {
        dataset: dataset.to_string(),
        looked: candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        hint: format!("{name} is missing; {hint}"),
    })
}

/// The whole content of `path`.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::io(path, e))
}

/// Opens `path` for buffered reading.
pub fn open(path: &Path) -> Result<std::io::BufReader<fs::File>> {
    fs::File::open(path)
        .map(std::io::BufReader::new)
        .map_err(|e| Error::io(path, e))
}

/// Creates `path` (and its parent directories) for buffered writing.
pub fn create(path: &Path) -> Result<std::io::BufWriter<fs::File>> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    fs::File::create(path)
        .map(std::io::BufWriter::new)
        .map_err(|e| Error::io(path, e))
}

/// Writes `bytes` to `path`, creating parent directories.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// Checks that every label is below `n_classes` ([`Error::LabelRange`]).
pub fn check_labels(path: &Path, labels: &[u16], n_classes: usize) -> Result<()> {
    match labels.iter().position(|&l| l as usize >= n_classes) {
        Some(index) => Err(Error::LabelRange {
            path: path.to_path_buf(),
            index,
            label: labels[index] as u32,
            n_classes,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_names_file_places_and_source() {
        let dir = tempfile::tempdir().unwrap();
        let err = require_file(DatasetName::Cifar10, dir.path(), &["", "sub"], "a.bin", "get it from X").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::DataNotFound { .. }));
        assert!(msg.contains(&dir.path().join("a.bin").display().to_string()), "{msg}");
        assert!(
            msg.contains(&dir.path().join("sub").join("a.bin").display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("a.bin is missing; get it from X"), "{msg}");
    }

    #[test]
    fn finds_file_in_sub_directory() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("sub").join("a.bin"), b"x").unwrap();
        let found = require_file(DatasetName::Cifar10, dir.path(), &["", "sub"], "a.bin", "").unwrap();
        assert_eq!(found, dir.path().join("sub").join("a.bin"));
    }

    #[test]
    fn label_range_names_item() {
        let err = check_labels(Path::new("f"), &[1, 2, 12], 10).unwrap_err();
        assert_eq!(err.to_string(), "f: label 12 at item 2 is outside 0..10");
    }
}
