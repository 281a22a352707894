//! TensorBoard event files of real training runs, read back by a reader
//! written here from the formats' specifications (TFRecord framing with
//! masked CRC32C, protobuf wire format of `tensorflow.Event`), not with
//! the library's own code: TensorBoard must be able to read what selmask
//! writes, and a resumed run must log every epoch exactly once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::Duration;

use serde_json::Value;

use crate::fixtures::{kill_when, read_json, selmask};

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
        }
    }
    !crc
}

/// TFRecord's masked CRC: `((crc >> 15) | (crc << 17)) + 0xa282ead8`.
fn masked(bytes: &[u8]) -> u32 {
    crc32c(bytes).rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Every record of a TFRecord file; panics on a bad CRC or a torn record.
fn tf_records(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        assert!(bytes.len() >= at + 12, "{}: torn header at {at}", path.display());
        let len_bytes = &bytes[at..at + 8];
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        let len_crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        assert_eq!(len_crc, masked(len_bytes), "{}: length crc of record {}", path.display(), out.len());
        let end = at + 12 + len + 4;
        assert!(bytes.len() >= end, "{}: torn record at {at}", path.display());
        let data = &bytes[at + 12..at + 12 + len];
        let data_crc = u32::from_le_bytes(bytes[end - 4..end].try_into().unwrap());
        assert_eq!(data_crc, masked(data), "{}: data crc of record {}", path.display(), out.len());
        out.push(data.to_vec());
        at = end;
    }
    out
}

/// One protobuf field's value (wire types 0, 1, 2 and 5).
#[derive(Debug, Clone)]
enum Wire {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(Vec<u8>),
    Fixed32([u8; 4]),
}

fn varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = bytes[*at];
        *at += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return v;
        }
    }
    panic!("varint longer than 10 bytes")
}

/// The fields of a protobuf message, in order, as `(number, value)`.
fn fields(bytes: &[u8]) -> Vec<(u64, Wire)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let key = varint(bytes, &mut at);
        let value = match key & 7 {
            0 => Wire::Varint(varint(bytes, &mut at)),
            1 => {
                at += 8;
                Wire::Fixed64(bytes[at - 8..at].try_into().unwrap())
            }
            2 => {
                let len = varint(bytes, &mut at) as usize;
                at += len;
                Wire::Bytes(bytes[at - len..at].to_vec())
            }
            5 => {
                at += 4;
                Wire::Fixed32(bytes[at - 4..at].try_into().unwrap())
            }
            t => panic!("wire type {t}"),
        };
        out.push((key >> 3, value));
    }
    out
}

/// A decoded `tensorflow.Event`.
#[derive(Debug, Clone, Default)]
struct Event {
    wall_time: f64,
    step: i64,
    file_version: Option<String>,
    values: Vec<TagValue>,
}

/// A decoded `Summary.Value`.
#[derive(Debug, Clone)]
struct TagValue {
    tag: String,
    scalar: Option<f32>,
    image: Option<Image>,
}

/// A decoded `Summary.Image`.
#[derive(Debug, Clone, Default)]
struct Image {
    height: i64,
    width: i64,
    colorspace: i64,
    png: Vec<u8>,
}

fn decode_event(bytes: &[u8]) -> Event {
    let mut e = Event::default();
    for (n, v) in fields(bytes) {
        match (n, v) {
            (1, Wire::Fixed64(b)) => e.wall_time = f64::from_le_bytes(b),
            (2, Wire::Varint(s)) => e.step = s as i64,
            (3, Wire::Bytes(s)) => e.file_version = Some(String::from_utf8(s).unwrap()),
            (5, Wire::Bytes(summary)) => {
                for (n, v) in fields(&summary) {
                    let (1, Wire::Bytes(value)) = (n, v) else { panic!("summary field {n}") };
                    e.values.push(decode_value(&value));
                }
            }
            (n, v) => panic!("unexpected event field {n}: {v:?}"),
        }
    }
    e
}

