//! Frame -> model input: one fused pass that resamples an 8-bit image of any size to S x S and writes the
//! three float planes of the model's input tensor, into buffers owned by the per-thread detector.
//!
//! The resampling is OpenCV's `INTER_AREA`, which the model was trained with. When neither axis grows, each
//! output pixel is the area-weighted mean of the input pixels its footprint covers (partly covered edge
//! pixels count by the fraction covered). When either axis grows, OpenCV switches both axes to a bilinear
//! variant whose weights are computed from the footprints' edges; that is reproduced here too, so that a
//! small frame is stretched as it was in training. Both are separable: each axis has a table of taps
//! (first input index and weights per output index), built once per input size and kept.

use ndarray::Array4;
use vigil_frame::{Image, PixelFormat};

/// Errors from preprocessing a frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PreprocessError {
    /// The image has no pixels.
    #[error("cannot preprocess an empty {width}x{height} image")]
    Empty { width: u32, height: u32 },
}

/// Resampling table of one axis, `src` input pixels to `dst` output pixels. Every output index has the same
/// number of taps, `k`: output `i` is the sum of `weights[i * k + j] * input[starts[i] + j]` for `j < k`
/// (windows near the end start early and pad with zero weights, so a window never runs past the input).
/// A fixed count lets the inner loops be unrolled for the usual counts.
#[derive(Clone, Debug, Default, PartialEq)]
struct Axis {
    k: usize,
    starts: Vec<usize>,
    weights: Vec<f32>,
}

impl Axis {
    /// OpenCV's area table (`computeResizeAreaTab`): for shrinking, `src >= dst`.
    fn area(src: usize, dst: usize) -> Self {
        let scale = src as f64 / dst as f64;
        let spans = (0..dst).map(|dx| {
            let f1 = dx as f64 * scale;
            let f2 = f1 + scale;
            let cell = scale.min(src as f64 - f1);
            let s2 = (f2.floor() as usize).min(src - 1);
            let s1 = (f1.ceil() as usize).min(s2);
            let mut weights = Vec::with_capacity(s2 - s1 + 2);
            let mut first = s1;
            if s1 as f64 - f1 > 1e-3 {
                first = s1 - 1;
                weights.push(((s1 as f64 - f1) / cell) as f32);
            }
            weights.extend((s1..s2).map(|_| (1.0 / cell) as f32));
            if f2 - s2 as f64 > 1e-3 {
                weights.push(((f2 - s2 as f64).min(1.0).min(cell) / cell) as f32);
            }
            (first, weights)
        });
        Self::from_spans(src, spans.collect())
    }

    /// OpenCV's `INTER_AREA` weights when the image grows on some axis (two taps, or one at the borders).
    fn linear(src: usize, dst: usize) -> Self {
        let scale = src as f64 / dst as f64;
        let inv = dst as f64 / src as f64;
        let spans = (0..dst).map(|dx| {
            let mut sx = (dx as f64 * scale).floor() as usize;
            let f = (dx + 1) as f64 - (sx + 1) as f64 * inv;
            let mut fx = if f <= 0.0 { 0.0 } else { (f - f.floor()) as f32 };
            if sx >= src - 1 {
                (sx, fx) = (src - 1, 0.0);
            }
            (sx, if fx > 0.0 { vec![1.0 - fx, fx] } else { vec![1.0] })
        });
        Self::from_spans(src, spans.collect())
    }

    /// Pads variable-length spans `(first input index, weights)` to one tap count.
    fn from_spans(src: usize, spans: Vec<(usize, Vec<f32>)>) -> Self {
        let k = spans.iter().map(|(_, w)| w.len()).max().unwrap_or(1).clamp(1, src);
        let mut axis =
            Axis { k, starts: Vec::with_capacity(spans.len()), weights: vec![0.0; spans.len() * k] };
        for (i, (first, w)) in spans.iter().enumerate() {
            let start = (*first).min(src - k);
            let at = i * k + (first - start);
            axis.weights[at..at + w.len()].copy_from_slice(w);
            axis.starts.push(start);
        }
        axis
    }

    /// First input index and the `k` weights of output `i`.
    fn taps(&self, i: usize) -> (usize, &[f32]) {
        (self.starts[i], &self.weights[i * self.k..(i + 1) * self.k])
    }
}

