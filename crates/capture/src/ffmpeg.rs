//! FFmpeg as a child process, for what vigil does not demux itself: video files other than MJPEG Matroska
//! (H.264 `.mp4`, AVI, ...), RTSP streams and V4L2 cameras. `ffmpeg` writes frames to a pipe in a
//! self-describing format: MJPEG passed through undecoded (`-c:v copy -f mjpeg`, split at JPEG markers and
//! decoded by TurboJPEG, at reduced scale when asked) or PPM/PGM pictures (`-f image2pipe -c:v ppm|pgm`,
//! whose headers carry the size). The child is killed and reaped when the reader is dropped; the tail of its
//! standard error is kept for error messages.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vigil_frame::{Frame, Image, ImagePool, PixelFormat};

use crate::decode::JpegDecoder;
use crate::mjpeg::stopped;
use crate::{CaptureError, FrameSource, Timing};

/// Bytes of FFmpeg's standard error kept for messages.
const STDERR_TAIL: usize = 4096;

/// How FFmpeg is asked to write frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    /// The stream's own JPEGs, one after another.
    Mjpeg,
    /// PPM (RGB) pictures.
    Ppm,
    /// PGM (grey) pictures.
    Pgm,
}

impl Output {
    /// The output options, up to and including the `pipe:1` target.
    pub(crate) fn args(self) -> Vec<&'static str> {
        match self {
            Output::Mjpeg => vec!["-c:v", "copy", "-f", "mjpeg", "pipe:1"],
            Output::Ppm => vec![
                "-fps_mode",
                "passthrough",
                "-pix_fmt",
                "rgb24",
                "-c:v",
                "ppm",
                "-f",
                "image2pipe",
                "pipe:1",
            ],
            Output::Pgm => vec![
                "-fps_mode",
                "passthrough",
                "-pix_fmt",
                "gray",
                "-c:v",
                "pgm",
                "-f",
                "image2pipe",
                "pipe:1",
            ],
        }
    }
}

/// A running `ffmpeg` (or `ffprobe`) child. Dropping it kills and reaps the child.
pub(crate) struct FfmpegChild {
    child: Child,
    stderr: Arc<Mutex<VecDeque<u8>>>,
    stderr_thread: Option<JoinHandle<()>>,
    /// Text replaced in messages (a URL with credentials) and what replaces it.
    redact: Option<(String, String)>,
}

/// Starts `program` with `args`, stdout piped; a missing program is a clear error.
pub(crate) fn spawn(
    program: &str,
    args: &[OsString],
    redact: Option<(String, String)>,
) -> Result<(FfmpegChild, ChildStdout), String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => {
                format!("{program} is not installed (Debian: apt-get install ffmpeg); it is needed for this source")
            }
            _ => format!("cannot start {program}: {e}"),
        })?;
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
    let stderr_thread = child.stderr.take().map(|mut err| {
        let tail = tail.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 1024];
            while let Ok(n) = err.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                if let Ok(mut t) = tail.lock() {
                    t.extend(&chunk[..n]);
                    let excess = t.len().saturating_sub(STDERR_TAIL);
                    t.drain(..excess);
                }
            }
        })
    });
    Ok((FfmpegChild { child, stderr: tail, stderr_thread, redact }, stdout))
}

impl FfmpegChild {
    /// The last lines FFmpeg wrote to standard error, on one line.
    pub(crate) fn stderr_tail(&self) -> String {
        let bytes: Vec<u8> = self.stderr.lock().map(|t| t.iter().copied().collect()).unwrap_or_default();
        let mut text = String::from_utf8_lossy(&bytes).split_whitespace().collect::<Vec<_>>().join(" ");
        if let Some((from, to)) = &self.redact {
            text = text.replace(from.as_str(), to);
        }
        text
    }

    /// Waits for the child to exit (its stdout has ended) and for its standard error to be read; the exit
    /// status and the error tail.
    pub(crate) fn finish(&mut self) -> (Option<std::process::ExitStatus>, String) {
        let status = self.child.wait().ok();
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
        (status, self.stderr_tail())
    }
}

impl Drop for FfmpegChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
    }
}

/// What came next on FFmpeg's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Packet {
    /// One JPEG, in the caller's buffer.
    Jpeg,
    /// A picture whose pixels follow: read them with [`PacketReader::read_pixels`].
    Raw { width: u32, height: u32, format: PixelFormat },
}

