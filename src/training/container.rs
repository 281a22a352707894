//! A small single-file container for checkpoints and warm-up files.
//!
//! Layout: `SELMCKPT` | version (u32 LE) | header length (u64 LE) | header
//! JSON `{meta, sections: [{name, len}]}` | the sections' bytes in order |
//! SHA-256 of everything before it (32 bytes, since version 2).
//! One file per checkpoint, written atomically, so a checkpoint is either
//! the old one or the new one; a reader checks every length and the
//! checksum, so a flipped bit anywhere (a bad disk, a partial copy) is an
//! error on every load (export, fine-tuning, resume, warm-up reuse), never a
//! model exported under fresh artifact hashes.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use selmask_wire::util::atomic_write;

const MAGIC: &[u8; 8] = b"SELMCKPT";
/// Container format version (2: with a SHA-256 trailer).
pub const VERSION: u32 = 2;
/// Bytes of the checksum trailer.
const CHECKSUM_LEN: usize = 32;

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
    let header = serde_json::to_vec(&header).map_err(|source| Error::json(path.to_path_buf(), source))?;
    let total: usize = sections.iter().map(|(_, b)| b.len()).sum();
    let mut out = Vec::with_capacity(20 + header.len() + total + CHECKSUM_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    for (_, bytes) in sections {
        out.extend_from_slice(bytes);
    }
    let checksum = Sha256::digest(&out);
    out.extend_from_slice(&checksum);
    Ok(atomic_write(path, &out)?)
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
    if version == 1 {
        return Err(bad(
            "format version 1 has no checksum, so damage cannot be detected; this build reads version 2 \
             (re-create it with this version: train or pretrain again)"
                .into(),
        ));
    }
    if version != VERSION {
        return Err(bad(format!("format version {version}, this build reads version {VERSION}")));
    }
    if bytes.len() < 20 + CHECKSUM_LEN {
        return Err(bad(format!("truncated: {} bytes cannot hold a header and a checksum", bytes.len())));
    }
    let (content, stored) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    let found = Sha256::digest(content);
    if found.as_slice() != stored {
        return Err(bad(format!(
            "checksum mismatch: the file's content hashes to {}, its trailer says {} (damaged or truncated)",
            hex(&found),
            hex(stored)
        )));
    }
    let header_len = u64::from_le_bytes(content[12..20].try_into().expect("8 bytes"));
    let body = &content[20..];
    let header_len = match usize::try_from(header_len) {
        Ok(n) => n,
        Err(_) => usize::MAX,
    };
    if header_len > body.len() {
        return Err(bad(format!("header of {header_len} bytes but only {} bytes follow", body.len())));
    }
    let header: Header<M> = serde_json::from_slice(&body[..header_len])
        .map_err(|e| bad(format!("unreadable header: {e}")))?;
    let mut at = header_len;
    let mut sections = Vec::with_capacity(header.sections.len());
    for s in header.sections {
        let len = usize::try_from(s.len).unwrap_or(usize::MAX);
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
        assert!(err.contains("checksum mismatch"), "{err}");

        // Every single flipped bit is caught, in the header, a section or the trailer.
        for at in [9, 14, 25, bytes.len() - 40, bytes.len() - 36, bytes.len() - 1] {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            std::fs::write(&path, &flipped).unwrap();
            let err = read::<serde_json::Value>(&path).unwrap_err().to_string();
            assert!(err.contains("checksum mismatch") || err.contains("format version"), "byte {at}: {err}");
        }

        // A length that lies (with a recomputed checksum) is still caught.
        let mut lying = bytes[..bytes.len() - CHECKSUM_LEN].to_vec();
        let header_len = u64::from_le_bytes(lying[12..20].try_into().unwrap()) as usize;
        let header = String::from_utf8(lying[20..20 + header_len].to_vec()).unwrap().replace("\"len\":5", "\"len\":9");
        lying.splice(20..20 + header_len, header.bytes());
        lying.splice(12..20, (header.len() as u64).to_le_bytes());
        let sum = Sha256::digest(&lying);
        lying.extend_from_slice(&sum);
        std::fs::write(&path, &lying).unwrap();
        let err = read::<serde_json::Value>(&path).unwrap_err().to_string();
        assert!(err.contains("truncated: section 'a' needs 9 bytes, 5 remain"), "{err}");

        // Version 1 (no checksum) is refused with the reason.
        let mut v1 = bytes.clone();
        v1[8..12].copy_from_slice(&1u32.to_le_bytes());
        std::fs::write(&path, &v1).unwrap();
        let err = read::<serde_json::Value>(&path).unwrap_err().to_string();
        assert!(err.contains("version 1 has no checksum"), "{err}");

        std::fs::write(&path, b"PK\x03\x04 not a checkpoint at all").unwrap();
        let err = read::<serde_json::Value>(&path).unwrap_err().to_string();
        assert!(err.contains("not a selmask checkpoint"), "{err}");
    }
}
