//! A small single-file container for checkpoints and warm-up files.
//!
//! Layout: `SELMCKPT` | version (u32 LE) | header length (u64 LE) | header
//! JSON `{meta, sections: [{name, len}]}` | the sections' bytes in order.
//! One file per checkpoint, written atomically, so a checkpoint is either
//! the old one or the new one, and a reader can check every length.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::util::atomic_write;

const MAGIC: &[u8; 8] = b"SELMCKPT";
/// Container format version.
pub const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Header<M> {
    meta: M,
    sections: Vec<SectionHeader>,
}

#[derive(Serialize, Deserialize)]
struct SectionHeader {
    name: String,
    len: u64,
}

/// Writes `meta` and named byte sections to `path` atomically.
pub fn write<M: Serialize>(path: &Path, meta: &M, sections: &[(&str, &[u8])]) -> Result<()> {
    let header = Header {
        meta,
        sections: sections
            .iter()
            .map(|(name, bytes)| SectionHeader { name: name.to_string(), len: bytes.len() as u64 })
            .collect(),
    };
    let header = serde_json::to_vec(&header).map_err(|source| Error::Json { path: path.to_path_buf(), source })?;
    let total: usize = sections.iter().map(|(_, b)| b.len()).sum();
    let mut out = Vec::with_capacity(20 + header.len() + total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    for (_, bytes) in sections {
        out.extend_from_slice(bytes);
    }
    atomic_write(path, &out)
}

/// A container read back.
#[derive(Debug)]
pub struct Container<M> {
    /// The metadata.
    pub meta: M,
    sections: Vec<(String, Vec<u8>)>,
}

impl<M> Container<M> {
    /// Takes section `name` out, or explains which sections exist.
    pub fn take(&mut self, name: &str, path: &Path) -> Result<Vec<u8>> {
        let pos = self.sections.iter().position(|(n, _)| n == name).ok_or_else(|| Error::Checkpoint {
            path: path.to_path_buf(),
            reason: format!(
                "section '{name}' missing (present: {})",
                self.sections.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
            ),
        })?;
        Ok(self.sections.swap_remove(pos).1)
    }

    /// Whether section `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.sections.iter().any(|(n, _)| n == name)
    }
}

/// Reads a container, checking magic, version and every length.
pub fn read<M: DeserializeOwned>(path: &Path) -> Result<Container<M>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |reason: String| Error::Checkpoint { path: path.to_path_buf(), reason };
    if bytes.len() < 20 || &bytes[..8] != MAGIC {
        return Err(bad(format!(
            "not a selmask checkpoint (expected magic {:?}, file has {} bytes)",
            std::str::from_utf8(MAGIC).unwrap_or_default(),
            bytes.len()
        )));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(bad(format!("format version {version}, this build reads version {VERSION}")));
    }
    let header_len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes")) as usize;
    let body = &bytes[20..];
    if header_len > body.len() {
        return Err(bad(format!("header of {header_len} bytes but only {} bytes follow", body.len())));
    }
    let header: Header<M> = serde_json::from_slice(&body[..header_len])
        .map_err(|e| bad(format!("unreadable header: {e}")))?;
    let mut at = header_len;
    let mut sections = Vec::with_capacity(header.sections.len());
    for s in header.sections {
        let len = s.len as usize;
        if body.len() - at < len {
            return Err(bad(format!(
                "truncated: section '{}' needs {len} bytes, {} remain",
                s.name,
                body.len() - at
            )));
        }
        sections.push((s.name, body[at..at + len].to_vec()));
        at += len;
    }
    if at != body.len() {
        return Err(bad(format!("{} unexpected trailing bytes", body.len() - at)));
    }
    Ok(Container { meta: header.meta, sections })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.ckpt");
        write(&path, &serde_json::json!({"epoch": 3}), &[("a", b"hello"), ("b", b"")]).unwrap();
        let mut c: Container<serde_json::Value> = read(&path).unwrap();
        assert_eq!(c.meta["epoch"], 3);
        assert_eq!(c.take("a", &path).unwrap(), b"hello");
        assert!(c.has("b") && !c.has("a"));
        let err = c.take("zzz", &path).unwrap_err().to_string();
        assert!(err.contains("section 'zzz' missing (present: b)"), "{err}");

        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
        let err = read::<serde_json::Value>(&path).unwrap_err().to_string();
        assert!(err.contains("truncated: section 'a' needs 5 bytes, 3 remain"), "{err}");

        std::fs::write(&path, b"PK\x03\x04 not a checkpoint at all").unwrap();
        let err = read::<serde_json::Value>(&path).unwrap_err().to_string();
        assert!(err.contains("not a selmask checkpoint"), "{err}");
    }
}
