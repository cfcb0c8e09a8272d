//! The bundle file format (see `FORMAT.md`): a sequence of zstd frames. Frame 0 is the *head* (manifest plus
//! event record or deletion request, JSON) compressed with the shipped dictionary; each further frame is one
//! snapshot, stored in raw blocks (JPEG is not recompressed). Every frame carries its content size and a
//! checksum, so a truncated or damaged file is always detected, and the whole file decodes with the stock
//! `zstd -d -D records.zdict`.

use serde::{Deserialize, Serialize};

use crate::record::{
    is_safe_name, validate_snapshots, DeletionRequest, EventRecord, Region, Snapshot, MAX_SNAPSHOTS,
    MAX_SNAPSHOT_BYTES,
};
use crate::xxh64::xxh64;
use crate::TelemetryError;

/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// zstd dictionary for bundle heads, trained by `vigil-telemetry-train-dict` on generated event records.
pub static DICTIONARY: &[u8] = include_bytes!("../dict/records.zdict");
/// zstd level for heads: small JSON, so a cheap level is enough on a Cortex-A53.
pub const HEAD_LEVEL: i32 = 3;
/// Largest head (decompressed) accepted when reading.
pub const MAX_HEAD_BYTES: usize = 1024 * 1024;
/// Largest bundle file accepted when reading.
pub const MAX_BUNDLE_BYTES: u64 = (MAX_SNAPSHOTS * MAX_SNAPSHOT_BYTES) as u64 + 2 * 1024 * 1024;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
const RAW_BLOCK_MAX: usize = 128 * 1024;

/// What a bundle is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BundleKind {
    /// An event record with its snapshots.
    Event,
    /// A deletion request: exempt from the quota, retried until a 2xx.
    DeletionRequest,
}

impl BundleKind {
    /// First letter of the file name: `e` or `d`.
    pub fn prefix(self) -> char {
        match self {
            BundleKind::Event => 'e',
            BundleKind::DeletionRequest => 'd',
        }
    }
}

/// One file inside a bundle, in frame order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Snapshot file name.
    pub name: String,
    /// Its length in bytes.
    pub len: u64,
}

/// The bundle's manifest: identity, routing and the list of files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT_VERSION`].
    pub format: u32,
    /// Event or deletion request.
    pub kind: BundleKind,
    /// Bundle id, also the file stem and the last URL segment: `{kind}-{seq:012}-{nonce:08x}`.
    pub id: String,
    /// Spool sequence number (monotonic across restarts).
    pub seq: u64,
    /// Pseudonymous device id.
    pub device_id: String,
    /// Region whose endpoint receives this bundle.
    pub region: Region,
    /// Wall-clock time of writing (Unix seconds), absent when the clock was not plausible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_unix: Option<i64>,
    /// Snapshot files, in frame order.
    pub files: Vec<FileEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Head {
    manifest: Manifest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<EventRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deletion: Option<DeletionRequest>,
}

/// What a bundle carries besides its manifest.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// An event and its snapshots.
    Event {
        /// The event record.
        record: EventRecord,
        /// The snapshots, in order.
        snapshots: Vec<Snapshot>,
    },
    /// A deletion request.
    Deletion(DeletionRequest),
}

/// A decoded bundle.
#[derive(Clone, Debug, PartialEq)]
pub struct Bundle {
    /// Identity and routing.
    pub manifest: Manifest,
    /// Content.
    pub body: Body,
}

/// The bundle id for a kind, sequence number and nonce.
pub fn bundle_id(kind: BundleKind, seq: u64, nonce: u32) -> String {
    format!("{}-{seq:012}-{nonce:08x}", kind.prefix())
}

/// Parses a bundle id (`e-000000000042-1a2b3c4d`) into kind and sequence number.
pub fn parse_bundle_id(id: &str) -> Option<(BundleKind, u64)> {
    let b = id.as_bytes();
    if b.len() != 1 + 1 + 12 + 1 + 8 || b[1] != b'-' || b[14] != b'-' {
        return None;
    }
    let kind = match b[0] {
        b'e' => BundleKind::Event,
        b'd' => BundleKind::DeletionRequest,
        _ => return None,
    };
    let seq = &id[2..14];
    let nonce = &id[15..];
    if !seq.bytes().all(|c| c.is_ascii_digit())
        || !nonce.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    Some((kind, seq.parse().ok()?))
}

/// Parses a bundle file name (`{id}.zst`).
pub fn parse_file_name(name: &str) -> Option<(BundleKind, u64)> {
    parse_bundle_id(name.strip_suffix(".zst")?)
}