fn decode_value(bytes: &[u8]) -> TagValue {
    let mut t = TagValue { tag: String::new(), scalar: None, image: None };
    for (n, v) in fields(bytes) {
        match (n, v) {
            (1, Wire::Bytes(s)) => t.tag = String::from_utf8(s).unwrap(),
            (2, Wire::Fixed32(b)) => t.scalar = Some(f32::from_le_bytes(b)),
            (4, Wire::Bytes(img)) => {
                let mut i = Image::default();
                for (n, v) in fields(&img) {
                    match (n, v) {
                        (1, Wire::Varint(h)) => i.height = h as i64,
                        (2, Wire::Varint(w)) => i.width = w as i64,
                        (3, Wire::Varint(c)) => i.colorspace = c as i64,
                        (4, Wire::Bytes(png)) => i.png = png,
                        (n, v) => panic!("unexpected image field {n}: {v:?}"),
                    }
                }
                t.image = Some(i);
            }
            (n, v) => panic!("unexpected value field {n}: {v:?}"),
        }
    }
    t
}

/// The event files of `run_dir`, in name order (TensorBoard's).
fn event_files(run_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(run_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("events.out.tfevents."))
        .collect();
    files.sort();
    files
}

/// Every event of one file, checking that it starts with the file version.
fn read_events(path: &Path) -> Vec<Event> {
    let events: Vec<Event> = tf_records(path).iter().map(|r| decode_event(r)).collect();
    assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"), "{}: first record", path.display());
    assert!(events.iter().skip(1).all(|e| e.file_version.is_none()), "{}: one version record", path.display());
    assert!(events.iter().all(|e| e.wall_time > 1.5e9), "{}: wall times are Unix seconds", path.display());
    events
}

/// Per tag, the `(step, value)` of every occurrence, over `events`.
fn by_tag(events: &[Event]) -> BTreeMap<String, Vec<(i64, TagValue)>> {
    let mut tags: BTreeMap<String, Vec<(i64, TagValue)>> = BTreeMap::new();
    for e in events {
        for v in &e.values {
            tags.entry(v.tag.clone()).or_default().push((e.step, v.clone()));
        }
    }
    tags
}

/// `train` of the synthetic dataset (6,000 MNIST-shaped items), an MLP and
/// a static pixel mask, batch 32, a TensorBoard record every 50 batches.
fn args<'a>(exp: &'a str, name: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "train", "--dataset", "synthetic", "--network", "mlp", "--mask-type", "static", "--any-granularity", "pixel",
        "--batch-size", "32", "--lr", "0.05", "--lambda-init", "2", "--log-iter", "50", "--n-repeats", "1",
        "--exp-dir", exp, "--name", name, "--quiet",
    ];
    a.extend_from_slice(extra);
    a
}

