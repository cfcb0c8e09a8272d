//! vigil's preprocessing against OpenCV's `INTER_AREA` resize (the one the model was trained with), on real
//! frames at the sizes frames arrive in: shrunk by fractional ratios, grown, grown on one axis only, 1x1.
//! The reference outputs are made by `tools/make_preprocess_fixtures.py` (see `tests/data/cases.txt`); the
//! inputs are derived from two stored frames by the same integer index mapping as there.

use std::path::{Path, PathBuf};

use ndarray::Array4;
use vigil_detect::runtime::{self, ort};
use vigil_detect::Preprocessor;
use vigil_frame::{Image, PixelFormat};

const SIZE: u32 = 192;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

struct Case {
    name: String,
    input: Image,
    /// OpenCV's output as the model's input tensor.
    reference: Array4<f32>,
}

/// A stored frame as packed BGR (colour) or gray bytes, with its size.
fn base(name: &str) -> (Vec<u8>, u32, u32, usize) {
    let img = image::open(data().join(format!("{name}.png"))).unwrap();
    match img {
        image::DynamicImage::ImageLuma8(g) => (g.as_raw().clone(), g.width(), g.height(), 1),
        other => {
            let rgb = other.to_rgb8();
            let bgr = rgb.as_raw().chunks_exact(3).flat_map(|p| [p[2], p[1], p[0]]).collect();
            (bgr, rgb.width(), rgb.height(), 3)
        }
    }
}

fn derive((bytes, bw, bh, ch): &(Vec<u8>, u32, u32, usize), w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity((w * h) as usize * ch);
    for y in 0..h as usize {
        let by = y * *bh as usize / h as usize;
        for x in 0..w as usize {
            let bx = x * *bw as usize / w as usize;
            let at = (by * *bw as usize + bx) * ch;
            out.extend_from_slice(&bytes[at..at + ch]);
        }
    }
    out
}

fn cases() -> Vec<Case> {
    let list = std::fs::read_to_string(data().join("cases.txt")).unwrap();
    let (gray, color) = (base("gray"), base("color"));
    let mut out = Vec::new();
    for line in list.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (w, h): (u32, u32) = (f[2].parse().unwrap(), f[3].parse().unwrap());
        let mut bytes = derive(if f[1] == "gray" { &gray } else { &color }, w, h);
        let format = match f[4] {
            "gray8" => PixelFormat::Gray8,
            "bgr8" => PixelFormat::Bgr8,
            "rgb8" => {
                bytes.chunks_exact_mut(3).for_each(|p| p.swap(0, 2));
                PixelFormat::Rgb8
            }
            other => panic!("unknown format {other}"),
        };
        let r = image::open(data().join(f[5])).unwrap().to_rgb8();
        assert_eq!(r.dimensions(), (SIZE, SIZE), "{}", f[5]);
        let s = SIZE as usize;
        let mut reference = Array4::zeros((1, 3, s, s));
        for (x, y, p) in r.enumerate_pixels() {
            for c in 0..3 {
                reference[[0, c, y as usize, x as usize]] = p[c] as f32;
            }
        }
        let input = Image::new(w, h, format, bytes).unwrap();
        out.push(Case { name: f[0].to_string(), input, reference });
    }
    assert!(out.len() >= 10, "cases.txt lists too few cases");
    out
}

#[test]
fn every_case_agrees_with_opencv_inter_area_within_one_level() {
    let mut pre = Preprocessor::new(SIZE);
    for case in cases() {
        let t = pre.run(&case.input).unwrap();
        let diff = (t - &case.reference).mapv(f32::abs);
        let max = diff.iter().fold(0f32, |m, &d| m.max(d));
        let mean = diff.mean().unwrap();
        let exact = diff.iter().filter(|&&d| d == 0.0).count() as f64 / diff.len() as f64;
        eprintln!("{:>14}: max |diff| {max}, mean {mean:.5}, equal {:.2}%", case.name, exact * 100.0);
        assert!(max <= 1.0, "{}: max |diff| {max} against OpenCV", case.name);
    }
}

#[test]
fn the_models_scores_on_real_frames_match_those_on_opencvs_input() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/failure.onnx");
    let mut session = match runtime::session_from_file(&model, 1) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipped: {e}");
            return;
        }
    };
    let mut score = |t: &Array4<f32>| -> f32 {
        let input = ort::value::TensorRef::from_array_view(t).unwrap();
        let out = session.run(ort::inputs!["image" => input]).unwrap();
        out["score"].try_extract_tensor::<f32>().unwrap().1[0]
    };
    let mut pre = Preprocessor::new(SIZE);
    for case in cases() {
        let (ours, theirs) = (score(pre.run(&case.input).unwrap()), score(&case.reference));
        eprintln!("{:>14}: score {ours:.6} vs OpenCV's input {theirs:.6}", case.name);
        assert!((ours - theirs).abs() < 1e-3, "{}: {ours} vs {theirs}", case.name);
    }
}
