//! Small JPEG thumbnails for the report, as data URLs.

use opencv::core::{Mat, MatTraitConst, Size, Vector};
use opencv::{imgcodecs, imgproc};
use vigil_frame::{Image, PixelFormat};

/// A JPEG of `image` at most `max_side` pixels wide or high, as a `data:` URL; `None` if encoding fails.
pub fn data_url(image: &Image, max_side: u32) -> Option<String> {
    let channels = image.format().channels() as i32;
    let flat =
        Mat::new_rows_cols_with_data(image.height() as i32, image.width() as i32 * channels, image.data())
            .ok()?;
    let view = flat.reshape(channels, image.height() as i32).ok()?;
    let scale = (max_side as f64 / image.width().max(image.height()).max(1) as f64).min(1.0);
    let size = Size::new(
        ((image.width() as f64 * scale).round() as i32).max(1),
        ((image.height() as f64 * scale).round() as i32).max(1),
    );
    let mut small = Mat::default();
    imgproc::resize(&view, &mut small, size, 0.0, 0.0, imgproc::INTER_AREA).ok()?;
    let bgr = if image.format() == PixelFormat::Rgb8 {
        let mut m = Mat::default();
        imgproc::cvt_color(&small, &mut m, imgproc::COLOR_RGB2BGR, 0).ok()?;
        m
    } else {
        small
    };
    let mut buf = Vector::<u8>::new();
    let params = Vector::<i32>::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, 80]);
    if !imgcodecs::imencode(".jpg", &bgr, &mut buf, &params).ok()? || bgr.empty() {
        return None;
    }
    Some(format!("data:image/jpeg;base64,{}", base64(buf.as_slice())))
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
}
