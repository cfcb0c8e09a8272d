//! An image list (TOML): labelled images with their source set and group, such as the validation split that
//! `tools/train_failure_model.py --write-split` writes.
//!
//! ```toml
//! root = "../../../shared/data"   # optional: folder the image paths are relative to (relative to this file)
//! image = [
//!   { path = "images/lz3d/valid/NoDefects/a.jpg", label = "normal", source = "lz3d", group = "g00012" },
//! ]
//! ```
//!
//! Image paths are resolved against, in this order: the `--data` folder given to `vigil eval`, the file's
//! `root`, or `../shared/data` (relative to the working folder). `source` and `group` are optional;
//! [`crate::evaluate`] reports figures per source.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::labels::Label;

/// Where image paths are resolved when neither `--data` nor `root` says.
pub const DEFAULT_ROOT: &str = "../shared/data";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawList {
    root: Option<PathBuf>,
    #[serde(default)]
    image: Vec<RawImage>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    path: PathBuf,
    label: Label,
    source: Option<String>,
    group: Option<String>,
}

/// One listed image.
#[derive(Clone, Debug, PartialEq)]
pub struct ListedImage {
    /// Resolved against the list's root.
    pub path: PathBuf,
    pub label: Label,
    /// Source set; `-` when the list does not say.
    pub source: String,
    pub group: Option<String>,
}

/// A parsed image list.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageList {
    /// The folder the image paths were resolved against.
    pub root: PathBuf,
    pub images: Vec<ListedImage>,
}

/// An image list that cannot be used; the message names the file.
#[derive(Debug, thiserror::Error)]
#[error("image list {path}: {reason}")]
pub struct ListError {
    pub path: PathBuf,
    pub reason: String,
}

impl ImageList {
    /// Reads the list at `path`; `data` overrides its `root`.
    pub fn load(path: &Path, data: Option<&Path>) -> Result<Self, ListError> {
        let err = |reason: String| ListError { path: path.to_path_buf(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base, data).map_err(err)
    }

    /// Parses the TOML text; a relative `root` is resolved against `base`.
    pub fn parse(text: &str, base: &Path, data: Option<&Path>) -> Result<Self, String> {
        let raw: RawList = toml::from_str(text).map_err(|e| e.to_string())?;
        if raw.image.is_empty() {
            return Err("no images (an `image = [...]` array)".into());
        }
        let root = match (data, raw.root) {
            (Some(d), _) => d.to_path_buf(),
            (None, Some(r)) if r.is_absolute() => r,
            (None, Some(r)) => base.join(r),
            (None, None) => PathBuf::from(DEFAULT_ROOT),
        };
        let images = raw
            .image
            .into_iter()
            .map(|i| ListedImage {
                path: if i.path.is_absolute() { i.path } else { root.join(i.path) },
                label: i.label,
                source: i.source.unwrap_or_else(|| "-".into()),
                group: i.group,
            })
            .collect();
        Ok(Self { root, images })
    }

    /// Source names in order of first appearance.
    pub fn sources(&self) -> Vec<&str> {
        let mut v: Vec<&str> = Vec::new();
        for i in &self.images {
            if !v.contains(&i.source.as_str()) {
                v.push(&i.source);
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"
root = "data"
image = [
  { path = "a/n.jpg", label = "normal", source = "cam-a", group = "g1" },
  { path = "a/f.jpg", label = "failure", source = "cam-a" },
  { path = "/abs/f.jpg", label = "failure", source = "cam-b" },
  { path = "x.jpg", label = "normal" },
]
"#;

    #[test]
    fn paths_resolve_against_data_then_root_then_the_default() {
        let l = ImageList::parse(LIST, Path::new("/lists"), None).unwrap();
        assert_eq!(l.images[0].path, Path::new("/lists/data/a/n.jpg"));
        assert_eq!(l.images[2].path, Path::new("/abs/f.jpg"));
        assert_eq!(l.images[1].label, Label::Failure);
        assert_eq!(l.images[0].group.as_deref(), Some("g1"));
        assert_eq!(l.sources(), vec!["cam-a", "cam-b", "-"]);
        let l = ImageList::parse(LIST, Path::new("/lists"), Some(Path::new("/d"))).unwrap();
        assert_eq!(l.images[0].path, Path::new("/d/a/n.jpg"));
        let l = ImageList::parse("image = [{ path = \"a.jpg\", label = \"normal\" }]", Path::new("/l"), None)
            .unwrap();
        assert_eq!(l.images[0].path, Path::new(DEFAULT_ROOT).join("a.jpg"));
    }

    #[test]
    fn bad_lists_are_refused_with_a_reason() {
        let base = Path::new(".");
        assert!(ImageList::parse("", base, None).unwrap_err().contains("no images"));
        assert!(ImageList::parse("image = [{ path = \"a\", label = \"broken\" }]", base, None).is_err());
        assert!(ImageList::parse(
            "image = [{ path = \"a\", label = \"normal\", sauce = \"x\" }]",
            base,
            None
        )
        .is_err());
        let e = ImageList::load(Path::new("/no/such/list.toml"), None).unwrap_err();
        assert!(e.to_string().contains("/no/such/list.toml"), "{e}");
    }
}
