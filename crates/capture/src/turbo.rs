//! A small safe wrapper over libjpeg-turbo's TurboJPEG API (`turbojpeg.h`, libjpeg-turbo 2.x): one
//! decompressor or compressor handle, reused for every frame of a source.

use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_uchar, c_ulong, c_void};

use vigil_frame::PixelFormat;

type TjHandle = *mut c_void;

const TJPF_BGR: c_int = 1;
const TJPF_GRAY: c_int = 6;
const TJSAMP_444: c_int = 0;
const TJSAMP_GRAY: c_int = 3;
/// Treat libjpeg warnings (premature end of data, corrupt entropy data, ...) as errors: a damaged frame is
/// refused instead of decoded into grey blocks.
const TJFLAG_STOPONWARNING: c_int = 8192;
/// Never let tjCompress2 reallocate the output buffer (it is sized with tjBufSize).
const TJFLAG_NOREALLOC: c_int = 1024;

extern "C" {
    fn tjInitDecompress() -> TjHandle;
    fn tjInitCompress() -> TjHandle;
    fn tjDecompressHeader3(
        handle: TjHandle,
        jpeg_buf: *const c_uchar,
        jpeg_size: c_ulong,
        width: *mut c_int,
        height: *mut c_int,
        jpeg_subsamp: *mut c_int,
        jpeg_colorspace: *mut c_int,
    ) -> c_int;
    fn tjDecompress2(
        handle: TjHandle,
        jpeg_buf: *const c_uchar,
        jpeg_size: c_ulong,
        dst_buf: *mut c_uchar,
        width: c_int,
        pitch: c_int,
        height: c_int,
        pixel_format: c_int,
        flags: c_int,
    ) -> c_int;
    fn tjCompress2(
        handle: TjHandle,
        src_buf: *const c_uchar,
        width: c_int,
        pitch: c_int,
        height: c_int,
        pixel_format: c_int,
        jpeg_buf: *mut *mut c_uchar,
        jpeg_size: *mut c_ulong,
        jpeg_subsamp: c_int,
        jpeg_qual: c_int,
        flags: c_int,
    ) -> c_int;
    fn tjBufSize(width: c_int, height: c_int, jpeg_subsamp: c_int) -> c_ulong;
    fn tjGetErrorStr2(handle: TjHandle) -> *mut c_char;
    fn tjGetErrorCode(handle: TjHandle) -> c_int;
    fn tjDestroy(handle: TjHandle) -> c_int;
}

/// What a JPEG header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JpegHeader {
    pub width: u32,
    pub height: u32,
    /// [`PixelFormat::Gray8`] for a one-component JPEG, otherwise [`PixelFormat::Bgr8`].
    pub format: PixelFormat,
}

/// The last error of `handle` as text, with TurboJPEG's classification.
fn last_error(handle: TjHandle) -> String {
    // SAFETY: `handle` is a live handle; tjGetErrorStr2 returns a NUL-terminated string owned by the handle
    // (or by the library for a null handle), valid until the next call on it, and it is copied at once.
    let (text, code) = unsafe {
        let p = tjGetErrorStr2(handle);
        let text = if p.is_null() {
            "unknown TurboJPEG error".to_string()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        };
        (text, tjGetErrorCode(handle))
    };
    // TJERR_WARNING is 0: with TJFLAG_STOPONWARNING a warning (damaged data) is what stopped the decoder.
    if code == 0 {
        format!("damaged JPEG data: {text}")
    } else {
        text
    }
}

fn to_int(v: usize, what: &str) -> Result<c_int, String> {
    c_int::try_from(v).map_err(|_| format!("{what} {v} is too large"))
}

/// A TurboJPEG decompressor. Not shared between threads; moving it to another thread is fine.
pub struct Decompressor {
    handle: TjHandle,
}

// SAFETY: a TurboJPEG handle holds no thread-affine state; it is only used through `&mut self`.
unsafe impl Send for Decompressor {}

impl Decompressor {
    pub fn new() -> Result<Self, String> {
        // SAFETY: no arguments; a null result means failure.
        let handle = unsafe { tjInitDecompress() };
        if handle.is_null() {
            return Err(format!("cannot start the JPEG decoder: {}", last_error(handle)));
        }
        Ok(Self { handle })
    }

    /// Reads the frame header: size and whether the JPEG is greyscale.
    pub fn header(&mut self, jpeg: &[u8]) -> Result<JpegHeader, String> {
        if jpeg.is_empty() {
            return Err("empty JPEG data".into());
        }
        let (mut w, mut h, mut subsamp, mut colorspace) = (0, 0, 0, 0);
        // SAFETY: the pointer and length describe `jpeg`; the out-pointers are valid locals.
        let rc = unsafe {
            tjDecompressHeader3(
                self.handle,
                jpeg.as_ptr(),
                jpeg.len() as c_ulong,
                &mut w,
                &mut h,
                &mut subsamp,
                &mut colorspace,
            )
        };
        if rc != 0 {
            return Err(last_error(self.handle));
        }
        if w <= 0 || h <= 0 {
            return Err(format!("JPEG header gives a {w}x{h} image"));
        }
        let format = if subsamp == TJSAMP_GRAY { PixelFormat::Gray8 } else { PixelFormat::Bgr8 };
        Ok(JpegHeader { width: w as u32, height: h as u32, format })
    }

