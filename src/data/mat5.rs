//! A small reader (and, for test fixtures, writer) of MATLAB level-5 MAT
//! files: numeric arrays only, plain or in zlib-compressed elements.
//!
//! Written here rather than taken from the `matfile` crate because that
//! crate prints to stdout on arrays it skips, reports every problem as one
//! opaque "error while parsing" (no truncated / wrong type / missing
//! variable distinction), parses element by element through `nom` (slow on
//! SVHN's 235 MB `X`) and cannot write the files the tests need.
//!
//! Format (MathWorks, "MAT-File Format", level 5): a 128-byte header (text,
//! subsystem offset, version 0x0100, endian indicator `IM` or `MI`), then
//! data elements. Each element has an 8-byte tag (`u32` type, `u32` byte
//! count) or, for payloads of at most 4 bytes, a 4-byte "small" tag (byte
//! count in the upper 16 bits) with the payload in the next 4 bytes.
//! Plain elements are padded to 8 bytes; `miCOMPRESSED` (15) elements hold
//! a zlib stream of one element and are not padded. An `miMATRIX` (14)
//! element holds sub-elements: array flags (class in the low byte, complex
//! bit 0x800), dimensions (`miINT32`), name (`miINT8`), then the real and
//! optional imaginary parts, which may be stored in a narrower type than
//! the class (MATLAB stores integral doubles as `miUINT8`, for instance).
//! Values are column-major: the first dimension varies fastest.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;

use super::files;
use crate::error::{Error, Result};

/// What [`Error::Format`] calls these files.
const WHAT: &str = "mat file";

/// Element types (`mi*`) used here.
const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_DOUBLE: u32 = 9;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;

/// Complex bit of the array flags word.
const COMPLEX_FLAG: u32 = 0x800;

/// Class of a MATLAB array (`mx*_CLASS`), numeric or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `double`.
    Double,
    /// `single`.
    Single,
    /// `int8`.
    Int8,
    /// `uint8`.
    UInt8,
    /// `int16`.
    Int16,
    /// `uint16`.
    UInt16,
    /// `int32`.
    Int32,
    /// `uint32`.
    UInt32,
    /// `int64`.
    Int64,
    /// `uint64`.
    UInt64,
    /// Any non-numeric class (cell, struct, object, char, sparse, …), by code.
    Other(u8),
}

impl Class {
    fn from_code(code: u8) -> Class {
        match code {
            6 => Class::Double,
            7 => Class::Single,
            8 => Class::Int8,
            9 => Class::UInt8,
            10 => Class::Int16,
            11 => Class::UInt16,
            12 => Class::Int32,
            13 => Class::UInt32,
            14 => Class::Int64,
            15 => Class::UInt64,
            other => Class::Other(other),
        }
    }

    fn code(self) -> u8 {
        match self {
            Class::Double => 6,
            Class::Single => 7,
            Class::Int8 => 8,
            Class::UInt8 => 9,
            Class::Int16 => 10,
            Class::UInt16 => 11,
            Class::Int32 => 12,
            Class::UInt32 => 13,
            Class::Int64 => 14,
            Class::UInt64 => 15,
            Class::Other(code) => code,
        }
    }

    /// MATLAB's name of the class.
    pub fn name(self) -> &'static str {
        match self {
            Class::Double => "double",
            Class::Single => "single",
            Class::Int8 => "int8",
            Class::UInt8 => "uint8",
            Class::Int16 => "int16",
            Class::UInt16 => "uint16",
            Class::Int32 => "int32",
            Class::UInt32 => "uint32",
            Class::Int64 => "int64",
            Class::UInt64 => "uint64",
            Class::Other(1) => "cell",
            Class::Other(2) => "struct",
            Class::Other(3) => "object",
            Class::Other(4) => "char",
            Class::Other(5) => "sparse",
            Class::Other(_) => "unknown-class",
        }
    }
}

/// An array's values as stored: bytes when stored as `miUINT8`, otherwise
/// converted to `f64` (exact for every stored type but 64-bit integers
/// above 2^53, which no dataset here uses).
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Stored as `miUINT8`.
    U8(Vec<u8>),
    /// Stored as any other numeric type.
    F64(Vec<f64>),
}