/// Encodes a bundle. Validates names, sizes and JPEG markers first.
pub fn encode(bundle: &Bundle) -> Result<Vec<u8>, TelemetryError> {
    let m = &bundle.manifest;
    if !is_safe_name(&m.device_id) {
        return Err(TelemetryError::Invalid(format!("device id {:?} is not a safe name", m.device_id)));
    }
    if parse_bundle_id(&m.id) != Some((m.kind, m.seq)) {
        return Err(TelemetryError::Invalid(format!("bundle id {:?} does not match kind and seq", m.id)));
    }
    let (head, snapshots) = match &bundle.body {
        Body::Event { record, snapshots } => {
            if m.kind != BundleKind::Event {
                return Err(TelemetryError::Invalid("an event body needs kind event".into()));
            }
            record.validate()?;
            validate_snapshots(snapshots)?;
            let mut manifest = m.clone();
            manifest.files = snapshots
                .iter()
                .map(|s| FileEntry { name: s.name.clone(), len: s.jpeg.len() as u64 })
                .collect();
            (Head { manifest, event: Some(record.clone()), deletion: None }, snapshots.as_slice())
        }
        Body::Deletion(d) => {
            if m.kind != BundleKind::DeletionRequest {
                return Err(TelemetryError::Invalid("a deletion body needs kind deletion-request".into()));
            }
            let mut manifest = m.clone();
            manifest.files.clear();
            (Head { manifest, event: None, deletion: Some(d.clone()) }, &[][..])
        }
    };
    let json = serde_json::to_vec(&head).map_err(|e| TelemetryError::Invalid(e.to_string()))?;
    let mut out = compress_head(&json)?;
    for s in snapshots {
        write_stored_frame(&mut out, &s.jpeg);
    }
    Ok(out)
}

/// Compresses a head with the dictionary: one zstd frame with content size and checksum.
pub fn compress_head(json: &[u8]) -> Result<Vec<u8>, TelemetryError> {
    compress_with(json, Some(DICTIONARY))
}

/// Compresses `data` into one zstd frame at [`HEAD_LEVEL`], with or without a dictionary (the dictionary
/// tool uses this to report both ratios).
pub fn compress_with(data: &[u8], dict: Option<&[u8]>) -> Result<Vec<u8>, TelemetryError> {
    use zstd::zstd_safe::CParameter;
    let mut c = match dict {
        Some(d) => zstd::bulk::Compressor::with_dictionary(HEAD_LEVEL, d),
        None => zstd::bulk::Compressor::new(HEAD_LEVEL),
    }
    .map_err(|e| TelemetryError::Codec(e.to_string()))?;
    c.set_parameter(CParameter::ChecksumFlag(true)).map_err(|e| TelemetryError::Codec(e.to_string()))?;
    c.set_parameter(CParameter::ContentSizeFlag(true)).map_err(|e| TelemetryError::Codec(e.to_string()))?;
    c.compress(data).map_err(|e| TelemetryError::Codec(e.to_string()))
}

/// Appends one zstd frame holding `data` in raw (stored) blocks: single-segment header with an 8-byte
/// content size, checksum flag set, no dictionary id.
pub fn write_stored_frame(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&ZSTD_MAGIC);
    // Frame_Header_Descriptor: FCS field 8 bytes (3 << 6), single segment (1 << 5), checksum (1 << 2).
    out.push(0xE4);
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    let mut chunks = data.chunks(RAW_BLOCK_MAX).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0]); // one empty, last, raw block
    }
    while let Some(chunk) = chunks.next() {
        let last = u32::from(chunks.peek().is_none());
        let header = last | ((chunk.len() as u32) << 3); // block type 0 = raw
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&(xxh64(data) as u32).to_le_bytes());
}

fn next_frame(data: &[u8], pos: usize) -> Result<&[u8], TelemetryError> {
    let rest = &data[pos..];
    let len = zstd::zstd_safe::find_frame_compressed_size(rest)
        .map_err(|_| TelemetryError::Corrupt(format!("no whole zstd frame at byte {pos}")))?;
    if len > rest.len() {
        return Err(TelemetryError::Corrupt(format!("frame at byte {pos} runs past the end")));
    }
    Ok(&rest[..len])
}

fn decompress_frame(
    d: &mut zstd::bulk::Decompressor<'_>,
    frame: &[u8],
    expect: usize,
) -> Result<Vec<u8>, TelemetryError> {
    let out = d.decompress(frame, expect).map_err(|e| TelemetryError::Corrupt(format!("zstd: {e}")))?;
    if out.len() != expect {
        return Err(TelemetryError::Corrupt(format!(
            "frame holds {} bytes, manifest says {expect}",
            out.len()
        )));
    }
    Ok(out)
}

