//! A folder of still frames, read in file-name order.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vigil_frame::Frame;

use crate::{decode_image, frame, CaptureError, FrameSource, Timing};

/// JPEG and PNG files of a folder, sorted by name. Without [`Timing::Interval`] frames are one second apart.
pub struct FrameFolder {
    id: Arc<str>,
    files: Vec<PathBuf>,
    next: usize,
    interval: f64,
}

const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

impl FrameFolder {
    pub fn open(path: &Path, timing: Timing) -> Result<Self, CaptureError> {
        let open_err = |reason: String| CaptureError::Open { path: path.to_path_buf(), reason };
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| open_err(e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            })
            .collect();
        if files.is_empty() {
            return Err(open_err("no .jpg, .jpeg or .png files in the folder".into()));
        }
        files.sort();
        let interval = match timing {
            Timing::Interval(s) => s,
            Timing::Media => 1.0,
        };
        Ok(Self { id: path.display().to_string().into(), files, next: 0, interval })
    }
}

impl FrameSource for FrameFolder {
    fn id(&self) -> &str {
        &self.id
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        let Some(path) = self.files.get(self.next) else { return Ok(None) };
        let seq = self.next as u64;
        self.next += 1;
        let id = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| CaptureError::CorruptFrame {
            source_id: id.clone(),
            seq,
            reason: e.to_string(),
        })?;
        let image = decode_image(&bytes, &id, seq)?;
        Ok(Some(frame(seq, seq as f64 * self.interval, &self.id, image)))
    }

    fn len_hint(&self) -> Option<u64> {
        Some(self.files.len() as u64)
    }
}