/// Reusable buffers for turning an [`Image`] into a `[1, 3, S, S]` RGB float tensor (values 0..255; the model
/// normalises). The image is stretched to S x S with OpenCV's area interpolation, as in training, and rounded
/// to whole values as OpenCV's 8-bit output is. Gray images fill all three planes; BGR images are reordered.
/// The tables and the row buffer are rebuilt only when the input size changes: the steady state allocates
/// nothing.
pub struct Preprocessor {
    size: usize,
    /// Input width and height the tables are for.
    built_for: (usize, usize),
    cols: Axis,
    rows: Axis,
    /// One input-width row of vertically resampled values.
    row: Vec<f32>,
    tensor: Array4<f32>,
}

impl Preprocessor {
    pub fn new(size: u32) -> Self {
        let s = size as usize;
        Self {
            size: s,
            built_for: (0, 0),
            cols: Axis::default(),
            rows: Axis::default(),
            row: Vec::new(),
            tensor: Array4::zeros((1, 3, s, s)),
        }
    }

    fn build(&mut self, width: usize, height: usize, channels: usize) {
        if self.built_for != (width, height) {
            let s = self.size;
            let shrink = width >= s && height >= s;
            let axis = if shrink { Axis::area } else { Axis::linear };
            (self.cols, self.rows) = (axis(width, s), axis(height, s));
            self.built_for = (width, height);
        }
        if self.row.len() < width * channels {
            self.row.resize(width * channels, 0.0);
        }
    }

    /// Fills the tensor from `image` and returns it.
    pub fn run(&mut self, image: &Image) -> Result<&Array4<f32>, PreprocessError> {
        let (w, h) = (image.width() as usize, image.height() as usize);
        if w == 0 || h == 0 {
            return Err(PreprocessError::Empty { width: image.width(), height: image.height() });
        }
        let s = self.size;
        if s == 0 {
            return Ok(&self.tensor);
        }
        let format = image.format();
        let ch = format.channels();
        self.build(w, h, ch);
        let stride = w * ch;
        let data = image.data();
        let plane = s * s;
        let Some(out) = self.tensor.as_slice_mut() else {
            unreachable!("a tensor made by Array4::zeros is contiguous")
        };
        let (p0, rest) = out.split_at_mut(plane);
        let (p1, p2) = rest.split_at_mut(plane);
        // Plane order for the input's channel order: RGB input fills R, G, B; BGR input fills B, G, R.
        let (first, third) = match format {
            PixelFormat::Bgr8 => (p2, p0),
            _ => (p0, p2),
        };
        let planes = [first, p1, third];
        let job = Job { data, stride, channels: ch, size: s, cols: &self.cols, rows: &self.rows };
        job.run(&mut self.row[..stride], planes);
        Ok(&self.tensor)
    }
}

/// One frame's resampling: the input, its tables and the row buffer's use.
struct Job<'a> {
    data: &'a [u8],
    stride: usize,
    channels: usize,
    size: usize,
    cols: &'a Axis,
    rows: &'a Axis,
}

impl Job<'_> {
    /// Fills the three planes (in the input's channel order; a gray input fills the first and copies it).
    fn run(&self, row: &mut [f32], planes: [&mut [f32]; 3]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            return unsafe { self.run_avx2(row, planes) };
        }
        self.run_generic(row, planes)
    }

    /// The same code compiled for AVX2 and FMA: the u8 -> f32 widening and multiply-adds of the row pass
    /// take half the instructions.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&self, row: &mut [f32], planes: [&mut [f32]; 3]) {
        self.run_generic(row, planes)
    }

    #[inline(always)]
    fn run_generic(&self, row: &mut [f32], [first, second, third]: [&mut [f32]; 3]) {
        let s = self.size;
        for dy in 0..s {
            let (sy, wy) = self.rows.taps(dy);
            vertical(row, self.data, self.stride, sy, wy);
            let base = dy * s;
            if self.channels == 1 {
                gray_row(row, self.cols, &mut first[base..base + s]);
            } else {
                color_row(
                    row,
                    self.cols,
                    &mut first[base..base + s],
                    &mut second[base..base + s],
                    &mut third[base..base + s],
                );
            }
        }
        if self.channels == 1 {
            second.copy_from_slice(first);
            third.copy_from_slice(first);
        }
    }
}

