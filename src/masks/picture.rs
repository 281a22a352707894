//! A mask as a picture: the colours every figure of a mask uses (the
//! report's figures, the TensorBoard image of each epoch), and a mask alone
//! as a PNG.

use crate::error::{Error, Result};

/// Tint of removed values.
pub const REMOVED: [f32; 3] = [0.92, 0.12, 0.12];

/// The colour of a pixel (RGB in [0, 1]) of which the share `kept` of the
/// values is sent: the removed share darkened and tinted red.
pub fn shade(pixel: [f32; 3], kept: f32) -> [f32; 3] {
    let removed = 1.0 - kept;
    std::array::from_fn(|k| kept * pixel[k] + removed * (0.3 * pixel[k] + 0.7 * REMOVED[k]))
}

/// A mask alone as a PNG of the input's size (`W × H`, RGB), in the
/// colours of the report's mask figures on a white input: white where every channel
/// is sent, red where none is. `mask` is `[C, H, W]` (row-major) of values
/// in [0, 1], the share of each value sent (a hard mask, a probability, or
/// a mean over inputs); a pixel shows its mean over the channels. Errors
/// when the sizes disagree.
pub fn mask_png(shape: [usize; 3], mask: &[f32]) -> Result<Vec<u8>> {
    use image::ImageEncoder;
    let [c, h, w] = shape;
    if c * h * w == 0 || mask.len() != c * h * w {
        return Err(Error::MaskInput(format!("mask has {} values, expected {} ({c}×{h}×{w})", mask.len(), c * h * w)));
    }
    let mut rgb = Vec::with_capacity(h * w * 3);
    for px in 0..h * w {
        let kept = (0..c).map(|ci| mask[ci * h * w + px].clamp(0.0, 1.0)).sum::<f32>() / c as f32;
        rgb.extend(shade([1.0; 3], kept).map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8));
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&rgb, w as u32, h as u32, image::ExtendedColorType::Rgb8)
        .map_err(|e| Error::MaskInput(format!("png encoding: {e}")))?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_png_is_the_input_size_white_where_sent_and_red_where_removed() {
        // [2, 1, 3]: pixel 0 sent in both channels, 1 in one, 2 in none.
        let png = mask_png([2, 1, 3], &[1.0, 1.0, 0.0, 1.0, 0.0, 0.0]).unwrap();
        let img = image::load_from_memory_with_format(&png, image::ImageFormat::Png).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (3, 1));
        assert_eq!(img.get_pixel(0, 0).0, [255, 255, 255]);
        let removed = shade([1.0; 3], 0.0).map(|v| (v * 255.0).round() as u8);
        assert_eq!(img.get_pixel(2, 0).0, removed);
        assert!(removed[0] > removed[1], "red: {removed:?}");
        let half = img.get_pixel(1, 0).0;
        assert!(half[1] < 255 && half[1] > removed[1], "between: {half:?}");
        assert!(mask_png([1, 2, 2], &[1.0; 3]).is_err());
    }
}
