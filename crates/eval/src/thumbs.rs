//! Small JPEG thumbnails for the report, as data URLs.

use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};
use image::{ExtendedColorType, GrayImage, ImageBuffer, Rgb, RgbImage};
use vigil_frame::{Image, PixelFormat};

/// A JPEG of `image` at most `max_side` pixels wide or high, as a `data:` URL; `None` if encoding fails.
pub fn data_url(image: &Image, max_side: u32) -> Option<String> {
    let (w, h) = (image.width(), image.height());
    if w == 0 || h == 0 {
        return None;
    }
    let scale = (max_side as f64 / w.max(h) as f64).min(1.0);
    let tw = ((w as f64 * scale).round() as u32).max(1);
    let th = ((h as f64 * scale).round() as u32).max(1);
    // Shrinking with a triangle filter over the whole footprint is close to an area average for thumbnails.
    let (bytes, color) = match image.format() {
        PixelFormat::Gray8 => {
            let gray = GrayImage::from_raw(w, h, image.data().to_vec())?;
            (imageops::resize(&gray, tw, th, FilterType::Triangle).into_raw(), ExtendedColorType::L8)
        }
        PixelFormat::Rgb8 | PixelFormat::Bgr8 => {
            let mut data = image.data().to_vec();
            if image.format() == PixelFormat::Bgr8 {
                data.chunks_exact_mut(3).for_each(|p| p.swap(0, 2));
            }
            let rgb: RgbImage = ImageBuffer::<Rgb<u8>, _>::from_raw(w, h, data)?;
            (imageops::resize(&rgb, tw, th, FilterType::Triangle).into_raw(), ExtendedColorType::Rgb8)
        }
    };
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, 80).encode(&bytes, tw, th, color).ok()?;
    Some(format!("data:image/jpeg;base64,{}", base64(&jpeg)))
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn a_thumbnail_is_a_jpeg_data_url() {
        let img = Image::filled(640, 480, PixelFormat::Bgr8, 128);
        let url = data_url(&img, 160).unwrap();
        assert!(url.starts_with("data:image/jpeg;base64,/9j/"), "{}", &url[..40]);
    }

    fn decode(url: &str) -> image::DynamicImage {
        let b64 = url.strip_prefix("data:image/jpeg;base64,").unwrap();
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut bits = Vec::new();
        let (mut acc, mut n) = (0u32, 0);
        for c in b64.bytes().filter(|&c| c != b'=') {
            acc = acc << 6 | A.iter().position(|&a| a == c).unwrap() as u32;
            n += 6;
            if n >= 8 {
                n -= 8;
                bits.push((acc >> n) as u8);
            }
        }
        image::load_from_memory(&bits).unwrap()
    }

    #[test]
    fn thumbnails_keep_the_aspect_ratio_colours_and_small_images_their_size() {
        // Red in BGR order: the thumbnail is red.
        let img = Image::new(400, 100, PixelFormat::Bgr8, [0u8, 0, 220].repeat(400 * 100)).unwrap();
        let t = decode(&data_url(&img, 160).unwrap()).to_rgb8();
        assert_eq!(t.dimensions(), (160, 40));
        let p = t.get_pixel(80, 20);
        assert!(p[0] > 180 && p[1] < 40 && p[2] < 40, "{p:?}");
        let gray = Image::filled(50, 30, PixelFormat::Gray8, 90);
        let t = decode(&data_url(&gray, 160).unwrap()).to_luma8();
        assert_eq!(t.dimensions(), (50, 30));
        assert!((t.get_pixel(10, 10)[0] as i32 - 90).abs() <= 2);
        assert!(data_url(&Image::new(0, 0, PixelFormat::Rgb8, vec![]).unwrap(), 160).is_none());
    }
}
