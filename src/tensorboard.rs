//! TensorBoard event files, as PyTorch's `SummaryWriter` writes them.
//!
//! An event file (`events.out.tfevents.<unix-secs>.<hostname>`) is a
//! TFRecord stream: every record is
//!
//! ```text
//! u64 length (LE) | u32 masked CRC32C of the length bytes (LE) | data | u32 masked CRC32C of data (LE)
//! ```
//!
//! where the data is a serialized `tensorflow.Event` protobuf, the first one
//! holding the file version `brain.Event:2`. Only the messages and fields
//! that scalars and images need are declared here (with `prost`'s derive,
//! so no `.proto` compilation); TensorBoard ignores nothing it needs, and a
//! reader skips fields it does not know.
//!
//! TensorBoard reads every event file of a directory in name order and
//! merges them, so a resumed run writes a new file beside the old ones
//! (see [`EventWriter::create`] and [`keep_records`]).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

use crate::error::{Error, Result};

/// The name prefix of event files: TensorBoard loads a directory's files
/// whose names contain `tfevents`; PyTorch and TensorFlow name them so.
pub const FILE_PREFIX: &str = "events.out.tfevents.";

/// The file version TensorBoard expects in the first record.
pub const FILE_VERSION: &str = "brain.Event:2";

/// `tensorflow.Event`: one record of an event file.
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    /// Seconds since the Unix epoch when the event was written.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// The global step (iteration or epoch) the event belongs to.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// What the event holds.
    #[prost(oneof = "event::What", tags = "3, 5")]
    pub what: Option<event::What>,
}

/// The `oneof what` of [`Event`].
pub mod event {
    /// What an [`super::Event`] holds (the fields of TensorFlow's `oneof
    /// what` that selmask writes).
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum What {
        /// The file's format version, [`super::FILE_VERSION`], first in every file.
        #[prost(string, tag = "3")]
        FileVersion(String),
        /// Scalars and images.
        #[prost(message, tag = "5")]
        Summary(super::Summary),
    }
}