impl Values {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Values::U8(v) => v.len(),
            Values::F64(v) => v.len(),
        }
    }

    /// Whether there is no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value `i` as `f64`.
    pub fn get(&self, i: usize) -> f64 {
        match self {
            Values::U8(v) => v[i] as f64,
            Values::F64(v) => v[i],
        }
    }
}

/// One numeric array.
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    /// Its name.
    pub name: String,
    /// Its class (the type MATLAB shows, not the storage type).
    pub class: Class,
    /// Its dimensions, MATLAB order (column-major).
    pub dims: Vec<usize>,
    /// Its values, column-major.
    pub values: Values,
}

/// The arrays read from a file.
#[derive(Debug)]
pub struct MatFile {
    path: PathBuf,
    /// Names of all arrays in the file, in file order.
    names: Vec<String>,
    /// The wanted numeric arrays that were found.
    variables: Vec<Variable>,
}

impl MatFile {
    /// Reads `path`, keeping the values of the arrays named in `wanted` only
    /// (the others are skipped, or decompressed only as far as their name).
    pub fn read(path: &Path, wanted: &[&str]) -> Result<MatFile> {
        let mut input = files::open(path)?;
        let (names, variables) = parse(&mut input, wanted).map_err(|reason| Error::format(path, WHAT, reason))?;
        Ok(MatFile {
            path: path.to_path_buf(),
            names,
            variables,
        })
    }

    /// Names of every array in the file, in file order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Removes and returns the wanted variable `name`; an error names the
    /// variables that are present.
    pub fn take(&mut self, name: &str) -> Result<Variable> {
        match self.variables.iter().position(|v| v.name == name) {
            Some(i) => Ok(self.variables.swap_remove(i)),
            None => Err(Error::format(
                &self.path,
                WHAT,
                format!(
                    "variable '{name}' not found (variables present: {})",
                    if self.names.is_empty() {
                        "none".to_string()
                    } else {
                        self.names.join(", ")
                    }
                ),
            )),
        }
    }
}

/// Parser state: the input, its byte order and how far into it we are.
struct Input<R> {
    inner: R,
    big_endian: bool,
    consumed: u64,
}

/// A data element tag.
struct Tag {
    ty: u32,
    bytes: u32,
    /// The payload of a small data element (in the tag itself).
    small: Option<[u8; 4]>,
}

impl Tag {
    /// Padding after the payload of a plain element.
    fn padding(&self) -> u64 {
        if self.small.is_some() {
            0
        } else {
            (8 - self.bytes as u64 % 8) % 8
        }
    }
}

impl<R: Read> Input<R> {
    fn new(inner: R, big_endian: bool) -> Self {
        Input {
            inner,
            big_endian,
            consumed: 0,
        }
    }

