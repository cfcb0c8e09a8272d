//! Generated, realistic event records and stand-in JPEGs, for training the dictionary, the tools and the
//! tests. Deterministic for a given seed.

use crate::bundle::{self, BundleKind, Manifest};
use crate::record::{EventRecord, Region, ScorePoint, Snapshot};

/// SplitMix64: a small deterministic generator.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// One of `items`.
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const EVENTS: &[&str] =
    &["spaghetti", "detachment", "layer_shift", "nozzle_clog", "warping", "blob", "stringing"];
const PRINTERS: &[&str] = &[
    "Voron 2.4 350",
    "Voron Trident 300",
    "Prusa MK4",
    "Prusa MINI+",
    "Creality Ender-3 V3 SE",
    "Creality K1 Max",
    "Bambu Lab P1S",
    "Anycubic Kobra 2",
    "Elegoo Neptune 4 Pro",
    "RatRig V-Core 3.1",
];
const FIRMWARE: &[&str] = &[
    "Klipper v0.12.0-302-g87ac69363",
    "Klipper v0.12.0-114-ga77d0790",
    "Klipper v0.11.0-257-gfcf064ba",
    "Prusa-Firmware-Buddy 6.1.3+8106",
    "Marlin 2.1.2.4",
    "Marlin bugfix-2.1.x 2024-06-30",
    "Kalico v2025.01.0",
];
const MODELS: &[&str] =
    &["vigil-fail-v1.3.0", "vigil-fail-v1.3.1", "vigil-fail-v1.4.0-int8", "vigil-fail-v2.0.0-rc1"];

/// A pseudonymous device id as the privacy stage makes them: 32 lowercase hex digits.
pub fn device_id(rng: &mut Rng) -> String {
    format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64())
}

/// A realistic event record: a score trace of 20 to 90 points rising past the threshold, media times,
/// and a wall time when `wall_clock` is given.
pub fn event_record(rng: &mut Rng, device: &str, region: Region, wall_clock: Option<i64>) -> EventRecord {
    let n = 20 + rng.below(71);
    let start = rng.below(4 * 3600 * 1000);
    let step = [200u64, 250, 333, 500, 1000][rng.below(5) as usize];
    let rise = n - 1 - rng.below(n / 3 + 1);
    let mut trace = Vec::with_capacity(n as usize);
    for i in 0..n {
        let base = if i < rise { 0.02 + 0.2 * rng.unit() } else { 0.55 + 0.44 * rng.unit() };
        let score = (base * 1000.0).round() / 1000.0;
        trace.push(ScorePoint { media_ms: start + i * step, score: score as f32 });
    }
    EventRecord {
        event_id: format!("ev-{:08x}", rng.next_u64() as u32),
        event_type: rng.pick(EVENTS).to_string(),
        score_trace: trace,
        model_version: rng.pick(MODELS).to_string(),
        printer_model: rng.pick(PRINTERS).to_string(),
        firmware: rng.pick(FIRMWARE).to_string(),
        region,
        device_id: device.to_string(),
        media_start_ms: start,
        media_event_ms: start + (n - 1) * step,
        wall_time_unix: wall_clock.map(|t| t + rng.below(86_400 * 30) as i64),
    }
}

/// Bytes that look like a JPEG file (SOI, APP0, random entropy-coded-like data, EOI); incompressible like
/// the real thing.
pub fn fake_jpeg(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut v =
        vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0];
    while v.len() + 2 < len.max(22) {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(len.max(22) - 2);
    v.extend_from_slice(&[0xFF, 0xD9]);
    v
}

/// `count` snapshots of about `size` bytes each.
pub fn snapshots(rng: &mut Rng, count: usize, size: usize) -> Vec<Snapshot> {
    (0..count).map(|i| Snapshot { name: format!("after-{i:03}.jpg"), jpeg: fake_jpeg(rng, size) }).collect()
}

/// A bundle head as the spool would write it for `record` (for dictionary training and measurement).
pub fn head_json(rng: &mut Rng, record: &EventRecord, snapshots: usize) -> Vec<u8> {
    let seq = rng.below(100_000);
    let manifest = Manifest {
        format: bundle::FORMAT_VERSION,
        kind: BundleKind::Event,
        id: bundle::bundle_id(BundleKind::Event, seq, rng.next_u64() as u32),
        seq,
        device_id: record.device_id.clone(),
        region: record.region,
        created_unix: record.wall_time_unix,
        files: (0..snapshots)
            .map(|i| bundle::FileEntry { name: format!("after-{i:03}.jpg"), len: 20_000 + rng.below(60_000) })
            .collect(),
    };
    bundle::head_json_for(&manifest, record)
}

/// A generated head: random device, region (about one in five CN), clock known nine times in ten.
pub fn random_head(rng: &mut Rng) -> Vec<u8> {
    let dev = device_id(rng);
    let region = if rng.below(5) == 0 { Region::Cn } else { Region::Us };
    let wall = if rng.below(10) == 0 { None } else { Some(1_735_689_600 + rng.below(86_400 * 700) as i64) };
    let rec = event_record(rng, &dev, region, wall);
    let snaps = 1 + rng.below(6) as usize;
    head_json(rng, &rec, snaps)
}
