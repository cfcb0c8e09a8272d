//! [`Scrubber`]: one snapshot from pixels (a camera [`Image`] or encoded JPEG/PNG/WebP bytes) to a JPEG that
//! may leave the printer, or a [`DropReason`]. Everything happens in memory; nothing is written anywhere.
//!
//! The steps, in order: decode within [`InputLimits`] (refusing decompression bombs and oversize images
//! before pixels are allocated), apply the EXIF orientation, fill everything outside the region of interest
//! with the one fill colour and crop to the ROI's bounding box, fill the privacy masks, find faces with the
//! face model and fill their (enlarged) boxes solid, downscale to the maximum side, re-encode as JPEG from
//! the pixels alone, strip every segment that is not structural ([`crate::segments::strip`]), verify the
//! result ([`crate::segments::verify`]) and search it for the printer's MAC and serial. Any failure drops
//! the snapshot: if the face model is missing or fails, nothing is handed on unredacted.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use vigil_frame::{Image, PixelFormat, Polygon};

use crate::config::{FaceConfig, InputLimits, MinimiseConfig, PrivacyConfig};
use crate::faces::{CenterFace, FaceDetector, FaceError};
use crate::identity::HardwareIds;
use crate::segments::{self, SegmentError};

/// Why an input image was refused before any pixel processing.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InputError {
    #[error("input is {got} bytes, more than the limit of {max}")]
    TooManyBytes { got: u64, max: u64 },
    #[error("input format not accepted (only JPEG, PNG and WebP are)")]
    UnsupportedFormat,
    #[error("input is {width}x{height}, larger than the limit of {max_side} per side")]
    TooWide { width: u32, height: u32, max_side: u32 },
    #[error("input is {width}x{height} = {pixels} pixels, more than the limit of {max_pixels} (decompression bomb?)")]
    TooManyPixels { width: u32, height: u32, pixels: u64, max_pixels: u64 },
    #[error("input has no pixels")]
    Empty,
    #[error("input cannot be decoded: {0}")]
    Decode(String),
}

/// Why a snapshot was dropped instead of handed on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DropReason {
    #[error("input refused: {0}")]
    Input(#[from] InputError),
    #[error("the region of interest leaves no pixels of this image")]
    EmptyRoi,
    #[error("face model unavailable or failing, snapshot not passed on unredacted: {0}")]
    Faces(#[from] FaceError),
    #[error("JPEG encoding failed: {0}")]
    Encode(String),
    #[error("the re-encoded JPEG failed verification: {0}")]
    Verify(#[from] SegmentError),
    #[error("the output contains a hardware identifier (MAC or serial)")]
    IdentifierInOutput,
    #[error("consent is off")]
    ConsentOff,
    #[error("no storage region: set `country` in the privacy config")]
    NoRegion,
    #[error("device key unavailable: {0}")]
    DeviceKey(String),
}

impl DropReason {
    /// A stable short code for logs and the audit trail.
    pub fn code(&self) -> &'static str {
        match self {
            DropReason::Input(_) => "input_refused",
            DropReason::EmptyRoi => "empty_roi",
            DropReason::Faces(_) => "face_model_unavailable",
            DropReason::Encode(_) => "encode_failed",
            DropReason::Verify(_) => "verify_failed",
            DropReason::IdentifierInOutput => "identifier_in_output",
            DropReason::ConsentOff => "consent_off",
            DropReason::NoRegion => "no_region",
            DropReason::DeviceKey(_) => "device_key_unavailable",
        }
    }
}

/// A snapshot that passed every step.
#[derive(Debug, Clone, PartialEq)]
pub struct Scrubbed {
    /// The JPEG: SOI, APP0/JFIF, DQT, SOF, DHT, DRI, SOS, RSTn and EOI only.
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// How many face boxes were filled.
    pub faces: usize,
    /// How many segments the stripper removed from the encoder's output (expected 0).
    pub segments_dropped: usize,
}

/// Decodes JPEG, PNG or WebP bytes within `limits`, applying the EXIF orientation, to RGB. Transparent
/// pixels are composited over black so colour hidden under alpha does not survive.
pub fn decode_limited(bytes: &[u8], limits: &InputLimits) -> Result<RgbImage, InputError> {
    if bytes.len() as u64 > limits.max_bytes {
        return Err(InputError::TooManyBytes { got: bytes.len() as u64, max: limits.max_bytes });
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| InputError::Decode(e.to_string()))?;
    match reader.format() {
        Some(ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP) => {}
        _ => return Err(InputError::UnsupportedFormat),
    }
    let mut reader = reader;
    let mut lim = Limits::default();
    lim.max_image_width = Some(limits.max_side);
    lim.max_image_height = Some(limits.max_side);
    // The decoded RGBA buffer plus the decoder's own working memory.
    lim.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(lim);
    let mut decoder = reader.into_decoder().map_err(|e| classify(e, limits))?;
    let (width, height) = decoder.dimensions();
    check_dims(width, height, limits)?;
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| classify(e, limits))?;
    img.apply_orientation(orientation);
    Ok(flatten(img))
}

