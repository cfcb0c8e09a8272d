//! Allocation per frame in the steady state, counted by a global allocator that wraps the system's: reading a
//! frame from a video file (pooled buffers), scoring it (preprocessing buffers owned by the detector,
//! inference, heat map held inline) and the temporal rule. Allocations made by C and C++ libraries (the
//! decoders, ONNX Runtime's own arena) are not seen here; the soak (`vigil-perf soak`) bounds their growth.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use vigil_capture::{FrameSource, Timing, VideoFile};
use vigil_detect::{Judge, JudgeConfig, OnnxModel, PreparedModel, Preprocessor};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread's watch (the test runs alone in its process section).
fn count<R>(f: impl FnOnce() -> R) -> (R, u64) {
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let r = f();
    COUNTING.store(false, Ordering::SeqCst);
    (r, ALLOCS.load(Ordering::SeqCst))
}

#[test]
fn in_the_steady_state_reading_preprocessing_and_judging_allocate_nothing_and_inference_a_fixed_few() {
    let root = vigil_benches::root();
    let clip = root.join("fixtures/footage/normal.mkv");
    let model = match OnnxModel::load(&root.join("models/failure.onnx"), 1) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skipped: {e}");
            return;
        }
    };
    let mut det = model.detector().unwrap();
    let mut src = VideoFile::open(&clip, Timing::Media).unwrap();
    let mut judge = Judge::new(JudgeConfig::default());
    let mut pre = Preprocessor::new(model.info().input_size);
    // Warm-up: pools, the decoder, the session's first runs and the resampling tables (made once per size).
    for _ in 0..8 {
        let f = src.next_frame().unwrap().unwrap();
        pre.run(&f.image).unwrap();
        let d = det.detect(&f.image).unwrap();
        judge.observe(f.seq, f.t, d.score, &d.regions);
    }
    let (mut read, mut prep, mut detect, mut judged, mut frames, mut hot) = (0, 0, 0, 0, 0, 0);
    loop {
        let (next, n) = count(|| src.next_frame());
        let Some(f) = next.unwrap() else { break };
        read += n;
        let (t, n) = count(|| pre.run(&f.image).map(|t| t[[0, 0, 0, 0]]));
        t.unwrap();
        prep += n;
        let (d, n) = count(|| det.detect(&f.image));
        let d = d.unwrap();
        detect += n;
        if !d.regions.is_empty() {
            // Hot frames carry their region list (one vector); cold frames carry none.
            hot += 1;
        }
        let (_, n) = count(|| judge.observe(f.seq, f.t, d.score, &d.regions));
        judged += n;
        frames += 1;
    }
    eprintln!(
        "{frames} frames ({hot} with regions): allocations read {read}, preprocess {prep}, detect {detect} \
         (preprocess + inference + heat map), judge {judged}"
    );
    assert!(frames >= 10, "the clip is too short to say anything");
    assert_eq!(hot, 0, "the normal clip should have no hot cells");
    assert_eq!(read, 0, "reading frames allocated");
    assert_eq!(prep, 0, "preprocessing allocated");
    assert_eq!(judged, 0, "the judge allocated");
    // What is left is inside the `ort` crate's safe `Session::run` wrapper (input list, tensor view and output
    // value handles): a fixed few per frame, never growing with the frame size.
    assert!(detect <= 8 * frames, "scoring allocated {detect} times over {frames} frames");
}
