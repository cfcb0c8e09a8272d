//! Frame -> model input, done once per frame with OpenCV into buffers owned by the per-thread detector.

use ndarray::Array4;
use opencv::core::{Mat, MatTraitConst, Size};
use opencv::imgproc;
use opencv::prelude::MatTraitConstManual;
use vigil_frame::{Image, PixelFormat};

/// Reusable buffers for turning an [`Image`] into a `[1, 3, S, S]` RGB float tensor (values 0..255; the model
/// normalises). The image is stretched to S x S with area interpolation, as in training.
pub struct Preprocessor {
    size: i32,
    resized: Mat,
    rgb: Mat,
    tensor: Array4<f32>,
}

impl Preprocessor {
    pub fn new(size: u32) -> Self {
        let s = size as usize;
        Self {
            size: size as i32,
            resized: Mat::default(),
            rgb: Mat::default(),
            tensor: Array4::zeros((1, 3, s, s)),
        }
    }

    /// Fills the tensor from `image` and returns it.
    pub fn run(&mut self, image: &Image) -> opencv::Result<&Array4<f32>> {
        let channels = image.format().channels() as i32;
        let flat = Mat::new_rows_cols_with_data(
            image.height() as i32,
            image.width() as i32 * channels,
            image.data(),
        )?;
        let view = flat.reshape(channels, image.height() as i32)?;
        imgproc::resize(
            &view,
            &mut self.resized,
            Size::new(self.size, self.size),
            0.0,
            0.0,
            imgproc::INTER_AREA,
        )?;
        let code = match image.format() {
            PixelFormat::Gray8 => Some(imgproc::COLOR_GRAY2RGB),
            PixelFormat::Bgr8 => Some(imgproc::COLOR_BGR2RGB),
            PixelFormat::Rgb8 => None,
        };
        let rgb = match code {
            Some(code) => {
                imgproc::cvt_color(&self.resized, &mut self.rgb, code, 0)?;
                &self.rgb
            }
            None => &self.resized,
        };
        let bytes = rgb.data_bytes()?;
        let plane = (self.size * self.size) as usize;
        if let Some(dst) = self.tensor.as_slice_mut() {
            for (i, px) in bytes.chunks_exact(3).enumerate().take(plane) {
                dst[i] = px[0] as f32;
                dst[plane + i] = px[1] as f32;
                dst[2 * plane + i] = px[2] as f32;
            }
        }
        Ok(&self.tensor)
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
    fn gray_images_are_replicated_to_three_channels() {
        let img = Image::new(3, 3, PixelFormat::Gray8, vec![77; 9]).unwrap();
        let mut pre = Preprocessor::new(3);
        let t = pre.run(&img).unwrap();
        assert!(t.iter().all(|&v| v == 77.0));
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
    }
}
