//! Reader for the IDX format of (Fashion-)MNIST, raw or gzip-compressed.
//!
//! An IDX file is a big-endian header `0x00 0x00 <type> <ndims>`, `ndims`
//! u32 dimension sizes, then the data. MNIST uses type `0x08` (u8): images
//! are `[n, 28, 28]` (magic `0x00000803`), labels `[n]` (magic `0x00000801`).

use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;

use crate::error::{Error, Result};

/// Magic number of an IDX file of u8 with three dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of u8 with one dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// The decoded content of one IDX file of u8 values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimension sizes from the header.
    pub dims: Vec<u32>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// Reads the whole file, un-gzipping it when it starts with the gzip magic.
///
/// A gzip stream is decompressed header first: the data that follows is
/// read only up to the size the header declares (plus one byte, to notice
/// a longer stream), so a small file cannot expand into an unbounded
/// allocation.
fn read_maybe_gz(path: &Path, expected_magic: u32, what: &'static str) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut gz = GzDecoder::new(raw.as_slice());
    let mut out = vec![0u8; 4];
    let short = |out: &[u8]| Error::IdxSize { path: path.to_path_buf(), dims: vec![], expected: 4, found: out.len() as u64 };
    gz.read_exact(&mut out).map_err(|_| short(&[]))?;
    let magic = u32::from_be_bytes([out[0], out[1], out[2], out[3]]);
    if magic != expected_magic {
        return Err(Error::IdxMagic { path: path.to_path_buf(), what, expected: expected_magic, found: magic });
    }
    let ndims = (magic & 0xff) as usize;
    out.resize(4 + 4 * ndims, 0);
    gz.read_exact(&mut out[4..]).map_err(|_| short(&[]))?;
    let dims: Vec<u32> = out[4..].chunks_exact(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])).collect();
    let expected = data_len(&dims).ok_or_else(|| Error::IdxSize {
        path: path.to_path_buf(),
        dims: dims.clone(),
        expected: u64::MAX,
        found: 0,
    })?;
    // deflate expands at most ~1032:1, so the stream bounds the real size.
    let bound = (raw.len() as u64).saturating_mul(1032);
    out.reserve(expected.min(bound) as usize);
    gz.take(expected.saturating_add(1)).read_to_end(&mut out).map_err(|e| Error::io(path, e))?;
    Ok(out)
}

/// The number of data bytes `dims` declare, `None` if it overflows u64
/// (a crafted header: the product would wrap to any size).
fn data_len(dims: &[u32]) -> Option<u64> {
    dims.iter().try_fold(1u64, |n, &d| n.checked_mul(d as u64))
}

/// Parses IDX bytes; `path` and `what` only label errors.
pub fn parse(bytes: &[u8], expected_magic: u32, path: &Path, what: &'static str) -> Result<IdxArray> {
    let be_u32 = |at: usize| -> Option<u32> {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let size_error = |dims: Vec<u32>, expected: u64| Error::IdxSize {
        path: path.to_path_buf(),
        dims,
        expected,
        found: bytes.len().saturating_sub(4) as u64,
    };
    let magic = be_u32(0).ok_or_else(|| size_error(vec![], 4))?;
    if magic != expected_magic {
        return Err(Error::IdxMagic {
            path: path.to_path_buf(),
            what,
            expected: expected_magic,
            found: magic,
        });
    }
    let ndims = (magic & 0xff) as usize;
    let header = 4 + 4 * ndims;
    let dims: Vec<u32> = (0..ndims)
        .map(|i| be_u32(4 + 4 * i))
        .collect::<Option<_>>()
        .ok_or_else(|| size_error(vec![], (4 * ndims) as u64))?;
    let found = (bytes.len() - header) as u64;
    let Some(expected) = data_len(&dims) else {
        return Err(Error::IdxSize { path: path.to_path_buf(), dims, expected: u64::MAX, found });
    };
    if found != expected {
        return Err(Error::IdxSize {
            path: path.to_path_buf(),
            dims,
            expected,
            found,
        });
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Reads an IDX image file (`[n, h, w]` of u8).
pub fn read_images(path: &Path) -> Result<IdxArray> {
    parse(&read_maybe_gz(path, IMAGES_MAGIC, "images")?, IMAGES_MAGIC, path, "images")
}

/// Reads an IDX label file (`[n]` of u8).
pub fn read_labels(path: &Path) -> Result<IdxArray> {
    parse(&read_maybe_gz(path, LABELS_MAGIC, "labels")?, LABELS_MAGIC, path, "labels")
}

/// Encodes an IDX file of u8 values; used by tests and fixtures.
pub fn encode(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * dims.len() + data.len());
    out.extend_from_slice(&[0, 0, 0x08, dims.len() as u8]);
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_images() {
        let data: Vec<u8> = (0..2 * 3 * 4).map(|v| v as u8).collect();
        let bytes = encode(&[2, 3, 4], &data);
        let arr = parse(&bytes, IMAGES_MAGIC, Path::new("x"), "images").unwrap();
        assert_eq!(arr.dims, vec![2, 3, 4]);
        assert_eq!(arr.data, data);
    }

    #[test]
    fn wrong_magic_names_both_numbers() {
        let bytes = encode(&[3], &[1, 2, 3]);
        let err = parse(&bytes, IMAGES_MAGIC, Path::new("f.idx"), "images").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("f.idx"), "{msg}");
        assert!(msg.contains("0x00000801") && msg.contains("0x00000803"), "{msg}");
    }

    #[test]
    fn truncated_file_reports_expected_and_found() {
        let mut bytes = encode(&[2, 2, 2], &[0; 8]);
        bytes.truncate(bytes.len() - 3);
        let err = parse(&bytes, IMAGES_MAGIC, Path::new("t.idx"), "images").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("needs 8 bytes") && msg.contains("found 5"), "{msg}");
    }

    #[test]
    fn header_cut_short_is_a_size_error() {
        let err = parse(&[0, 0, 8, 3, 0, 0], IMAGES_MAGIC, Path::new("h"), "images").unwrap_err();
        assert!(matches!(err, Error::IdxSize { .. }), "{err}");
    }
}
