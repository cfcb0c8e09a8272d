//! The [`PreparedModel`] / [`Detector`] split and the ONNX Runtime backend.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use ort::session::Session;
use ort::value::TensorRef;
use serde::{Deserialize, Serialize};
use vigil_frame::{Image, Rect};

use crate::preprocess::{PreprocessError, Preprocessor};
use crate::runtime::{self, RuntimeError};

/// Errors from loading or running a detector.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The model does not have the inputs and outputs vigil expects.
    #[error("model {path} does not fit: {reason}")]
    Contract { path: PathBuf, reason: String },
    /// The frame cannot be turned into the model's input.
    #[error("preprocessing failed: {0}")]
    Preprocess(#[from] PreprocessError),
    /// Inference failed.
    #[error("inference failed: {0}")]
    Inference(String),
}

/// A place in the frame the model points at, with its strongest cell's score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Region {
    /// Bounding box in frame pixels.
    #[serde(flatten)]
    pub rect: Rect,
    pub score: f32,
}

/// Most heat-map cells a [`HeatMap`] holds (a 16 x 16 grid; the shipped model has 6 x 6).
pub const MAX_HEATMAP_CELLS: usize = 256;

/// Per-cell failure probabilities, row-major, held inline so that a detection allocates nothing.
#[derive(Clone, Copy, PartialEq)]
pub struct HeatMap {
    cells: [f32; MAX_HEATMAP_CELLS],
    rows: usize,
    cols: usize,
}

impl HeatMap {
    /// A `rows` x `cols` heat map from row-major `values`; `None` when the sizes disagree or the grid has more
    /// than [`MAX_HEATMAP_CELLS`] cells.
    pub fn new(rows: usize, cols: usize, values: &[f32]) -> Option<Self> {
        let n = rows.checked_mul(cols)?;
        if n > MAX_HEATMAP_CELLS || values.len() != n {
            return None;
        }
        let mut cells = [0.0; MAX_HEATMAP_CELLS];
        cells[..n].copy_from_slice(values);
        Some(Self { cells, rows, cols })
    }

    /// Rows and columns.
    pub fn grid(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// The cells, row-major.
    pub fn cells(&self) -> &[f32] {
        &self.cells[..self.rows * self.cols]
    }
}

impl Default for HeatMap {
    fn default() -> Self {
        Self { cells: [0.0; MAX_HEATMAP_CELLS], rows: 0, cols: 0 }
    }
}

impl std::fmt::Debug for HeatMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeatMap").field("grid", &self.grid()).field("cells", &self.cells()).finish()
    }
}

/// What a detector says about one frame.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Detection {
    /// Probability of a print failure, in [0, 1].
    pub score: f32,
    /// Per-cell failure probability.
    pub heatmap: HeatMap,
    /// Connected groups of hot cells (probability >= [`REGION_THRESHOLD`]), in frame pixels.
    pub regions: Vec<Region>,
    /// Time spent in the model itself, in milliseconds.
    pub infer_ms: f64,
}

/// Heat-map cells at or above this probability make up [`Detection::regions`].
pub const REGION_THRESHOLD: f32 = 0.5;

/// Facts about a prepared model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    pub path: PathBuf,
    /// Input side in pixels (the model takes S x S).
    pub input_size: u32,
    /// A short content hash of the model file, reported with events.
    pub version: String,
}

/// A model loaded once and shared by every thread that detects (`Arc<dyn PreparedModel>`).
pub trait PreparedModel: Send + Sync {
    fn info(&self) -> &ModelInfo;
    /// A detector with its own per-thread state (session, buffers).
    fn detector(&self) -> Result<Box<dyn Detector>, DetectError>;
}

/// Per-thread detection state: scores one image at a time.
pub trait Detector: Send {
    fn detect(&mut self, image: &Image) -> Result<Detection, DetectError>;
}

