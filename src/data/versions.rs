//! Versions of an input for xor (version) selection: JPEG quality levels
//! and thumbnails, stacked so that a mask can pick one version per cell.
//!
//! The stack follows the paper's `get_tensor_featuremaps_transform`
//! (`experiments.py`): the list of "thumbnails" is the original image
//! followed by one thumbnail per requested box; each of them is followed by
//! its JPEG-encoded-then-decoded copies, one per quality level, encoded *at
//! the thumbnail's size*; thumbnails and their JPEGs are then scaled back to
//! the input size. One item therefore becomes
//!
//! ```text
//! [T + 1, Q + 1, C, H, W]   (thumbnail t, "feature map" f: 0 = no JPEG, then one per quality)
//! ```
//!
//! stored here flattened as `[(T + 1)·(Q + 1)·C, H, W]` u8 channels, so a
//! stacked split is an ordinary [`ImageSet`] and batches keep the
//! `[B, C', H, W]` layout of every other split (per-item augmentation such
//! as flips and crops then moves all versions of an item alike). Each
//! version is normalised with the dataset's mean and std (the paper repeats
//! them per version).
//!
//! Thumbnails follow PIL's `Image.thumbnail(box, NEAREST)`: the largest size
//! within the box that keeps the aspect ratio (never larger than the input),
//! sampled with PIL's nearest rule, then `resize(input size, NEAREST)`.
//! JPEG is encoded as PIL's `Image.save(format="JPEG", quality=q)` does
//! with libjpeg's defaults: baseline, the standard tables scaled by
//! libjpeg's quality rule, and for RGB 4:2:0 chroma subsampling by 2×2 box
//! averages (libjpeg's `h2v2_downsample`), with the `jpeg-encoder` crate;
//! it is decoded with the `image` crate. Subsampling matters: colour
//! detail finer than two pixels is lost at every quality, as in the
//! authors' versions.

use image::ImageFormat;
use jpeg_encoder::{ChromaSubsamplingMethod, ColorType, Encoder, SamplingFactor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{DatasetInfo, ImageSet, Pixels};
use crate::error::{Error, Result};

/// Which versions of every input are made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionsConfig {
    /// JPEG quality levels (1-100), in order (the paper: 90 70 50 30 10).
    pub quality_levels: Vec<u8>,
    /// Thumbnail boxes `[height, width]` (PIL `thumbnail`: fit inside the
    /// box, keeping the aspect ratio).
    pub thumbs: Vec<[usize; 2]>,
}

impl VersionsConfig {
    /// Whether no version besides the original is made.
    pub fn is_empty(&self) -> bool {
        self.quality_levels.is_empty() && self.thumbs.is_empty()
    }

    /// Choices of the JPEG ("feature map") selection: the image itself, then
    /// one per quality level.
    pub fn n_quality_choices(&self) -> usize {
        1 + self.quality_levels.len()
    }

    /// Choices of the thumbnail selection: the original, then one per box.
    pub fn n_thumb_choices(&self) -> usize {
        1 + self.thumbs.len()
    }

    /// Versions stacked per input.
    pub fn n_versions(&self) -> usize {
        self.n_quality_choices() * self.n_thumb_choices()
    }

    /// Transfer weight of each JPEG choice: 1 for the image itself, q/100
    /// for quality q (the paper's `quality_weights`).
    pub fn quality_weights(&self) -> Vec<f64> {
        std::iter::once(1.0).chain(self.quality_levels.iter().map(|&q| q as f64 / 100.0)).collect()
    }

    /// Transfer weight of each thumbnail choice on inputs `[C, H, W]`: 1 for
    /// the original, `(h + w) / (H + W)` for box `[h, w]` (the paper's
    /// `size_reductions`, computed from the requested box, not from the
    /// aspect-preserving size PIL picks inside it).
    pub fn thumb_weights(&self, [_, h, w]: [usize; 3]) -> Vec<f64> {
        std::iter::once(1.0).chain(self.thumbs.iter().map(|&[th, tw]| (th + tw) as f64 / (h + w) as f64)).collect()
    }

    /// Names of the JPEG choices: `original`, `jpeg90`, ...
    pub fn quality_labels(&self) -> Vec<String> {
        std::iter::once("original".to_string()).chain(self.quality_levels.iter().map(|q| format!("jpeg{q}"))).collect()
    }

