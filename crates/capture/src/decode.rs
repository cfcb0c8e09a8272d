//! JPEG decoding at a reduced DCT scale. A camera frame of 1280x720 feeding a 192-pixel model need not be
//! decoded at full size and shrunk: libjpeg can skip most of the inverse DCT and produce 1/2, 1/4 or 1/8 of
//! the size directly (OpenCV's `IMREAD_REDUCED_COLOR_*`), which costs a fraction of the time and memory.

use opencv::imgcodecs;
use vigil_frame::Image;

use crate::{decode_with_flags, CaptureError};

/// Width and height from a JPEG's start-of-frame header, without decoding; `None` when the bytes are not a
/// JPEG or the header is cut short.
pub fn jpeg_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 4 || bytes[0] != 0xFF || bytes[1] != 0xD8 {
        return None;
    }
    let mut i = 2;
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return None;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            // Fill byte.
            i += 1;
            continue;
        }
        if (0xD0..=0xD9).contains(&marker) || marker == 0x01 {
            i += 2;
            continue;
        }
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        if len < 2 {
            return None;
        }
        // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
        if (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            let h = u16::from_be_bytes([*bytes.get(i + 5)?, *bytes.get(i + 6)?]) as u32;
            let w = u16::from_be_bytes([*bytes.get(i + 7)?, *bytes.get(i + 8)?]) as u32;
            return (w > 0 && h > 0).then_some((w, h));
        }
        if marker == 0xDA {
            return None;
        }
        i += 2 + len;
    }
    None
}

/// The DCT scale divisor (1, 2, 4 or 8) for a `width` x `height` frame: the largest whose result still has a
/// shorter side of at least `min_side` pixels. 1 (full size) when `min_side` is 0.
pub fn reduction_for(width: u32, height: u32, min_side: u32) -> u32 {
    if min_side == 0 {
        return 1;
    }
    let short = width.min(height);
    [8, 4, 2].into_iter().find(|f| short.div_ceil(*f) >= min_side).unwrap_or(1)
}

/// Decodes a JPEG (or PNG) frame. With `min_side` set and a JPEG whose shorter side is at least twice that,
/// it is decoded at the reduced DCT scale [`reduction_for`] picks; otherwise at full size.
pub fn decode_jpeg(
    bytes: &[u8],
    source_id: &str,
    seq: u64,
    min_side: Option<u32>,
) -> Result<Image, CaptureError> {
    let factor = match (min_side, jpeg_size(bytes)) {
        (Some(min), Some((w, h))) => reduction_for(w, h, min),
        _ => 1,
    };
    let flags = match factor {
        8 => imgcodecs::IMREAD_REDUCED_COLOR_8,
        4 => imgcodecs::IMREAD_REDUCED_COLOR_4,
        2 => imgcodecs::IMREAD_REDUCED_COLOR_2,
        _ => imgcodecs::IMREAD_COLOR,
    };
    decode_with_flags(bytes, source_id, seq, flags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::core::{Mat, Scalar, Vector, CV_8UC3};

    fn jpeg(w: i32, h: i32) -> Vec<u8> {
        let mat =
            Mat::new_rows_cols_with_default(h, w, CV_8UC3, Scalar::new(40.0, 90.0, 200.0, 0.0)).unwrap();
        let mut out = Vector::<u8>::new();
        imgcodecs::imencode(".jpg", &mat, &mut out, &Vector::new()).unwrap();
        out.as_slice().to_vec()
    }

    #[test]
    fn the_header_gives_the_size_without_decoding() {
        assert_eq!(jpeg_size(&jpeg(1280, 720)), Some((1280, 720)));
        assert_eq!(jpeg_size(&jpeg(33, 17)), Some((33, 17)));
        assert_eq!(jpeg_size(b"not a jpeg"), None);
        assert_eq!(jpeg_size(&jpeg(64, 48)[..10]), None);
    }

    #[test]
    fn the_scale_keeps_the_short_side_at_least_the_model_input() {
        assert_eq!(reduction_for(1280, 720, 192), 2); // 360 >= 192, 180 < 192
        assert_eq!(reduction_for(1920, 1080, 192), 4); // 270
        assert_eq!(reduction_for(3840, 2160, 192), 8); // 270
        assert_eq!(reduction_for(640, 480, 192), 2); // 240
        assert_eq!(reduction_for(320, 240, 192), 1);
        assert_eq!(reduction_for(1280, 720, 0), 1);
    }

    #[test]
    fn a_large_frame_is_decoded_at_reduced_scale() {
        let bytes = jpeg(1280, 720);
        let small = decode_jpeg(&bytes, "t", 0, Some(192)).unwrap();
        assert_eq!((small.width(), small.height()), (640, 360));
        let full = decode_jpeg(&bytes, "t", 0, None).unwrap();
        assert_eq!((full.width(), full.height()), (1280, 720));
        let tiny = decode_jpeg(&jpeg(320, 240), "t", 0, Some(192)).unwrap();
        assert_eq!((tiny.width(), tiny.height()), (320, 240));
        let err = decode_jpeg(b"\xFF\xD8garbage", "cam", 7, Some(192)).unwrap_err();
        assert!(matches!(err, CaptureError::CorruptFrame { seq: 7, .. }), "{err}");
    }
}
