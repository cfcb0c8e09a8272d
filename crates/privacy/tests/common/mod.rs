//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use vigil_privacy::{HardwareIds, PrivacyConfig};

pub const SERIAL: &str = "VG-2024-000123";
pub const MAC: &str = "dc:a6:32:01:02:03";

pub fn root() -> PathBuf {
    PathBuf::from(env!("VIGIL_ROOT"))
}

pub fn fixtures() -> PathBuf {
    root().join("fixtures/privacy")
}

/// The CenterFace model put in place by tools/setup.d/centerface.sh.
pub fn model() -> PathBuf {
    let p = root().join(".local/models/centerface.onnx");
    assert!(p.exists(), "{} missing: run tools/setup.sh (tools/setup.d/centerface.sh)", p.display());
    p
}

pub fn ids() -> HardwareIds {
    HardwareIds { mac: MAC.into(), serial: SERIAL.into() }
}

/// A config whose state files live in `dir`, with the real face model.
pub fn config(dir: &Path) -> PrivacyConfig {
    let mut c = PrivacyConfig {
        consent_file: dir.join("state/consent.json"),
        device_key_file: dir.join("state/device.key"),
        audit_log: dir.join("state/audit.jsonl"),
        country: "DE".into(),
        ..PrivacyConfig::default()
    };
    c.faces.model = model();
    c
}

pub fn corpus_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures().join("corpus"))
        .expect("fixtures/privacy/corpus")
        .map(|e| e.expect("dir entry").path())
        .collect();
    v.sort();
    v
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Every spelling of the planted identifiers and markers that must not survive.
pub fn secrets() -> Vec<Vec<u8>> {
    let mut v = ids().forbidden_patterns();
    v.push(b"SECRET".to_vec());
    v.push(b"Exif".to_vec());
    v.push(b"http://ns.adobe.com".to_vec());
    v.push(b"ICC_PROFILE".to_vec());
    v.push(b"Photoshop".to_vec());
    v.push(b"Ducky".to_vec());
    v
}

/// Every file below `dir`, recursively, with its bytes.
pub fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            out.extend(tree(&p));
        } else {
            let bytes = std::fs::read(&p).expect("read");
            out.push((p, bytes));
        }
    }
    out.sort();
    out
}