    fn exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_exact(buf)?;
        self.consumed += buf.len() as u64;
        Ok(())
    }

    fn word(&self, b: [u8; 4]) -> u32 {
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    fn u32(&mut self) -> io::Result<u32> {
        let mut b = [0u8; 4];
        self.exact(&mut b)?;
        Ok(self.word(b))
    }

    /// The next tag, or `None` at a clean end of input.
    fn tag_or_end(&mut self) -> io::Result<Option<Tag>> {
        let mut b = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match self.inner.read(&mut b[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.consumed += 4;
        let first = self.word(b);
        if first >> 16 != 0 {
            let mut small = [0u8; 4];
            self.exact(&mut small)?;
            return Ok(Some(Tag {
                ty: first & 0xffff,
                bytes: first >> 16,
                small: Some(small),
            }));
        }
        let bytes = self.u32()?;
        Ok(Some(Tag {
            ty: first,
            bytes,
            small: None,
        }))
    }

    fn tag(&mut self) -> io::Result<Tag> {
        self.tag_or_end()?.ok_or_else(|| io::ErrorKind::UnexpectedEof.into())
    }

    /// Skips `n` bytes, failing if fewer are left.
    fn skip(&mut self, n: u64) -> io::Result<()> {
        let skipped = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())?;
        self.consumed += skipped;
        if skipped < n {
            Err(io::ErrorKind::UnexpectedEof.into())
        } else {
            Ok(())
        }
    }

    /// The payload of `tag` (and its padding consumed).
    fn payload(&mut self, tag: &Tag) -> io::Result<Vec<u8>> {
        if let Some(small) = tag.small {
            return Ok(small[..(tag.bytes as usize).min(4)].to_vec());
        }
        let n = tag.bytes as u64;
        // Capacity is capped so that a corrupt byte count cannot allocate
        // gigabytes before the data runs out.
        let mut buf = Vec::with_capacity(n.min(1 << 28) as usize);
        (&mut self.inner).take(n).read_to_end(&mut buf)?;
        self.consumed += buf.len() as u64;
        if (buf.len() as u64) < n {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.skip(tag.padding())?;
        Ok(buf)
    }
}

/// Turns a read error into a reason naming where it happened.
fn reason(e: io::Error, at: u64, what: &str) -> String {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        format!("file ends inside {what} starting at byte {at} (truncated?)")
    } else {
        format!("cannot read {what} starting at byte {at}: {e}")
    }
}

/// Reads the header and every top-level element.
fn parse(reader: &mut impl Read, wanted: &[&str]) -> std::result::Result<(Vec<String>, Vec<Variable>), String> {
    let mut header = [0u8; 128];
    let mut got = 0;
    while got < header.len() {
        match reader.read(&mut header[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("cannot read header: {e}")),
        }
    }
    if got < header.len() {
        return Err(format!("file is {got} bytes, shorter than the 128-byte mat header"));
    }
    if header.starts_with(b"MATLAB 7.3") {
        return Err("mat v7.3 (hdf5-based) files are not supported; save with -v7 or scipy.io.savemat".into());
    }
    let big_endian = match &header[126..128] {
        b"IM" => false,
        b"MI" => true,
        other => {
            return Err(format!(
                "not a level-5 mat file: endian indicator is {:?}, expected \"IM\" or \"MI\"",
                String::from_utf8_lossy(other)
            ));
        }
    };
    let version = if big_endian {
        u16::from_be_bytes([header[124], header[125]])
    } else {
        u16::from_le_bytes([header[124], header[125]])
    };
    if version != 0x0100 {
        return Err(format!("unsupported mat version {version:#06x}, expected 0x0100"));
    }

    let mut input = Input::new(reader, big_endian);
    input.consumed = 128;
    let mut names = Vec::new();
    let mut variables = Vec::new();
    loop {
        let at = input.consumed;
        let Some(tag) = input.tag_or_end().map_err(|e| reason(e, at, "an element tag"))? else {
            break;
        };
        let start = input.consumed;
        match tag.ty {
            MI_MATRIX => {
                let mut body = Input::new((&mut input.inner).take(tag.bytes as u64), big_endian);
                let found = matrix(&mut body, wanted).map_err(|e| in_element(e, at, "array element"))?;
                body.skip(tag.bytes as u64 - body.consumed)
                    .map_err(|e| reason(e, at, "an array element"))?;
                input.consumed = start + tag.bytes as u64;
                // The last element's padding may be missing; nothing follows it.
                let pad = tag.padding();
                let skipped = io::copy(&mut (&mut input.inner).take(pad), &mut io::sink())
                    .map_err(|e| reason(e, at, "element padding"))?;
                input.consumed += skipped;
                record(found, &mut names, &mut variables);
            }
            MI_COMPRESSED => {
                let mut compressed = (&mut input.inner).take(tag.bytes as u64);
                let found = {
                    let mut z = Input::new(ZlibDecoder::new(&mut compressed), big_endian);
                    let inner = z.tag().map_err(|e| corrupt(e, at))?;
                    if inner.ty != MI_MATRIX {
                        None
                    } else {
                        let mut body = Input::new((&mut z.inner).take(inner.bytes as u64), big_endian);
                        Some(matrix(&mut body, wanted).map_err(|e| match e {
                            Parse::Io(e) => corrupt(e, at),
                            Parse::Bad(r) => format!("compressed element at byte {at}: {r}"),
                        })?)
                    }
                };
                // Skip what the decoder did not need (the rest of an
                // unwanted array); compressed elements carry no padding.
                io::copy(&mut compressed, &mut io::sink()).map_err(|e| reason(e, at, "a compressed element"))?;
                if compressed.limit() > 0 {
                    return Err(reason(io::ErrorKind::UnexpectedEof.into(), at, "a compressed element"));
                }
                input.consumed = start + tag.bytes as u64;
                if let Some(found) = found {
                    record(found, &mut names, &mut variables);
                }
            }
            _ => {
                if tag.small.is_none() {
                    input
                        .skip(tag.bytes as u64 + tag.padding())
                        .map_err(|e| reason(e, at, "an element"))?;
                }
            }
        }
    }
    Ok((names, variables))
}

/// Files an array found by [`matrix`].
fn record(found: Found, names: &mut Vec<String>, variables: &mut Vec<Variable>) {
    match found {
        Found::Named(name) => names.push(name),
        Found::Numeric(v) => {
            names.push(v.name.clone());
            variables.push(v);
        }
        Found::Empty => {}
    }
}

/// A reason for a decompression failure.
fn corrupt(e: io::Error, at: u64) -> String {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        format!("compressed element at byte {at} ends early (truncated?)")
    } else {
        format!("corrupt compressed element at byte {at}: {e}")
    }
}