fn classify(e: image::ImageError, _limits: &InputLimits) -> InputError {
    match e {
        image::ImageError::Limits(l) => InputError::Decode(format!("limit exceeded: {l}")),
        image::ImageError::Unsupported(_) => InputError::UnsupportedFormat,
        other => InputError::Decode(other.to_string()),
    }
}

fn check_dims(width: u32, height: u32, limits: &InputLimits) -> Result<(), InputError> {
    if width == 0 || height == 0 {
        return Err(InputError::Empty);
    }
    if width > limits.max_side || height > limits.max_side {
        return Err(InputError::TooWide { width, height, max_side: limits.max_side });
    }
    let pixels = width as u64 * height as u64;
    if pixels > limits.max_pixels {
        return Err(InputError::TooManyPixels { width, height, pixels, max_pixels: limits.max_pixels });
    }
    Ok(())
}

fn flatten(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    RgbImage::from_fn(w, h, |x, y| {
        let p = rgba.get_pixel(x, y);
        let a = p[3] as u32;
        image::Rgb([0, 1, 2].map(|c| ((p[c] as u32 * a + 127) / 255) as u8))
    })
}

/// Converts a camera image to RGB.
pub fn rgb_from_frame(img: &Image) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let d = img.data();
    let buf: Vec<u8> = match img.format() {
        PixelFormat::Rgb8 => d.to_vec(),
        PixelFormat::Bgr8 => d.chunks_exact(3).flat_map(|p| [p[2], p[1], p[0]]).collect(),
        PixelFormat::Gray8 => d.iter().flat_map(|&g| [g, g, g]).collect(),
    };
    // The frame type guarantees the length; an empty image stands in if it ever did not.
    RgbImage::from_raw(w, h, buf).unwrap_or_else(|| RgbImage::new(0, 0))
}

/// For row `y` of an image `w` pixels wide, the half-open column spans whose pixel centres lie inside the
/// polygon (even-odd rule), with the polygon given in fractions of `w` x `h`.
fn spans(poly: &Polygon, y: u32, w: u32, h: u32) -> Vec<(u32, u32)> {
    let yc = y as f32 + 0.5;
    let pts: Vec<(f32, f32)> = poly.points().iter().map(|p| (p.x * w as f32, p.y * h as f32)).collect();
    let mut xs = Vec::new();
    for i in 0..pts.len() {
        let (a, b) = (pts[i], pts[(i + pts.len() - 1) % pts.len()]);
        if (a.1 > yc) != (b.1 > yc) {
            xs.push(a.0 + (yc - a.1) * (b.0 - a.0) / (b.1 - a.1));
        }
    }
    xs.sort_by(f32::total_cmp);
    xs.chunks_exact(2)
        .map(|c| {
            // Pixel x is inside when c0 <= x + 0.5 < c1.
            let from = (c[0] - 0.5).ceil().clamp(0.0, w as f32) as u32;
            let to = (c[1] - 0.5).ceil().clamp(0.0, w as f32) as u32;
            (from, to.max(from))
        })
        .collect()
}

