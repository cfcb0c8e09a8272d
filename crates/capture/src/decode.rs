//! Frame decoding. JPEG goes through libjpeg-turbo's TurboJPEG API ([`JpegDecoder`], one handle per source),
//! at a reduced DCT scale when the model input is much smaller than the frame: a 1280x720 camera frame
//! feeding a 192-pixel model need not be decoded at full size and shrunk, since libjpeg can skip most of the
//! inverse DCT and produce 1/2, 1/4 or 1/8 of the size directly, for a fraction of the time and memory.
//! Colour JPEGs become [`PixelFormat::Bgr8`], one-component JPEGs [`PixelFormat::Gray8`]; any libjpeg
//! warning (data cut short, damaged entropy data) makes the frame corrupt rather than partly grey. Other
//! still formats (PNG, WebP) go through the `image` crate.

use std::cell::RefCell;
use std::sync::Arc;

use vigil_frame::{Image, ImagePool, PixelFormat};

use crate::turbo::{Decompressor, JpegHeader};
use crate::CaptureError;

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

/// True when `bytes` start like a JPEG (SOI marker).
pub(crate) fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[0] == 0xFF && bytes[1] == 0xD8
}

/// The DCT scale divisor (1, 2, 4 or 8) for a `width` x `height` frame: the largest whose result still has a
/// shorter side of at least `min_side` pixels. 1 (full size) when `min_side` is 0. Only powers of two are
/// used: libjpeg-turbo has SIMD inverse DCTs for 1/2 and 1/4 (and 1/8 needs only the DC term), while its
/// other scales (3/8, 5/8, ...) run in plain C.
pub fn reduction_for(width: u32, height: u32, min_side: u32) -> u32 {
    if min_side == 0 {
        return 1;
    }
    let short = width.min(height);
    [8, 4, 2].into_iter().find(|f| short.div_ceil(*f) >= min_side).unwrap_or(1)
}

/// The size a `width` x `height` JPEG decodes to at divisor `factor` (libjpeg rounds up).
fn scaled(width: u32, height: u32, factor: u32) -> (u32, u32) {
    (width.div_ceil(factor), height.div_ceil(factor))
}

/// A JPEG decoder for one source: the TurboJPEG handle is made once and reused for every frame.
pub struct JpegDecoder {
    tj: Decompressor,
    min_side: Option<u32>,
}

impl JpegDecoder {
    /// A decoder that decodes at the reduced DCT scale keeping the shorter side at least `min_side` pixels
    /// ([`reduction_for`]), or at full size when `min_side` is `None`.
    pub fn new(min_side: Option<u32>) -> Result<Self, String> {
        Ok(Self { tj: Decompressor::new()?, min_side })
    }

    /// The header of `jpeg` and the size it will be decoded to.
    fn plan(&mut self, jpeg: &[u8]) -> Result<(JpegHeader, u32, u32), String> {
        let header = self.tj.header(jpeg)?;
        let factor = self.min_side.map_or(1, |m| reduction_for(header.width, header.height, m));
        let (w, h) = scaled(header.width, header.height, factor);
        Ok((header, w, h))
    }

    /// Decodes one JPEG into a new [`Image`].
    pub fn decode(&mut self, jpeg: &[u8]) -> Result<Image, String> {
        let (header, w, h) = self.plan(jpeg)?;
        let mut image = Image::filled(w, h, header.format, 0);
        self.tj.decode_into(jpeg, w, h, header.format, image.data_mut())?;
        Ok(image)
    }

    /// Decodes one JPEG into a buffer from `pool` (no allocation once the pool is warm).
    pub fn decode_pooled(&mut self, jpeg: &[u8], pool: &mut ImagePool) -> Result<Arc<Image>, String> {
        let (header, w, h) = self.plan(jpeg)?;
        let tj = &mut self.tj;
        pool.fill(w, h, header.format, |dst| tj.decode_into(jpeg, w, h, header.format, dst))
    }
}

thread_local! {
    /// One TurboJPEG handle per thread for the free functions below.
    static DECODER: RefCell<Option<Decompressor>> = const { RefCell::new(None) };
}