/// A reason for a failure inside a plain element.
fn in_element(e: Parse, at: u64, what: &str) -> String {
    match e {
        Parse::Io(e) => reason(e, at, &format!("an {what}")),
        Parse::Bad(r) => format!("{what} at byte {at}: {r}"),
    }
}

/// Failure while parsing one array.
enum Parse {
    Io(io::Error),
    Bad(String),
}

impl From<io::Error> for Parse {
    fn from(e: io::Error) -> Self {
        Parse::Io(e)
    }
}

/// What one `miMATRIX` element held.
enum Found {
    /// An array that is not wanted or not numeric: its name only.
    Named(String),
    /// A wanted numeric array.
    Numeric(Variable),
    /// An element with no content (MATLAB writes these for empty cells).
    Empty,
}

/// Parses the sub-elements of an `miMATRIX` element from `body`.
fn matrix<R: Read>(body: &mut Input<R>, wanted: &[&str]) -> std::result::Result<Found, Parse> {
    let Some(flags_tag) = body.tag_or_end()? else {
        return Ok(Found::Empty);
    };
    if flags_tag.ty != MI_UINT32 || flags_tag.bytes != 8 {
        return Err(Parse::Bad(format!(
            "array flags have type {} and {} bytes, expected miUINT32 (6) and 8",
            flags_tag.ty, flags_tag.bytes
        )));
    }
    let flags = body.u32()?;
    let _nzmax = body.u32()?;
    let class = Class::from_code((flags & 0xff) as u8);

    let dims_tag = body.tag()?;
    if dims_tag.ty != MI_INT32 {
        return Err(Parse::Bad(format!(
            "dimensions have type {}, expected miINT32 (5)",
            dims_tag.ty
        )));
    }
    let dims_raw = body.payload(&dims_tag)?;
    let dims: Vec<usize> = dims_raw
        .chunks_exact(4)
        .map(|b| body.word([b[0], b[1], b[2], b[3]]) as i32)
        .map(|d| usize::try_from(d).map_err(|_| Parse::Bad(format!("negative dimension {d}"))))
        .collect::<std::result::Result<_, _>>()?;

    let name_tag = body.tag()?;
    if name_tag.ty != MI_INT8 {
        return Err(Parse::Bad(format!(
            "array name has type {}, expected miINT8 (1)",
            name_tag.ty
        )));
    }
    let name = String::from_utf8_lossy(&body.payload(&name_tag)?).into_owned();

    if !wanted.contains(&name.as_str()) {
        return Ok(Found::Named(name));
    }
    if let Class::Other(_) = class {
        return Err(Parse::Bad(format!(
            "variable '{name}' is a {} array, expected a numeric array",
            class.name()
        )));
    }
    if flags & COMPLEX_FLAG != 0 {
        return Err(Parse::Bad(format!(
            "variable '{name}' is complex, expected real values"
        )));
    }
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            Parse::Bad(format!(
                "variable '{name}' has dimensions {dims:?} whose product overflows"
            ))
        })?;
    let real = body.tag()?;
    let width = match real.ty {
        1 | 2 => 1,
        3 | 4 => 2,
        5..=7 => 4,
        9 | 12 | 13 => 8,
        other => {
            return Err(Parse::Bad(format!(
                "variable '{name}' stores its values as element type {other}, which is not numeric"
            )));
        }
    };
    if count.checked_mul(width) != Some(real.bytes as usize) {
        return Err(Parse::Bad(format!(
            "variable '{name}' has dimensions {dims:?} ({count} values) but its data holds {} bytes \
             of {width}-byte values",
            real.bytes
        )));
    }
    let bytes = body.payload(&real)?;
    let values = if real.ty == MI_UINT8 {
        Values::U8(bytes)
    } else {
        Values::F64(to_f64(&bytes, real.ty, body.big_endian))
    };
    Ok(Found::Numeric(Variable {
        name,
        class,
        dims,
        values,
    }))
}