/// The ONNX Runtime backend. The model takes `image` `[N, 3, S, S]` float RGB 0..255 and gives `score` `[N]`
/// and `heatmap` `[N, h, w]` (see models/MODEL_CARD.md).
pub struct OnnxModel {
    info: ModelInfo,
    threads: usize,
    /// The session made while checking the model, handed to the first detector so that loading makes one
    /// session, not two (each costs tens of MB while ONNX Runtime prepares it).
    first: Mutex<Option<Session>>,
}

impl OnnxModel {
    /// Loads and checks the model at `path`; each detector will use `threads` intra-op threads. The file is
    /// read again for each further detector rather than kept in memory.
    pub fn load(path: &Path, threads: usize) -> Result<Self, DetectError> {
        let unreadable =
            |e: std::io::Error| RuntimeError::Model { path: path.to_path_buf(), reason: e.to_string() };
        // Hashed in pieces before the session is made, so the file's bytes are never held in full.
        let version = format!("{:016x}", fnv1a_file(path).map_err(unreadable)?);
        let session = runtime::session_from_file(path, threads)?;
        let input_size = check_contract(&session)
            .map_err(|reason| DetectError::Contract { path: path.to_path_buf(), reason })?;
        Ok(Self {
            info: ModelInfo { path: path.to_path_buf(), input_size, version },
            threads,
            first: Mutex::new(Some(session)),
        })
    }
}

const FNV_OFFSET: u64 = 0xcbf29ce484222325;

fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

/// FNV-1a of a file's content, read 64 KiB at a time.
fn fnv1a_file(path: &Path) -> std::io::Result<u64> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut hash = FNV_OFFSET;
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(hash),
            Ok(n) => hash = fnv1a(hash, &buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Checks names and shapes; returns the input side S.
fn check_contract(session: &Session) -> Result<u32, String> {
    let input = session.inputs().iter().find(|i| i.name() == "image").ok_or("no input named `image`")?;
    let shape = input.dtype().tensor_shape().ok_or("input `image` is not a tensor")?;
    let dims: &[i64] = shape;
    if dims.len() != 4 || dims[1] != 3 || dims[2] <= 0 || dims[2] != dims[3] {
        return Err(format!("input `image` must be [N, 3, S, S], found {dims:?}"));
    }
    for name in ["score", "heatmap"] {
        if !session.outputs().iter().any(|o| o.name() == name) {
            return Err(format!("no output named `{name}`"));
        }
    }
    u32::try_from(dims[2]).map_err(|_| format!("input side {} is out of range", dims[2]))
}

impl PreparedModel for OnnxModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn detector(&self) -> Result<Box<dyn Detector>, DetectError> {
        let first = self.first.lock().ok().and_then(|mut g| g.take());
        let session = match first {
            Some(s) => s,
            None => runtime::session_from_file(&self.info.path, self.threads)?,
        };
        Ok(Box::new(OnnxDetector { session, pre: Preprocessor::new(self.info.input_size) }))
    }
}

struct OnnxDetector {
    session: Session,
    pre: Preprocessor,
}

