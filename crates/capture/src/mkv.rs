//! A small streaming Matroska (EBML) demuxer for MJPEG video: the file is read once, front to back, one
//! block at a time into a reused buffer. It reads what vigil needs: Segment > Info (TimecodeScale,
//! Duration), Tracks (the first video track: TrackNumber, CodecID, DefaultDuration, PixelWidth/Height) and
//! Cluster (Timecode) > SimpleBlock / BlockGroup > Block; everything else (SeekHead, Cues, Tags, Void, ...)
//! is skipped. A file cut short is reported as such, with whether the cut fell inside a cluster.

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::path::Path;

const EBML: u32 = 0x1A45_DFA3;
const DOC_TYPE: u32 = 0x4282;
const SEGMENT: u32 = 0x1853_8067;
const INFO: u32 = 0x1549_A966;
const TIMECODE_SCALE: u32 = 0x2A_D7B1;
const DURATION: u32 = 0x4489;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const TRACK_TYPE: u32 = 0x83;
const CODEC_ID: u32 = 0x86;
const DEFAULT_DURATION: u32 = 0x23_E383;
const VIDEO: u32 = 0xE0;
const PIXEL_WIDTH: u32 = 0xB0;
const PIXEL_HEIGHT: u32 = 0xBA;
const CLUSTER: u32 = 0x1F43_B675;
const TIMECODE: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;
const BLOCK_GROUP: u32 = 0xA0;
const BLOCK: u32 = 0xA1;

/// Elements that may appear directly in a Cluster; any other ID ends a cluster of unknown size.
const CLUSTER_CHILDREN: [u32; 9] =
    [TIMECODE, SIMPLE_BLOCK, BLOCK_GROUP, 0xA7, 0xAB, 0x5854, 0xAF, 0xEC, 0xBF];

/// Largest element read into memory (a block, or a header element): 256 MiB.
const MAX_ELEMENT: u64 = 256 << 20;

/// The video track of a Matroska file.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MkvInfo {
    pub codec_id: String,
    pub track: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Nanoseconds per timecode unit.
    pub timecode_scale: u64,
    /// Segment duration in seconds, when the header gives it.
    pub duration_s: Option<f64>,
    /// Nanoseconds per frame, when the track declares a constant rate.
    pub default_duration_ns: Option<u64>,
}

impl MkvInfo {
    /// Frames per second the track declares (0 when unknown).
    pub fn fps(&self) -> f64 {
        self.default_duration_ns.filter(|d| *d > 0).map_or(0.0, |d| 1e9 / d as f64)
    }

    /// Frames the header declares: duration over frame duration.
    pub fn declared_frames(&self) -> Option<u64> {
        let d = self.duration_s?;
        let per = self.default_duration_ns.filter(|d| *d > 0)? as f64 / 1e9;
        let n = (d / per).round();
        (n.is_finite() && n >= 1.0).then_some(n as u64)
    }
}

/// What the next call to [`MkvReader::next_packet`] found.
#[derive(Debug, PartialEq)]
pub(crate) enum Next {
    /// A frame of the video track: its payload is `buf[offset..]`, at media time `t` seconds.
    Packet { offset: usize, t: f64 },
    /// The end of the segment or file.
    End,
    /// The file ends inside an element. `in_cluster`: inside a cluster, so frames were lost.
    Cut { in_cluster: bool, reason: String },
}

/// Reads the blocks of one Matroska file's video track in file order.
pub(crate) struct MkvReader {
    r: BufReader<File>,
    pos: u64,
    len: u64,
    segment_end: u64,
    /// End of the cluster being read (`u64::MAX` when its size is unknown); `None` outside clusters.
    cluster_end: Option<u64>,
    cluster_tc: i64,
    pub info: MkvInfo,
}

/// True when the file starts with an EBML header.
pub(crate) fn looks_like_matroska(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && u32::from_be_bytes(magic) == EBML
}