/// `tensorflow.Summary`: tagged values of one step.
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value`: one tagged scalar or image.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryValue {
    /// The tag, e.g. `train/loss` (TensorBoard groups tags by the part
    /// before the first `/`).
    #[prost(string, tag = "1")]
    pub tag: String,
    /// The value.
    #[prost(oneof = "summary_value::Value", tags = "2, 4")]
    pub value: Option<summary_value::Value>,
}

/// The `oneof value` of [`SummaryValue`].
pub mod summary_value {
    /// A scalar or an image.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        /// A scalar (TensorBoard's scalars dashboard).
        #[prost(float, tag = "2")]
        SimpleValue(f32),
        /// An encoded image (the images dashboard).
        #[prost(message, tag = "4")]
        Image(super::Image),
    }
}

/// `tensorflow.Summary.Image`: an encoded (PNG) image.
#[derive(Clone, PartialEq, Message)]
pub struct Image {
    /// Height in pixels.
    #[prost(int32, tag = "1")]
    pub height: i32,
    /// Width in pixels.
    #[prost(int32, tag = "2")]
    pub width: i32,
    /// Channels: 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA.
    #[prost(int32, tag = "3")]
    pub colorspace: i32,
    /// The PNG bytes.
    #[prost(bytes = "vec", tag = "4")]
    pub encoded_image_string: Vec<u8>,
}

impl Event {
    /// An event of `step` holding `values`, stamped with the current time.
    pub fn summary(step: i64, value: Vec<SummaryValue>) -> Self {
        Event { wall_time: now(), step, what: Some(event::What::Summary(Summary { value })) }
    }

    /// The tagged values of a summary event (none for other events).
    pub fn values(&self) -> &[SummaryValue] {
        match &self.what {
            Some(event::What::Summary(s)) => &s.value,
            _ => &[],
        }
    }
}

impl SummaryValue {
    /// A scalar; TensorBoard stores scalars as `f32`.
    pub fn scalar(tag: impl Into<String>, value: f64) -> Self {
        SummaryValue { tag: tag.into(), value: Some(summary_value::Value::SimpleValue(value as f32)) }
    }

    /// A PNG image of `width × height` with `colorspace` channels.
    pub fn image(tag: impl Into<String>, png: Vec<u8>, width: u32, height: u32, colorspace: i32) -> Self {
        let image = Image { height: height as i32, width: width as i32, colorspace, encoded_image_string: png };
        SummaryValue { tag: tag.into(), value: Some(summary_value::Value::Image(image)) }
    }
}

/// Seconds since the Unix epoch (0 for a clock set before it).
fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// TFRecord's masked CRC32C: the CRC rotated right by 15 bits plus a
/// constant, because a CRC of data that itself holds CRCs is weak.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// `data` framed as one TFRecord: length, its masked CRC, data, its masked CRC.
pub fn frame(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut record = Vec::with_capacity(data.len() + 16);
    record.extend_from_slice(&len);
    record.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    record.extend_from_slice(data);
    record.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    record
}

/// The records of a TFRecord stream, as `(data, end offset)`, up to the
/// first that is truncated or fails a CRC check: what a writer killed in
/// the middle of a record leaves is dropped, not misread.
pub fn records(bytes: &[u8]) -> Vec<(&[u8], usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + 12) {
        let (len_bytes, len_crc) = header.split_at(8);
        if masked_crc32c(len_bytes).to_le_bytes() != len_crc {
            break;
        }
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
        let Some(end) = usize::try_from(len).ok().and_then(|l| (at + 12).checked_add(l)).and_then(|e| e.checked_add(4)) else { break };
        let Some(record) = bytes.get(at + 12..end) else { break };
        let (data, crc) = record.split_at(record.len() - 4);
        if masked_crc32c(data).to_le_bytes() != crc {
            break;
        }
        out.push((data, end));
        at = end;
    }
    out
}

/// Whether `name` is an event file's name (ours, PyTorch's or TensorFlow's).
pub fn is_event_file(name: &str) -> bool {
    name.starts_with(FILE_PREFIX)
}

/// The event files directly in `dir`, in name order (TensorBoard's order).
pub fn event_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if entry.file_name().to_str().is_some_and(is_event_file) && entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Rewrites the event file `path` with only the values `keep` accepts (its
/// tag and the event's step), dropping events left without values and
/// anything after a damaged record; the file is replaced atomically, and
/// only when something goes. Returns whether it was rewritten.
///
/// How a resumed run drops what its killed predecessor logged after the
/// state it resumes from: those steps are logged again, and TensorBoard
/// would show both.
pub fn keep_records(path: &Path, keep: &dyn Fn(&str, i64) -> bool) -> Result<bool> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let records = records(&bytes);
    let mut changed = records.last().map_or(0, |&(_, end)| end) != bytes.len();
    let mut kept = Vec::with_capacity(bytes.len());
    for (data, _) in records {
        // Records that are not events (another writer's) are kept as they are.
        let Ok(mut event) = Event::decode(data) else {
            kept.extend(frame(data));
            continue;
        };
        let Some(event::What::Summary(summary)) = &mut event.what else {
            kept.extend(frame(data));
            continue;
        };
        let before = summary.value.len();
        summary.value.retain(|v| keep(&v.tag, event.step));
        if summary.value.len() == before {
            kept.extend(frame(data));
            continue;
        }
        changed = true;
        if !summary.value.is_empty() {
            kept.extend(frame(&event.encode_to_vec()));
        }
    }
    if changed {
        selmask_wire::util::atomic_write(path, &kept)?;
    }
    Ok(changed)
}

/// Appends events to a new event file, each record written to the file at
/// once (no buffer), so that TensorBoard sees it while the run goes on and
/// a killed process loses at most the record being written.
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    file: File,
}

impl EventWriter {
    /// Creates `dir/events.out.tfevents.<unix-secs>.<hostname>` (with `.1`,
    /// `.2`, ... appended when that name exists: a file is never appended
    /// to or replaced) and writes the file-version record.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        // Path separators in a host name would point elsewhere.
        let host = gethostname::gethostname().to_string_lossy().replace(['/', '\\'], "_");
        let base = format!("{FILE_PREFIX}{secs}.{host}");
        let mut n = 0usize;
        let (path, file) = loop {
            let name = if n == 0 { base.clone() } else { format!("{base}.{n}") };
            let path = dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => break (path, file),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(Error::io(&path, e)),
            }
        };
        let mut writer = EventWriter { path, file };
        writer.write(&Event { wall_time: now(), step: 0, what: Some(event::What::FileVersion(FILE_VERSION.into())) })?;
        Ok(writer)
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event.
    pub fn write(&mut self, event: &Event) -> Result<()> {
        self.file.write_all(&frame(&event.encode_to_vec())).map_err(|e| Error::io(&self.path, e))
    }

    /// Appends scalars of `step`, one event holding them all.
    pub fn scalars(&mut self, step: i64, values: &[(&str, f64)]) -> Result<()> {
        self.write(&Event::summary(step, values.iter().map(|&(tag, v)| SummaryValue::scalar(tag, v)).collect()))
    }

    /// Hands everything written to the operating system (records are
    /// written unbuffered, so this only flushes what `File` might hold).
    pub fn flush(&mut self) -> Result<()> {
        self.file.flush().map_err(|e| Error::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // The CRC-32C (Castagnoli) check value of "123456789" (RFC 3720, B.4).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        // And RFC 3720's 32 zero bytes.
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8a91_36aa);
    }

    #[test]
    fn masked_crc_rotates_right_by_15_and_adds_the_constant() {
        // ((0xe3069283 >> 15) | (0xe3069283 << 17)) + 0xa282ead8, by hand.
        assert_eq!(masked_crc32c(b"123456789"), 0xc78a_b0e5);
    }

    #[test]
    fn a_record_is_length_crc_data_crc() {
        let data = b"hello tensorboard";
        let r = frame(data);
        assert_eq!(r.len(), 8 + 4 + data.len() + 4);
        assert_eq!(u64::from_le_bytes(r[..8].try_into().unwrap()), data.len() as u64);
        assert_eq!(u32::from_le_bytes(r[8..12].try_into().unwrap()), masked_crc32c(&r[..8]));
        assert_eq!(&r[12..12 + data.len()], data);
        assert_eq!(u32::from_le_bytes(r[12 + data.len()..].try_into().unwrap()), masked_crc32c(data));
    }

    #[test]
    fn records_stop_at_a_truncated_or_damaged_record() {
        let mut bytes = frame(b"one");
        bytes.extend(frame(b"two"));
        let whole = bytes.len();
        let found: Vec<&[u8]> = records(&bytes).into_iter().map(|(d, _)| d).collect();
        assert_eq!(found, [b"one".as_slice(), b"two".as_slice()]);
        // Killed while writing the second record.
        assert_eq!(records(&bytes[..whole - 2]).len(), 1);
        // A flipped data byte fails the data CRC.
        bytes[whole - 5] ^= 1;
        assert_eq!(records(&bytes).len(), 1);
    }

    #[test]
    fn events_round_trip_through_protobuf() {
        let e = Event::summary(7, vec![SummaryValue::scalar("eval/q", 0.25), SummaryValue::image("mask/keep", vec![1, 2, 3], 4, 5, 3)]);
        let back = Event::decode(e.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.values()[0].value, Some(summary_value::Value::SimpleValue(0.25)));
    }

    #[test]
    fn writer_starts_each_file_with_the_version_and_never_reuses_a_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = EventWriter::create(dir.path()).unwrap();
        a.scalars(1, &[("train/loss", 0.5)]).unwrap();
        let b = EventWriter::create(dir.path()).unwrap();
        assert_ne!(a.path(), b.path());
        let bytes = std::fs::read(a.path()).unwrap();
        let events: Vec<Event> = records(&bytes).into_iter().map(|(d, _)| Event::decode(d).unwrap()).collect();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].what, Some(event::What::FileVersion(FILE_VERSION.into())));
        assert_eq!(events[1].step, 1);
        assert_eq!(event_files(dir.path()).unwrap().len(), 2);
    }

    #[test]
    fn keep_records_drops_later_steps_and_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path()).unwrap();
        for step in 1..=4 {
            w.scalars(step, &[("eval/q", step as f64)]).unwrap();
        }
        let path = w.path().to_path_buf();
        drop(w);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&frame(b"torn")[..7]);
        std::fs::write(&path, &bytes).unwrap();
        assert!(keep_records(&path, &|_, step| step <= 2).unwrap());
        let bytes = std::fs::read(&path).unwrap();
        let steps: Vec<i64> = records(&bytes).into_iter().map(|(d, _)| Event::decode(d).unwrap().step).collect();
        assert_eq!(steps, [0, 1, 2]); // the version record, then steps 1 and 2
        // Nothing more to drop: the file is left alone.
        assert!(!keep_records(&path, &|_, step| step <= 2).unwrap());
    }
}