impl Detector for OnnxDetector {
    fn detect(&mut self, image: &Image) -> Result<Detection, DetectError> {
        let input = self.pre.run(image)?;
        let started = Instant::now();
        let tensor = TensorRef::from_array_view(input).map_err(|e| DetectError::Inference(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs!["image" => tensor])
            .map_err(|e| DetectError::Inference(e.to_string()))?;
        let infer_ms = started.elapsed().as_secs_f64() * 1e3;
        let (_, score) = outputs["score"]
            .try_extract_tensor::<f32>()
            .map_err(|e| DetectError::Inference(e.to_string()))?;
        let (hshape, heat) = outputs["heatmap"]
            .try_extract_tensor::<f32>()
            .map_err(|e| DetectError::Inference(e.to_string()))?;
        let score = *score.first().ok_or_else(|| DetectError::Inference("empty `score` output".into()))?;
        let (gh, gw) = match **hshape {
            [_, h, w] if h > 0 && w > 0 => (h as usize, w as usize),
            ref other => return Err(DetectError::Inference(format!("`heatmap` has shape {other:?}"))),
        };
        let cells = heat.get(..gh * gw).ok_or_else(|| DetectError::Inference("short `heatmap`".into()))?;
        let heatmap = HeatMap::new(gh, gw, cells).ok_or_else(|| {
            DetectError::Inference(format!("`heatmap` of {gh}x{gw} cells is larger than {MAX_HEATMAP_CELLS}"))
        })?;
        let regions = regions(cells, (gh, gw), image.width() as f32, image.height() as f32);
        Ok(Detection { score: score.clamp(0.0, 1.0), heatmap, regions, infer_ms })
    }
}

/// Groups 4-connected heat-map cells at or above [`REGION_THRESHOLD`] into boxes in frame pixels. A heat map
/// with no hot cell allocates nothing.
pub fn regions(heat: &[f32], (gh, gw): (usize, usize), width: f32, height: f32) -> Vec<Region> {
    if !heat.iter().take(gh * gw).any(|&v| v >= REGION_THRESHOLD) {
        return Vec::new();
    }
    let (cw, ch) = (width / gw as f32, height / gh as f32);
    let mut seen = vec![false; gh * gw];
    let mut out = Vec::new();
    for start in 0..gh * gw {
        if seen[start] || heat[start] < REGION_THRESHOLD {
            continue;
        }
        let (mut r0, mut r1, mut c0, mut c1, mut best) = (usize::MAX, 0, usize::MAX, 0, 0f32);
        let mut stack = vec![start];
        seen[start] = true;
        while let Some(i) = stack.pop() {
            let (r, c) = (i / gw, i % gw);
            (r0, r1, c0, c1, best) = (r0.min(r), r1.max(r), c0.min(c), c1.max(c), best.max(heat[i]));
            let mut push = |j: usize| {
                if !seen[j] && heat[j] >= REGION_THRESHOLD {
                    seen[j] = true;
                    stack.push(j);
                }
            };
            if r > 0 {
                push(i - gw);
            }
            if r + 1 < gh {
                push(i + gw);
            }
            if c > 0 {
                push(i - 1);
            }
            if c + 1 < gw {
                push(i + 1);
            }
        }
        let rect =
            Rect::new(c0 as f32 * cw, r0 as f32 * ch, (c1 - c0 + 1) as f32 * cw, (r1 - r0 + 1) as f32 * ch);
        out.push(Region { rect, score: best });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_cells_that_touch_make_one_region_and_apart_make_two() {
        #[rustfmt::skip]
        let heat = [
            0.9, 0.8, 0.0, 0.0,
            0.0, 0.7, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.6,
        ];
        let r = regions(&heat, (3, 4), 400.0, 300.0);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].rect, Rect::new(0.0, 0.0, 200.0, 200.0));
        assert_eq!(r[0].score, 0.9);
        assert_eq!(r[1].rect, Rect::new(300.0, 200.0, 100.0, 100.0));
    }

    #[test]
    fn a_heatmap_keeps_its_grid_and_refuses_a_size_mismatch() {
        let h = HeatMap::new(2, 3, &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]).unwrap();
        assert_eq!(h.grid(), (2, 3));
        assert_eq!(h.cells(), &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]);
        assert!(HeatMap::new(2, 3, &[0.0; 5]).is_none());
        assert!(HeatMap::new(17, 17, &[0.0; 289]).is_none());
        assert!(HeatMap::default().cells().is_empty());
    }

    #[test]
    fn the_model_version_is_the_fnv1a_hash_of_the_whole_file() {
        let dir = std::env::temp_dir().join(format!("vigil-fnv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.onnx");
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(fnv1a_file(&path).unwrap(), fnv1a(FNV_OFFSET, &bytes));
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63dc4c8601ec8c);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_cold_heatmap_has_no_regions() {
        assert!(regions(&[0.1; 25], (5, 5), 640.0, 480.0).is_empty());
    }
}