    /// Names of the thumbnail choices: `original`, `thumb16x16` (h x w), ...
    pub fn thumb_labels(&self) -> Vec<String> {
        std::iter::once("original".to_string()).chain(self.thumbs.iter().map(|[h, w]| format!("thumb{h}x{w}"))).collect()
    }

    /// Checks the levels and boxes (and that versions can be made of
    /// inputs `shape`).
    pub fn validate(&self, shape: [usize; 3]) -> Result<()> {
        if let Some(q) = self.quality_levels.iter().find(|&&q| !(1..=100).contains(&q)) {
            return Err(Error::config("quality-levels", q, "jpeg quality must be within 1..=100"));
        }
        if let Some([h, w]) = self.thumbs.iter().find(|[h, w]| *h == 0 || *w == 0) {
            return Err(Error::config("thumb-h/thumb-w", format!("{h}x{w}"), "thumbnail sides must be positive (or -1 for the full side)"));
        }
        let c = shape[0];
        if !self.is_empty() && c != 1 && c != 3 {
            return Err(Error::config(
                "quality-levels",
                format!("{c} channels"),
                "jpeg and thumbnail versions are made of 1- or 3-channel images only",
            ));
        }
        Ok(())
    }

    /// The stacked versions of every item of `set`, `[N, V·C, H, W]` u8 (see
    /// the module docs for the order). Refuses floating-point data (see
    /// [`VersionsConfig::check_set`]).
    pub fn stack(&self, set: &ImageSet) -> Result<ImageSet> {
        self.check_set(set)?;
        let Pixels::U8(pixels) = &set.pixels else { unreachable!("check_set refuses f32 data") };
        Ok(ImageSet {
            shape: [self.n_versions() * set.shape[0], set.shape[1], set.shape[2]],
            pixels: Pixels::U8(self.stack_items(pixels, set.shape)?),
            labels: set.labels.clone(),
        })
    }

    /// Checks that versions can be made of `set`: valid levels and boxes,
    /// and 8-bit pixels. The paper's code refuses floating-point data too,
    /// as turning it into an image loses precision.
    pub fn check_set(&self, set: &ImageSet) -> Result<()> {
        self.validate(set.shape)?;
        if let Pixels::F32(_) = set.pixels {
            return Err(Error::config(
                "quality-levels",
                "f32 data",
                "jpeg and thumbnail versions need 8-bit images; this dataset is stored as floats",
            ));
        }
        Ok(())
    }

    /// The stacks of the items `pixels` (`[N, C, H, W]` with `shape` =
    /// `[C, H, W]`), `[N, V·C, H, W]`, made in parallel over the items.
    pub fn stack_items(&self, pixels: &[u8], shape: [usize; 3]) -> Result<Vec<u8>> {
        let n_item = shape.iter().product::<usize>();
        let n_out = self.n_versions() * n_item;
        let mut out = vec![0u8; pixels.len() / n_item.max(1) * n_out];
        out.par_chunks_mut(n_out.max(1))
            .zip(pixels.par_chunks(n_item.max(1)))
            .try_for_each(|(dst, src)| self.stack_item(src, shape, dst))?;
        Ok(out)
    }

    /// The stack of one item `src` (`[C, H, W]`) written into `dst`.
    fn stack_item(&self, src: &[u8], shape: [usize; 3], dst: &mut [u8]) -> Result<()> {
        let [c, h, w] = shape;
        let n = c * h * w;
        let mut slots = dst.chunks_mut(n);
        let mut sources: Vec<(Vec<u8>, [usize; 2])> = vec![(src.to_vec(), [h, w])];
        for &[bh, bw] in &self.thumbs {
            let [th, tw] = pil_thumbnail_size([h, w], [bh, bw]);
            sources.push((pil_nearest_resize(src, shape, [th, tw]), [th, tw]));
        }
        for (image, [th, tw]) in sources {
            let small = [c, th, tw];
            let back = |v: &[u8]| if [th, tw] == [h, w] { v.to_vec() } else { pil_nearest_resize(v, small, [h, w]) };
            slots.next().expect("one slot per version").copy_from_slice(&back(&image));
            for &q in &self.quality_levels {
                let jpeg = jpeg_roundtrip(&image, small, q)?;
                slots.next().expect("one slot per version").copy_from_slice(&back(&jpeg));
            }
        }
        Ok(())
    }

