//! `vigil-frame` holds the types every stage of vigil passes along: a [`Frame`] is one picture from a
//! camera or a file (its [`Image`] pixels, a sequence number, the media timestamp and the id of the source
//! it came from), and the geometry types ([`Point`], [`Rect`], [`Polygon`]) that detection results, regions
//! of interest and privacy masks are expressed in. It has no I/O and no dependency on OpenCV or ONNX Runtime,
//! so every other crate can use it.
//!
//! Pixels are read-only once captured: a frame holds them in an [`Arc`] so stages share them without copying.
//! An [`ImagePool`] lets a source reuse the buffers of frames every stage has let go of, so the steady state
//! allocates nothing per frame.

mod geometry;
mod pool;

pub use geometry::{Point, Polygon, Rect};
pub use pool::ImagePool;

use std::sync::Arc;

/// How the bytes of an [`Image`] are laid out. All formats are 8 bits per channel, rows packed with no padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    /// One byte per pixel.
    Gray8,
    /// Blue, green, red (OpenCV's order).
    Bgr8,
    /// Red, green, blue.
    Rgb8,
}

impl PixelFormat {
    /// Bytes per pixel.
    pub fn channels(self) -> usize {
        match self {
            PixelFormat::Gray8 => 1,
            PixelFormat::Bgr8 | PixelFormat::Rgb8 => 3,
        }
    }
}

/// Errors from building frame types out of raw parts.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The buffer length does not match `width * height * channels`.
    #[error("pixel buffer holds {got} bytes but a {width}x{height} {format:?} image needs {want}")]
    BufferSize { width: u32, height: u32, format: PixelFormat, got: usize, want: usize },
    /// A polygon needs at least three points.
    #[error("a polygon needs at least 3 points, got {0}")]
    PolygonTooSmall(usize),
}

/// A packed 8-bit image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    width: u32,
    height: u32,
    format: PixelFormat,
    data: Vec<u8>,
}

impl Image {
    /// Wraps a packed buffer, checking its length.
    pub fn new(width: u32, height: u32, format: PixelFormat, data: Vec<u8>) -> Result<Self, FrameError> {
        let want = width as usize * height as usize * format.channels();
        if data.len() != want {
            return Err(FrameError::BufferSize { width, height, format, got: data.len(), want });
        }
        Ok(Self { width, height, format, data })
    }

    /// A new image filled with one byte value.
    pub fn filled(width: u32, height: u32, format: PixelFormat, value: u8) -> Self {
        let len = width as usize * height as usize * format.channels();
        Self { width, height, format, data: vec![value; len] }
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// The packed pixel bytes, row after row.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Mutable access to the pixel bytes (for a stage that owns the image before it is shared).
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Gives the buffer back, e.g. to a pool.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    /// Makes this image `width` x `height` in `format`, keeping the buffer when it is large enough (the pixel
    /// values are then stale until overwritten).
    pub fn reshape(&mut self, width: u32, height: u32, format: PixelFormat) {
        let len = width as usize * height as usize * format.channels();
        self.data.resize(len, 0);
        (self.width, self.height, self.format) = (width, height, format);
    }

    /// The bounds of the image as a rectangle in pixels.
    pub fn bounds(&self) -> Rect {
        Rect::new(0.0, 0.0, self.width as f32, self.height as f32)
    }
}

/// One picture from a source, with where and when it was taken.
#[derive(Clone, Debug)]
pub struct Frame {
    /// 0-based index of the frame as read from its source (corrupt frames that were skipped keep their index).
    pub seq: u64,
    /// Media time in seconds since the start of the source.
    pub t: f64,
    /// Which source the frame came from (a path, a device or a URL).
    pub source: Arc<str>,
    /// The pixels, shared read-only between stages.
    pub image: Arc<Image>,
}

impl Frame {
    pub fn new(seq: u64, t: f64, source: Arc<str>, image: Image) -> Self {
        Self { seq, t, source, image: Arc::new(image) }
    }

    /// A frame around pixels already shared, e.g. a buffer from an [`ImagePool`].
    pub fn from_shared(seq: u64, t: f64, source: Arc<str>, image: Arc<Image>) -> Self {
        Self { seq, t, source, image }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_rejects_a_buffer_of_the_wrong_length() {
        let err = Image::new(4, 2, PixelFormat::Bgr8, vec![0; 10]).unwrap_err();
        assert_eq!(
            err,
            FrameError::BufferSize { width: 4, height: 2, format: PixelFormat::Bgr8, got: 10, want: 24 }
        );
    }

    #[test]
    fn image_accepts_a_packed_buffer() {
        let img = Image::new(4, 2, PixelFormat::Gray8, vec![7; 8]).unwrap();
        assert_eq!(img.data().len(), 8);
        assert_eq!(img.bounds(), Rect::new(0.0, 0.0, 4.0, 2.0));
    }
}
