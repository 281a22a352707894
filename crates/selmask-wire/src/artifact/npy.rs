//! A small NPY v1.0 writer and reader (C order; f32, u8, u32, i64).
//!
//! Own code rather than a crate: the format is ~one page
//! (<https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>),
//! we need four dtypes and C order only, and the reader must reject every
//! malformed input with an error instead of panicking (it reads files that
//! may have been edited or truncated).
//!
//! Layout written: magic `\x93NUMPY`, version `1 0`, header length (u16 LE),
//! then an ASCII Python dict literal
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 28, 28), }`
//! padded with spaces and ended by `\n` so that the data start on a 64-byte
//! boundary (what numpy itself writes), then the values little-endian.

use crate::error::{Error, Result};

/// The magic string that opens every NPY file.
const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Data start on a multiple of this (numpy >= 1.x writes 64).
const ALIGN: usize = 64;

/// A value type NPY files of this crate may hold.
pub trait NpyElement: Copy + Default + 'static {
    /// numpy's little-endian type string (`<f4`, `|u1`, ...).
    const DESCR: &'static str;
    /// Bytes per value.
    const SIZE: usize;
    /// Appends the value's little-endian bytes.
    fn put(self, out: &mut Vec<u8>);
    /// Reads a value from exactly [`Self::SIZE`] little-endian bytes.
    fn get(bytes: &[u8]) -> Self;
    /// Other spellings numpy may use for the same type (e.g. `<u1`).
    fn accepts(descr: &str) -> bool {
        descr == Self::DESCR
    }
}

/// Copies a chunk into a fixed array; `chunks_exact` guarantees the length.
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&bytes[..N]);
    a
}

impl NpyElement for f32 {
    const DESCR: &'static str = "<f4";
    const SIZE: usize = 4;
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn get(bytes: &[u8]) -> Self {
        f32::from_le_bytes(array(bytes))
    }
}

impl NpyElement for u8 {
    const DESCR: &'static str = "|u1";
    const SIZE: usize = 1;
    fn put(self, out: &mut Vec<u8>) {
        out.push(self);
    }
    fn get(bytes: &[u8]) -> Self {
        bytes[0]
    }
    fn accepts(descr: &str) -> bool {
        matches!(descr, "|u1" | "<u1" | "=u1" | ">u1")
    }
}

impl NpyElement for u32 {
    const DESCR: &'static str = "<u4";
    const SIZE: usize = 4;
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn get(bytes: &[u8]) -> Self {
        u32::from_le_bytes(array(bytes))
    }
}

impl NpyElement for i64 {
    const DESCR: &'static str = "<i8";
    const SIZE: usize = 8;
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn get(bytes: &[u8]) -> Self {
        i64::from_le_bytes(array(bytes))
    }
}

/// An n-dimensional array read from an NPY file, C order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray<T> {
    /// The shape (empty for a 0-d array).
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<T>,
}

fn npy_err(name: &str, reason: impl Into<String>) -> Error {
    Error::Npy {
        name: name.to_string(),
        reason: reason.into(),
    }
}

/// Number of values of `shape`, or `None` on overflow.
fn product(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Encodes `data` with `shape` as an NPY v1.0 file; `name` is for messages.
pub fn to_npy_bytes<T: NpyElement>(name: &str, shape: &[usize], data: &[T]) -> Result<Vec<u8>> {
    let n = product(shape).ok_or_else(|| npy_err(name, format!("shape {shape:?} overflows")))?;
    if n != data.len() {
        return Err(npy_err(
            name,
            format!("shape {shape:?} needs {n} values, {} given", data.len()),
        ));
    }
    // Python's tuple syntax: a 1-tuple needs its trailing comma.
    let dims = match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {dims}, }}", T::DESCR);
    // magic (6) + version (2) + length (2) + header + '\n' on a multiple of ALIGN.
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat((ALIGN - unpadded % ALIGN) % ALIGN));
    header.push('\n');
    let header_len = u16::try_from(header.len())
        .map_err(|_| npy_err(name, format!("header of {} bytes does not fit npy v1.0", header.len())))?;
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + n * T::SIZE);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &v in data {
        v.put(&mut out);
    }
    Ok(out)
}

/// Decodes an NPY file (v1.0, also v2.0/3.0 headers) holding `T` values in C
/// order; `name` (usually the file name) prefixes every error.
pub fn from_npy_bytes<T: NpyElement>(name: &str, bytes: &[u8]) -> Result<NpyArray<T>> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(npy_err(name, "missing the \\x93NUMPY magic string"));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    // v1: u16 header length; v2/v3 (longer headers, v3 = utf-8): u32.
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(npy_err(name, format!("unsupported npy version {major}.{minor}"))),
    };
    let header_end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| {
            npy_err(
                name,
                format!("header of {header_len} bytes runs past the end of the file"),
            )
        })?;
    let header = std::str::from_utf8(&bytes[start..header_end]).map_err(|_| npy_err(name, "header is not text"))?;
    let parsed = parse_header(header).map_err(|reason| npy_err(name, format!("header {header:?}: {reason}")))?;
    if !T::accepts(&parsed.descr) {
        return Err(npy_err(
            name,
            format!("dtype is '{}', expected '{}'", parsed.descr, T::DESCR),
        ));
    }
    if parsed.fortran_order {
        return Err(npy_err(name, "fortran_order is True; only C order is supported"));
    }
    let n = product(&parsed.shape).ok_or_else(|| npy_err(name, format!("shape {:?} overflows", parsed.shape)))?;
    let data = &bytes[header_end..];
    let expected = n
        .checked_mul(T::SIZE)
        .ok_or_else(|| npy_err(name, format!("shape {:?} overflows", parsed.shape)))?;
    if data.len() != expected {
        return Err(npy_err(
            name,
            format!(
                "shape {:?} of '{}' needs {expected} data bytes, file has {}",
                parsed.shape,
                parsed.descr,
                data.len()
            ),
        ));
    }
    Ok(NpyArray {
        shape: parsed.shape,
        data: data.chunks_exact(T::SIZE).map(T::get).collect(),
    })
}

/// The three keys of an NPY header.
#[derive(Debug, PartialEq)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Parses the Python dict literal of an NPY header (the subset numpy writes:
/// quoted keys, a quoted string, `True`/`False`, a tuple of integers).
fn parse_header(text: &str) -> Result<Header, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    p.expect(b'{')?;
    loop {
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.expect(b':')?;
        match key.as_str() {
            "descr" => descr = Some(p.string()?),
            "fortran_order" => fortran = Some(p.boolean()?),
            "shape" => shape = Some(p.tuple()?),
            other => return Err(format!("unknown key '{other}'")),
        }
        p.skip_ws();
        if !p.eat(b',') {
            p.expect(b'}')?;
            break;
        }
    }
    p.skip_ws();
    if p.i != p.s.len() {
        return Err(format!("unexpected text after the dict at byte {}", p.i));
    }
    Ok(Header {
        descr: descr.ok_or("missing key 'descr'")?,
        fortran_order: fortran.ok_or("missing key 'fortran_order'")?,
        shape: shape.ok_or("missing key 'shape'")?,
    })
}

/// A cursor over header bytes; every method checks bounds.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.skip_ws();
        let quote = match self.s.get(self.i) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a quoted string at byte {}", self.i)),
        };
        let start = self.i + 1;
        let len = self.s[start..]
            .iter()
            .position(|&c| c == quote)
            .ok_or("unterminated string")?;
        self.i = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }

    fn boolean(&mut self) -> Result<bool, String> {
        self.skip_ws();
        let rest = &self.s[self.i..];
        if rest.starts_with(b"True") {
            self.i += 4;
            Ok(true)
        } else if rest.starts_with(b"False") {
            self.i += 5;
            Ok(false)
        } else {
            Err(format!("expected True or False at byte {}", self.i))
        }
    }

    fn tuple(&mut self) -> Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            if self.eat(b')') {
                return Ok(dims);
            }
            self.skip_ws();
            let start = self.i;
            while self.s.get(self.i).is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
            let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
            let d: usize = digits
                .parse()
                .map_err(|_| format!("expected a dimension at byte {start}"))?;
            dims.push(d);
            if !self.eat(b',') {
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_every_dtype() {
        let f = to_npy_bytes("f", &[2, 3], &[0.0f32, 1.0, -2.5, 3.25, f32::MAX, 1e-30]).unwrap();
        assert_eq!(from_npy_bytes::<f32>("f", &f).unwrap().data[2], -2.5);
        let u = to_npy_bytes("u", &[4], &[0u8, 1, 254, 255]).unwrap();
        assert_eq!(from_npy_bytes::<u8>("u", &u).unwrap().shape, vec![4]);
        let w = to_npy_bytes("w", &[1, 2], &[7u32, u32::MAX]).unwrap();
        assert_eq!(from_npy_bytes::<u32>("w", &w).unwrap().data, vec![7, u32::MAX]);
        let l = to_npy_bytes("l", &[], &[-5i64]).unwrap();
        let back = from_npy_bytes::<i64>("l", &l).unwrap();
        assert_eq!((back.shape.len(), back.data[0]), (0, -5));
    }

    #[test]
    fn writes_numpys_header_layout() {
        let b = to_npy_bytes("m", &[3, 28, 28], &vec![0f32; 3 * 28 * 28]).unwrap();
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0, "data must start 64-aligned");
        let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 28, 28), }"));
        assert!(header.ends_with('\n'));
        // A 1-d shape is a Python 1-tuple.
        let s = to_npy_bytes("s", &[5], &[1u32, 2, 3, 4, 5]).unwrap();
        assert!(s.windows(14).any(|w| w == b"'shape': (5,)," as &[u8]));
    }

    #[test]
    fn rejects_wrong_dtype_order_and_length() {
        let b = to_npy_bytes("x", &[2], &[1u32, 2]).unwrap();
        let e = from_npy_bytes::<f32>("x.npy", &b).unwrap_err().to_string();
        assert!(e.contains("x.npy") && e.contains("'<u4'"), "{e}");
        // (Bytes, not text: the magic string's \x93 is not UTF-8, and a lossy
        // round trip through a string breaks the magic instead.)
        let at = b.windows(5).position(|w| w == b"False").unwrap();
        let mut fortran = b.clone();
        fortran[at..at + 5].copy_from_slice(b"True ");
        let err = |bytes: &[u8]| from_npy_bytes::<u32>("x.npy", bytes).unwrap_err().to_string();
        let e = err(&fortran);
        assert!(e.starts_with("x.npy: malformed npy: fortran_order is True"), "{e}");
        let e = err(&b[..b.len() - 1]);
        assert!(e.contains("shape [2] of '<u4' needs 8 data bytes, file has 7"), "{e}");
        let mut longer = b.clone();
        longer.push(0);
        let e = err(&longer);
        assert!(e.contains("needs 8 data bytes, file has 9"), "{e}");
        let e = to_npy_bytes("y.npy", &[3], &[1u8]).unwrap_err().to_string();
        assert!(e.starts_with("y.npy: malformed npy:") && e.contains("[3]") && e.contains('1'), "{e}");
    }

    #[test]
    fn parses_header_variants() {
        let h = parse_header("{\"shape\": (2 , 3 ,), \"descr\": \"<f4\", \"fortran_order\": False}").unwrap();
        assert_eq!(h.shape, vec![2, 3]);
        for bad in [
            "",
            "{",
            "{'descr': '<f4'}",
            "{'shape': (x,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",
            "{} junk",
        ] {
            let e = parse_header(bad).unwrap_err();
            // Each names what it expected or found, and where.
            assert!(e.contains("expected") || e.contains("unknown key") || e.contains("unexpected text") || e.contains("missing"), "{bad}: {e}");
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = from_npy_bytes::<f32>("r", &bytes);
            let _ = from_npy_bytes::<u8>("r", &bytes);
            let _ = from_npy_bytes::<i64>("r", &bytes);
        }

        #[test]
        fn mutated_files_never_panic(pos in 0usize..200, byte in any::<u8>()) {
            let mut b = to_npy_bytes("m", &[2, 5], &[1u32; 10]).unwrap();
            let i = pos % b.len();
            b[i] = byte;
            let _ = from_npy_bytes::<u32>("m", &b);
        }
    }
}