fn run(args: &[&str]) -> Output {
    let out = selmask(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Batches per epoch and the run's `metrics.jsonl` rows.
fn run_facts(run_dir: &Path) -> (i64, Vec<Value>) {
    let config = read_json(&run_dir.join("config.json"));
    let train = config["split_sizes"]["train"].as_u64().unwrap();
    let batch = config["config"]["batch_size"].as_u64().unwrap();
    let rows = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (train.div_ceil(batch) as i64, rows)
}

/// The steps of the `train/` tags of `epochs` epochs of `n_batches`, one
/// every `log_iter` batches of each epoch.
fn iteration_steps(epochs: i64, n_batches: i64, log_iter: i64) -> Vec<i64> {
    (1..=epochs).flat_map(|e| (1..=n_batches / log_iter).map(move |k| (e - 1) * n_batches + k * log_iter)).collect()
}

/// Checks every tag of `tags` against the run's rows and shape: the
/// iteration tags at `iteration_steps`, each epoch tag once per epoch with
/// the value of `metrics.jsonl`, the mask images PNGs of the input's size.
fn check_run(tags: &BTreeMap<String, Vec<(i64, TagValue)>>, run_dir: &Path) {
    let (n_batches, rows) = run_facts(run_dir);
    let epochs = rows.len() as i64;
    let shape: Vec<u32> = read_json(&run_dir.join("config.json"))["dataset"]["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let steps = |tag: &str| -> Vec<i64> { tags.get(tag).unwrap_or_else(|| panic!("no {tag} in {:?}", tags.keys())).iter().map(|(s, _)| *s).collect() };

    let expected = iteration_steps(epochs, n_batches, 50);
    assert!(!expected.is_empty());
    for tag in ["train/loss", "train/task_loss", "train/q"] {
        assert_eq!(steps(tag), expected, "{tag}");
        assert!(tags[tag].iter().all(|(_, v)| v.scalar.unwrap().is_finite()), "{tag}");
    }

    let per_epoch: Vec<i64> = (1..=epochs).collect();
    let scalars = [
        ("eval/q", "q"),
        ("eval/bytes_fraction", "bytes_fraction"),
        ("eval/lambda", "lambda"),
        ("eval/tau", "tau"),
        ("eval/val_loss", "val_loss"),
        ("eval/val_acc", "val_accuracy"),
        ("eval/test_loss", "test_loss"),
        ("eval/test_acc", "test_accuracy"),
        ("train_epoch/loss", "train_loss"),
        ("train_epoch/task_loss", "task_loss"),
        ("train_epoch/q", "train_q"),
        ("time/epoch_seconds", "seconds"),
        ("time/train_seconds", "train_seconds"),
    ];
    for (tag, field) in scalars {
        assert_eq!(steps(tag), per_epoch, "{tag}");
        for ((step, v), row) in tags[tag].iter().zip(&rows) {
            let recorded = row[field].as_f64().unwrap() as f32;
            assert_eq!(v.scalar, Some(recorded), "{tag} at epoch {step}: metrics.jsonl has {}", row[field]);
        }
    }

    for tag in ["mask/keep", "mask/keep_prob"] {
        assert_eq!(steps(tag), per_epoch, "{tag}");
        for (step, v) in &tags[tag] {
            let image = v.image.as_ref().unwrap_or_else(|| panic!("{tag} at {step} is not an image"));
            assert_eq!((image.width, image.height, image.colorspace), (shape[2] as i64, shape[1] as i64, 3), "{tag}");
            let decoder = png::Decoder::new(std::io::Cursor::new(&image.png));
            let mut reader = decoder.read_info().unwrap_or_else(|e| panic!("{tag} at {step}: not a png: {e}"));
            let mut buf = vec![0; reader.output_buffer_size()];
            let info = reader.next_frame(&mut buf).unwrap();
            assert_eq!((info.width, info.height), (shape[2], shape[1]), "{tag}: the input's size");
            assert_eq!(info.color_type, png::ColorType::Rgb, "{tag}");
        }
    }
    // The hard mask sends exactly the share of pixels that Q says (a pixel
    // mask on one channel: a pixel is white when sent). Checked at the end.
    let (_, last) = tags["mask/keep"].last().unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(&last.image.as_ref().unwrap().png)).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    reader.next_frame(&mut buf).unwrap();
    let white = buf.chunks(3).filter(|p| p == &[255, 255, 255]).count();
    let q = rows.last().unwrap()["q"].as_f64().unwrap();
    assert_eq!(white, (q * (shape[1] * shape[2]) as f64).round() as usize, "sent pixels of the last mask, q {q}");
}

#[test]
fn event_file_records_carry_valid_masked_crcs_and_the_metrics_of_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().to_str().unwrap();
    run(&args(exp, "tb", &["--n-epochs", "3"]));
    let run_dir = dir.path().join("synthetic/static/tb/run_0");
    let files = event_files(&run_dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    let secs: u64 = name.strip_prefix("events.out.tfevents.").unwrap().split('.').next().unwrap().parse().unwrap();
    assert!(secs > 1_500_000_000, "{name}: <unix-secs>.<hostname>");
    let events = read_events(&files[0]);
    check_run(&by_tag(&events), &run_dir);
}

#[test]
fn tensorboard_and_log_iter_are_logging_only_and_tensorboard_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().to_str().unwrap();
    let one = ["--n-epochs", "1"];
    run(&args(exp, "off", &[&one[..], &["--tensorboard", "0"]].concat()));
    let run_dir = dir.path().join("synthetic/static/off/run_0");
    assert!(event_files(&run_dir).is_empty());

    run(&args(exp, "on", &one));
    let run_dir = dir.path().join("synthetic/static/on/run_0");
    assert_eq!(event_files(&run_dir).len(), 1);
    // Not a setting of what is trained: the finished run is skipped, not refused.
    let out = run(&args(exp, "on", &[&one[..], &["--tensorboard", "0"]].concat()));
    assert!(String::from_utf8_lossy(&out.stderr).contains("skipped"), "{}", String::from_utf8_lossy(&out.stderr));
    // Nor is how often iterations are logged.
    let mut every_7 = args(exp, "on", &one);
    let at = every_7.iter().position(|a| *a == "--log-iter").unwrap() + 1;
    every_7[at] = "7";
    let out = run(&every_7);
    assert!(String::from_utf8_lossy(&out.stderr).contains("skipped"), "{}", String::from_utf8_lossy(&out.stderr));
    // A value that is not a boolean fails before any data is read.
    let out = selmask(&[&args(exp, "bad", &one)[..], &["--tensorboard", "2", "--data-dir", "/nonexistent"]].concat()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--tensorboard") && !err.contains("nonexistent"), "{err}");
    // And --overwrite accepts a run directory holding event files as selmask's.
    run(&args(exp, "on", &[&one[..], &["--overwrite"]].concat()));
    assert_eq!(event_files(&run_dir).len(), 1);
}

/// Kills `child` once `run_dir`'s summary records `epochs` finished epochs
/// and the event file holds an iteration record beyond them (bounded: 5
/// minutes): the killed run has logged steps that the resume logs again.
fn kill_during_epoch(child: Child, run_dir: &Path, epochs: u64, n_batches: i64) -> u64 {
    kill_when(child, run_dir, "it was killed", Duration::from_millis(5), |done| {
        done >= epochs
            && event_files(run_dir).first().and_then(|f| std::fs::read(f).ok()).is_some_and(|b| {
                let mut at = 0;
                let mut max_step = 0;
                while at + 12 <= b.len() {
                    let len = u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize;
                    let Some(data) = b.get(at + 12..at + 12 + len) else { break };
                    let e = decode_event(data);
                    if e.values.iter().any(|v| v.tag.starts_with("train/")) {
                        max_step = max_step.max(e.step);
                    }
                    at += 12 + len + 4;
                }
                max_step > done as i64 * n_batches
            })
    })
}

#[test]
fn a_resumed_run_appends_a_new_event_file_and_logs_each_epoch_once() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().to_str().unwrap();
    let five = ["--n-epochs", "5"];
    // 5,400 training items in batches of 32 (the validation split is 10%).
    let n_batches = 169;
    let child = selmask(&args(exp, "killed", &five)).spawn().unwrap();
    let run_dir = dir.path().join("synthetic/static/killed/run_0");
    let done = kill_during_epoch(child, &run_dir, 2, n_batches);
    assert!(done < 5, "killed too late to test anything (after epoch {done})");
    let before = event_files(&run_dir);
    assert_eq!(before.len(), 1);

    run(&args(exp, "killed", &[&five[..], &["--resume"]].concat()));
    let files = event_files(&run_dir);
    assert_eq!(files.len(), 2, "a new file beside the first: {files:?}");
    assert_eq!(files[0], before[0], "the first file keeps its name, and sorts first");
    let first = read_events(&files[0]);
    let second = read_events(&files[1]);
    // The first file ends with the epochs of the resume state: those of
    // the summary, or one more when the run was killed between writing
    // the state and the summary.
    let first_epochs = by_tag(&first)["eval/q"].iter().map(|(s, _)| *s).collect::<Vec<_>>();
    let state = first_epochs.len() as i64;
    assert_eq!(first_epochs, (1..=state).collect::<Vec<_>>());
    assert!(state == done as i64 || state == done as i64 + 1, "epochs {first_epochs:?}, summary after {done}");
    let last_iteration = by_tag(&first)["train/loss"].last().unwrap().0;
    assert!(last_iteration <= state * n_batches, "iterations past the state are dropped: {last_iteration}");
    let (n, rows) = run_facts(&run_dir);
    assert_eq!((n, rows.len()), (n_batches, 5));
    // The union: every step of every tag exactly once, with the resumed
    // run's metrics.
    let union: Vec<Event> = first.into_iter().chain(second).collect();
    check_run(&by_tag(&union), &run_dir);
}

#[test]
fn a_dynamic_mask_logs_its_mean_selection_and_percentiles() {
    use selmask::masks::MaskConfig;
    use selmask::masks::dynamic::DynamicMaskConfig;
    use selmask::masks::dynamic::models::MaskModelKind;
    use selmask::training::MaskType;
    use selmask::training::progress::{Progress, Verbosity};
    use selmask::training::run::PreparedData;

    let data = crate::fixtures::small_synthetic(1);
    let shape = data.dataset.info.shape;
    let mut config = crate::fixtures::synthetic_config(&data, 2);
    config.mask_type = MaskType::Dynamic;
    config.mask = MaskConfig::Dynamic(DynamicMaskConfig {
        input_shape: shape,
        granularity: "block:2".parse().unwrap(),
        model: MaskModelKind::Linear,
        server_hw: None,
        learn_static: false,
        learn_dynamic: true,
        init_mean: 0.0,
        init_std: 0.01,
        input_drop_upscaling: false,
    });
    config.log_iter = 10;
    let device = crate::fixtures::device();
    let prepared = PreparedData::new(&data.dataset, config.val_split, config.seed, &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    config.fit(&prepared, dir.path(), 0, &device, &Progress::new(Verbosity::Quiet, "test")).unwrap();

    let files = event_files(dir.path());
    assert_eq!(files.len(), 1);
    let tags = by_tag(&read_events(&files[0]));
    let (n_batches, rows) = run_facts(dir.path());
    assert_eq!(tags["train/q"].iter().map(|(s, _)| *s).collect::<Vec<_>>(), iteration_steps(2, n_batches, 10));
    for (tag, p) in [("eval/q_p10", 0), ("eval/q_p50", 1), ("eval/q_p90", 2)] {
        let logged: Vec<Option<f32>> = tags[tag].iter().map(|(_, v)| v.scalar).collect();
        let recorded: Vec<Option<f32>> = rows.iter().map(|r| Some(r["q_percentiles"][p].as_f64().unwrap() as f32)).collect();
        assert_eq!(logged, recorded, "{tag}");
    }
    // No logits of a static mask to show; the mean selection at the input's size.
    assert!(!tags.contains_key("mask/keep_prob"));
    assert_eq!(tags["mask/keep"].len(), 2);
    for (_, v) in &tags["mask/keep"] {
        let image = v.image.as_ref().unwrap();
        let info = png::Decoder::new(std::io::Cursor::new(&image.png)).read_info().unwrap().info().clone();
        assert_eq!((info.width, info.height), (shape[2] as u32, shape[1] as u32));
        assert_eq!((image.width, image.height), (shape[2] as i64, shape[1] as i64));
    }
}
