//! MJPEG over HTTP: one long `multipart/x-mixed-replace` response whose parts are JPEG frames, as ustreamer,
//! mjpg-streamer, crowsnest, go2rtc and ffmpeg's `mpjpeg` muxer serve it.

use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use vigil_frame::Frame;

use crate::spec::LiveOptions;
use crate::{decode_jpeg, frame, CaptureError, FrameSource};

/// Longest header line accepted.
const MAX_LINE: usize = 8 * 1024;
/// Bytes skipped looking for a boundary before the stream is taken for garbage.
const MAX_SKIP: usize = 256 * 1024;
/// Largest part accepted.
const MAX_PART: usize = 16 * 1024 * 1024;

/// Why a multipart stream cannot go on.
#[derive(Debug, PartialEq, Eq)]
pub enum PartError {
    /// The stream ended (cleanly between parts, or in the middle of one).
    Ended(String),
    /// The bytes are not a multipart stream of the expected shape.
    Garbage(String),
    /// Reading failed (timeout, reset).
    Io(String),
}

impl std::fmt::Display for PartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PartError::Ended(s) => write!(f, "stream ended: {s}"),
            PartError::Garbage(s) => write!(f, "not an MJPEG stream: {s}"),
            PartError::Io(s) => write!(f, "read failed: {s}"),
        }
    }
}

/// Splits a multipart byte stream into its parts' bodies. Parts with a `Content-Length` are read by length
/// (ustreamer, mjpg-streamer, ffmpeg); parts without one end at the next boundary.
pub struct MultipartReader<R: BufRead> {
    r: R,
    /// `--boundary`.
    delimiter: Vec<u8>,
    /// Set when the previous part ended by scanning, which consumed the next delimiter line.
    at_headers: bool,
}

impl<R: BufRead> MultipartReader<R> {
    /// `boundary` as given in the Content-Type header (with or without the leading `--`).
    pub fn new(r: R, boundary: &str) -> Self {
        let b = boundary.trim().trim_matches('"');
        let b = b.strip_prefix("--").unwrap_or(b);
        Self { r, delimiter: format!("--{b}").into_bytes(), at_headers: false }
    }

    /// Takes the boundary from the stream's first non-empty line (`--boundary`), for servers that do not
    /// name it in their Content-Type.
    pub fn sniff(r: R) -> Result<Self, PartError> {
        let mut me = Self { r, delimiter: Vec::new(), at_headers: true };
        for _ in 0..4 {
            let line = me.line()?;
            if line.is_empty() {
                continue;
            }
            if line.len() > 2 && line.starts_with(b"--") && line.len() <= 72 {
                me.delimiter = line;
                return Ok(me);
            }
            break;
        }
        Err(PartError::Garbage("the body does not start with a boundary line".into()))
    }