fn fill_row(img: &mut RgbImage, y: u32, from: u32, to: u32, fill: [u8; 3]) {
    for x in from..to {
        img.put_pixel(x, y, image::Rgb(fill));
    }
}

/// Fills every pixel outside `roi` with `fill`, then crops to the ROI's bounding box. `None` if no pixel
/// is left.
pub fn apply_roi(img: &mut RgbImage, roi: &Polygon, fill: [u8; 3]) -> Option<RgbImage> {
    let (w, h) = img.dimensions();
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for y in 0..h {
        let mut prev = 0;
        for (from, to) in spans(roi, y, w, h) {
            fill_row(img, y, prev, from, fill);
            if to > from {
                x0 = x0.min(from);
                x1 = x1.max(to);
                y0 = y0.min(y);
                y1 = y1.max(y + 1);
            }
            prev = prev.max(to);
        }
        fill_row(img, y, prev, w, fill);
    }
    if x1 <= x0 || y1 <= y0 {
        return None;
    }
    Some(image::imageops::crop_imm(img, x0, y0, x1 - x0, y1 - y0).to_image())
}

/// Fills every pixel inside `mask` with `fill`.
pub fn apply_mask(img: &mut RgbImage, mask: &Polygon, fill: [u8; 3]) {
    let (w, h) = img.dimensions();
    for y in 0..h {
        for (from, to) in spans(mask, y, w, h) {
            fill_row(img, y, from, to, fill);
        }
    }
}

/// The snapshot pipeline. See the module documentation for the steps.
pub struct Scrubber {
    minimise: MinimiseConfig,
    input: InputLimits,
    mask_scale: f32,
    faces: Faces,
    forbidden: Vec<Vec<u8>>,
}

/// The face detector, loaded at the first snapshot that needs it: a pipeline whose owner is not in the
/// programme, or that never sees a failure, never holds the model's memory.
enum Faces {
    Unloaded(FaceConfig),
    Ready(Box<dyn FaceDetector>),
    Failed(FaceError),
}

impl Faces {
    fn get(&mut self) -> Result<&mut Box<dyn FaceDetector>, FaceError> {
        if let Faces::Unloaded(f) = self {
            *self = match CenterFace::load(&f.model, f.threshold, f.detect_max_side, f.threads) {
                Ok(c) => Faces::Ready(Box::new(c)),
                Err(e) => Faces::Failed(e),
            };
        }
        match self {
            Faces::Ready(f) => Ok(f),
            Faces::Failed(e) => Err(e.clone()),
            Faces::Unloaded(f) => {
                Err(FaceError::Missing { path: f.model.clone(), reason: "not loaded".into() })
            }
        }
    }
}

impl Scrubber {
    /// A scrubber with the given face detector.
    pub fn new(cfg: &PrivacyConfig, faces: Box<dyn FaceDetector>) -> Self {
        Self::with_faces(cfg, Faces::Ready(faces))
    }

    /// A scrubber with CenterFace from `cfg.faces.model`, loaded when the first image is scrubbed (or
    /// [`Scrubber::face_model_ready`] is asked). If the model cannot be loaded the scrubber
    /// is still made, and drops every snapshot with [`DropReason::Faces`] (fail closed).
    pub fn from_config(cfg: &PrivacyConfig) -> Self {
        Self::with_faces(cfg, Faces::Unloaded(cfg.faces.clone()))
    }

    fn with_faces(cfg: &PrivacyConfig, faces: Faces) -> Self {
        Self {
            minimise: cfg.minimise.clone(),
            input: cfg.input.clone(),
            mask_scale: cfg.faces.mask_scale,
            faces,
            forbidden: Vec::new(),
        }
    }

