//! Seeded, per-batch augmentation of `f32` batches `[B, C, H, W]`:
//! normalised values, or raw 0-255 pixels for runs with xor versions (which
//! are made of the augmented 8-bit images; see [`crate::data::batch`]).
//!
//! Per item, in this order (the paper's transform order): a horizontal and
//! a vertical flip, each with probability 1/2, then at most one of
//!
//! * a random crop after padding by `crop_pad` (torchvision's
//!   `RandomCrop(size, padding=crop_pad, padding_mode=…)`): the offset on
//!   each axis is uniform in `0..=2·crop_pad`; reflect padding mirrors
//!   without repeating the edge (`[a b c]` padded by 1 is `[b a b c b]`),
//!   zero padding fills with 0;
//! * Galaxy10's shift crop of at most `shift_crop` pixels: per axis an
//!   offset `d = randint(0..=s) - randint(0..=s)`, applied as
//!   [`ShiftMode`] says.
//!
//! Fill values are 0 in *normalised* units (the channel mean), which is
//! what the paper's Galaxy10 code does (it pads after normalising); for a
//! zero-padded crop torchvision would fill before normalising (black), and
//! so do runs with versions.
//!
//! Random choices ([`Draw`]) are made on the calling thread, one item after
//! another, so results depend only on the RNG's seed; applying them is
//! parallel over the batch (rayon) for large batches and works on
//! contiguous row copies (reversed for horizontal flips).

use rand::{Rng, RngExt};
use rayon::prelude::*;

use super::DatasetName;
use crate::error::{Error, Result};

/// What fills the padding of a random crop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CropMode {
    /// Mirror the image without repeating the edge (torchvision `reflect`).
    Reflect,
    /// Zeros (in normalised units).
    Zero,
}

/// How Galaxy10's shift crop uses its offset `d` on an axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShiftMode {
    /// What the paper's code does: the image stays in place and `|d|`
    /// border rows (columns) are zeroed, at the start for `d > 0` and at
    /// the end for `d < 0` (it slices them off, then pads the same side).
    ZeroBorder,
    /// A real shift: output `(i)` is input `(i + d)`, zero outside.
    Translate,
}

/// Which augmentations run. [`AugmentConfig::for_dataset`] gives the
/// paper's (Table 1 and its code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AugmentConfig {
    /// Random horizontal flip (p = 1/2).
    pub hflip: bool,
    /// Random vertical flip (p = 1/2).
    pub vflip: bool,
    /// Padding of the random crop; 0 for none.
    pub crop_pad: usize,
    /// Filling of the crop's padding.
    pub crop_mode: CropMode,
    /// Largest offset of the shift crop; 0 for none.
    pub shift_crop: usize,
    /// What the shift crop does with its offset.
    pub shift_mode: ShiftMode,
}

impl Default for AugmentConfig {
    /// No augmentation (what runs saved before augmentation existed did).
    fn default() -> Self {
        AugmentConfig::NONE
    }
}

impl AugmentConfig {
    /// No augmentation.
    pub const NONE: AugmentConfig = AugmentConfig {
        hflip: false,
        vflip: false,
        crop_pad: 0,
        crop_mode: CropMode::Reflect,
        shift_crop: 0,
        shift_mode: ShiftMode::ZeroBorder,
    };

    /// The paper's augmentation of `name`: none for (Fashion-)MNIST and
    /// synthetic data; horizontal flip and reflect crop (pad 4) for CIFAR-10
    /// and SVHN; both flips and a shift crop of 8 (zeroed border, as its
    /// code) for Galaxy10; both flips for remote sensing (its code disabled
    /// the crop); both flips and reflect crop (pad 10) for ships.
    pub fn for_dataset(name: DatasetName) -> AugmentConfig {
        let flips = AugmentConfig {
            hflip: true,
            vflip: true,
            ..AugmentConfig::NONE
        };
        match name {
            DatasetName::Mnist | DatasetName::FashionMnist | DatasetName::Synthetic => AugmentConfig::NONE,
            DatasetName::Cifar10 | DatasetName::Svhn => AugmentConfig {
                hflip: true,
                crop_pad: 4,
                ..AugmentConfig::NONE
            },
            DatasetName::Galaxy10 => AugmentConfig { shift_crop: 8, ..flips },
            DatasetName::Remote => flips,
            DatasetName::Ships => AugmentConfig { crop_pad: 10, ..flips },
        }
    }