/// Decodes `jpeg` with this thread's TurboJPEG handle at divisor `factor`.
fn decode_jpeg_at(jpeg: &[u8], min_side: Option<u32>) -> Result<Image, String> {
    DECODER.with(|cell| {
        let mut slot = cell.try_borrow_mut().map_err(|_| "JPEG decoder re-entered".to_string())?;
        if slot.is_none() {
            *slot = Some(Decompressor::new()?);
        }
        let Some(tj) = slot.as_mut() else { return Err("no JPEG decoder".to_string()) };
        let header = tj.header(jpeg)?;
        let factor = min_side.map_or(1, |m| reduction_for(header.width, header.height, m));
        let (w, h) = scaled(header.width, header.height, factor);
        let mut image = Image::filled(w, h, header.format, 0);
        tj.decode_into(jpeg, w, h, header.format, image.data_mut())?;
        Ok(image)
    })
}

/// Decodes a JPEG (or PNG) frame. With `min_side` set and a JPEG whose shorter side is at least twice that,
/// it is decoded at the reduced DCT scale [`reduction_for`] picks; otherwise at full size. Errors are
/// [`CaptureError::CorruptFrame`] naming `source_id` and `seq`.
pub fn decode_jpeg(
    bytes: &[u8],
    source_id: &str,
    seq: u64,
    min_side: Option<u32>,
) -> Result<Image, CaptureError> {
    if is_jpeg(bytes) {
        decode_jpeg_at(bytes, min_side).map_err(|reason| corrupt(source_id, seq, reason))
    } else {
        decode_still(bytes, source_id, seq)
    }
}

fn corrupt(source_id: &str, seq: u64, reason: String) -> CaptureError {
    CaptureError::CorruptFrame { source_id: source_id.to_string(), seq, reason }
}

/// Decodes an encoded JPEG, PNG or WebP frame at full size.
pub(crate) fn decode_image(bytes: &[u8], source_id: &str, seq: u64) -> Result<Image, CaptureError> {
    decode_jpeg(bytes, source_id, seq, None)
}

