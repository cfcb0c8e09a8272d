//! Pixels: faces filled solid by the real CenterFace model, fail-closed without it, ROI and masks constant,
//! downscale, and refusal of decompression bombs and oversize images.

mod common;

use common::*;
use image::{ImageEncoder, RgbImage};
use vigil_frame::{Image, PixelFormat, Point, Polygon};
use vigil_privacy::{DropReason, InputError, Scrubber};

fn decode(jpeg: &[u8]) -> RgbImage {
    image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg).unwrap().to_rgb8()
}

fn poly(pts: &[(f32, f32)]) -> Polygon {
    Polygon::new(pts.iter().map(|&(x, y)| Point { x, y }).collect()).unwrap()
}

/// Share of the pixels in a rectangle that are (near) the black fill.
fn filled_share(img: &RgbImage, x0: u32, y0: u32, x1: u32, y1: u32) -> f64 {
    let mut n = 0;
    let mut black = 0;
    for y in y0..y1 {
        for x in x0..x1 {
            n += 1;
            if img.get_pixel(x, y).0.iter().all(|&c| c <= 6) {
                black += 1;
            }
        }
    }
    black as f64 / n as f64
}

/// A noisy, colourful picture with no constant area.
fn noise(w: u32, h: u32) -> RgbImage {
    let mut s = 0x9E37_79B9u32;
    RgbImage::from_fn(w, h, |x, y| {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        image::Rgb([(40 + (s & 0x7F)) as u8, (60 + (x % 128)) as u8, (60 + (y % 128)) as u8])
    })
}

fn png(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

#[test]
fn the_astronauts_face_comes_out_filled_solid() {
    let dir = tempfile::tempdir().unwrap();
    let mut scrubber = Scrubber::from_config(&config(dir.path()));
    let input = std::fs::read(fixtures().join("astronaut.jpg")).unwrap();
    let original = decode(&input);
    // The face (around x 180-270, y 60-160 of the 512x512 photo) has no black in the original...
    assert!(filled_share(&original, 195, 75, 255, 145) < 0.02);
    let out = scrubber.scrub_bytes(&input).unwrap();
    assert!(out.faces >= 1, "no face found");
    let img = decode(&out.jpeg);
    assert_eq!(img.dimensions(), (512, 512));
    // ...and is solid fill in the output: not blurred, replaced.
    assert!(filled_share(&img, 195, 75, 255, 145) > 0.99, "face not covered");
    // The rest of the picture (the flag, the suit) is still there.
    assert!(filled_share(&img, 0, 300, 150, 512) < 0.05);
}

#[test]
fn the_face_model_is_loaded_at_the_first_scrub_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mut scrubber = Scrubber::from_config(&cfg);
    assert!(!scrubber.face_model_loaded(), "a scrubber that has scrubbed nothing holds no face model");
    let frame = Image::filled(64, 48, PixelFormat::Bgr8, 128);
    scrubber.scrub_image(&frame).unwrap();
    assert!(scrubber.face_model_loaded());
}

#[test]
fn without_the_face_model_every_snapshot_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.faces.model = dir.path().join("removed/centerface.onnx");
    let mut scrubber = Scrubber::from_config(&cfg);
    assert!(!scrubber.face_model_ready());
    let input = std::fs::read(fixtures().join("astronaut.jpg")).unwrap();
    let err = scrubber.scrub_bytes(&input).unwrap_err();
    assert!(matches!(err, DropReason::Faces(_)), "{err}");
    assert!(err.to_string().contains("removed/centerface.onnx"), "{err}");
    let frame = Image::filled(64, 48, PixelFormat::Bgr8, 128);
    assert!(matches!(scrubber.scrub_image(&frame), Err(DropReason::Faces(_))));
    // A file that is not the pinned model is refused too.
    std::fs::create_dir_all(dir.path().join("removed")).unwrap();
    std::fs::write(&cfg.faces.model, b"not a model").unwrap();
    let mut scrubber = Scrubber::from_config(&cfg);
    assert!(matches!(scrubber.scrub_bytes(&input), Err(DropReason::Faces(_))));
}