/// Converts stored numbers of element type `ty` to `f64`.
fn to_f64(bytes: &[u8], ty: u32, big: bool) -> Vec<f64> {
    macro_rules! conv {
        ($t:ty, $n:expr) => {
            bytes
                .chunks_exact($n)
                .map(|c| {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(c);
                    (if big {
                        <$t>::from_be_bytes(a)
                    } else {
                        <$t>::from_le_bytes(a)
                    }) as f64
                })
                .collect()
        };
    }
    match ty {
        1 => bytes.iter().map(|&b| b as i8 as f64).collect(),
        2 => bytes.iter().map(|&b| b as f64).collect(),
        3 => conv!(i16, 2),
        4 => conv!(u16, 2),
        5 => conv!(i32, 4),
        6 => conv!(u32, 4),
        7 => conv!(f32, 4),
        9 => conv!(f64, 8),
        12 => conv!(i64, 8),
        13 => conv!(u64, 8),
        _ => Vec::new(),
    }
}

/// How [`write()`] lays a file out.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// Put each array in a zlib-compressed element (as MATLAB's default
    /// `-v7` and the real SVHN files do).
    pub compress: bool,
    /// Write big-endian (`MI`) instead of little-endian (`IM`).
    pub big_endian: bool,
}

/// Test support: writes `variables` as a level-5 MAT file. Values stored
/// as [`Values::U8`] become `miUINT8` data and [`Values::F64`] `miDOUBLE`
/// data, whatever the class, so a `double` array stored as bytes (as MATLAB
/// does for integral doubles) can be written too.
pub fn write(path: &Path, variables: &[Variable], options: WriteOptions) -> Result<()> {
    let mut out = Vec::new();
    let mut text = b"MATLAB 5.0 MAT-file, written by selmask test support".to_vec();
    text.resize(116, b' ');
    out.extend_from_slice(&text);
    out.extend_from_slice(&[0u8; 8]);
    let be = options.big_endian;
    let u16b = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    out.extend_from_slice(&u16b(0x0100));
    out.extend_from_slice(&u16b(u16::from_be_bytes(*b"MI")));
    for v in variables {
        let body = matrix_bytes(v, be);
        let mut element = Vec::with_capacity(body.len() + 8);
        push_tag(&mut element, MI_MATRIX, body.len(), be);
        element.extend_from_slice(&body);
        if options.compress {
            let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
            z.write_all(&element).map_err(|e| Error::io(path, e))?;
            let packed = z.finish().map_err(|e| Error::io(path, e))?;
            push_tag(&mut out, MI_COMPRESSED, packed.len(), be);
            out.extend_from_slice(&packed);
        } else {
            out.extend_from_slice(&element);
        }
    }
    files::write(path, &out)
}

