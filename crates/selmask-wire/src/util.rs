//! Small filesystem helpers shared by checkpoints, metrics and exports.
//!
//! Every file selmask writes goes through [`atomic_write`] (single files) or
//! [`replace_dir_atomically`] (directories: artifacts, stores), and nothing
//! is ever removed that a selmask writer did not put there: a directory is
//! replaced only once its owner's check ([`Ownership`]) recognised it.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory, flushed to disk, then renamed over `path`. A crash or error
/// leaves either the old file or the new one, never a mix.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| Error::Json { path: path.to_path_buf(), source })?;
    bytes.push(b'\n');
    atomic_write(path, &bytes)
}

/// Reads and parses a JSON file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json { path: path.to_path_buf(), source })
}

/// How a writer recognises a directory it wrote itself, so that
/// `--overwrite` replaces only that and never a user's files.
pub struct Ownership<'a> {
    /// What the directory is, for messages ("artifact", "zarr store", "run").
    pub what: &'static str,
    /// `Ok` when `dir` is one of ours; else why not (naming the entry).
    pub check: &'a dyn Fn(&Path) -> std::result::Result<(), String>,
}

impl Ownership<'_> {
    /// Checks that `path` (which exists) is a directory this writer made.
    pub fn verify(&self, path: &Path) -> Result<()> {
        let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
        let reason = if meta.file_type().is_symlink() {
            Err("it is a symbolic link".to_string())
        } else if !meta.is_dir() {
            Err("it is a file, not a directory".to_string())
        } else {
            (self.check)(path)
        };
        reason.map_err(|reason| Error::NotOurs { path: path.to_path_buf(), what: self.what, reason })
    }
}

/// Checks that every entry of `dir` is one of `allowed` (or a temporary
/// file of [`atomic_write`], `.NAME.tmp-PID`); names the first that is not.
pub fn only_entries(dir: &Path, allowed: &dyn Fn(&str) -> bool) -> std::result::Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list it: {e}"))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list it: {e}"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours_tmp = name.starts_with('.') && name.contains(".tmp-");
        if !allowed(&name) && !ours_tmp {
            return Err(format!("it holds '{name}', which selmask did not write"));
        }
    }
    Ok(())
}

/// Creates (or, with `overwrite`, replaces) the directory `target` with
/// what `fill` writes into an empty directory: a fresh hidden sibling is
/// created (exclusively: never one that already exists), filled, fsynced and
/// renamed into place, so `target` is always either the old directory or the
/// complete new one. An existing `target` is replaced only when `overwrite`
/// is set and `owner` recognises it; it is removed only once the new one is
/// in place. A failed `fill` removes only the sibling it created.
///
/// The check and the final rename are not one atomic step: a directory
/// created at `target` in between by another process could be replaced if
/// it is empty (Linux `rename`). These outputs are written by one user, so
/// this is accepted.
pub fn replace_dir_atomically(
    target: &Path,
    overwrite: bool,
    owner: &Ownership<'_>,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let exists = std::fs::symlink_metadata(target).is_ok();
    if exists {
        if !overwrite {
            return Err(Error::OutputExists { path: target.to_path_buf(), what: owner.what });
        }
        owner.verify(target)?;
    }
    let name = target
        .file_name()
        .ok_or_else(|| Error::spec("out", format!("{} has no final path component", target.display())))?
        .to_string_lossy()
        .into_owned();
    let parent = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let (tmp, nonce) = fresh_sibling(parent, &name, "tmp")?;
    let result = (|| {
        fill(&tmp)?;
        sync_tree(&tmp)?;
        if exists {
            let old = parent.join(format!(".{name}.old-{}-{nonce}", std::process::id()));
            std::fs::rename(target, &old).map_err(|e| Error::io(target, e))?;
            if let Err(e) = std::fs::rename(&tmp, target) {
                // Put the old directory back; the new one is still in `tmp`.
                let _ = std::fs::rename(&old, target);
                return Err(Error::io(target, e));
            }
            std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
        } else {
            std::fs::rename(&tmp, target).map_err(|e| Error::io(target, e))?;
        }
        sync_dir(parent)
    })();
    if result.is_err() && tmp.exists() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Creates a new empty directory `.NAME.KIND-PID-NONCE` in `parent`,
/// retrying with another nonce if that name is taken (never reusing it).
fn fresh_sibling(parent: &Path, name: &str, kind: &str) -> Result<(std::path::PathBuf, u128)> {
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut last = None;
    for k in 0..16u128 {
        let nonce = base + k;
        let dir = parent.join(format!(".{name}.{kind}-{}-{nonce}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((dir, nonce)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some((dir, e)),
            Err(e) => return Err(Error::io(&dir, e)),
        }
    }
    let (dir, e) = last.expect("16 tries");
    Err(Error::io(dir, e))
}

/// Writes and fsyncs one file (inside a directory that is renamed into
/// place later, so it needs no temporary of its own).
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

/// Fsyncs a directory, so renames inside it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))
}

/// Fsyncs every file and directory below `dir` (files written by other
/// libraries, zarrs say, are not fsynced by them).
fn sync_tree(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
        if meta.is_dir() {
            sync_tree(&path)?;
        } else if meta.is_file() {
            std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(|e| Error::io(&path, e))?;
        }
    }
    sync_dir(dir)
}