/// Decodes a non-JPEG still image with the `image` crate: grey images stay [`PixelFormat::Gray8`],
/// everything else becomes [`PixelFormat::Bgr8`] (alpha dropped).
fn decode_still(bytes: &[u8], source_id: &str, seq: u64) -> Result<Image, CaptureError> {
    let fail = |reason: String| corrupt(source_id, seq, reason);
    if bytes.is_empty() {
        return Err(fail("empty file".into()));
    }
    let decoded = image::load_from_memory(bytes).map_err(|e| fail(format!("not a decodable image: {e}")))?;
    let (w, h) = (decoded.width(), decoded.height());
    let grey = matches!(
        decoded.color(),
        image::ColorType::L8 | image::ColorType::La8 | image::ColorType::L16 | image::ColorType::La16
    );
    let image = if grey {
        Image::new(w, h, PixelFormat::Gray8, decoded.into_luma8().into_raw())
    } else {
        let mut data = decoded.into_rgb8().into_raw();
        for px in data.chunks_exact_mut(3) {
            px.swap(0, 2);
        }
        Image::new(w, h, PixelFormat::Bgr8, data)
    };
    image.map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::turbo::Compressor;

    /// A `w` x `h` BGR JPEG with a gradient (so that it has real entropy-coded data).
    pub(crate) fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let mut px = vec![0u8; (w * h * 3) as usize];
        for (i, p) in px.chunks_exact_mut(3).enumerate() {
            let (x, y) = (i as u32 % w, i as u32 / w);
            p.copy_from_slice(&[(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8]);
        }
        Compressor::new().unwrap().encode(&px, w, h, PixelFormat::Bgr8, 85).unwrap().to_vec()
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
        assert_eq!((small.width(), small.height(), small.format()), (640, 360, PixelFormat::Bgr8));
        let full = decode_jpeg(&bytes, "t", 0, None).unwrap();
        assert_eq!((full.width(), full.height()), (1280, 720));
        let tiny = decode_jpeg(&jpeg(320, 240), "t", 0, Some(192)).unwrap();
        assert_eq!((tiny.width(), tiny.height()), (320, 240));
        let err = decode_jpeg(b"\xFF\xD8garbage", "cam", 7, Some(192)).unwrap_err();
        assert!(matches!(err, CaptureError::CorruptFrame { seq: 7, .. }), "{err}");
    }

    #[test]
    fn odd_sizes_round_up_like_libjpeg() {
        let small = decode_jpeg(&jpeg(1001, 777), "t", 0, Some(100)).unwrap();
        assert_eq!((small.width(), small.height()), (1001_u32.div_ceil(4), 777_u32.div_ceil(4)));
    }

    #[test]
    fn decoded_pixels_are_in_bgr_order() {
        let px: Vec<u8> = [10u8, 120, 240].repeat(64 * 64);
        let bytes = Compressor::new().unwrap().encode(&px, 64, 64, PixelFormat::Bgr8, 95).unwrap().to_vec();
        let img = decode_jpeg(&bytes, "t", 0, None).unwrap();
        let p = &img.data()[..3];
        assert!(p[0].abs_diff(10) < 6 && p[1].abs_diff(120) < 6 && p[2].abs_diff(240) < 6, "{p:?}");
    }

    #[test]
    fn a_greyscale_jpeg_decodes_to_one_channel() {
        let px = vec![77u8; 48 * 32];
        let bytes = Compressor::new().unwrap().encode(&px, 48, 32, PixelFormat::Gray8, 90).unwrap().to_vec();
        let img = decode_jpeg(&bytes, "t", 0, None).unwrap();
        assert_eq!((img.width(), img.height(), img.format()), (48, 32, PixelFormat::Gray8));
        assert!(img.data().iter().all(|v| v.abs_diff(77) <= 1));
    }

    #[test]
    fn a_jpeg_cut_in_the_middle_is_corrupt() {
        let bytes = jpeg(640, 480);
        let err = decode_jpeg(&bytes[..bytes.len() / 2], "cam", 3, None).unwrap_err();
        assert!(
            matches!(&err, CaptureError::CorruptFrame { seq: 3, source_id, .. } if source_id == "cam"),
            "{err}"
        );
        // At reduced scale too.
        assert!(decode_jpeg(&bytes[..bytes.len() / 2], "cam", 3, Some(192)).is_err());
    }

    #[test]
    fn garbage_in_the_entropy_data_is_corrupt() {
        let mut bytes = jpeg(640, 480);
        // Past the headers: overwrite a stretch of the entropy-coded scan with marker-like garbage.
        let sos = bytes.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        let start = sos + (bytes.len() - sos) / 3;
        for (i, b) in bytes[start..start + 200].iter_mut().enumerate() {
            *b = if i % 2 == 0 { 0xFF } else { 0xD3 };
        }
        let err = decode_jpeg(&bytes, "cam", 9, None).unwrap_err();
        assert!(matches!(err, CaptureError::CorruptFrame { seq: 9, .. }), "{err}");
    }

    #[test]
    fn an_empty_frame_is_corrupt() {
        let err = decode_jpeg(&[], "cam", 4, Some(192)).unwrap_err();
        assert!(matches!(err, CaptureError::CorruptFrame { seq: 4, .. }), "{err}");
    }

    #[test]
    fn a_pooled_decode_reuses_its_buffer() {
        let bytes = jpeg(640, 480);
        let mut dec = JpegDecoder::new(Some(192)).unwrap();
        let mut pool = ImagePool::new(2);
        for _ in 0..5 {
            let img = dec.decode_pooled(&bytes, &mut pool).unwrap();
            assert_eq!((img.width(), img.height()), (320, 240));
        }
        assert_eq!(pool.made(), 1);
    }

    #[test]
    fn png_frames_decode_to_bgr_or_grey() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/images");
        let bytes = std::fs::read(root.join("gray-spaghetti.png")).unwrap();
        let img = decode_image(&bytes, "png", 0).unwrap();
        assert!(matches!(img.format(), PixelFormat::Gray8 | PixelFormat::Bgr8));
        let mut png = Vec::new();
        let rgb = image::RgbImage::from_pixel(4, 2, image::Rgb([200, 100, 50]));
        rgb.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let img = decode_image(&png, "png", 0).unwrap();
        assert_eq!((img.width(), img.height(), img.format()), (4, 2, PixelFormat::Bgr8));
        assert_eq!(&img.data()[..3], &[50, 100, 200]);
    }
}