/// `row = sum over taps of weight * input row`, over whole rows (contiguous, so the compiler vectorises it).
#[inline(always)]
fn vertical(row: &mut [f32], data: &[u8], stride: usize, sy: usize, wy: &[f32]) {
    let src = |k: usize| &data[(sy + k) * stride..(sy + k + 1) * stride];
    let mut taps = wy.iter().enumerate().filter(|(_, &w)| w != 0.0);
    match taps.next() {
        Some((k, &w)) => row.iter_mut().zip(src(k)).for_each(|(r, &p)| *r = w * p as f32),
        None => row.fill(0.0),
    }
    for (k, &w) in taps {
        row.iter_mut().zip(src(k)).for_each(|(r, &p)| *r += w * p as f32);
    }
}

/// Rounds a non-negative value to the nearest whole number, halves up, as OpenCV's integer-ratio area path does
/// (its fractional path rounds in float, where exact halves hardly occur).
#[inline(always)]
fn round(v: f32) -> f32 {
    (v + 0.5) as i32 as f32
}

/// One output row of a gray image: `k` taps per output pixel, unrolled for the usual counts.
#[inline(always)]
fn gray_row(row: &[f32], cols: &Axis, out: &mut [f32]) {
    match cols.k {
        1 => gray_row_k::<1>(row, cols, out),
        2 => gray_row_k::<2>(row, cols, out),
        3 => gray_row_k::<3>(row, cols, out),
        4 => gray_row_k::<4>(row, cols, out),
        5 => gray_row_k::<5>(row, cols, out),
        6 => gray_row_k::<6>(row, cols, out),
        7 => gray_row_k::<7>(row, cols, out),
        8 => gray_row_k::<8>(row, cols, out),
        _ => {
            for (dx, o) in out.iter_mut().enumerate() {
                let (sx, wx) = cols.taps(dx);
                *o = round(row[sx..sx + wx.len()].iter().zip(wx).map(|(p, w)| p * w).sum());
            }
        }
    }
}

#[inline(always)]
fn gray_row_k<const K: usize>(row: &[f32], cols: &Axis, out: &mut [f32]) {
    for ((o, &sx), wx) in out.iter_mut().zip(&cols.starts).zip(cols.weights.chunks_exact(K)) {
        let src = &row[sx..sx + K];
        let mut v = 0.0;
        for k in 0..K {
            v += src[k] * wx[k];
        }
        *o = round(v);
    }
}

/// One output row of a three-channel image into three planes, `k` taps per output pixel.
#[inline(always)]
fn color_row(row: &[f32], cols: &Axis, a: &mut [f32], b: &mut [f32], c: &mut [f32]) {
    match cols.k {
        1 => color_row_k::<1>(row, cols, a, b, c),
        2 => color_row_k::<2>(row, cols, a, b, c),
        3 => color_row_k::<3>(row, cols, a, b, c),
        4 => color_row_k::<4>(row, cols, a, b, c),
        5 => color_row_k::<5>(row, cols, a, b, c),
        6 => color_row_k::<6>(row, cols, a, b, c),
        7 => color_row_k::<7>(row, cols, a, b, c),
        8 => color_row_k::<8>(row, cols, a, b, c),
        _ => {
            for (dx, ((oa, ob), oc)) in a.iter_mut().zip(b.iter_mut()).zip(c.iter_mut()).enumerate() {
                let (sx, wx) = cols.taps(dx);
                let src = &row[sx * 3..(sx + wx.len()) * 3];
                let (mut va, mut vb, mut vc) = (0.0f32, 0.0f32, 0.0f32);
                for (px, &w) in src.chunks_exact(3).zip(wx) {
                    va += px[0] * w;
                    vb += px[1] * w;
                    vc += px[2] * w;
                }
                (*oa, *ob, *oc) = (round(va), round(vb), round(vc));
            }
        }
    }
}

