//! The JPEG segment walker: [`strip`] keeps only the structural segments a decoder needs and counts what it
//! drops; [`verify`] accepts a file only if every byte of it belongs to one of those segments.
//!
//! Allowed, and nothing else: SOI, APP0 carrying a bare JFIF header (16 bytes, no thumbnail), DQT, SOFn (the
//! frame headers C0-C3, C5-C7, C9-CB, CD-CF), DHT, DRI, SOS with its entropy-coded data and the RSTn markers
//! inside it, and EOI as the last two bytes. The structural segments are parsed to their declared length:
//! a DQT or DHT whose tables do not fill the segment exactly, or a frame or scan header whose component count
//! does not match its length, is refused, so no byte can hide in the slack of an allowed segment.

/// A marker byte (the byte after 0xFF).
pub type Marker = u8;

const SOI: Marker = 0xD8;
const EOI: Marker = 0xD9;
const SOS: Marker = 0xDA;
const DQT: Marker = 0xDB;
const DHT: Marker = 0xC4;
const DRI: Marker = 0xDD;
const APP0: Marker = 0xE0;

/// Why a byte stream is not an acceptable JPEG.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    /// The stream does not start with SOI (FF D8).
    #[error("not a JPEG: no SOI marker at the start")]
    MissingSoi,
    /// The stream ends inside a segment or before EOI.
    #[error("truncated JPEG: ends at byte {0} inside a segment or before EOI")]
    Truncated(usize),
    /// A segment length field is smaller than the length field itself.
    #[error("bad segment length {len} for marker {marker:#04x} at byte {offset}")]
    BadLength { marker: Marker, offset: usize, len: usize },
    /// Bytes where a marker should start.
    #[error("expected a marker at byte {0}")]
    ExpectedMarker(usize),
    /// A marker that is not on the allowed list.
    #[error("marker {marker:#04x} at byte {offset} is not allowed")]
    Forbidden { marker: Marker, offset: usize },
    /// An APP0 segment that is not a bare JFIF header.
    #[error("APP0 at byte {0} is not a bare 16-byte JFIF header without thumbnail")]
    NotBareJfif(usize),
    /// A structural segment whose contents do not fill its declared length exactly.
    #[error("malformed {name} segment at byte {offset}")]
    Malformed { name: &'static str, offset: usize },
    /// 0xFF fill bytes before a marker.
    #[error("fill bytes before the marker at byte {0}")]
    FillBytes(usize),
    /// A second SOI, or SOS before any frame header.
    #[error("marker {marker:#04x} out of order at byte {offset}")]
    OutOfOrder { marker: Marker, offset: usize },
    /// Bytes after EOI.
    #[error("{0} bytes after EOI")]
    TrailingData(usize),
}

/// Something [`strip`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// A whole segment: its marker and total length in bytes (marker and length field included).
    Segment { marker: Marker, len: usize },
    /// Bytes after EOI.
    Trailing { len: usize },
}

/// The result of [`strip`]: the kept bytes and the list of what was removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stripped {
    pub bytes: Vec<u8>,
    pub dropped: Vec<Dropped>,
}

/// What [`verify`] saw in an accepted file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReport {
    /// Every marker in order (SOI first, EOI last; RSTn markers inside scans included).
    pub markers: Vec<Marker>,
}

fn is_sof(m: Marker) -> bool {
    matches!(m, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF)
}

fn is_rst(m: Marker) -> bool {
    (0xD0..=0xD7).contains(&m)
}

/// Whether a marker (with its contents checked separately) may remain in an output file.
pub fn is_allowed(m: Marker) -> bool {
    matches!(m, SOI | EOI | SOS | DQT | DHT | DRI | APP0) || is_sof(m) || is_rst(m)
}

fn be16(b: &[u8], at: usize) -> Option<usize> {
    Some(((*b.get(at)? as usize) << 8) | *b.get(at + 1)? as usize)
}