#[test]
fn pixels_outside_the_roi_and_inside_masks_are_one_constant_colour() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    // A bed-shaped trapezoid from x 25%..75% at the top to 0..100% at the bottom, y 25%..100%.
    cfg.minimise.roi = Some(poly(&[(0.25, 0.25), (0.75, 0.25), (1.0, 1.0), (0.0, 1.0)]));
    // A mask over the middle of the bed.
    cfg.minimise.masks = vec![poly(&[(0.4, 0.5), (0.6, 0.5), (0.6, 0.7), (0.4, 0.7)])];
    cfg.minimise.jpeg_quality = 90;
    let mut scrubber = Scrubber::from_config(&cfg);
    let (w, h) = (640u32, 480u32);
    let out = scrubber.scrub_bytes(&png(&noise(w, h))).unwrap();
    let img = decode(&out.jpeg);
    // Cropped to the ROI's bounding box: full width, from y = 120 down.
    assert_eq!(img.dimensions(), (640, 360));
    let mut outside = 0;
    let mut inside_kept = 0;
    for y in 0..360u32 {
        for x in 0..640u32 {
            let (fx, fy) = (x as f32 + 0.5, (y + 120) as f32 + 0.5);
            // Distance margin of 16 px from every edge: JPEG blocks straddling an edge mix both sides.
            let t = (fy - 120.0) / 360.0;
            let (left, right) = (160.0 * (1.0 - t), 640.0 - 160.0 * (1.0 - t));
            let p = img.get_pixel(x, y).0;
            if fx < left - 16.0 || fx > right + 16.0 {
                outside += 1;
                assert_eq!(p, [0, 0, 0], "outside the ROI at ({x}, {y})");
            }
            let in_mask = fx > 256.0 + 16.0 && fx < 384.0 - 16.0 && fy > 240.0 + 16.0 && fy < 336.0 - 16.0;
            if in_mask {
                assert_eq!(p, [0, 0, 0], "inside the mask at ({x}, {y})");
            }
            if fx > left + 16.0
                && fx < right - 16.0
                && !(fx > 240.0 && fx < 400.0 && fy > 224.0 && fy < 352.0)
                && p != [0, 0, 0]
            {
                inside_kept += 1;
            }
        }
    }
    assert!(outside > 20_000, "{outside}");
    assert!(inside_kept > 50_000, "{inside_kept}");
}

#[test]
fn an_roi_that_misses_the_image_drops_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.minimise.roi = Some(poly(&[(0.0, 0.0), (0.001, 0.0), (0.0, 0.001)]));
    let mut scrubber = Scrubber::from_config(&cfg);
    let err = scrubber.scrub_bytes(&png(&noise(100, 80))).unwrap_err();
    assert!(matches!(err, DropReason::EmptyRoi), "{err}");
}

#[test]
fn snapshots_are_downscaled_to_the_maximum_side() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.minimise.max_side = 256;
    let mut scrubber = Scrubber::from_config(&cfg);
    let frame = Image::new(1280, 720, PixelFormat::Rgb8, noise(1280, 720).into_raw()).unwrap();
    let out = scrubber.scrub_image(&frame).unwrap();
    assert_eq!(decode(&out.jpeg).dimensions(), (256, 144));
    assert_eq!((out.width, out.height), (256, 144));
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

/// A small PNG whose header claims `w` x `h`.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut f = png(&noise(8, 8));
    // IHDR data starts at byte 16 (8 signature + 4 length + 4 type).
    f[16..20].copy_from_slice(&w.to_be_bytes());
    f[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&f[12..29]);
    f[29..33].copy_from_slice(&crc.to_be_bytes());
    f
}

#[test]
fn decompression_bombs_and_oversize_images_are_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let mut scrubber = Scrubber::from_config(&config(dir.path()));
    // 8000 x 8000 fits the side limit (8192) but is 64 MP, more than the 40 MP limit.
    let err = scrubber.scrub_bytes(&png_claiming(8000, 8000)).unwrap_err();
    assert!(matches!(err, DropReason::Input(InputError::TooManyPixels { .. })), "{err}");
    assert!(err.to_string().contains("decompression bomb"), "{err}");
    let err = scrubber.scrub_bytes(&png_claiming(60_000, 10)).unwrap_err();
    assert!(matches!(err, DropReason::Input(_)), "{err}");
    // A JPEG whose frame header claims 65000 x 65000.
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut jpeg).encode_image(&noise(16, 16)).unwrap();
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    jpeg[sof + 5..sof + 7].copy_from_slice(&65000u16.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&65000u16.to_be_bytes());
    assert!(matches!(scrubber.scrub_bytes(&jpeg), Err(DropReason::Input(_))));
    // Too many bytes, and formats other than JPEG, PNG and WebP.
    let mut cfg = config(dir.path());
    cfg.input.max_bytes = 4096;
    let mut small = Scrubber::from_config(&cfg);
    let big = png(&noise(200, 200));
    assert!(matches!(small.scrub_bytes(&big), Err(DropReason::Input(InputError::TooManyBytes { .. }))));
    assert!(matches!(scrubber.scrub_bytes(b"GIF89a\x01\x00\x01\x00"), Err(DropReason::Input(_))));
    assert!(matches!(scrubber.scrub_bytes(b"plain text"), Err(DropReason::Input(_))));
    // An oversize camera frame.
    let frame = Image::filled(9000, 2, PixelFormat::Gray8, 0);
    assert!(matches!(scrubber.scrub_image(&frame), Err(DropReason::Input(InputError::TooWide { .. }))));
}