#[inline(always)]
fn color_row_k<const K: usize>(row: &[f32], cols: &Axis, a: &mut [f32], b: &mut [f32], c: &mut [f32]) {
    let outs = a.iter_mut().zip(b.iter_mut()).zip(c.iter_mut());
    for ((((oa, ob), oc), &sx), wx) in outs.zip(&cols.starts).zip(cols.weights.chunks_exact(K)) {
        let src = &row[sx * 3..sx * 3 + 3 * K];
        let (mut va, mut vb, mut vc) = (0.0f32, 0.0f32, 0.0f32);
        for k in 0..K {
            va += src[3 * k] * wx[k];
            vb += src[3 * k + 1] * wx[k];
            vc += src[3 * k + 2] * wx[k];
        }
        (*oa, *ob, *oc) = (round(va), round(vb), round(vc));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bgr_pixels_become_rgb_planes() {
        // A 4x4 image, blue everywhere (B=200, G=10, R=30 in BGR order).
        let img = Image::new(4, 4, PixelFormat::Bgr8, [200u8, 10, 30].repeat(16)).unwrap();
        let mut pre = Preprocessor::new(2);
        let t = pre.run(&img).unwrap();
        assert_eq!(t.shape(), &[1, 3, 2, 2]);
        assert!(t.slice(ndarray::s![0, 0, .., ..]).iter().all(|&v| v == 30.0), "R plane");
        assert!(t.slice(ndarray::s![0, 1, .., ..]).iter().all(|&v| v == 10.0), "G plane");
        assert!(t.slice(ndarray::s![0, 2, .., ..]).iter().all(|&v| v == 200.0), "B plane");
    }

    #[test]
    fn rgb_pixels_keep_their_order() {
        let img = Image::new(5, 3, PixelFormat::Rgb8, [30u8, 10, 200].repeat(15)).unwrap();
        let mut pre = Preprocessor::new(4);
        let t = pre.run(&img).unwrap();
        assert!(t.slice(ndarray::s![0, 0, .., ..]).iter().all(|&v| v == 30.0), "R plane");
        assert!(t.slice(ndarray::s![0, 1, .., ..]).iter().all(|&v| v == 10.0), "G plane");
        assert!(t.slice(ndarray::s![0, 2, .., ..]).iter().all(|&v| v == 200.0), "B plane");
    }

    #[test]
    fn gray_images_are_replicated_to_three_channels() {
        let img = Image::new(3, 3, PixelFormat::Gray8, vec![77; 9]).unwrap();
        let mut pre = Preprocessor::new(3);
        let t = pre.run(&img).unwrap();
        assert!(t.iter().all(|&v| v == 77.0));
        // A gradient, shrunk: the three planes are equal, pixel for pixel.
        let data = (0..40 * 30).map(|i| (i % 251) as u8).collect();
        let img = Image::new(40, 30, PixelFormat::Gray8, data).unwrap();
        let mut pre = Preprocessor::new(7);
        let t = pre.run(&img).unwrap();
        let r = t.slice(ndarray::s![0, 0, .., ..]);
        assert_eq!(r, t.slice(ndarray::s![0, 1, .., ..]));
        assert_eq!(r, t.slice(ndarray::s![0, 2, .., ..]));
        assert!(r.iter().any(|&v| v != r[[0usize, 0]]));
    }

    #[test]
    fn area_resize_averages_a_left_right_split() {
        // Left half black, right half white; shrunk to 2x2 each output pixel keeps its half's value.
        let mut data = Vec::new();
        for _ in 0..4 {
            data.extend([0u8, 0, 255, 255]);
        }
        let img = Image::new(4, 4, PixelFormat::Gray8, data).unwrap();
        let mut pre = Preprocessor::new(2);
        let t = pre.run(&img).unwrap();
        assert_eq!(t[[0, 0, 0, 0]], 0.0);
        assert_eq!(t[[0, 0, 0, 1]], 255.0);
        assert_eq!(t[[0, 0, 1, 0]], 0.0);
        assert_eq!(t[[0, 0, 1, 1]], 255.0);
    }

    #[test]
    fn an_odd_split_shrunk_by_a_fraction_mixes_the_middle_column_by_area() {
        // 3 columns (0, 90, 255) to 2: each output covers 1.5 inputs, so the middle one counts half to each.
        let img = Image::new(3, 1, PixelFormat::Gray8, vec![0, 90, 255]).unwrap();
        let mut pre = Preprocessor::new(2);
        // Height 1 grows to 2, so this is OpenCV's growing mode; a 3x3 input shrinks on both axes.
        let img3 = Image::new(3, 3, PixelFormat::Gray8, [0u8, 90, 255].repeat(3)).unwrap();
        let t = pre.run(&img3).unwrap();
        assert_eq!(t[[0, 0, 0, 0]], 30.0, "(0 + 90 / 2) / 1.5");
        assert_eq!(t[[0, 0, 0, 1]], 200.0, "(90 / 2 + 255) / 1.5");
        assert!(pre.run(&img).is_ok());
    }

    #[test]
    fn tables_weigh_partly_covered_pixels_by_the_fraction_covered() {
        let a = Axis::area(5, 2);
        assert_eq!(a.taps(0), (0, &[0.4f32, 0.4, 0.2][..]));
        assert_eq!(a.taps(1), (2, &[0.2f32, 0.4, 0.4][..]));
        // 5 -> 3: spans of 2, 3 and 2 inputs, padded to 3 taps; the last window starts early.
        let a = Axis::area(5, 3);
        let close = |(s, w): (usize, &[f32]), (s2, w2): (usize, [f32; 3])| {
            s == s2 && w.iter().zip(w2).all(|(a, b)| (a - b).abs() < 1e-6)
        };
        assert_eq!(a.k, 3);
        assert!(close(a.taps(0), (0, [0.6, 0.4, 0.0])), "{:?}", a.taps(0));
        assert!(close(a.taps(1), (1, [0.2, 0.6, 0.2])), "{:?}", a.taps(1));
        assert!(close(a.taps(2), (2, [0.0, 0.4, 0.6])), "{:?}", a.taps(2));
        let a = Axis::area(4, 4);
        assert!((0..4).all(|i| a.taps(i) == (i, &[1.0f32][..])));
        for (src, dst) in [(640, 192), (480, 192), (1920, 192), (1000, 192), (197, 192)] {
            let a = Axis::area(src, dst);
            for i in 0..dst {
                let (_, w) = a.taps(i);
                assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{src}->{dst} at {i}");
            }
        }
        // Growing: two taps weighted by where the output lands, one at the borders.
        let l = Axis::linear(2, 5);
        assert_eq!(l.taps(0), (0, &[1.0f32, 0.0][..]));
        assert_eq!(l.taps(1), (0, &[1.0f32, 0.0][..]));
        assert_eq!(l.taps(2), (0, &[0.5f32, 0.5][..]));
        assert_eq!(l.taps(4), (0, &[0.0f32, 1.0][..]));
        let one = Axis::linear(1, 3);
        assert!((0..3).all(|i| one.taps(i) == (0, &[1.0f32][..])));
    }

    #[test]
    fn a_one_pixel_image_fills_the_whole_tensor() {
        let img = Image::new(1, 1, PixelFormat::Bgr8, vec![1, 2, 3]).unwrap();
        let mut pre = Preprocessor::new(5);
        let t = pre.run(&img).unwrap();
        assert!(t.slice(ndarray::s![0, 0, .., ..]).iter().all(|&v| v == 3.0));
        assert!(t.slice(ndarray::s![0, 1, .., ..]).iter().all(|&v| v == 2.0));
        assert!(t.slice(ndarray::s![0, 2, .., ..]).iter().all(|&v| v == 1.0));
    }

    #[test]
    fn an_empty_image_is_an_error_and_sizes_can_change_between_frames() {
        let mut pre = Preprocessor::new(4);
        let empty = Image::new(0, 3, PixelFormat::Gray8, vec![]).unwrap();
        assert_eq!(pre.run(&empty).unwrap_err(), PreprocessError::Empty { width: 0, height: 3 });
        let big = Image::filled(64, 48, PixelFormat::Rgb8, 9);
        let small = Image::filled(3, 2, PixelFormat::Gray8, 200);
        assert!(pre.run(&big).unwrap().iter().all(|&v| v == 9.0));
        assert!(pre.run(&small).unwrap().iter().all(|&v| v == 200.0));
        assert!(pre.run(&big).unwrap().iter().all(|&v| v == 9.0));
    }
}
