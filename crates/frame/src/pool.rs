//! A pool of image buffers shared with the stages that read them.

use std::sync::Arc;

use crate::{Image, PixelFormat};

/// Image buffers a source fills and hands on as `Arc<Image>`. A buffer is reused once every stage has dropped
/// its frame (the pool then holds the only reference), so in the steady state reading a frame allocates
/// nothing. When every pooled buffer is still in use a new one is made, and kept while the pool holds fewer
/// than its capacity; beyond that, buffers are not pooled (memory stays bounded by the frames in flight).
#[derive(Debug)]
pub struct ImagePool {
    slots: Vec<Arc<Image>>,
    capacity: usize,
    /// Buffers made because none was free.
    made: u64,
}

impl ImagePool {
    /// A pool keeping at most `capacity` buffers (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self { slots: Vec::with_capacity(capacity), capacity, made: 0 }
    }

    /// A `width` x `height` image in `format` filled by `fill` (which is given its packed bytes), reusing a
    /// free buffer when there is one. `fill` may fail; the buffer then stays in the pool.
    pub fn fill<E>(
        &mut self,
        width: u32,
        height: u32,
        format: PixelFormat,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Arc<Image>, E> {
        let free = self.slots.iter_mut().position(|s| Arc::get_mut(s).is_some());
        let slot = match free {
            Some(i) => i,
            None => {
                self.made += 1;
                let image = Arc::new(Image::filled(width, height, format, 0));
                if self.slots.len() >= self.capacity {
                    let mut image = image;
                    if let Some(img) = Arc::get_mut(&mut image) {
                        fill(img.data_mut())?;
                    }
                    return Ok(image);
                }
                self.slots.push(image);
                self.slots.len() - 1
            }
        };
        let shared = &mut self.slots[slot];
        if let Some(img) = Arc::get_mut(shared) {
            img.reshape(width, height, format);
            fill(img.data_mut())?;
        }
        Ok(shared.clone())
    }

    /// Buffers made so far because none was free (steady state: this stops growing).
    pub fn made(&self) -> u64 {
        self.made
    }

    /// Buffers held by the pool.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill_with(v: u8) -> impl FnOnce(&mut [u8]) -> Result<(), ()> {
        move |d: &mut [u8]| {
            d.fill(v);
            Ok(())
        }
    }

    #[test]
    fn a_buffer_is_reused_once_every_holder_has_dropped_it() {
        let mut pool = ImagePool::new(4);
        let a = pool.fill(4, 2, PixelFormat::Gray8, fill_with(1)).unwrap();
        let ptr = a.data().as_ptr();
        drop(a);
        let b = pool.fill(4, 2, PixelFormat::Gray8, fill_with(2)).unwrap();
        assert_eq!(b.data().as_ptr(), ptr);
        assert!(b.data().iter().all(|&v| v == 2));
        assert_eq!(pool.made(), 1);
    }

    #[test]
    fn a_buffer_still_held_downstream_is_never_overwritten() {
        let mut pool = ImagePool::new(4);
        let held = pool.fill(2, 2, PixelFormat::Gray8, fill_with(7)).unwrap();
        let next = pool.fill(2, 2, PixelFormat::Gray8, fill_with(9)).unwrap();
        assert!(held.data().iter().all(|&v| v == 7));
        assert!(next.data().iter().all(|&v| v == 9));
        assert_eq!(pool.made(), 2);
    }

    #[test]
    fn beyond_its_capacity_the_pool_hands_out_unpooled_buffers() {
        let mut pool = ImagePool::new(2);
        let held: Vec<_> =
            (0..5).map(|i| pool.fill(2, 1, PixelFormat::Gray8, fill_with(i)).unwrap()).collect();
        assert_eq!(pool.len(), 2);
        assert_eq!(held[4].data(), &[4, 4]);
    }

    #[test]
    fn a_reused_buffer_takes_the_new_size_and_format() {
        let mut pool = ImagePool::new(1);
        drop(pool.fill(4, 4, PixelFormat::Bgr8, fill_with(1)).unwrap());
        let small = pool.fill(2, 3, PixelFormat::Gray8, fill_with(5)).unwrap();
        assert_eq!((small.width(), small.height(), small.format()), (2, 3, PixelFormat::Gray8));
        assert_eq!(small.data().len(), 6);
    }

    #[test]
    fn a_failed_fill_is_reported_and_the_buffer_stays_pooled() {
        let mut pool = ImagePool::new(2);
        let err = pool.fill(2, 2, PixelFormat::Gray8, |_| Err("bad")).unwrap_err();
        assert_eq!(err, "bad");
        assert_eq!(pool.len(), 1);
        let ok = pool.fill(2, 2, PixelFormat::Gray8, fill_with(3)).unwrap();
        assert_eq!(ok.data(), &[3; 4]);
        assert_eq!(pool.made(), 1);
    }
}