    /// The body of the next part.
    pub fn next_part(&mut self) -> Result<Vec<u8>, PartError> {
        if !self.at_headers {
            self.skip_to_delimiter()?;
        }
        self.at_headers = false;
        let mut length = None;
        let mut header_lines = 0;
        loop {
            let line = self.line()?;
            if line.is_empty() {
                break;
            }
            header_lines += 1;
            if header_lines > 64 {
                return Err(PartError::Garbage("more than 64 part header lines".into()));
            }
            let text = String::from_utf8_lossy(&line);
            if let Some((name, value)) = text.split_once(':') {
                if name.trim().eq_ignore_ascii_case("content-length") {
                    let n: usize = value
                        .trim()
                        .parse()
                        .map_err(|_| PartError::Garbage(format!("bad Content-Length {value:?}")))?;
                    if n > MAX_PART {
                        return Err(PartError::Garbage(format!("part of {n} bytes is too large")));
                    }
                    length = Some(n);
                }
            }
        }
        match length {
            Some(n) => {
                let mut body = vec![0; n];
                self.r.read_exact(&mut body).map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => PartError::Ended("in the middle of a part".into()),
                    _ => PartError::Io(e.to_string()),
                })?;
                Ok(body)
            }
            None => self.body_until_delimiter(),
        }
    }

    /// One line without its CR LF; errors at the end of the stream or on an over-long line.
    fn line(&mut self) -> Result<Vec<u8>, PartError> {
        let mut line = Vec::new();
        let n = (&mut self.r)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| PartError::Io(e.to_string()))?;
        if n == 0 {
            return Err(PartError::Ended("at a part boundary".into()));
        }
        if line.last() != Some(&b'\n') {
            return Err(if n > MAX_LINE {
                PartError::Garbage("header line too long".into())
            } else {
                PartError::Ended("in a header line".into())
            });
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        Ok(line)
    }

    fn skip_to_delimiter(&mut self) -> Result<(), PartError> {
        let mut skipped = 0;
        loop {
            let line = match self.line() {
                Ok(l) => l,
                Err(PartError::Garbage(_)) => {
                    skipped += MAX_LINE;
                    if skipped > MAX_SKIP {
                        return Err(PartError::Garbage("no part boundary found".into()));
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            if line.starts_with(&self.delimiter) {
                if line[self.delimiter.len()..].starts_with(b"--") {
                    return Err(PartError::Ended("closing boundary".into()));
                }
                return Ok(());
            }
            skipped += line.len() + 2;
            if skipped > MAX_SKIP {
                return Err(PartError::Garbage(format!(
                    "no boundary {:?} in {skipped} bytes",
                    String::from_utf8_lossy(&self.delimiter)
                )));
            }
        }
    }

    /// Reads up to the next `CR LF --boundary` line; leaves the reader at the next part's headers.
    fn body_until_delimiter(&mut self) -> Result<Vec<u8>, PartError> {
        let mut body = Vec::new();
        loop {
            let mut chunk = Vec::new();
            let n = (&mut self.r)
                .take(64 * 1024)
                .read_until(b'\n', &mut chunk)
                .map_err(|e| PartError::Io(e.to_string()))?;
            if n == 0 {
                return Err(PartError::Ended("in the middle of a part".into()));
            }
            body.extend_from_slice(&chunk);
            if body.len() > MAX_PART {
                return Err(PartError::Garbage("part without a length grew too large".into()));
            }
            // A delimiter line is "--boundary" followed by CR LF (or "--" when closing).
            if body.ends_with(b"\n") {
                let trimmed_len = body.len() - if body.ends_with(b"\r\n") { 2 } else { 1 };
                let line_start = body[..trimmed_len].iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
                let line = &body[line_start..trimmed_len];
                if line.starts_with(&self.delimiter) {
                    let closing = line[self.delimiter.len()..].starts_with(b"--");
                    let mut end = line_start;
                    if body[..end].ends_with(b"\r\n") {
                        end -= 2;
                    } else if body[..end].ends_with(b"\n") {
                        end -= 1;
                    }
                    body.truncate(end);
                    if closing {
                        return Ok(body);
                    }
                    self.at_headers = true;
                    return Ok(body);
                }
            }
        }
    }
}

/// The boundary parameter of a `multipart/x-mixed-replace` Content-Type.
fn boundary_of(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("boundary").then(|| v.trim().trim_matches('"').to_string())
    })
}

/// One connection to an MJPEG stream URL. Ends with [`CaptureError::Disconnected`] when the connection is
/// refused, closes, stalls longer than the stall timeout or sends something that is not a multipart stream.
pub struct MjpegStream {
    id: Arc<str>,
    parts: MultipartReader<BufReader<Box<dyn Read + Send + Sync>>>,
    opts: LiveOptions,
    started: Instant,
    seq: u64,
}

impl MjpegStream {
    /// Connects and checks that the answer is a multipart stream.
    pub fn connect(url: &str, opts: &LiveOptions) -> Result<Self, CaptureError> {
        let id: Arc<str> = url.into();
        let lost = |reason: String| CaptureError::Disconnected { source_id: url.to_string(), reason };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(opts.connect_timeout)
            .timeout_read(opts.stall_timeout)
            .build();
        let resp = agent.get(url).call().map_err(|e| lost(e.to_string()))?;
        let ct = resp.header("content-type").unwrap_or("").to_string();
        let boundary = boundary_of(&ct).filter(|_| ct.to_ascii_lowercase().starts_with("multipart/"));
        let reader: Box<dyn Read + Send + Sync> = resp.into_reader();
        let reader = BufReader::with_capacity(64 * 1024, reader);
        let parts = match boundary {
            Some(b) => MultipartReader::new(reader, &b),
            // ffmpeg's HTTP server says application/octet-stream unless told otherwise: take the boundary
            // from the first line when it looks like one.
            None => MultipartReader::sniff(reader).map_err(|e| {
                lost(format!(
                    "answered with Content-Type {ct:?} and a body that is not a multipart stream ({e})"
                ))
            })?,
        };
        Ok(Self { id, parts, opts: opts.clone(), started: Instant::now(), seq: 0 })
    }
}