    /// The dataset description of stacked items: shape `[V·C, H, W]`, the
    /// mean and std repeated per version (what normalises a stacked split).
    pub fn stacked_info(&self, info: &DatasetInfo) -> DatasetInfo {
        let v = self.n_versions();
        let [c, h, w] = info.shape;
        DatasetInfo {
            shape: [v * c, h, w],
            mean: info.mean.iter().copied().cycle().take(v * c).collect(),
            std: info.std.iter().copied().cycle().take(v * c).collect(),
            ..info.clone()
        }
    }
}

/// The size PIL's `Image.thumbnail(box)` gives an image of `[h, w]`: the
/// image itself when it fits, else the largest aspect-preserving size within
/// the box (PIL ≥ 7's `preserve_aspect_ratio`, rounding towards the closer
/// aspect ratio).
pub fn pil_thumbnail_size([h, w]: [usize; 2], [bh, bw]: [usize; 2]) -> [usize; 2] {
    if bw >= w && bh >= h {
        return [h, w];
    }
    let aspect = w as f64 / h as f64;
    let (x, y) = (bw as f64, bh as f64);
    // max(min(floor, ceil, key), 1): the candidate whose ratio is closer.
    let round = |v: f64, key: &dyn Fn(f64) -> f64| {
        let (lo, hi) = (v.floor(), v.ceil());
        let best = if key(hi) < key(lo) { hi } else { lo };
        best.max(1.0) as usize
    };
    if x / y >= aspect {
        let nx = round(y * aspect, &|n| (aspect - n / y).abs());
        [bh, nx]
    } else {
        let ny = round(x / aspect, &|n| if n == 0.0 { 0.0 } else { (aspect - x / n).abs() });
        [ny, bw]
    }
}

/// PIL's nearest source index for each of `n_out` outputs from `n_in`
/// inputs (`ImagingScaleAffine`: position `(i + 0.5)·in/out`, accumulated in
/// double precision and truncated, exactly as PIL does).
fn pil_nearest_indices(n_in: usize, n_out: usize) -> Vec<usize> {
    let scale = n_in as f64 / n_out as f64;
    let mut pos = scale * 0.5;
    (0..n_out)
        .map(|_| {
            let i = (pos as usize).min(n_in - 1);
            pos += scale;
            i
        })
        .collect()
}

/// PIL's `resize([oh, ow], NEAREST)` of planar `[C, H, W]` u8 values.
pub fn pil_nearest_resize(src: &[u8], [c, h, w]: [usize; 3], [oh, ow]: [usize; 2]) -> Vec<u8> {
    let rows = pil_nearest_indices(h, oh);
    let cols = pil_nearest_indices(w, ow);
    let mut out = Vec::with_capacity(c * oh * ow);
    for ch in 0..c {
        let plane = &src[ch * h * w..(ch + 1) * h * w];
        for &r in &rows {
            out.extend(cols.iter().map(|&col| plane[r * w + col]));
        }
    }
    out
}