    /// Whether every batch passes unchanged.
    pub fn is_identity(&self) -> bool {
        !self.hflip && !self.vflip && self.crop_pad == 0 && self.shift_crop == 0
    }
}

/// The random choices for one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Draw {
    /// Flip left-right.
    pub hflip: bool,
    /// Flip upside-down.
    pub vflip: bool,
    /// Row offset: crop offset minus `crop_pad`, or the shift.
    pub dy: isize,
    /// Column offset, likewise.
    pub dx: isize,
}

/// Where the output positions of one axis read from.
#[derive(Debug, Clone, Copy)]
struct AxisMap {
    /// Positions `lo..hi` read `i + off`, all in range.
    lo: usize,
    hi: usize,
    off: isize,
    /// Positions outside `lo..hi` read the reflection of `i + off` (true)
    /// or are zero.
    reflect: bool,
    /// Axis length.
    n: usize,
}

impl AxisMap {
    /// Reads `i + d`, reflected or zero outside `0..n`.
    fn offset(d: isize, n: usize, reflect: bool) -> AxisMap {
        let lo = (-d).clamp(0, n as isize) as usize;
        let hi = (n as isize - d).clamp(lo as isize, n as isize) as usize;
        AxisMap {
            lo,
            hi,
            off: d,
            reflect,
            n,
        }
    }

    /// Keeps positions in place and zeroes `|d|` at the start (`d > 0`) or
    /// the end (`d < 0`).
    fn zero_border(d: isize, n: usize) -> AxisMap {
        let lo = d.clamp(0, n as isize) as usize;
        let hi = (n as isize + d.min(0)).clamp(lo as isize, n as isize) as usize;
        AxisMap {
            lo,
            hi,
            off: 0,
            reflect: false,
            n,
        }
    }

    /// Source position of output `i`, `None` for zero.
    #[inline]
    fn source(&self, i: usize) -> Option<usize> {
        let j = i as isize + self.off;
        if (self.lo..self.hi).contains(&i) {
            Some(j as usize)
        } else if self.reflect {
            let last = self.n as isize - 1;
            let r = if j < 0 {
                -j
            } else if j > last {
                2 * last - j
            } else {
                j
            };
            Some(r.clamp(0, last) as usize)
        } else {
            None
        }
    }
}

/// Values per batch above which items are processed in parallel.
const PARALLEL_MIN_VALUES: usize = 1 << 16;

/// Applies an [`AugmentConfig`] to batches of one input shape.
#[derive(Debug, Clone)]
pub struct Augmenter {
    config: AugmentConfig,
    shape: [usize; 3],
    /// Reused per batch, so that [`Augmenter::apply`] does not allocate
    /// once it has seen its largest batch.
    draws: Vec<Draw>,
}