    /// Decodes `jpeg` into `dst`, scaled to `width` x `height` (one of the sizes the DCT scaling factors give
    /// for this JPEG), as `format` with rows packed tightly. `dst` must hold exactly width * height *
    /// channels bytes.
    pub fn decode_into(
        &mut self,
        jpeg: &[u8],
        width: u32,
        height: u32,
        format: PixelFormat,
        dst: &mut [u8],
    ) -> Result<(), String> {
        let (pf, channels) = match format {
            PixelFormat::Bgr8 => (TJPF_BGR, 3usize),
            PixelFormat::Gray8 => (TJPF_GRAY, 1usize),
            #[allow(unreachable_patterns)]
            other => return Err(format!("cannot decode a JPEG to {other:?}")),
        };
        let pitch = width as usize * channels;
        if dst.len() != pitch * height as usize {
            return Err(format!(
                "a {width}x{height} frame needs {} bytes, got {}",
                pitch * height as usize,
                dst.len()
            ));
        }
        let (w, h, p) =
            (to_int(width as usize, "width")?, to_int(height as usize, "height")?, to_int(pitch, "pitch")?);
        // SAFETY: `jpeg` is read only within its length; `dst` holds pitch * height bytes, all that
        // tjDecompress2 writes for this width, pitch, height and pixel format.
        let rc = unsafe {
            tjDecompress2(
                self.handle,
                jpeg.as_ptr(),
                jpeg.len() as c_ulong,
                dst.as_mut_ptr(),
                w,
                p,
                h,
                pf,
                TJFLAG_STOPONWARNING,
            )
        };
        if rc != 0 {
            return Err(last_error(self.handle));
        }
        Ok(())
    }
}

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: the handle came from tjInitDecompress and is destroyed once.
        unsafe {
            tjDestroy(self.handle);
        }
    }
}

/// A TurboJPEG compressor (for tests and benchmarks that need JPEGs of a given size).
pub struct Compressor {
    handle: TjHandle,
    out: Vec<u8>,
}

// SAFETY: as for `Decompressor`.
unsafe impl Send for Compressor {}

impl Compressor {
    pub fn new() -> Result<Self, String> {
        // SAFETY: no arguments; a null result means failure.
        let handle = unsafe { tjInitCompress() };
        if handle.is_null() {
            return Err(format!("cannot start the JPEG encoder: {}", last_error(handle)));
        }
        Ok(Self { handle, out: Vec::new() })
    }

    /// Encodes tightly packed BGR or grey pixels at `quality` (1..=100); 4:4:4 for colour.
    pub fn encode(
        &mut self,
        pixels: &[u8],
        width: u32,
        height: u32,
        format: PixelFormat,
        quality: u8,
    ) -> Result<&[u8], String> {
        let (pf, channels, subsamp) = match format {
            PixelFormat::Bgr8 => (TJPF_BGR, 3usize, TJSAMP_444),
            PixelFormat::Gray8 => (TJPF_GRAY, 1usize, TJSAMP_GRAY),
            #[allow(unreachable_patterns)]
            other => return Err(format!("cannot encode {other:?} as JPEG")),
        };
        let pitch = width as usize * channels;
        if width == 0 || height == 0 || pixels.len() != pitch * height as usize {
            return Err(format!("{} bytes do not make a {width}x{height} image", pixels.len()));
        }
        let (w, h, p) =
            (to_int(width as usize, "width")?, to_int(height as usize, "height")?, to_int(pitch, "pitch")?);
        // SAFETY: plain arithmetic on valid sizes.
        let cap = unsafe { tjBufSize(w, h, subsamp) };
        if cap == c_ulong::MAX {
            return Err(format!("{width}x{height} is too large to encode"));
        }
        self.out.resize(cap as usize, 0);
        let mut buf = self.out.as_mut_ptr();
        let mut size: c_ulong = cap;
        // SAFETY: `pixels` holds pitch * height bytes; `buf` points at `cap` bytes, the worst case tjBufSize
        // gives, and TJFLAG_NOREALLOC forbids the library from replacing it.
        let rc = unsafe {
            tjCompress2(
                self.handle,
                pixels.as_ptr(),
                w,
                p,
                h,
                pf,
                &mut buf,
                &mut size,
                subsamp,
                c_int::from(quality.clamp(1, 100)),
                TJFLAG_NOREALLOC,
            )
        };
        if rc != 0 {
            return Err(last_error(self.handle));
        }
        Ok(&self.out[..(size as usize).min(self.out.len())])
    }
}

impl Drop for Compressor {
    fn drop(&mut self) {
        // SAFETY: the handle came from tjInitCompress and is destroyed once.
        unsafe {
            tjDestroy(self.handle);
        }
    }
}