impl FrameSource for MjpegStream {
    fn id(&self) -> &str {
        &self.id
    }

    fn is_live(&self) -> bool {
        true
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        if stopped(&self.opts.stop) {
            return Ok(None);
        }
        let body = self.parts.next_part().map_err(|e| CaptureError::Disconnected {
            source_id: self.id.to_string(),
            reason: e.to_string(),
        })?;
        let seq = self.seq;
        self.seq += 1;
        let t = self.started.elapsed().as_secs_f64();
        let image = decode_jpeg(&body, &self.id, seq, self.opts.decode_min_side)?;
        Ok(Some(frame(seq, t, &self.id, image)))
    }
}

/// Stop flag helper shared by the live sources: true once the pipeline asked to stop.
pub(crate) fn stopped(stop: &Option<Arc<AtomicBool>>) -> bool {
    stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader<'a>(bytes: &'a [u8], boundary: &str) -> MultipartReader<&'a [u8]> {
        MultipartReader::new(bytes, boundary)
    }

    #[test]
    fn parts_with_a_length_are_read_by_length() {
        // The shape ustreamer and ffmpeg's mpjpeg muxer send.
        let s = b"--ffmpeg\r\nContent-type: image/jpeg\r\nContent-length: 5\r\n\r\nab\r\nc\r\n--ffmpeg\r\nContent-Length: 3\r\nX-Timestamp: 1.0\r\n\r\nxyz\r\n";
        let mut r = reader(s, "ffmpeg");
        assert_eq!(r.next_part().unwrap(), b"ab\r\nc");
        assert_eq!(r.next_part().unwrap(), b"xyz");
        assert!(matches!(r.next_part(), Err(PartError::Ended(_))));
    }

    #[test]
    fn parts_without_a_length_end_at_the_next_boundary() {
        let s = b"\r\n--b\r\nContent-Type: image/jpeg\r\n\r\nAAA\nA\r\n--b\r\nContent-Type: image/jpeg\r\n\r\nBB\r\n--b--\r\n";
        let mut r = reader(s, "\"--b\"");
        assert_eq!(r.next_part().unwrap(), b"AAA\nA");
        assert_eq!(r.next_part().unwrap(), b"BB");
        assert!(r.next_part().is_err());
    }

    #[test]
    fn garbage_and_truncation_are_told_apart() {
        let junk = vec![b'x'; 300 * 1024];
        assert!(matches!(reader(&junk, "b").next_part(), Err(PartError::Garbage(_))));
        let cut = b"--b\r\nContent-Length: 100\r\n\r\nshort";
        assert!(matches!(reader(cut, "b").next_part(), Err(PartError::Ended(_))));
        let bad = b"--b\r\nContent-Length: lots\r\n\r\n";
        assert!(matches!(reader(bad, "b").next_part(), Err(PartError::Garbage(_))));
    }

    #[test]
    fn the_boundary_can_be_taken_from_the_first_line() {
        let s = b"--ffmpeg\r\nContent-length: 2\r\n\r\nok\r\n--ffmpeg\r\nContent-length: 1\r\n\r\nz\r\n";
        let mut r = MultipartReader::sniff(&s[..]).unwrap();
        assert_eq!(r.next_part().unwrap(), b"ok");
        assert_eq!(r.next_part().unwrap(), b"z");
        assert!(matches!(MultipartReader::sniff(&b"<html>\r\n"[..]), Err(PartError::Garbage(_))));
    }

    #[test]
    fn the_boundary_comes_from_the_content_type() {
        assert_eq!(
            boundary_of("multipart/x-mixed-replace;boundary=boundarydonotcross").as_deref(),
            Some("boundarydonotcross")
        );
        assert_eq!(boundary_of("multipart/x-mixed-replace; boundary=\"ffmpeg\"").as_deref(), Some("ffmpeg"));
        assert_eq!(boundary_of("image/jpeg"), None);
    }
}