/// Checks the payload (after the length field) of an allowed segment.
fn check_payload(marker: Marker, p: &[u8], offset: usize) -> Result<(), SegmentError> {
    let bad = |name| SegmentError::Malformed { name, offset };
    match marker {
        APP0 => {
            // "JFIF\0", version (2), units (1), x and y density (2 + 2), thumbnail width and height (1 + 1).
            if p.len() != 14 || &p[..5] != b"JFIF\0" || p[12] != 0 || p[13] != 0 {
                return Err(SegmentError::NotBareJfif(offset));
            }
            Ok(())
        }
        DQT => {
            let mut i = 0;
            while i < p.len() {
                let precision = p[i] >> 4;
                let table = p[i] & 0x0F;
                if precision > 1 || table > 3 {
                    return Err(bad("DQT"));
                }
                i += 1 + if precision == 0 { 64 } else { 128 };
            }
            if i != p.len() || p.is_empty() {
                return Err(bad("DQT"));
            }
            Ok(())
        }
        DHT => {
            let mut i = 0;
            while i < p.len() {
                let class = p[i] >> 4;
                let table = p[i] & 0x0F;
                if class > 1 || table > 3 || i + 17 > p.len() {
                    return Err(bad("DHT"));
                }
                let n: usize = p[i + 1..i + 17].iter().map(|&c| c as usize).sum();
                if n > 256 {
                    return Err(bad("DHT"));
                }
                i += 17 + n;
            }
            if i != p.len() || p.is_empty() {
                return Err(bad("DHT"));
            }
            Ok(())
        }
        DRI => {
            if p.len() != 2 {
                return Err(bad("DRI"));
            }
            Ok(())
        }
        SOS => {
            let n = *p.first().ok_or(bad("SOS"))? as usize;
            if n == 0 || n > 4 || p.len() != 1 + 2 * n + 3 {
                return Err(bad("SOS"));
            }
            Ok(())
        }
        m if is_sof(m) => {
            let n = *p.get(5).ok_or(bad("SOF"))? as usize;
            if n == 0 || n > 4 || p.len() != 6 + 3 * n {
                return Err(bad("SOF"));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Length of the entropy-coded data starting at `start`, and the RST markers inside it, in order.
fn scan_entropy(b: &[u8], start: usize, rst: &mut Vec<Marker>) -> Result<usize, SegmentError> {
    let mut i = start;
    loop {
        let Some(&byte) = b.get(i) else { return Err(SegmentError::Truncated(b.len())) };
        if byte != 0xFF {
            i += 1;
            continue;
        }
        let Some(&next) = b.get(i + 1) else { return Err(SegmentError::Truncated(b.len())) };
        if next == 0x00 {
            i += 2;
        } else if is_rst(next) {
            rst.push(next);
            i += 2;
        } else {
            return Ok(i - start);
        }
    }
}

enum Mode {
    Strip,
    Verify,
}

struct Walk {
    out: Vec<u8>,
    dropped: Vec<Dropped>,
    markers: Vec<Marker>,
}

fn walk(b: &[u8], mode: Mode) -> Result<Walk, SegmentError> {
    let strip = matches!(mode, Mode::Strip);
    if b.len() < 2 || b[0] != 0xFF || b[1] != SOI {
        return Err(SegmentError::MissingSoi);
    }
    let mut w = Walk {
        out: Vec::with_capacity(if strip { b.len() } else { 0 }),
        dropped: Vec::new(),
        markers: vec![SOI],
    };
    if strip {
        w.out.extend_from_slice(&[0xFF, SOI]);
    }
    let mut i = 2;
    let mut seen_sof = false;
    loop {
        // A marker: 0xFF, optional 0xFF fill bytes, the marker byte.
        if b.get(i) != Some(&0xFF) {
            return Err(if i >= b.len() {
                SegmentError::Truncated(b.len())
            } else {
                SegmentError::ExpectedMarker(i)
            });
        }
        let offset = i;
        let mut j = i + 1;
        while b.get(j) == Some(&0xFF) {
            j += 1;
        }
        if j > i + 1 && !strip {
            return Err(SegmentError::FillBytes(offset));
        }
        let Some(&marker) = b.get(j) else { return Err(SegmentError::Truncated(b.len())) };
        i = j + 1;
        match marker {
            EOI => {
                w.markers.push(EOI);
                if strip {
                    w.out.extend_from_slice(&[0xFF, EOI]);
                    if i < b.len() {
                        w.dropped.push(Dropped::Trailing { len: b.len() - i });
                    }
                } else if i < b.len() {
                    return Err(SegmentError::TrailingData(b.len() - i));
                }
                return Ok(w);
            }
            SOI => return Err(SegmentError::OutOfOrder { marker, offset }),
            0x00 => return Err(SegmentError::ExpectedMarker(offset)),
            m if is_rst(m) || m == 0x01 => {
                // Standalone markers outside a scan carry no data; RSTn is only meaningful inside one.
                if strip {
                    w.dropped.push(Dropped::Segment { marker: m, len: 2 });
                    continue;
                }
                return Err(SegmentError::Forbidden { marker: m, offset });
            }
            _ => {}
        }
        let len = be16(b, i).ok_or(SegmentError::Truncated(b.len()))?;
        if len < 2 {
            return Err(SegmentError::BadLength { marker, offset, len });
        }
        let end = i + len;
        if end > b.len() {
            return Err(SegmentError::Truncated(b.len()));
        }
        let payload = &b[i + 2..end];
        let keep = is_allowed(marker) && check_payload(marker, payload, offset).is_ok();
        if !keep {
            if !strip {
                check_payload(marker, payload, offset)?;
                return Err(SegmentError::Forbidden { marker, offset });
            }
            if marker == SOS || is_sof(marker) || marker == DHT || marker == DQT || marker == DRI {
                // A structural segment that is malformed cannot be dropped without breaking the image.
                check_payload(marker, payload, offset)?;
            }
            w.dropped.push(Dropped::Segment { marker, len: end - offset });
            i = end;
            continue;
        }
        if is_sof(marker) {
            if seen_sof {
                return Err(SegmentError::OutOfOrder { marker, offset });
            }
            seen_sof = true;
        }
        if marker == SOS && !seen_sof {
            return Err(SegmentError::OutOfOrder { marker, offset });
        }
        w.markers.push(marker);
        if strip {
            w.out.extend_from_slice(&[0xFF, marker]);
            w.out.extend_from_slice(&b[i..end]);
        }
        i = end;
        if marker == SOS {
            let n = scan_entropy(b, i, &mut w.markers)?;
            if strip {
                w.out.extend_from_slice(&b[i..i + n]);
            }
            i += n;
        }
    }
}

/// Keeps only the allowed segments of a JPEG (see the module documentation) and lists what it removed:
/// application segments (EXIF, XMP, ICC, IPTC, maker data, APP1-APP15), APP0 other than a bare JFIF header
/// (JFXX thumbnails), comments, every other marker, fill bytes and anything after EOI.
///
/// A stream that is not a complete JPEG, or whose structural segments are malformed, is an error: nothing
/// is returned that could still carry unparsed bytes.
pub fn strip(bytes: &[u8]) -> Result<Stripped, SegmentError> {
    let w = walk(bytes, Mode::Strip)?;
    Ok(Stripped { bytes: w.out, dropped: w.dropped })
}

/// Accepts a JPEG only if it consists of allowed segments alone, each well formed, with nothing after EOI.
pub fn verify(bytes: &[u8]) -> Result<SegmentReport, SegmentError> {
    let w = walk(bytes, Mode::Verify)?;
    Ok(SegmentReport { markers: w.markers })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(marker: Marker, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() + 2;
        let mut v = vec![0xFF, marker, (len >> 8) as u8, len as u8];
        v.extend_from_slice(payload);
        v
    }

    fn jfif() -> Vec<u8> {
        seg(APP0, b"JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    }

    /// A structurally valid 8x8 greyscale baseline JPEG skeleton (the entropy data is not decodable, which
    /// the walker does not need).
    fn minimal(extra_after_soi: &[u8], trailing: &[u8]) -> Vec<u8> {
        let mut v = vec![0xFF, SOI];
        v.extend(jfif());
        v.extend_from_slice(extra_after_soi);
        let mut dqt = vec![0x00];
        dqt.extend([1u8; 64]);
        v.extend(seg(DQT, &dqt));
        v.extend(seg(0xC0, &[8, 0, 8, 0, 8, 1, 1, 0x11, 0]));
        let mut dht = vec![0x00];
        let mut counts = [0u8; 16];
        counts[0] = 1;
        dht.extend(counts);
        dht.push(0);
        v.extend(seg(DHT, &dht));
        v.extend(seg(SOS, &[1, 1, 0x00, 0, 63, 0]));
        v.extend([0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56]);
        v.extend([0xFF, EOI]);
        v.extend_from_slice(trailing);
        v
    }

    #[test]
    fn a_clean_file_verifies_and_strips_to_itself() {
        let f = minimal(&[], &[]);
        let report = verify(&f).unwrap();
        assert_eq!(report.markers, vec![SOI, APP0, DQT, 0xC0, DHT, SOS, 0xD0, EOI]);
        let s = strip(&f).unwrap();
        assert_eq!(s.bytes, f);
        assert!(s.dropped.is_empty());
    }

    #[test]
    fn exif_comment_and_trailing_bytes_are_removed_and_counted() {
        let mut extra = seg(0xE1, b"Exif\0\0secret-gps");
        extra.extend(seg(0xFE, b"a comment"));
        extra.extend(seg(0xEF, b"APP15 data"));
        let f = minimal(&extra, b"after-eoi");
        assert!(matches!(verify(&f), Err(SegmentError::Forbidden { marker: 0xE1, .. })));
        let s = strip(&f).unwrap();
        assert_eq!(s.bytes, minimal(&[], &[]));
        assert_eq!(
            s.dropped,
            vec![
                Dropped::Segment { marker: 0xE1, len: 4 + 16 },
                Dropped::Segment { marker: 0xFE, len: 4 + 9 },
                Dropped::Segment { marker: 0xEF, len: 4 + 10 },
                Dropped::Trailing { len: 9 }
            ]
        );
        assert!(verify(&s.bytes).is_ok());
        let hay = &s.bytes;
        assert!(!hay.windows(10).any(|w| w == b"secret-gps"));
    }

    #[test]
    fn a_jfif_header_with_a_thumbnail_is_dropped() {
        let mut f = vec![0xFF, SOI];
        f.extend(seg(APP0, b"JFIF\0\x01\x01\x00\x00\x01\x00\x01\x01\x01\xAA\xBB\xCC"));
        f.extend_from_slice(&minimal(&[], &[])[2..]);
        assert!(matches!(verify(&f), Err(SegmentError::NotBareJfif(2))));
        let s = strip(&f).unwrap();
        assert_eq!(s.bytes, minimal(&[], &[]));
    }

    #[test]
    fn slack_bytes_in_a_quantisation_table_are_refused() {
        let mut f = vec![0xFF, SOI];
        let mut dqt = vec![0x00];
        dqt.extend([1u8; 64]);
        dqt.extend(b"hidden");
        f.extend(seg(DQT, &dqt));
        f.extend_from_slice(&minimal(&[], &[])[2..]);
        assert!(matches!(verify(&f), Err(SegmentError::Malformed { name: "DQT", .. })));
        assert!(strip(&f).is_err());
    }

    #[test]
    fn truncated_and_foreign_streams_are_errors() {
        let f = minimal(&[], &[]);
        for cut in [0, 1, 3, 10, f.len() - 1] {
            assert!(verify(&f[..cut]).is_err());
            assert!(strip(&f[..cut]).is_err());
        }
        assert_eq!(verify(b"\x89PNG\r\n\x1a\n"), Err(SegmentError::MissingSoi));
    }

    /// A bounded, seeded mutation run of the fuzz target's properties, so they are checked on every
    /// `cargo test` too (the libFuzzer target in fuzz/ runs the same properties for as long as one likes).
    #[test]
    fn mutated_streams_never_panic_and_stripped_output_always_verifies() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut extra = seg(0xE1, b"Exif\0\0data");
        extra.extend(seg(0xFE, b"comment"));
        let bases = [minimal(&[], &[]), minimal(&extra, b"tail")];
        for i in 0..20_000 {
            let mut f = bases[i % 2].clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % f.len();
                match next() % 4 {
                    0 => f[at] = next() as u8,
                    1 => f[at] = 0xFF,
                    2 => {
                        f.remove(at);
                    }
                    _ => f.insert(at, next() as u8),
                }
                if f.is_empty() {
                    break;
                }
            }
            let verified = verify(&f);
            match strip(&f) {
                Ok(s) => {
                    assert!(s.bytes.len() <= f.len());
                    assert!(verify(&s.bytes).is_ok(), "case {i}");
                    let again = strip(&s.bytes).unwrap();
                    assert_eq!(again.bytes, s.bytes);
                    assert!(again.dropped.is_empty());
                    if verified.is_ok() {
                        assert_eq!(s.bytes, f);
                    }
                }
                Err(_) => assert!(verified.is_err(), "case {i}"),
            }
        }
    }
}