impl Augmenter {
    /// Checks `config` against the input shape `[C, H, W]`: reflect padding
    /// must be smaller than both sides, and crop and shift exclude each other.
    pub fn new(config: AugmentConfig, shape: [usize; 3]) -> Result<Augmenter> {
        let [c, h, w] = shape;
        if c == 0 || h == 0 || w == 0 {
            return Err(Error::config(
                "shape",
                format!("{shape:?}"),
                "augmented inputs need at least one value",
            ));
        }
        if config.crop_pad > 0 && config.shift_crop > 0 {
            return Err(Error::config(
                "shift_crop",
                config.shift_crop,
                format!("cannot be combined with crop_pad = {}", config.crop_pad),
            ));
        }
        if config.crop_mode == CropMode::Reflect && config.crop_pad >= h.min(w) {
            return Err(Error::config(
                "crop_pad",
                config.crop_pad,
                format!("reflect padding must be smaller than both sides of input [{c}, {h}, {w}]"),
            ));
        }
        Ok(Augmenter {
            config,
            shape,
            draws: Vec::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AugmentConfig {
        &self.config
    }

    /// The random choices for one item, drawn in a fixed order (h-flip,
    /// v-flip, row offset, column offset; only those configured).
    pub fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> Draw {
        let cfg = &self.config;
        let hflip = cfg.hflip && rng.random_bool(0.5);
        let vflip = cfg.vflip && rng.random_bool(0.5);
        let offset = |rng: &mut R| -> isize {
            if cfg.crop_pad > 0 {
                let p = cfg.crop_pad as i64;
                (rng.random_range(0..=2 * p) - p) as isize
            } else if cfg.shift_crop > 0 {
                let s = cfg.shift_crop as i64;
                (rng.random_range(0..=s) - rng.random_range(0..=s)) as isize
            } else {
                0
            }
        };
        let dy = offset(rng);
        let dx = offset(rng);
        Draw { hflip, vflip, dy, dx }
    }

    /// Writes an augmented copy of the batch `src` into `dst`, with one
    /// [`Draw`] per item taken from `rng`.
    ///
    /// # Panics
    /// If `src` is not a whole number of items or `dst` differs in length.
    pub fn apply<R: Rng + ?Sized>(&mut self, src: &[f32], dst: &mut [f32], rng: &mut R) {
        if self.config.is_identity() {
            dst.copy_from_slice(src);
            return;
        }
        let n = src.len() / self.item_len();
        let mut draws = std::mem::take(&mut self.draws);
        draws.clear();
        draws.extend((0..n).map(|_| self.draw(rng)));
        self.apply_draws(src, dst, &draws);
        self.draws = draws;
    }

    /// Writes the batch `src`, item `i` transformed by `draws[i]`, into `dst`.
    ///
    /// # Panics
    /// If `src` is not `draws.len()` items or `dst` differs in length.
    pub fn apply_draws(&self, src: &[f32], dst: &mut [f32], draws: &[Draw]) {
        let len = self.item_len();
        assert_eq!(
            src.len(),
            draws.len() * len,
            "batch of {} values is not {} items of {len}",
            src.len(),
            draws.len()
        );
        assert_eq!(dst.len(), src.len(), "output length differs from input length");
        let one = |((out, inp), draw): ((&mut [f32], &[f32]), &Draw)| self.apply_item(inp, out, draw);
        if src.len() >= PARALLEL_MIN_VALUES {
            dst.par_chunks_mut(len)
                .zip(src.par_chunks(len))
                .zip(draws.par_iter())
                .for_each(one);
        } else {
            dst.chunks_mut(len).zip(src.chunks(len)).zip(draws.iter()).for_each(one);
        }
    }

    fn item_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The axis maps of `draw` (rows, columns).
    fn maps(&self, draw: &Draw) -> (AxisMap, AxisMap) {
        let [_, h, w] = self.shape;
        let cfg = &self.config;
        if cfg.shift_crop > 0 {
            match cfg.shift_mode {
                ShiftMode::ZeroBorder => (AxisMap::zero_border(draw.dy, h), AxisMap::zero_border(draw.dx, w)),
                ShiftMode::Translate => (AxisMap::offset(draw.dy, h, false), AxisMap::offset(draw.dx, w, false)),
            }
        } else {
            let reflect = cfg.crop_mode == CropMode::Reflect;
            (
                AxisMap::offset(draw.dy, h, reflect),
                AxisMap::offset(draw.dx, w, reflect),
            )
        }
    }

    /// One item: flips first, then the crop or shift (`out(y, x)` reads the
    /// flipped image at `(rows(y), cols(x))`).
    fn apply_item(&self, src: &[f32], dst: &mut [f32], draw: &Draw) {
        if *draw == Draw::default() {
            dst.copy_from_slice(src);
            return;
        }
        let [_, h, w] = self.shape;
        let (rows, cols) = self.maps(draw);
        // Source column of flipped-image column b.
        let col = |b: usize| if draw.hflip { w - 1 - b } else { b };
        for (src_plane, dst_plane) in src.chunks_exact(h * w).zip(dst.chunks_exact_mut(h * w)) {
            for (y, out) in dst_plane.chunks_exact_mut(w).enumerate() {
                let Some(a) = rows.source(y) else {
                    out.fill(0.0);
                    continue;
                };
                let sy = if draw.vflip { h - 1 - a } else { a };
                let row = &src_plane[sy * w..(sy + 1) * w];
                // The middle is one contiguous (possibly reversed) run.
                let (lo, hi) = (cols.lo, cols.hi);
                if lo < hi {
                    let b0 = (lo as isize + cols.off) as usize;
                    let b1 = b0 + (hi - lo);
                    if draw.hflip {
                        let run = &row[w - b1..w - b0];
                        for (o, v) in out[lo..hi].iter_mut().zip(run.iter().rev()) {
                            *o = *v;
                        }
                    } else {
                        out[lo..hi].copy_from_slice(&row[b0..b1]);
                    }
                }
                for x in (0..lo).chain(hi..w) {
                    out[x] = cols.source(x).map_or(0.0, |b| row[col(b)]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// One channel, 3 rows, 4 columns: value = 10·row + column.
    fn tiny() -> Vec<f32> {
        (0..3).flat_map(|r| (0..4).map(move |c| (10 * r + c) as f32)).collect()
    }

    fn run(config: AugmentConfig, draw: Draw) -> Vec<f32> {
        let aug = Augmenter::new(config, [1, 3, 4]).unwrap();
        let mut out = vec![f32::NAN; 12];
        aug.apply_draws(&tiny(), &mut out, &[draw]);
        out
    }

    fn crop(pad: usize, mode: CropMode) -> AugmentConfig {
        AugmentConfig {
            hflip: true,
            vflip: true,
            crop_pad: pad,
            crop_mode: mode,
            ..AugmentConfig::NONE
        }
    }

    fn shift(s: usize, mode: ShiftMode) -> AugmentConfig {
        AugmentConfig {
            shift_crop: s,
            shift_mode: mode,
            ..AugmentConfig::NONE
        }
    }

    #[rustfmt::skip]
    #[test]
    fn flips_are_exact() {
        let cfg = crop(1, CropMode::Reflect);
        let h = run(cfg, Draw { hflip: true, ..Draw::default() });
        assert_eq!(h, [3., 2., 1., 0.,  13., 12., 11., 10.,  23., 22., 21., 20.]);
        let v = run(cfg, Draw { vflip: true, ..Draw::default() });
        assert_eq!(v, [20., 21., 22., 23.,  10., 11., 12., 13.,  0., 1., 2., 3.]);
    }

    #[rustfmt::skip]
    #[test]
    fn reflect_pad_crop_at_fixed_offsets_is_exact() {
        // Padded by 2 with reflection, the rows read [2 1 0 1 2 1 0] and the
        // columns [2 1 0 1 2 3 2 1]; offset (0, 0) of the padded image is
        // dy = dx = -2, offset (4, 3) is dy = 2, dx = 1.
        let cfg = crop(2, CropMode::Reflect);
        let top_left = run(cfg, Draw { dy: -2, dx: -2, ..Draw::default() });
        assert_eq!(top_left, [22., 21., 20., 21.,  12., 11., 10., 11.,  2., 1., 0., 1.]);
        let bottom_right = run(cfg, Draw { dy: 2, dx: 1, ..Draw::default() });
        assert_eq!(bottom_right, [21., 22., 23., 22.,  11., 12., 13., 12.,  1., 2., 3., 2.]);
    }

    #[rustfmt::skip]
    #[test]
    fn flip_happens_before_crop() {
        // Flipped left-right, row 0 is [3 2 1 0]; shifted by dx = 1 with
        // reflection it reads [2 1 0 1].
        let out = run(crop(1, CropMode::Reflect), Draw { hflip: true, dx: 1, ..Draw::default() });
        assert_eq!(out, [2., 1., 0., 1.,  12., 11., 10., 11.,  22., 21., 20., 21.]);
        let out = run(crop(1, CropMode::Reflect), Draw { vflip: true, dy: -1, ..Draw::default() });
        assert_eq!(out, [10., 11., 12., 13.,  20., 21., 22., 23.,  10., 11., 12., 13.]);
    }

    #[rustfmt::skip]
    #[test]
    fn zero_pad_crop_and_shifts_are_exact() {
        let zero_crop = run(crop(1, CropMode::Zero), Draw { dy: 1, dx: -1, ..Draw::default() });
        assert_eq!(zero_crop, [0., 10., 11., 12.,  0., 20., 21., 22.,  0., 0., 0., 0.]);
        let translate = run(shift(2, ShiftMode::Translate), Draw { dy: 1, dx: -1, ..Draw::default() });
        assert_eq!(translate, zero_crop);
        // The paper's version keeps pixels in place: d > 0 zeroes the
        // first |d| rows/columns, d < 0 the last.
        let border = run(shift(2, ShiftMode::ZeroBorder), Draw { dy: 1, dx: -2, ..Draw::default() });
        assert_eq!(border, [0., 0., 0., 0.,  10., 11., 0., 0.,  20., 21., 0., 0.]);
    }

    /// Per-pixel definition of the transform, to check the row code.
    fn reference(aug: &Augmenter, src: &[f32], draw: &Draw) -> Vec<f32> {
        let [c, h, w] = aug.shape;
        let (rows, cols) = aug.maps(draw);
        let mut out = vec![0.0; src.len()];
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    if let (Some(a), Some(b)) = (rows.source(y), cols.source(x)) {
                        let sy = if draw.vflip { h - 1 - a } else { a };
                        let sx = if draw.hflip { w - 1 - b } else { b };
                        out[(ch * h + y) * w + x] = src[(ch * h + sy) * w + sx];
                    }
                }
            }
        }
        out
    }

    #[test]
    fn row_code_matches_per_pixel_definition() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let configs = [
            crop(3, CropMode::Reflect),
            crop(5, CropMode::Zero),
            AugmentConfig {
                hflip: true,
                vflip: true,
                ..shift(4, ShiftMode::ZeroBorder)
            },
            AugmentConfig {
                hflip: true,
                ..shift(4, ShiftMode::Translate)
            },
            AugmentConfig::for_dataset(DatasetName::Galaxy10),
        ];
        for cfg in configs {
            let shape = [2, 7, 9];
            let aug = Augmenter::new(cfg, shape).unwrap();
            let src: Vec<f32> = (0..126).map(|i| i as f32 + 1.0).collect();
            for _ in 0..200 {
                let draw = aug.draw(&mut rng);
                let mut out = vec![f32::NAN; 126];
                aug.apply_draws(&src, &mut out, &[draw]);
                assert_eq!(out, reference(&aug, &src, &draw), "{cfg:?} {draw:?}");
            }
        }
    }

    #[test]
    fn draws_cover_their_ranges() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let aug = Augmenter::new(crop(2, CropMode::Reflect), [1, 8, 8]).unwrap();
        let draws: Vec<Draw> = (0..2000).map(|_| aug.draw(&mut rng)).collect();
        for d in -2..=2 {
            assert!(draws.iter().any(|x| x.dy == d) && draws.iter().any(|x| x.dx == d));
        }
        assert!(draws.iter().all(|x| x.dy.abs() <= 2 && x.dx.abs() <= 2));
        let flips = draws.iter().filter(|x| x.hflip).count();
        assert!((800..1200).contains(&flips), "{flips}");

        let aug = Augmenter::new(shift(8, ShiftMode::ZeroBorder), [3, 69, 69]).unwrap();
        let draws: Vec<Draw> = (0..5000).map(|_| aug.draw(&mut rng)).collect();
        assert!(draws.iter().all(|x| x.dy.abs() <= 8 && !x.hflip));
        // Difference of two uniforms: 0 is the most frequent offset.
        let count = |d: isize| draws.iter().filter(|x| x.dy == d).count();
        assert!(count(0) > count(4) && count(4) > count(8) && count(8) > 0);
    }

    #[test]
    fn apply_is_seeded_and_parallel_batches_match_items() {
        let shape = [3, 32, 32];
        let mut a = Augmenter::new(AugmentConfig::for_dataset(DatasetName::Cifar10), shape).unwrap();
        let mut b = a.clone();
        let src: Vec<f32> = (0..64 * 3072).map(|i| (i % 977) as f32).collect();
        let (mut out_a, mut out_b) = (vec![0.0; src.len()], vec![0.0; src.len()]);
        a.apply(&src, &mut out_a, &mut ChaCha8Rng::seed_from_u64(5));
        b.apply(&src, &mut out_b, &mut ChaCha8Rng::seed_from_u64(5));
        assert_eq!(out_a, out_b);
        assert_ne!(out_a, src);
        // Same draws, applied one item at a time (sequential path).
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for (i, item) in src.chunks(3072).enumerate() {
            let draw = a.draw(&mut rng);
            let mut out = vec![0.0; 3072];
            a.apply_draws(item, &mut out, &[draw]);
            assert_eq!(out, out_a[i * 3072..(i + 1) * 3072], "item {i}");
        }
    }

    #[test]
    fn identity_copies() {
        let mut aug = Augmenter::new(AugmentConfig::for_dataset(DatasetName::Mnist), [1, 28, 28]).unwrap();
        let src: Vec<f32> = (0..2 * 784).map(|i| i as f32).collect();
        let mut out = vec![0.0; src.len()];
        aug.apply(&src, &mut out, &mut ChaCha8Rng::seed_from_u64(0));
        assert_eq!(out, src);
    }

    #[test]
    fn presets_follow_the_paper() {
        let p = AugmentConfig::for_dataset;
        assert!(p(DatasetName::FashionMnist).is_identity());
        assert_eq!(
            (
                p(DatasetName::Svhn).hflip,
                p(DatasetName::Svhn).vflip,
                p(DatasetName::Svhn).crop_pad
            ),
            (true, false, 4)
        );
        let g = p(DatasetName::Galaxy10);
        assert_eq!(
            (g.hflip, g.vflip, g.crop_pad, g.shift_crop, g.shift_mode),
            (true, true, 0, 8, ShiftMode::ZeroBorder)
        );
        let r = p(DatasetName::Remote);
        assert_eq!((r.hflip, r.vflip, r.crop_pad, r.shift_crop), (true, true, 0, 0));
        let s = p(DatasetName::Ships);
        assert_eq!(
            (s.hflip, s.vflip, s.crop_pad, s.crop_mode),
            (true, true, 10, CropMode::Reflect)
        );
        for name in DatasetName::ALL {
            let shape = match name {
                DatasetName::Galaxy10 => [3, 69, 69],
                DatasetName::Ships => [3, 384, 384],
                _ => [3, 32, 32],
            };
            assert!(Augmenter::new(p(name), shape).is_ok(), "{name}");
        }
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let msg = Augmenter::new(crop(4, CropMode::Reflect), [1, 4, 8])
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "invalid crop_pad = 4: reflect padding must be smaller than both sides of input [1, 4, 8]"
        );
        let both = AugmentConfig {
            crop_pad: 1,
            shift_crop: 1,
            ..AugmentConfig::NONE
        };
        let msg = Augmenter::new(both, [1, 8, 8]).unwrap_err().to_string();
        assert_eq!(msg, "invalid shift_crop = 1: cannot be combined with crop_pad = 1");
        assert!(Augmenter::new(crop(4, CropMode::Zero), [1, 4, 8]).is_ok());
    }

    /// Throughput on a paper-sized batch: `cargo test --release -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn throughput() {
        for (name, shape, batch) in [
            (DatasetName::Cifar10, [3, 32, 32], 128),
            (DatasetName::Galaxy10, [3, 69, 69], 128),
            (DatasetName::Ships, [3, 384, 384], 32),
        ] {
            let mut aug = Augmenter::new(AugmentConfig::for_dataset(name), shape).unwrap();
            let src: Vec<f32> = (0..batch * shape.iter().product::<usize>()).map(|i| i as f32).collect();
            let mut dst = vec![0.0; src.len()];
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let reps = 50;
            let start = std::time::Instant::now();
            for _ in 0..reps {
                aug.apply(&src, &mut dst, &mut rng);
            }
            let per = start.elapsed() / reps;
            let gbs = (src.len() * 8) as f64 / per.as_secs_f64() / 1e9;
            println!("{name}: batch {batch} {shape:?}: {per:?} per batch ({gbs:.1} GB/s read+write)");
        }
    }
}