/// The sub-elements of one array (its `miMATRIX` payload, padded).
fn matrix_bytes(v: &Variable, be: bool) -> Vec<u8> {
    let word = |x: u32| if be { x.to_be_bytes() } else { x.to_le_bytes() };
    let mut b = Vec::new();
    push_tag(&mut b, MI_UINT32, 8, be);
    b.extend_from_slice(&word(v.class.code() as u32));
    b.extend_from_slice(&word(0));
    let dims: Vec<u8> = v.dims.iter().flat_map(|&d| word(d as u32)).collect();
    push_sub(&mut b, MI_INT32, &dims, be);
    push_sub(&mut b, MI_INT8, v.name.as_bytes(), be);
    match &v.values {
        Values::U8(data) => push_sub(&mut b, MI_UINT8, data, be),
        Values::F64(data) => {
            let bytes: Vec<u8> = data
                .iter()
                .flat_map(|x| if be { x.to_be_bytes() } else { x.to_le_bytes() })
                .collect();
            push_sub(&mut b, MI_DOUBLE, &bytes, be);
        }
    }
    b
}

/// Appends an 8-byte tag.
fn push_tag(out: &mut Vec<u8>, ty: u32, bytes: usize, be: bool) {
    for x in [ty, bytes as u32] {
        out.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() });
    }
}