    /// Also drops any output containing these identifiers (in their usual spellings, see
    /// [`HardwareIds::forbidden_patterns`]).
    pub fn forbid_identifiers(mut self, ids: &HardwareIds) -> Self {
        self.forbidden = ids.forbidden_patterns().into_iter().filter(|p| p.len() >= 4).collect();
        self
    }

    /// Whether the face model loads (when `false`, every snapshot is dropped); loads it if not yet loaded.
    pub fn face_model_ready(&mut self) -> bool {
        self.faces.get().is_ok()
    }

    /// Whether the face model has been loaded yet (it is loaded at the first scrub).
    pub fn face_model_loaded(&self) -> bool {
        matches!(self.faces, Faces::Ready(_))
    }

    /// Scrubs a camera frame's pixels (no orientation metadata: frames are upright).
    pub fn scrub_image(&mut self, img: &Image) -> Result<Scrubbed, DropReason> {
        check_dims(img.width(), img.height(), &self.input)?;
        self.scrub_rgb(rgb_from_frame(img))
    }

    /// Scrubs an encoded JPEG, PNG or WebP still.
    pub fn scrub_bytes(&mut self, bytes: &[u8]) -> Result<Scrubbed, DropReason> {
        let rgb = decode_limited(bytes, &self.input)?;
        self.scrub_rgb(rgb)
    }

    fn scrub_rgb(&mut self, mut rgb: RgbImage) -> Result<Scrubbed, DropReason> {
        let faces = self.faces.get().map_err(DropReason::Faces)?;
        let fill = self.minimise.fill;
        for mask in &self.minimise.masks {
            apply_mask(&mut rgb, mask, fill);
        }
        if let Some(roi) = &self.minimise.roi {
            rgb = apply_roi(&mut rgb, roi, fill).ok_or(DropReason::EmptyRoi)?;
        }
        let boxes = faces.detect(&rgb)?;
        let (w, h) = rgb.dimensions();
        for b in &boxes {
            let (cx, cy) = ((b.x0 + b.x1) / 2.0, (b.y0 + b.y1) / 2.0);
            let (hw, hh) = ((b.x1 - b.x0) * self.mask_scale / 2.0, (b.y1 - b.y0) * self.mask_scale / 2.0);
            let clampx = |v: f32| v.clamp(0.0, w as f32) as u32;
            let clampy = |v: f32| v.clamp(0.0, h as f32) as u32;
            let (x0, x1) = (clampx((cx - hw).floor()), clampx((cx + hw).ceil()));
            let (y0, y1) = (clampy((cy - hh).floor()), clampy((cy + hh).ceil()));
            for y in y0..y1 {
                fill_row(&mut rgb, y, x0, x1, fill);
            }
        }
        let max_side = self.minimise.max_side;
        if w.max(h) > max_side {
            let s = max_side as f64 / w.max(h) as f64;
            let (nw, nh) = (((w as f64 * s).round() as u32).max(1), ((h as f64 * s).round() as u32).max(1));
            rgb = image::imageops::resize(&rgb, nw, nh, image::imageops::FilterType::Triangle);
        }
        let (w, h) = rgb.dimensions();
        let mut encoded = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, self.minimise.jpeg_quality)
            .encode_image(&rgb)
            .map_err(|e| DropReason::Encode(e.to_string()))?;
        let stripped = segments::strip(&encoded)?;
        segments::verify(&stripped.bytes)?;
        if self.forbidden.iter().any(|p| stripped.bytes.windows(p.len()).any(|w| w == p.as_slice())) {
            return Err(DropReason::IdentifierInOutput);
        }
        Ok(Scrubbed {
            jpeg: stripped.bytes,
            width: w,
            height: h,
            faces: boxes.len(),
            segments_dropped: stripped.dropped.len(),
        })
    }
}