/// Longest id or name accepted.
pub const MAX_NAME_LEN: usize = 128;

/// Whether `s` is a plain name usable as an artifact id, split, dataset or
/// artifact file name: 1 to [`MAX_NAME_LEN`] ASCII letters, digits, `.`, `_`,
/// `-`, starting with a letter or digit (so never `.`, `..` or a hidden
/// file) and with no `..` anywhere. Anything path-like (`/`, `\`, `%`, NUL,
/// spaces) is refused, so a name can never leave the directory or the URL
/// segment it is used in.
pub fn is_plain_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        && !s.contains("..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(dir: &Path) -> std::result::Result<(), String> {
        if dir.join("MARK").is_file() { only_entries(dir, &|n| n == "MARK" || n == "data") } else { Err("no MARK".into()) }
    }

    fn write_marked(dir: &Path, data: &str) -> Result<()> {
        write_synced(&dir.join("MARK"), b"")?;
        write_synced(&dir.join("data"), data.as_bytes())
    }

    #[test]
    fn a_directory_is_replaced_only_when_its_owner_recognises_it() {
        let root = tempfile::tempdir().unwrap();
        let owner = Ownership { what: "test output", check: &marked };
        let target = root.path().join("out");
        replace_dir_atomically(&target, false, &owner, |d| write_marked(d, "one")).unwrap();
        assert_eq!(std::fs::read_to_string(target.join("data")).unwrap(), "one");
        // Exists, no overwrite: refused, untouched.
        let err = replace_dir_atomically(&target, false, &owner, |d| write_marked(d, "two")).unwrap_err();
        assert!(matches!(err, Error::OutputExists { .. }), "{err}");
        // Ours: replaced.
        replace_dir_atomically(&target, true, &owner, |d| write_marked(d, "two")).unwrap();
        assert_eq!(std::fs::read_to_string(target.join("data")).unwrap(), "two");
        // A foreign file inside: refused and named, everything kept.
        std::fs::write(target.join("thesis.tex"), "mine").unwrap();
        let err = replace_dir_atomically(&target, true, &owner, |d| write_marked(d, "three")).unwrap_err();
        assert!(err.to_string().contains("thesis.tex"), "{err}");
        assert_eq!(std::fs::read_to_string(target.join("thesis.tex")).unwrap(), "mine");
        assert_eq!(std::fs::read_to_string(target.join("data")).unwrap(), "two");
        // A regular file at the target: refused, kept.
        let file = root.path().join("notes.txt");
        std::fs::write(&file, "keep me").unwrap();
        let err = replace_dir_atomically(&file, true, &owner, |d| write_marked(d, "x")).unwrap_err();
        assert!(err.to_string().contains("is a file"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
        // Nothing left behind but what was there and the outputs.
        let mut names: Vec<_> = std::fs::read_dir(root.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, ["notes.txt", "out"]);
    }

    #[test]
    fn a_failed_fill_removes_only_its_own_temporary_directory() {
        let root = tempfile::tempdir().unwrap();
        let owner = Ownership { what: "test output", check: &marked };
        let target = root.path().join("out");
        let err = replace_dir_atomically(&target, false, &owner, |_| Err(Error::spec("x", "fill failed"))).unwrap_err();
        assert!(err.to_string().contains("fill failed"), "{err}");
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }
}

#[cfg(test)]
mod name_tests {
    use super::is_plain_name;

    #[test]
    fn plain_names() {
        for ok in ["mnist", "mnist-static_q0.05", "a", "F-MNIST.v2", "weights.safetensors"] {
            assert!(is_plain_name(ok), "{ok}");
        }
        let long = "a".repeat(129);
        for bad in [
            "", ".", "..", "../x", "a/b", "a\\b", ".hidden", "a..b", "a b", "a%2Fb", "a\0", "é", &long,
        ] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
    }
}
