//! Labelled image sets.
//!
//! * **Folder per class**: every image below the folder takes the label of its nearest ancestor folder whose
//!   name says one: `normal`, `good`, `ok`, `nodefects`, `no_defect`... are normal; `failure`, `fail`,
//!   `spaghetti`, `defects`, `yesdefects`... are failures (case and `-`/`_` ignored). Images under no such
//!   folder are left out.
//! * **YOLO**: every `images` folder below the given folder with a `labels` sibling; an image is a failure
//!   when its label file (same stem, `.txt`) has a box of one of the failure classes, normal otherwise
//!   (no label file or no such box).

use std::path::{Path, PathBuf};

use crate::labels::Label;

/// One labelled image.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledImage {
    pub path: PathBuf,
    pub label: Label,
}

/// A folder that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {reason}")]
pub struct ImagesError {
    pub path: PathBuf,
    pub reason: String,
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png" | "bmp" | "webp"))
}

/// The label a folder name stands for, if any.
pub fn class_of_folder(name: &str) -> Option<Label> {
    let n: String = name.chars().filter(|c| c.is_alphanumeric()).collect::<String>().to_lowercase();
    const NORMAL: &[&str] =
        &["normal", "good", "ok", "nodefect", "nodefects", "nofailure", "negative", "pass"];
    const FAILURE: &[&str] = &[
        "failure",
        "failures",
        "fail",
        "failed",
        "spaghetti",
        "defect",
        "defects",
        "yesdefects",
        "positive",
    ];
    if NORMAL.contains(&n.as_str()) {
        Some(Label::Normal)
    } else if FAILURE.contains(&n.as_str()) {
        Some(Label::Failure)
    } else {
        None
    }
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, ImagesError> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ImagesError { path: dir.to_path_buf(), reason: e.to_string() })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

/// Images of a folder-per-class set, sorted by path.
pub fn folder_per_class(root: &Path) -> Result<Vec<LabelledImage>, ImagesError> {
    fn walk(dir: &Path, label: Option<Label>, out: &mut Vec<LabelledImage>) -> Result<(), ImagesError> {
        for p in read_dir_sorted(dir)? {
            if p.is_dir() {
                let here = p.file_name().and_then(|n| n.to_str()).and_then(class_of_folder).or(label);
                walk(&p, here, out)?;
            } else if let (true, Some(label)) = (is_image(&p), label) {
                out.push(LabelledImage { path: p, label });
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    let top = root.file_name().and_then(|n| n.to_str()).and_then(class_of_folder);
    walk(root, top, &mut out)?;
    Ok(out)
}

/// Images of a YOLO set, sorted by path; `failure_classes` are the class ids that make an image a failure.
pub fn yolo(root: &Path, failure_classes: &[u32]) -> Result<Vec<LabelledImage>, ImagesError> {
    fn walk(dir: &Path, classes: &[u32], out: &mut Vec<LabelledImage>) -> Result<(), ImagesError> {
        for p in read_dir_sorted(dir)? {
            if !p.is_dir() {
                continue;
            }
            let labels = p.with_file_name("labels");
            if p.file_name().is_some_and(|n| n == "images") && labels.is_dir() {
                for img in read_dir_sorted(&p)?.into_iter().filter(|x| is_image(x)) {
                    let stem = img.file_stem().map(|s| s.to_os_string()).unwrap_or_default();
                    let txt = labels.join(stem).with_extension("txt");
                    let failure = std::fs::read_to_string(&txt).ok().is_some_and(|t| {
                        t.lines().any(|l| {
                            l.split_whitespace()
                                .next()
                                .and_then(|c| c.parse::<u32>().ok())
                                .is_some_and(|c| classes.contains(&c))
                        })
                    });
                    out.push(LabelledImage {
                        path: img,
                        label: if failure { Label::Failure } else { Label::Normal },
                    });
                }
            } else {
                walk(&p, classes, out)?;
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    if root.file_name().is_some_and(|n| n == "images") && root.with_file_name("labels").is_dir() {
        // Pointed straight at an `images` folder: walk its parent for just this one.
        let parent = root.parent().unwrap_or(Path::new("."));
        walk(parent, failure_classes, &mut out)?;
        out.retain(|i| i.path.starts_with(root));
    } else {
        walk(root, failure_classes, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_map_to_classes_whatever_their_spelling() {
        assert_eq!(class_of_folder("NoDefects"), Some(Label::Normal));
        assert_eq!(class_of_folder("YesDefects"), Some(Label::Failure));
        assert_eq!(class_of_folder("no_defect"), Some(Label::Normal));
        assert_eq!(class_of_folder("Failure"), Some(Label::Failure));
        assert_eq!(class_of_folder("train"), None);
    }

    #[test]
    fn folder_per_class_and_yolo_sets_are_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        for (f, c) in
            [("set/train/normal/a.jpg", ""), ("set/valid/failure/b.png", ""), ("set/other/c.jpg", "")]
        {
            std::fs::create_dir_all(p.join(f).parent().unwrap()).unwrap();
            std::fs::write(p.join(f), c).unwrap();
        }
        let v = folder_per_class(&p.join("set")).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].label, Label::Normal);
        assert_eq!(v[1].label, Label::Failure);

        for f in ["y/train/images/a.jpg", "y/train/images/b.jpg", "y/train/images/c.jpg"] {
            std::fs::create_dir_all(p.join(f).parent().unwrap()).unwrap();
            std::fs::write(p.join(f), "").unwrap();
        }
        std::fs::create_dir_all(p.join("y/train/labels")).unwrap();
        std::fs::write(p.join("y/train/labels/a.txt"), "0 0.5 0.5 0.1 0.1\n1 0.2 0.2 0.1 0.1\n").unwrap();
        std::fs::write(p.join("y/train/labels/b.txt"), "0 0.5 0.5 0.1 0.1\n").unwrap();
        let v = yolo(&p.join("y"), &[1]).unwrap();
        let labels: Vec<_> = v.iter().map(|i| i.label).collect();
        assert_eq!(labels, vec![Label::Failure, Label::Normal, Label::Normal]);
        assert_eq!(yolo(&p.join("y/train/images"), &[1]).unwrap().len(), 3);
    }
}
