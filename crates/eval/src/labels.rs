//! The labels file for footage (TOML): one `[[clip]]` per video file or frame folder.
//!
//! ```toml
//! [[clip]]
//! path = "footage/spaghetti.mkv"   # relative to the labels file
//! interval_s = 10.0                # optional: frames are this many seconds apart (timelapse)
//! failure = ["3-"]                 # frame ranges showing a failure: "a-b" (inclusive), "a-" (to the end), "a"
//! # normal = ["0-2"]               # optional; without it every frame not in `failure` is normal,
//! #                                # with it frames in neither list are left out of the figures
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a frame or image shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Normal,
    Failure,
}

/// An inclusive range of 0-based frame indices; `end` `None` runs to the end of the clip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRange {
    pub start: u64,
    pub end: Option<u64>,
}

impl FrameRange {
    pub fn contains(&self, frame: u64) -> bool {
        frame >= self.start && self.end.is_none_or(|e| frame <= e)
    }

    /// Parses "a-b", "a-" or "a".
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let num = |x: &str| x.trim().parse::<u64>().ok();
        match s.split_once('-') {
            Some((a, "")) => Some(Self { start: num(a)?, end: None }),
            Some((a, b)) => {
                let (start, end) = (num(a)?, num(b)?);
                (end >= start).then_some(Self { start, end: Some(end) })
            }
            None => num(s).map(|n| Self { start: n, end: Some(n) }),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    clip: Vec<RawClip>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClip {
    path: PathBuf,
    interval_s: Option<f64>,
    #[serde(default)]
    failure: Vec<String>,
    normal: Option<Vec<String>>,
}

/// One labelled clip.
#[derive(Clone, Debug, PartialEq)]
pub struct Clip {
    /// Resolved against the labels file's folder.
    pub path: PathBuf,
    pub interval_s: Option<f64>,
    pub failure: Vec<FrameRange>,
    /// `None`: every frame not in `failure` is normal.
    pub normal: Option<Vec<FrameRange>>,
}

impl Clip {
    /// The label of frame `frame`, or `None` when it is left out.
    pub fn label(&self, frame: u64) -> Option<Label> {
        if self.failure.iter().any(|r| r.contains(frame)) {
            return Some(Label::Failure);
        }
        match &self.normal {
            None => Some(Label::Normal),
            Some(n) if n.iter().any(|r| r.contains(frame)) => Some(Label::Normal),
            Some(_) => None,
        }
    }
}

/// A parsed labels file.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelsFile {
    pub clips: Vec<Clip>,
}

/// A labels file that cannot be used; the message names the file and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("labels file {path}: {reason}")]
pub struct LabelsError {
    pub path: PathBuf,
    pub reason: String,
}

impl LabelsFile {
    pub fn load(path: &Path) -> Result<Self, LabelsError> {
        let err = |reason: String| LabelsError { path: path.to_path_buf(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(err)
    }

    /// Parses the TOML text; relative clip paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, String> {
        let raw: RawFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let ranges = |v: &[String], clip: &Path| -> Result<Vec<FrameRange>, String> {
            v.iter()
                .map(|s| {
                    FrameRange::parse(s).ok_or_else(|| {
                        format!(
                            "clip {}: bad frame range {s:?} (use \"a-b\", \"a-\" or \"a\")",
                            clip.display()
                        )
                    })
                })
                .collect()
        };
        let mut clips = Vec::new();
        for c in raw.clip {
            if let Some(s) = c.interval_s {
                if !(s > 0.0 && s.is_finite()) {
                    return Err(format!(
                        "clip {}: interval_s must be a positive number, got {s}",
                        c.path.display()
                    ));
                }
            }
            let failure = ranges(&c.failure, &c.path)?;
            let normal = c.normal.as_deref().map(|n| ranges(n, &c.path)).transpose()?;
            let path = if c.path.is_absolute() { c.path } else { base.join(c.path) };
            clips.push(Clip { path, interval_s: c.interval_s, failure, normal });
        }
        if clips.is_empty() {
            return Err("no [[clip]] entries".into());
        }
        Ok(Self { clips })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_ranges_parse_closed_open_and_single() {
        assert_eq!(FrameRange::parse("3-7"), Some(FrameRange { start: 3, end: Some(7) }));
        assert_eq!(FrameRange::parse("3-"), Some(FrameRange { start: 3, end: None }));
        assert_eq!(FrameRange::parse(" 5 "), Some(FrameRange { start: 5, end: Some(5) }));
        assert_eq!(FrameRange::parse("7-3"), None);
        assert_eq!(FrameRange::parse("x"), None);
    }

    #[test]
    fn frames_outside_failure_ranges_are_normal_unless_normal_ranges_are_given() {
        let f = LabelsFile::parse(
            "[[clip]]\npath = \"a.mkv\"\nfailure = [\"3-\"]\n[[clip]]\npath = \"/b.mkv\"\ninterval_s = 10.0\nfailure = [\"5-6\"]\nnormal = [\"0-2\"]\n",
            Path::new("/data"),
        )
        .unwrap();
        assert_eq!(f.clips[0].path, Path::new("/data/a.mkv"));
        assert_eq!(f.clips[0].label(2), Some(Label::Normal));
        assert_eq!(f.clips[0].label(300), Some(Label::Failure));
        assert_eq!(f.clips[1].path, Path::new("/b.mkv"));
        assert_eq!(f.clips[1].label(4), None);
        assert_eq!(f.clips[1].label(6), Some(Label::Failure));
        assert_eq!(f.clips[1].label(7), None);
    }

    #[test]
    fn bad_labels_files_are_refused_with_a_reason() {
        let base = Path::new(".");
        assert!(LabelsFile::parse("", base).unwrap_err().contains("no [[clip]]"));
        assert!(LabelsFile::parse("[[clip]]\npath = \"a\"\nfailure = [\"9-1\"]\n", base)
            .unwrap_err()
            .contains("9-1"));
        assert!(LabelsFile::parse("[[clip]]\npath = \"a\"\nfalure = []\n", base).is_err());
        assert!(LabelsFile::parse("[[clip]]\npath = \"a\"\ninterval_s = 0.0\n", base).is_err());
    }
}