impl MkvReader {
    /// Opens `path` and reads its headers up to the first cluster.
    pub fn open(path: &Path) -> Result<Self, String> {
        let file = File::open(path).map_err(|e| e.to_string())?;
        let len = file.metadata().map_err(|e| e.to_string())?.len();
        let mut me = MkvReader {
            r: BufReader::with_capacity(64 << 10, file),
            pos: 0,
            len,
            segment_end: len,
            cluster_end: None,
            cluster_tc: 0,
            info: MkvInfo {
                codec_id: String::new(),
                track: 0,
                width: None,
                height: None,
                timecode_scale: 1_000_000,
                duration_s: None,
                default_duration_ns: None,
            },
        };
        let (id, size) = me.header()?.ok_or("empty file")?;
        if id != EBML {
            return Err("not a Matroska file (no EBML header)".into());
        }
        let body = me.read_body(size)?;
        let doc_type = children(&body)
            .find(|(id, _)| *id == DOC_TYPE)
            .map(|(_, v)| String::from_utf8_lossy(v).trim_end_matches('\0').to_string())
            .unwrap_or_default();
        if doc_type != "matroska" && doc_type != "webm" {
            return Err(format!("EBML document type {doc_type:?} is not Matroska"));
        }
        let (id, size) = me.header()?.ok_or("no Segment after the EBML header")?;
        if id != SEGMENT {
            return Err(format!("expected a Segment, found element {id:#x}"));
        }
        me.segment_end = size.map_or(me.len, |s| me.pos.saturating_add(s));
        let mut have_tracks = false;
        loop {
            let (id, size) = me.header()?.ok_or("no Cluster in the file")?;
            match id {
                INFO => {
                    let body = me.read_body(size)?;
                    let mut duration = None;
                    for (cid, v) in children(&body) {
                        match cid {
                            TIMECODE_SCALE => me.info.timecode_scale = uint(v).max(1),
                            DURATION => duration = float(v),
                            _ => {}
                        }
                    }
                    let scale = me.info.timecode_scale as f64 / 1e9;
                    me.info.duration_s = duration.map(|d| d * scale).filter(|d| d.is_finite() && *d > 0.0);
                }
                TRACKS => {
                    let body = me.read_body(size)?;
                    have_tracks = me.read_tracks(&body);
                }
                CLUSTER => {
                    if !have_tracks {
                        return Err("no video track before the first Cluster".into());
                    }
                    me.enter_cluster(size);
                    return Ok(me);
                }
                _ => me.skip(size)?,
            }
        }
    }