/// Decodes and fully verifies a bundle: every frame's checksum, the head's JSON, the file list against the
/// frames, and nothing after the last frame.
pub fn decode(data: &[u8]) -> Result<Bundle, TelemetryError> {
    if data.len() as u64 > MAX_BUNDLE_BYTES {
        return Err(TelemetryError::Corrupt("file is larger than any bundle".into()));
    }
    if !data.starts_with(&ZSTD_MAGIC) {
        return Err(TelemetryError::Corrupt("not a zstd file".into()));
    }
    let mut d = zstd::bulk::Decompressor::with_dictionary(DICTIONARY)
        .map_err(|e| TelemetryError::Codec(e.to_string()))?;
    let (head, head_len) = decode_head(&mut d, data)?;
    let manifest = head.manifest;
    if manifest.format != FORMAT_VERSION {
        return Err(TelemetryError::Corrupt(format!("format {} is not {FORMAT_VERSION}", manifest.format)));
    }
    if parse_bundle_id(&manifest.id) != Some((manifest.kind, manifest.seq))
        || !is_safe_name(&manifest.device_id)
    {
        return Err(TelemetryError::Corrupt("manifest id, kind, seq or device id are inconsistent".into()));
    }
    let mut pos = head_len;
    let body = match (manifest.kind, head.event, head.deletion) {
        (BundleKind::Event, Some(record), None) => {
            if manifest.files.len() > MAX_SNAPSHOTS {
                return Err(TelemetryError::Corrupt("too many files".into()));
            }
            let mut snapshots = Vec::with_capacity(manifest.files.len());
            for f in &manifest.files {
                if pos >= data.len() {
                    return Err(TelemetryError::Corrupt(format!("file {:?} is missing (truncated)", f.name)));
                }
                let len = usize::try_from(f.len)
                    .ok()
                    .filter(|l| *l <= MAX_SNAPSHOT_BYTES)
                    .ok_or_else(|| TelemetryError::Corrupt(format!("file {:?} is too large", f.name)))?;
                let frame = next_frame(data, pos)?;
                let jpeg = decompress_frame(&mut d, frame, len)?;
                pos += frame.len();
                snapshots.push(Snapshot { name: f.name.clone(), jpeg });
            }
            validate_snapshots(&snapshots).map_err(|e| TelemetryError::Corrupt(e.to_string()))?;
            record.validate().map_err(|e| TelemetryError::Corrupt(e.to_string()))?;
            Body::Event { record, snapshots }
        }
        (BundleKind::DeletionRequest, None, Some(del)) if manifest.files.is_empty() => Body::Deletion(del),
        _ => return Err(TelemetryError::Corrupt("head does not match its kind".into())),
    };
    if pos != data.len() {
        return Err(TelemetryError::Corrupt(format!("{} bytes after the last frame", data.len() - pos)));
    }
    Ok(Bundle { manifest, body })
}

/// Decompresses and parses the head frame (frame 0) of a bundle; returns it with its compressed length.
fn decode_head(d: &mut zstd::bulk::Decompressor<'_>, data: &[u8]) -> Result<(Head, usize), TelemetryError> {
    let head_frame = next_frame(data, 0)?;
    let head_json = d
        .decompress(head_frame, MAX_HEAD_BYTES)
        .map_err(|e| TelemetryError::Corrupt(format!("head: zstd: {e}")))?;
    let head: Head =
        serde_json::from_slice(&head_json).map_err(|e| TelemetryError::Corrupt(format!("head: {e}")))?;
    Ok((head, head_frame.len()))
}

/// Reads only the manifest (head frame) of a bundle, without checking the snapshot frames.
pub fn read_manifest(data: &[u8]) -> Result<Manifest, TelemetryError> {
    let mut d = zstd::bulk::Decompressor::with_dictionary(DICTIONARY)
        .map_err(|e| TelemetryError::Codec(e.to_string()))?;
    Ok(decode_head(&mut d, data)?.0.manifest)
}

/// The head JSON of a bundle, pretty-printed (for `vigil spool show`).
pub fn head_json_pretty(bundle: &Bundle) -> String {
    let (event, deletion) = match &bundle.body {
        Body::Event { record, .. } => (Some(record.clone()), None),
        Body::Deletion(d) => (None, Some(d.clone())),
    };
    let head = Head { manifest: bundle.manifest.clone(), event, deletion };
    serde_json::to_string_pretty(&head).unwrap_or_default()
}

/// Serialises an event record plus manifest the way a bundle head does (for dictionary training).
pub fn head_json_for(manifest: &Manifest, record: &EventRecord) -> Vec<u8> {
    let head = Head { manifest: manifest.clone(), event: Some(record.clone()), deletion: None };
    serde_json::to_vec(&head).unwrap_or_default()
}