/// Planar `[C, H, W]` u8 values JPEG-encoded at `quality` and decoded again
/// (C = 1: grayscale, C = 3: RGB).
pub fn jpeg_roundtrip(src: &[u8], [c, h, w]: [usize; 3], quality: u8) -> Result<Vec<u8>> {
    let codec_err = |e: &dyn std::fmt::Display| Error::config("quality-levels", quality, format!("jpeg codec failed on a {c}x{h}x{w} image: {e}"));
    let plane = h * w;
    // Planar to interleaved.
    let interleaved: Vec<u8> = (0..plane).flat_map(|i| (0..c).map(move |ch| src[ch * plane + i])).collect();
    let color = match c {
        1 => ColorType::Luma,
        3 => ColorType::Rgb,
        _ => return Err(Error::config("quality-levels", format!("{c} channels"), "jpeg needs 1 or 3 channels")),
    };
    let (h16, w16) = (u16::try_from(h), u16::try_from(w));
    let (Ok(h16), Ok(w16)) = (h16, w16) else {
        return Err(codec_err(&format_args!("jpeg sides are at most 65535 pixels")));
    };
    let mut bytes = Vec::new();
    let mut encoder = Encoder::new(&mut bytes, quality);
    // libjpeg's defaults, which PIL keeps: 4:2:0 at every quality (the
    // crate's own default switches to 4:4:4 from quality 90), box-averaged.
    encoder.set_sampling_factor(SamplingFactor::R_4_2_0);
    encoder.set_chroma_subsampling_method(ChromaSubsamplingMethod::Average);
    encoder.encode(&interleaved, w16, h16, color).map_err(|e| codec_err(&e))?;
    let decoded = image::load_from_memory_with_format(&bytes, ImageFormat::Jpeg).map_err(|e| codec_err(&e))?;
    let raw = if c == 1 { decoded.to_luma8().into_raw() } else { decoded.to_rgb8().into_raw() };
    // Interleaved back to planar.
    let mut out = vec![0u8; c * plane];
    for (i, px) in raw.chunks_exact(c).enumerate() {
        for (ch, &v) in px.iter().enumerate() {
            out[ch * plane + i] = v;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth colour image with some texture, `[3, 32, 32]`.
    fn picture(seed: usize) -> Vec<u8> {
        let (h, w) = (32usize, 32usize);
        let mut v = Vec::with_capacity(3 * h * w);
        for ch in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    let base = 40.0 * ch as f64 + 3.0 * x as f64 + 2.0 * y as f64;
                    let texture = 10.0 * ((x * 7 + y * 13 + seed * 5 + ch) % 11) as f64 / 11.0;
                    v.push((base + texture).clamp(0.0, 255.0) as u8);
                }
            }
        }
        v
    }

    fn mean_abs(a: &[u8], b: &[u8]) -> f64 {
        a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).abs()).sum::<f64>() / a.len() as f64
    }

    #[test]
    fn jpeg_90_is_close_and_jpeg_10_is_farther() {
        let img = picture(1);
        let q90 = jpeg_roundtrip(&img, [3, 32, 32], 90).unwrap();
        let q10 = jpeg_roundtrip(&img, [3, 32, 32], 10).unwrap();
        let (e90, e10) = (mean_abs(&img, &q90), mean_abs(&img, &q10));
        assert!(q90 != img, "jpeg 90 is lossy");
        assert!(e90 > 0.0 && e90 < 3.0, "mean abs error at quality 90: {e90}");
        assert!(e10 > 2.0 * e90, "quality 10 ({e10}) should be clearly worse than 90 ({e90})");
        // Grayscale works too.
        let gray: Vec<u8> = img[..1024].to_vec();
        let g = jpeg_roundtrip(&gray, [1, 32, 32], 50).unwrap();
        assert_eq!(g.len(), 1024);
        assert!(mean_abs(&gray, &g) < 10.0);
    }

    #[test]
    fn colour_is_subsampled_4_2_0_and_luma_is_not() {
        // Alternate columns of red and blue: colour detail of one pixel.
        let (h, w) = (16usize, 16usize);
        let mut colour = vec![0u8; 3 * h * w];
        for y in 0..h {
            for x in 0..w {
                let ch = if x % 2 == 0 { 0 } else { 2 };
                colour[ch * h * w + y * w + x] = 255;
            }
        }
        let back = jpeg_roundtrip(&colour, [3, h, w], 100).unwrap();
        // Box-averaged chroma turns both columns purple: red and blue
        // channels each lose about half their swing even at quality 100.
        let e = mean_abs(&colour, &back);
        assert!(e > 30.0, "one-pixel colour detail survived quality 100 (mean abs error {e}): not 4:2:0");
        // The same detail in brightness alone is kept (luma is full size).
        let gray: Vec<u8> = (0..h * w).map(|i| if i % 2 == 0 { 250 } else { 5 }).collect();
        let g = jpeg_roundtrip(&gray, [1, h, w], 100).unwrap();
        assert!(mean_abs(&gray, &g) < 3.0, "luma at quality 100: {}", mean_abs(&gray, &g));
        // A flat colour image keeps its colour (no shift from subsampling).
        let flat: Vec<u8> = [200u8, 60, 30].iter().flat_map(|&v| std::iter::repeat_n(v, h * w)).collect();
        assert!(mean_abs(&flat, &jpeg_roundtrip(&flat, [3, h, w], 90).unwrap()) < 2.0);
    }

    #[test]
    fn pil_nearest_and_thumbnail_rules() {
        // Halving keeps the odd pixels (centre sampling), doubling repeats.
        assert_eq!(pil_nearest_indices(8, 4), [1, 3, 5, 7]);
        assert_eq!(pil_nearest_indices(4, 8), [0, 0, 1, 1, 2, 2, 3, 3]);
        // PIL accumulates the position: 7.5 x 3.2 lands just below 24.
        assert_eq!(pil_nearest_indices(32, 10), [1, 4, 8, 11, 14, 17, 20, 23, 27, 30]);
        // Thumbnails fit the box, keep the aspect, never enlarge.
        assert_eq!(pil_thumbnail_size([32, 32], [16, 16]), [16, 16]);
        assert_eq!(pil_thumbnail_size([32, 32], [8, 16]), [8, 8]);
        assert_eq!(pil_thumbnail_size([32, 64], [32, 32]), [16, 32]);
        assert_eq!(pil_thumbnail_size([32, 32], [64, 64]), [32, 32]);
        let img: Vec<u8> = (0..16).collect(); // [1, 4, 4]
        assert_eq!(pil_nearest_resize(&img, [1, 4, 4], [2, 2]), [5, 7, 13, 15]);
    }

    #[test]
    fn stack_order_weights_and_normalisation_info() {
        let cfg = VersionsConfig { quality_levels: vec![90, 10], thumbs: vec![[16, 16]] };
        let set = ImageSet { shape: [3, 32, 32], pixels: Pixels::U8([picture(0), picture(1)].concat()), labels: vec![0, 1] };
        let stacked = cfg.stack(&set).unwrap();
        assert_eq!(stacked.shape, [18, 32, 32]);
        assert_eq!(cfg.n_versions(), 6);
        let Pixels::U8(v) = &stacked.pixels else { unreachable!() };
        let n = 3 * 32 * 32;
        let item1 = &v[6 * n..12 * n];
        // Version 0 is the original; 1 and 2 its JPEGs; 3 the thumbnail
        // scaled back; 4 and 5 the thumbnail's JPEGs scaled back.
        assert_eq!(&item1[..n], &picture(1)[..]);
        assert_eq!(&item1[n..2 * n], &jpeg_roundtrip(&picture(1), [3, 32, 32], 90).unwrap()[..]);
        let thumb = pil_nearest_resize(&picture(1), [3, 32, 32], [16, 16]);
        assert_eq!(&item1[3 * n..4 * n], &pil_nearest_resize(&thumb, [3, 16, 16], [32, 32])[..]);
        let thumb_jpeg = jpeg_roundtrip(&thumb, [3, 16, 16], 10).unwrap();
        assert_eq!(&item1[5 * n..6 * n], &pil_nearest_resize(&thumb_jpeg, [3, 16, 16], [32, 32])[..]);
        assert_eq!(cfg.quality_weights(), [1.0, 0.9, 0.1]);
        assert_eq!(cfg.thumb_weights([3, 32, 32]), [1.0, 0.5]);
        assert_eq!(cfg.quality_labels(), ["original", "jpeg90", "jpeg10"]);
        assert_eq!(cfg.thumb_labels(), ["original", "thumb16x16"]);
        let info = DatasetInfo {
            name: super::super::DatasetName::Cifar10,
            shape: [3, 32, 32],
            n_classes: 10,
            mean: vec![0.1, 0.2, 0.3],
            std: vec![0.4, 0.5, 0.6],
        };
        let si = cfg.stacked_info(&info);
        assert_eq!(si.shape, [18, 32, 32]);
        assert_eq!(&si.mean[3..6], &[0.1, 0.2, 0.3]);
        assert_eq!(si.std.len(), 18);
    }

    #[test]
    fn bad_versions_are_refused_naming_the_flag() {
        let shape = [3, 32, 32];
        let err = VersionsConfig { quality_levels: vec![0], thumbs: vec![] }.validate(shape).unwrap_err().to_string();
        assert!(err.contains("quality-levels = 0"), "{err}");
        let err = VersionsConfig { quality_levels: vec![101], thumbs: vec![] }.validate(shape).unwrap_err().to_string();
        assert!(err.contains("quality-levels = 101"), "{err}");
        let err = VersionsConfig { quality_levels: vec![], thumbs: vec![[0, 8]] }.validate(shape).unwrap_err().to_string();
        assert!(err.contains("thumb-h/thumb-w = 0x8"), "{err}");
        let err = VersionsConfig { quality_levels: vec![50], thumbs: vec![] }.validate([36, 35, 35]).unwrap_err().to_string();
        assert!(err.contains("36 channels"), "{err}");
        let floats = ImageSet { shape: [1, 2, 2], pixels: Pixels::F32(vec![0.0; 4]), labels: vec![0] };
        let err = VersionsConfig { quality_levels: vec![50], thumbs: vec![] }.stack(&floats).unwrap_err().to_string();
        assert!(err.contains("floats"), "{err}");
    }
}