/// Appends a sub-element: small format for at most 4 bytes (as MATLAB
/// writes short names), plain and padded to 8 bytes otherwise.
fn push_sub(out: &mut Vec<u8>, ty: u32, data: &[u8], be: bool) {
    if data.len() <= 4 && !data.is_empty() {
        let first = ((data.len() as u32) << 16) | ty;
        out.extend_from_slice(&if be { first.to_be_bytes() } else { first.to_le_bytes() });
        let mut small = [0u8; 4];
        small[..data.len()].copy_from_slice(data);
        out.extend_from_slice(&small);
    } else {
        push_tag(out, ty, data.len(), be);
        out.extend_from_slice(data);
        out.resize(out.len() + (8 - data.len() % 8) % 8, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(name: &str, class: Class, dims: &[usize], values: Values) -> Variable {
        Variable {
            name: name.into(),
            class,
            dims: dims.to_vec(),
            values,
        }
    }

    fn sample() -> Vec<Variable> {
        vec![
            var("X", Class::UInt8, &[2, 3, 2], Values::U8((0..12).collect())),
            var("y", Class::Double, &[3, 1], Values::F64(vec![1.0, 10.0, 2.5])),
            var("y8", Class::Double, &[3, 1], Values::U8(vec![4, 5, 6])),
            var("longer_name", Class::Int16, &[1, 1], Values::F64(vec![-3.0])),
        ]
    }

    #[test]
    fn round_trips_in_every_layout() {
        let dir = tempfile::tempdir().unwrap();
        for compress in [false, true] {
            for big_endian in [false, true] {
                let path = dir.path().join(format!("{compress}{big_endian}.mat"));
                write(&path, &sample(), WriteOptions { compress, big_endian }).unwrap();
                let mut m = MatFile::read(&path, &["X", "y", "y8", "longer_name"]).unwrap();
                assert_eq!(m.names(), ["X", "y", "y8", "longer_name"]);
                for expected in sample() {
                    assert_eq!(m.take(&expected.name).unwrap(), expected, "{compress} {big_endian}");
                }
            }
        }
    }

    #[test]
    fn unwanted_arrays_are_named_but_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.mat");
        for compress in [false, true] {
            write(
                &path,
                &sample(),
                WriteOptions {
                    compress,
                    big_endian: false,
                },
            )
            .unwrap();
            let mut m = MatFile::read(&path, &["y"]).unwrap();
            assert_eq!(m.names().len(), 4);
            assert!(m.take("y").is_ok());
            let msg = m.take("X").unwrap_err().to_string();
            assert!(
                msg.ends_with("variable 'X' not found (variables present: X, y, y8, longer_name)"),
                "{msg}"
            );
        }
    }

    /// `scipy.io.savemat` output (scipy 1.17, `do_compression=True`) for
    /// `{'X': np.arange(12, dtype=np.uint8).reshape(2, 3, 2, order='F'),
    /// 'y': np.array([[1.0], [10.0], [2.5]])}`: a reference writer's bytes.
    const SCIPY_COMPRESSED: &[u8] = include_bytes!("fixtures/scipy_compressed.mat");

    #[test]
    fn reads_a_reference_writers_compressed_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scipy.mat");
        std::fs::write(&path, SCIPY_COMPRESSED).unwrap();
        let mut m = MatFile::read(&path, &["X", "y"]).unwrap();
        assert_eq!(m.take("X").unwrap(), sample()[0]);
        assert_eq!(m.take("y").unwrap(), sample()[1]);
    }

    #[test]
    fn truncation_is_reported_at_every_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.mat");
        for compress in [false, true] {
            write(
                &path,
                &sample(),
                WriteOptions {
                    compress,
                    big_endian: false,
                },
            )
            .unwrap();
            let bytes = std::fs::read(&path).unwrap();
            // Every cut inside the header or inside an element must fail;
            // cuts at element boundaries are valid (shorter) files.
            let mut failures = 0;
            for cut in 0..bytes.len() {
                std::fs::write(&path, &bytes[..cut]).unwrap();
                match MatFile::read(&path, &["X", "y", "y8", "longer_name"]) {
                    Err(Error::Format { reason, .. }) => {
                        failures += 1;
                        assert!(
                            reason.contains("truncated") || reason.contains("shorter than"),
                            "cut {cut}: {reason}"
                        );
                    }
                    Err(other) => panic!("cut {cut}: {other}"),
                    Ok(m) => assert!(m.names().len() < 4, "cut {cut} read everything"),
                }
            }
            assert!(failures > bytes.len() - 10, "{failures} of {}", bytes.len());
        }
    }

    #[test]
    fn not_a_mat_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.mat");
        std::fs::write(&path, vec![b'x'; 200]).unwrap();
        let msg = MatFile::read(&path, &[]).unwrap_err().to_string();
        assert!(msg.contains("invalid mat file: not a level-5 mat file"), "{msg}");
        let mut v73 = b"MATLAB 7.3 MAT-file".to_vec();
        v73.resize(600, 0);
        std::fs::write(&path, &v73).unwrap();
        let msg = MatFile::read(&path, &[]).unwrap_err().to_string();
        assert!(msg.contains("mat v7.3 (hdf5-based) files are not supported"), "{msg}");
    }

    #[test]
    fn corrupt_compressed_stream() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.mat");
        write(
            &path,
            &sample(),
            WriteOptions {
                compress: true,
                big_endian: false,
            },
        )
        .unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        for b in &mut bytes[140..150] {
            *b ^= 0x5a;
        }
        std::fs::write(&path, &bytes).unwrap();
        let msg = MatFile::read(&path, &["X"]).unwrap_err().to_string();
        assert!(msg.contains("compressed element at byte 128"), "{msg}");
    }

    #[test]
    fn wrong_value_count_and_non_numeric_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.mat");
        write(
            &path,
            &[var("X", Class::UInt8, &[2, 2], Values::U8(vec![1, 2, 3]))],
            WriteOptions::default(),
        )
        .unwrap();
        let msg = MatFile::read(&path, &["X"]).unwrap_err().to_string();
        assert!(
            msg.contains("variable 'X' has dimensions [2, 2] (4 values) but its data holds 3 bytes"),
            "{msg}"
        );
        write(
            &path,
            &[var("X", Class::Other(1), &[1, 1], Values::U8(vec![0]))],
            WriteOptions::default(),
        )
        .unwrap();
        let msg = MatFile::read(&path, &["X"]).unwrap_err().to_string();
        assert!(
            msg.contains("variable 'X' is a cell array, expected a numeric array"),
            "{msg}"
        );
    }
}