    /// Takes the first video track; false when there is none.
    fn read_tracks(&mut self, body: &[u8]) -> bool {
        for (id, entry) in children(body) {
            if id != TRACK_ENTRY {
                continue;
            }
            let (mut number, mut kind, mut codec, mut dd, mut w, mut h) =
                (0, 0, String::new(), None, None, None);
            for (cid, v) in children(entry) {
                match cid {
                    TRACK_NUMBER => number = uint(v),
                    TRACK_TYPE => kind = uint(v),
                    CODEC_ID => codec = String::from_utf8_lossy(v).trim_end_matches('\0').to_string(),
                    DEFAULT_DURATION => dd = Some(uint(v)),
                    VIDEO => {
                        for (vid, vv) in children(v) {
                            match vid {
                                PIXEL_WIDTH => w = u32::try_from(uint(vv)).ok(),
                                PIXEL_HEIGHT => h = u32::try_from(uint(vv)).ok(),
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            if kind == 1 {
                self.info.track = number;
                self.info.codec_id = codec;
                self.info.default_duration_ns = dd;
                self.info.width = w;
                self.info.height = h;
                return true;
            }
        }
        false
    }

    fn enter_cluster(&mut self, size: Option<u64>) {
        self.cluster_end = Some(size.map_or(u64::MAX, |s| self.pos.saturating_add(s)));
        self.cluster_tc = 0;
    }

    /// The next block of the video track, read into `buf`.
    pub fn next_packet(&mut self, buf: &mut Vec<u8>) -> Result<Next, String> {
        loop {
            if self.pos >= self.segment_end.min(self.len) {
                return Ok(if self.segment_end > self.len && self.segment_end != u64::MAX {
                    let in_cluster = self.cluster_end.is_some_and(|e| e != u64::MAX && e > self.len);
                    Next::Cut { in_cluster, reason: "the file ends before its Segment does".into() }
                } else {
                    Next::End
                });
            }
            if let Some(end) = self.cluster_end {
                if self.pos >= end {
                    self.cluster_end = None;
                    continue;
                }
            }
            let in_cluster = self.cluster_end.is_some();
            let Some((id, size)) = self.header_or_cut()? else {
                return Ok(Next::Cut { in_cluster, reason: "the file ends inside an element header".into() });
            };
            if self.cluster_end == Some(u64::MAX) && !CLUSTER_CHILDREN.contains(&id) {
                // A cluster of unknown size ends where a segment-level element starts.
                self.cluster_end = None;
            }
            let cut = size.is_some_and(|s| self.pos.saturating_add(s) > self.len);
            match id {
                // A cluster cut short is still read up to the cut, which shows when a block is incomplete.
                CLUSTER => self.enter_cluster(size),
                TIMECODE if self.cluster_end.is_some() => self.cluster_tc = self.read_uint(size)? as i64,
                SIMPLE_BLOCK | BLOCK_GROUP if self.cluster_end.is_some() => {
                    if cut {
                        return Ok(Next::Cut {
                            in_cluster: true,
                            reason: "the file ends inside a block".into(),
                        });
                    }
                    let Some(size) = size.filter(|s| *s <= MAX_ELEMENT) else {
                        return Err(format!("block of unknown or excessive size at byte {}", self.pos));
                    };
                    buf.resize(size as usize, 0);
                    self.read_exact(buf)?;
                    let block = if id == SIMPLE_BLOCK { Some(0) } else { find_child(buf, BLOCK) };
                    let Some(start) = block else { continue };
                    let Some((track, tc, data)) = parse_block(&buf[start..]) else {
                        return Err(format!("malformed block before byte {}", self.pos));
                    };
                    if track != self.info.track {
                        continue;
                    }
                    let units = self.cluster_tc + i64::from(tc);
                    let t = units as f64 * self.info.timecode_scale as f64 / 1e9;
                    return Ok(Next::Packet { offset: start + data, t });
                }
                _ => {
                    if cut {
                        let in_cluster = self.cluster_end.is_some();
                        return Ok(Next::Cut {
                            in_cluster,
                            reason: format!("the file ends inside element {id:#x}"),
                        });
                    }
                    self.skip(size)?;
                }
            }
        }
    }

    /// An element header, or `None` at a clean end of file.
    fn header(&mut self) -> Result<Option<(u32, Option<u64>)>, String> {
        match self.header_or_cut()? {
            Some(h) => Ok(Some(h)),
            None if self.pos >= self.len => Ok(None),
            None => Err("the file ends inside an element header".into()),
        }
    }

    /// An element header (ID, size; `None` size when unknown); `None` when the file ends first.
    fn header_or_cut(&mut self) -> Result<Option<(u32, Option<u64>)>, String> {
        let Some(first) = self.byte()? else { return Ok(None) };
        let id_len = first.leading_zeros() as usize + 1;
        if id_len > 4 {
            return Err(format!("invalid element ID at byte {}", self.pos - 1));
        }
        let mut id = u32::from(first);
        for _ in 1..id_len {
            let Some(b) = self.byte()? else { return Ok(None) };
            id = id << 8 | u32::from(b);
        }
        let Some(first) = self.byte()? else { return Ok(None) };
        let size_len = first.leading_zeros() as usize + 1;
        if size_len > 8 {
            return Err(format!("invalid element size at byte {}", self.pos - 1));
        }
        let mut size = u64::from(first) & (0xFF >> size_len);
        let mut all_ones = size == (0xFF >> size_len);
        for _ in 1..size_len {
            let Some(b) = self.byte()? else { return Ok(None) };
            all_ones &= b == 0xFF;
            size = size << 8 | u64::from(b);
        }
        Ok(Some((id, (!all_ones).then_some(size))))
    }

    fn byte(&mut self) -> Result<Option<u8>, String> {
        let mut b = [0u8];
        match self.r.read_exact(&mut b) {
            Ok(()) => {
                self.pos += 1;
                Ok(Some(b[0]))
            }
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), String> {
        self.r.read_exact(buf).map_err(|e| match e.kind() {
            ErrorKind::UnexpectedEof => "the file ends inside an element".to_string(),
            _ => e.to_string(),
        })?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    /// Reads a small element's body (headers, not blocks).
    fn read_body(&mut self, size: Option<u64>) -> Result<Vec<u8>, String> {
        let size = size.filter(|s| *s <= MAX_ELEMENT).ok_or("header element of unknown or excessive size")?;
        let mut v = vec![0u8; size as usize];
        self.read_exact(&mut v)?;
        Ok(v)
    }

    /// Reads an unsigned integer element's body without allocating (one per cluster: often one per frame);
    /// as [`uint`], only its first 8 bytes count.
    fn read_uint(&mut self, size: Option<u64>) -> Result<u64, String> {
        let size =
            size.filter(|s| *s <= MAX_ELEMENT).ok_or("integer element of unknown or excessive size")?;
        let mut v = [0u8; 8];
        let n = size.min(8) as usize;
        self.read_exact(&mut v[..n])?;
        if size > 8 {
            self.skip(Some(size - 8))?;
        }
        Ok(uint(&v[..n]))
    }

    fn skip(&mut self, size: Option<u64>) -> Result<(), String> {
        let size =
            size.ok_or_else(|| format!("cannot skip an element of unknown size at byte {}", self.pos))?;
        let n = i64::try_from(size).map_err(|_| "element too large".to_string())?;
        self.r.seek_relative(n).map_err(|e| e.to_string())?;
        self.pos = self.pos.saturating_add(size);
        Ok(())
    }
}

/// The children of a master element's body: (ID, body), stopping at the first malformed one.
fn children(mut body: &[u8]) -> impl Iterator<Item = (u32, &[u8])> {
    std::iter::from_fn(move || {
        let (id, n) = vint(body, true)?;
        let (size, m) = vint(body.get(n..)?, false)?;
        let start = n + m;
        let end = start.checked_add(usize::try_from(size).ok()?)?;
        let value = body.get(start..end)?;
        body = &body[end..];
        Some((id as u32, value))
    })
}

/// Offset of the body of the first `id` child in a master element's body.
fn find_child(body: &[u8], id: u32) -> Option<usize> {
    let mut off = 0;
    while off < body.len() {
        let (cid, n) = vint(&body[off..], true)?;
        let (size, m) = vint(&body[off + n..], false)?;
        if cid as u32 == id {
            return Some(off + n + m);
        }
        off = off.checked_add(n + m)?.checked_add(usize::try_from(size).ok()?)?;
    }
    None
}

/// An EBML variable-length integer: (value, length). IDs keep their marker bit.
fn vint(b: &[u8], keep_marker: bool) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 || b.len() < len {
        return None;
    }
    let mut v = if keep_marker { u64::from(first) } else { u64::from(first) & (0xFF >> len) };
    for x in &b[1..len] {
        v = v << 8 | u64::from(*x);
    }
    Some((v, len))
}

/// A Block's (track, relative timecode, offset of the frame data); `None` when malformed. Laced blocks hold
/// several frames, which video tracks do not use: they are refused.
fn parse_block(b: &[u8]) -> Option<(u64, i16, usize)> {
    let (track, n) = vint(b, false)?;
    let tc = i16::from_be_bytes([*b.get(n)?, *b.get(n + 1)?]);
    let flags = *b.get(n + 2)?;
    if flags & 0x06 != 0 {
        return None;
    }
    Some((track, tc, n + 3))
}

fn uint(v: &[u8]) -> u64 {
    v.iter().take(8).fold(0, |acc, b| acc << 8 | u64::from(*b))
}

fn float(v: &[u8]) -> Option<f64> {
    match v.len() {
        4 => Some(f64::from(f32::from_be_bytes(v.try_into().ok()?))),
        8 => Some(f64::from_be_bytes(v.try_into().ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_length_integers_decode() {
        assert_eq!(vint(&[0x81], false), Some((1, 1)));
        assert_eq!(vint(&[0x40, 0x02], false), Some((2, 2)));
        assert_eq!(vint(&[0x1A, 0x45, 0xDF, 0xA3], true), Some((0x1A45_DFA3, 4)));
        assert_eq!(vint(&[0x00], false), None);
        assert_eq!(parse_block(&[0x81, 0x00, 0x05, 0x80, 0xFF, 0xD8]), Some((1, 5, 4)));
    }

    #[test]
    fn the_fixture_clip_declares_its_track_and_frame_count() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/footage/normal.mkv");
        let mut r = MkvReader::open(&path).unwrap();
        assert_eq!(r.info.codec_id, "V_MJPEG");
        assert_eq!((r.info.width, r.info.height), (Some(640), Some(480)));
        let mut buf = Vec::new();
        let mut n = 0;
        while let Next::Packet { offset, t } = r.next_packet(&mut buf).unwrap() {
            assert_eq!(&buf[offset..offset + 2], &[0xFF, 0xD8]);
            assert!((t - n as f64).abs() < 1e-6, "{t}");
            n += 1;
        }
        assert_eq!(n, 24);
        assert_eq!(r.info.declared_frames(), Some(24), "{:?}", r.info);
    }
}