/// Splits FFmpeg's output into frames.
pub(crate) struct PacketReader<R: Read> {
    r: BufReader<R>,
    output: Output,
    /// A marker code read while scanning entropy-coded data, to be handled next.
    pending_marker: Option<u8>,
}

impl<R: Read> PacketReader<R> {
    pub(crate) fn new(r: R, output: Output) -> Self {
        Self { r: BufReader::with_capacity(256 << 10, r), output, pending_marker: None }
    }

    /// The next packet; `None` at the end of the output.
    pub(crate) fn next(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<Packet>> {
        match self.output {
            Output::Mjpeg => Ok(self.read_jpeg(buf)?.then_some(Packet::Jpeg)),
            Output::Ppm | Output::Pgm => self.read_pnm_header(),
        }
    }

    /// Reads a picture's pixels into `dst` (width * height * channels bytes), turning PPM's RGB into BGR.
    pub(crate) fn read_pixels(&mut self, dst: &mut [u8], format: PixelFormat) -> io::Result<()> {
        self.r.read_exact(dst)?;
        if format == PixelFormat::Bgr8 {
            for px in dst.chunks_exact_mut(3) {
                px.swap(0, 2);
            }
        }
        Ok(())
    }

    fn byte(&mut self) -> io::Result<Option<u8>> {
        let mut b = [0u8];
        match self.r.read_exact(&mut b) {
            Ok(()) => Ok(Some(b[0])),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A PPM (`P6`) or PGM (`P5`) header: magic, width, height, maxval 255.
    fn read_pnm_header(&mut self) -> io::Result<Option<Packet>> {
        let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        let mut tokens: Vec<String> = Vec::with_capacity(4);
        let mut cur = String::new();
        while tokens.len() < 4 {
            let Some(b) = self.byte()? else {
                if tokens.is_empty() && cur.is_empty() {
                    return Ok(None);
                }
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "picture header cut short"));
            };
            if b.is_ascii_whitespace() {
                if !cur.is_empty() {
                    tokens.push(std::mem::take(&mut cur));
                }
            } else if cur.len() > 16 {
                return Err(bad("not a PPM/PGM picture stream".into()));
            } else {
                cur.push(b as char);
            }
        }
        let format = match tokens[0].as_str() {
            "P6" => PixelFormat::Bgr8,
            "P5" => PixelFormat::Gray8,
            m => return Err(bad(format!("unexpected picture type {m:?}"))),
        };
        let num = |s: &str| s.parse::<u32>().map_err(|_| bad(format!("bad picture header field {s:?}")));
        let (width, height, max) = (num(&tokens[1])?, num(&tokens[2])?, num(&tokens[3])?);
        if width == 0 || height == 0 || width > 16384 || height > 16384 || max != 255 {
            return Err(bad(format!("unsupported picture {width}x{height} maxval {max}")));
        }
        Ok(Some(Packet::Raw { width, height, format }))
    }

    /// The next JPEG (SOI to EOI) into `buf`; false at the end of the output. A JPEG cut off by the end
    /// of the output is returned as it is (the decoder then refuses it).
    fn read_jpeg(&mut self, buf: &mut Vec<u8>) -> io::Result<bool> {
        buf.clear();
        // Find the start of image, skipping anything between frames.
        if self.pending_marker.take() != Some(0xD8) {
            loop {
                match self.byte()? {
                    None => return Ok(false),
                    Some(0xFF) => {
                        let mut next = self.byte()?;
                        while next == Some(0xFF) {
                            next = self.byte()?;
                        }
                        match next {
                            None => return Ok(false),
                            Some(0xD8) => break,
                            Some(_) => {}
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        buf.extend_from_slice(&[0xFF, 0xD8]);
        loop {
            let code = match self.pending_marker.take() {
                Some(c) => c,
                None => {
                    let Some(b) = self.byte()? else { return Ok(true) };
                    if b != 0xFF {
                        // Not a marker where one must be: the frame is damaged; hand it on as it is.
                        buf.push(b);
                        return Ok(true);
                    }
                    let mut c = self.byte()?;
                    while c == Some(0xFF) {
                        c = self.byte()?;
                    }
                    let Some(c) = c else { return Ok(true) };
                    c
                }
            };
            if code == 0xD8 {
                // A new image starts before this one ended.
                self.pending_marker = Some(0xD8);
                return Ok(true);
            }
            buf.extend_from_slice(&[0xFF, code]);
            match code {
                0xD9 => return Ok(true),
                0xD0..=0xD7 | 0x01 => continue,
                _ => {}
            }
            let (Some(hi), Some(lo)) = (self.byte()?, self.byte()?) else { return Ok(true) };
            buf.extend_from_slice(&[hi, lo]);
            let len = usize::from(u16::from_be_bytes([hi, lo])).saturating_sub(2);
            let start = buf.len();
            buf.resize(start + len, 0);
            if let Err(e) = self.r.read_exact(&mut buf[start..]) {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    return Ok(true);
                }
                return Err(e);
            }
            if code == 0xDA && !self.entropy_data(buf)? {
                return Ok(true);
            }
        }
    }

    /// Copies entropy-coded data up to the next marker (kept in `pending_marker`); false at end of output.
    fn entropy_data(&mut self, buf: &mut Vec<u8>) -> io::Result<bool> {
        loop {
            let chunk = self.r.fill_buf()?;
            if chunk.is_empty() {
                return Ok(false);
            }
            match chunk.iter().position(|b| *b == 0xFF) {
                None => {
                    let n = chunk.len();
                    buf.extend_from_slice(chunk);
                    self.r.consume(n);
                }
                Some(i) => {
                    buf.extend_from_slice(&chunk[..i]);
                    self.r.consume(i + 1);
                    let mut next = self.byte()?;
                    while next == Some(0xFF) {
                        next = self.byte()?;
                    }
                    match next {
                        None => {
                            buf.push(0xFF);
                            return Ok(false);
                        }
                        // Stuffed zero byte and restart markers belong to the entropy-coded data.
                        Some(c @ (0x00 | 0xD0..=0xD7)) => buf.extend_from_slice(&[0xFF, c]),
                        Some(c) => {
                            self.pending_marker = Some(c);
                            return Ok(true);
                        }
                    }
                }
            }
        }
    }
}

/// What `ffprobe` says about a file's first video stream.
#[derive(Clone, Debug, Default)]
pub(crate) struct Probe {
    pub codec: String,
    pub pix_fmt: String,
    pub fps: f64,
    /// Presentation times of its packets, in order: one per frame.
    pub times: Vec<f64>,
    /// The frame count of an MP4/MOV index; `None` for other containers, whose counts are not always
    /// frames (an AVI remuxed from Matroska declares its stream length in ticks of a finer time base).
    pub nb_frames: Option<u64>,
}

/// Runs `ffprobe` on `path`.
pub(crate) fn probe(path: &Path) -> Result<Probe, String> {
    let args: Vec<OsString> = [
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=codec_name,pix_fmt,avg_frame_rate,r_frame_rate,nb_frames:packet=pts_time:format=format_name",
        "-of",
        "json",
    ]
    .iter()
    .map(OsString::from)
    .chain([path.as_os_str().to_owned()])
    .collect();
    let (mut child, mut out) = spawn("ffprobe", &args, None)?;
    let mut text = String::new();
    out.read_to_string(&mut text).map_err(|e| format!("reading ffprobe's output: {e}"))?;
    let (status, err) = child.finish();
    if !status.is_some_and(|s| s.success()) {
        return Err(if err.is_empty() { "ffprobe cannot read it".into() } else { err });
    }
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("ffprobe's output: {e}"))?;
    let stream = v["streams"].get(0).ok_or("no video stream")?;
    let rate = |key: &str| -> f64 {
        let s = stream[key].as_str().unwrap_or("0/0");
        let (n, d) = s.split_once('/').unwrap_or((s, "1"));
        match (n.parse::<f64>(), d.parse::<f64>()) {
            (Ok(n), Ok(d)) if d > 0.0 && n > 0.0 => n / d,
            _ => 0.0,
        }
    };
    let fps = match rate("avg_frame_rate") {
        f if f > 0.0 => f,
        _ => rate("r_frame_rate"),
    };
    let mut times: Vec<f64> = v["packets"]
        .as_array()
        .map(|p| p.iter().filter_map(|p| p["pts_time"].as_str()?.parse::<f64>().ok()).collect())
        .unwrap_or_default();
    times.sort_by(f64::total_cmp);
    let indexed = v["format"]["format_name"].as_str().is_some_and(|f| f.split(',').any(|n| n == "mov"));
    Ok(Probe {
        codec: stream["codec_name"].as_str().unwrap_or_default().to_string(),
        pix_fmt: stream["pix_fmt"].as_str().unwrap_or_default().to_string(),
        fps,
        times,
        nb_frames: stream["nb_frames"].as_str().and_then(|s| s.parse().ok()).filter(|_| indexed),
    })
}

/// Turns one packet into an image: JPEGs through `jpeg`, pictures read into a buffer from `pool`.
fn picture<R: Read>(
    reader: &mut PacketReader<R>,
    packet: Packet,
    buf: &[u8],
    jpeg: &mut JpegDecoder,
    pool: &mut ImagePool,
) -> Result<Arc<Image>, PictureError> {
    match packet {
        Packet::Jpeg => jpeg.decode_pooled(buf, pool).map_err(PictureError::Corrupt),
        Packet::Raw { width, height, format } => pool
            .fill(width, height, format, |dst| reader.read_pixels(dst, format))
            .map_err(|e| PictureError::Stream(e.to_string())),
    }
}

enum PictureError {
    /// This frame cannot be decoded; the next may.
    Corrupt(String),
    /// The output stream itself broke.
    Stream(String),
}

/// Pixel buffers kept for reuse (as for Matroska files).
const POOLED_FRAMES: usize = 24;

/// A video file decoded by an `ffmpeg` child process.
pub(crate) struct FfmpegFile {
    id: Arc<str>,
    child: FfmpegChild,
    reader: PacketReader<ChildStdout>,
    jpeg: JpegDecoder,
    pool: ImagePool,
    buf: Vec<u8>,
    timing: Timing,
    probe: Probe,
    declared: Option<u64>,
    next_seq: u64,
    finished: bool,
}

impl FfmpegFile {
    pub(crate) fn open(path: &Path, timing: Timing, min_side: Option<u32>) -> Result<Self, String> {
        let probe = probe(path)?;
        let output = if probe.codec == "mjpeg" {
            Output::Mjpeg
        } else if probe.pix_fmt.starts_with("gray") {
            Output::Pgm
        } else {
            Output::Ppm
        };
        let mut args: Vec<OsString> =
            ["-hide_banner", "-nostdin", "-loglevel", "error", "-i"].iter().map(OsString::from).collect();
        args.push(path.as_os_str().to_owned());
        args.extend(["-map", "0:v:0", "-an", "-sn", "-dn"].iter().map(OsString::from));
        args.extend(output.args().into_iter().map(OsString::from));
        let (child, stdout) = spawn("ffmpeg", &args, None)?;
        // The container's own count (an MP4 index) holds even when the data is cut short; the packets
        // ffprobe could read are the fallback.
        let declared = match (probe.nb_frames, probe.times.len()) {
            (Some(n), _) if n > 0 => Some(n),
            (_, 0) => None,
            (_, n) => Some(n as u64),
        };
        Ok(Self {
            id: path.display().to_string().into(),
            child,
            reader: PacketReader::new(stdout, output),
            jpeg: JpegDecoder::new(min_side)?,
            pool: ImagePool::new(POOLED_FRAMES),
            buf: Vec::new(),
            timing,
            probe,
            declared,
            next_seq: 0,
            finished: false,
        })
    }

    pub(crate) fn fps(&self) -> f64 {
        self.probe.fps
    }

    pub(crate) fn declared(&self) -> Option<u64> {
        self.declared
    }

    fn media_time(&self, seq: u64) -> f64 {
        match self.timing {
            Timing::Interval(s) => seq as f64 * s,
            Timing::Media => match self.probe.times.get(seq as usize) {
                Some(t) => *t,
                None if self.probe.fps > 0.0 => seq as f64 / self.probe.fps,
                None => seq as f64,
            },
        }
    }

    fn end(&mut self, broken: Option<String>) -> Result<Option<Frame>, CaptureError> {
        self.finished = true;
        let (status, tail) = self.child.finish();
        let failed = !status.is_some_and(|s| s.success());
        let short = self.declared.is_some_and(|d| self.next_seq + 1 < d);
        if short || broken.is_some() || (failed && self.next_seq == 0) {
            let mut reason =
                broken.unwrap_or_else(|| "the file ends early or the rest cannot be decoded".into());
            if !tail.is_empty() {
                reason = format!("{reason} (ffmpeg: {tail})");
            }
            return Err(CaptureError::Truncated {
                source_id: self.id.to_string(),
                last_seq: self.next_seq.saturating_sub(1),
                declared: self.declared.unwrap_or(self.next_seq),
                reason,
            });
        }
        Ok(None)
    }

    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        if self.finished {
            return Ok(None);
        }
        let packet = match self.reader.next(&mut self.buf) {
            Ok(Some(p)) => p,
            Ok(None) => return self.end(None),
            Err(e) => return self.end(Some(format!("reading ffmpeg's output: {e}"))),
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let t = self.media_time(seq);
        match picture(&mut self.reader, packet, &self.buf, &mut self.jpeg, &mut self.pool) {
            Ok(image) => Ok(Some(Frame::from_shared(seq, t, self.id.clone(), image))),
            Err(PictureError::Corrupt(reason)) => {
                Err(CaptureError::CorruptFrame { source_id: self.id.to_string(), seq, reason })
            }
            Err(PictureError::Stream(reason)) => {
                self.next_seq -= 1;
                self.end(Some(format!("reading ffmpeg's output: {reason}")))
            }
        }
    }
}

/// What the reader thread of a live source hands over.
enum Msg {
    Frame(Packet, Vec<u8>),
    End(String),
}

/// A live source read by an `ffmpeg` child: a reader thread splits its output into frames and passes them
/// through a bounded channel, so that silence longer than the stall timeout is noticed however FFmpeg
/// behaves.
pub(crate) struct FfmpegLive {
    id: Arc<str>,
    child: FfmpegChild,
    rx: Receiver<Msg>,
    reader_thread: Option<JoinHandle<()>>,
    jpeg: JpegDecoder,
    stall: Duration,
    stop: Option<Arc<AtomicBool>>,
    first: Option<(Packet, Vec<u8>)>,
    started: Instant,
    seq: u64,
}

impl FfmpegLive {
    /// Starts `ffmpeg args` and waits up to `open_timeout` for its first frame; an error (with FFmpeg's own
    /// message) when none comes.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        id: Arc<str>,
        args: &[OsString],
        output: Output,
        redact: Option<(String, String)>,
        open_timeout: Duration,
        stall: Duration,
        min_side: Option<u32>,
        stop: Option<Arc<AtomicBool>>,
    ) -> Result<Self, String> {
        let (child, stdout) = spawn("ffmpeg", args, redact)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let reader_thread = std::thread::spawn(move || read_loop(PacketReader::new(stdout, output), tx));
        let mut me = Self {
            id,
            child,
            rx,
            reader_thread: Some(reader_thread),
            jpeg: JpegDecoder::new(min_side)?,
            stall,
            stop,
            first: None,
            started: Instant::now(),
            seq: 0,
        };
        match me.receive(open_timeout) {
            Ok(Some(first)) => {
                me.first = Some(first);
                me.started = Instant::now();
                Ok(me)
            }
            Ok(None) => Err("stopped".into()),
            Err(reason) => Err(reason),
        }
    }

    /// The first frame's size and format, once open.
    pub(crate) fn first_size(&self) -> Option<(u32, u32)> {
        match &self.first {
            Some((Packet::Raw { width, height, .. }, _)) => Some((*width, *height)),
            Some((Packet::Jpeg, bytes)) => crate::jpeg_size(bytes),
            None => None,
        }
    }

    /// The next message within `within`, checking the stop flag meanwhile; `Ok(None)` when stopped.
    fn receive(&mut self, within: Duration) -> Result<Option<(Packet, Vec<u8>)>, String> {
        let deadline = Instant::now() + within;
        loop {
            if stopped(&self.stop) {
                return Ok(None);
            }
            let now = Instant::now();
            if now >= deadline {
                let tail = self.child.stderr_tail();
                return Err(if tail.is_empty() {
                    format!("no frame within {within:?}")
                } else {
                    format!("no frame within {within:?} (ffmpeg: {tail})")
                });
            }
            match self.rx.recv_timeout((deadline - now).min(Duration::from_millis(100))) {
                Ok(Msg::Frame(p, b)) => return Ok(Some((p, b))),
                Ok(Msg::End(reason)) => return Err(self.ended(reason)),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return Err(self.ended("the stream ended".into())),
            }
        }
    }

    fn ended(&mut self, reason: String) -> String {
        // Give FFmpeg a moment to exit and write its last words.
        let until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < until && matches!(self.child.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(20));
        let tail = self.child.stderr_tail();
        if tail.is_empty() {
            reason
        } else {
            format!("{reason} (ffmpeg: {tail})")
        }
    }

    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        let (packet, bytes) = match self.first.take() {
            Some(f) => f,
            None => match self.receive(self.stall) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(None),
                Err(reason) => {
                    return Err(CaptureError::Disconnected { source_id: self.id.to_string(), reason });
                }
            },
        };
        let seq = self.seq;
        self.seq += 1;
        let t = self.started.elapsed().as_secs_f64();
        let image = match packet {
            Packet::Jpeg => self.jpeg.decode(&bytes),
            Packet::Raw { width, height, format } => {
                Image::new(width, height, format, bytes).map_err(|e| e.to_string())
            }
        }
        .map_err(|reason| CaptureError::CorruptFrame {
            source_id: self.id.to_string(),
            seq,
            reason,
        })?;
        Ok(Some(crate::frame(seq, t, &self.id, image)))
    }
}

impl Drop for FfmpegLive {
    fn drop(&mut self) {
        // Killing the child closes its stdout, which ends the reader thread.
        let _ = self.child.child.kill();
        let _ = self.child.child.wait();
        while self.rx.try_recv().is_ok() {}
        drop(std::mem::replace(&mut self.rx, std::sync::mpsc::sync_channel(0).1));
        if let Some(t) = self.reader_thread.take() {
            let _ = t.join();
        }
    }
}

fn read_loop(mut reader: PacketReader<ChildStdout>, tx: SyncSender<Msg>) {
    loop {
        let mut buf = Vec::new();
        let msg = match reader.next(&mut buf) {
            Ok(Some(Packet::Jpeg)) => Msg::Frame(Packet::Jpeg, buf),
            Ok(Some(p @ Packet::Raw { width, height, format })) => {
                buf.resize(width as usize * height as usize * format.channels(), 0);
                match reader.read_pixels(&mut buf, format) {
                    Ok(()) => Msg::Frame(p, buf),
                    Err(e) => Msg::End(format!("reading ffmpeg's output: {e}")),
                }
            }
            Ok(None) => Msg::End("the stream ended".into()),
            Err(e) => Msg::End(format!("reading ffmpeg's output: {e}")),
        };
        let end = matches!(msg, Msg::End(_));
        if tx.send(msg).is_err() || end {
            return;
        }
    }
}

impl FrameSource for FfmpegFile {
    fn id(&self) -> &str {
        &self.id
    }
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        FfmpegFile::next_frame(self)
    }
    fn len_hint(&self) -> Option<u64> {
        self.declared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpegs_are_split_at_their_markers_and_garbage_between_is_skipped() {
        let a = crate::decode::tests::jpeg(64, 48);
        let b = crate::decode::tests::jpeg(32, 16);
        let mut stream = Vec::new();
        stream.extend_from_slice(&a);
        stream.extend_from_slice(b"junk\xFF\x00");
        stream.extend_from_slice(&b);
        stream.extend_from_slice(&a[..a.len() / 2]);
        let mut r = PacketReader::new(&stream[..], Output::Mjpeg);
        let mut buf = Vec::new();
        assert_eq!(r.next(&mut buf).unwrap(), Some(Packet::Jpeg));
        assert_eq!(buf, a);
        assert_eq!(r.next(&mut buf).unwrap(), Some(Packet::Jpeg));
        assert_eq!(buf, b);
        // The cut-off last one is handed on as it is (and the decoder refuses it).
        assert_eq!(r.next(&mut buf).unwrap(), Some(Packet::Jpeg));
        assert!(buf.len() < a.len() && crate::decode_jpeg(&buf, "s", 2, None).is_err());
        assert_eq!(r.next(&mut buf).unwrap(), None);
    }

    #[test]
    fn pictures_are_read_with_their_size_and_become_bgr() {
        let mut stream = b"P6\n2 1\n255\n".to_vec();
        stream.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        stream.extend_from_slice(b"P5\n1 1\n255\n\x09");
        let mut r = PacketReader::new(&stream[..], Output::Ppm);
        let mut buf = Vec::new();
        let p = r.next(&mut buf).unwrap();
        assert_eq!(p, Some(Packet::Raw { width: 2, height: 1, format: PixelFormat::Bgr8 }));
        let mut px = [0u8; 6];
        r.read_pixels(&mut px, PixelFormat::Bgr8).unwrap();
        assert_eq!(px, [3, 2, 1, 6, 5, 4]);
        assert_eq!(
            r.next(&mut buf).unwrap(),
            Some(Packet::Raw { width: 1, height: 1, format: PixelFormat::Gray8 })
        );
        let mut g = [0u8; 1];
        r.read_pixels(&mut g, PixelFormat::Gray8).unwrap();
        assert_eq!(g, [9]);
        assert_eq!(r.next(&mut buf).unwrap(), None);
    }
}
