//! The process-wide ONNX Runtime environment and session creation.
//!
//! ONNX Runtime allows one environment per process, so it lives in a [`OnceLock`] here and every model in
//! vigil (the failure detector, the privacy filter's face model) makes its sessions through
//! [`session_from_file`] or [`session_from_memory`]. The shared library is loaded at run time (`ort`'s
//! `load-dynamic`): from `ORT_DYLIB_PATH` when set, else from `lib/libonnxruntime.so` beside or above the
//! executable, else from the path the build was configured with (the project's `.local/onnxruntime`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use ort;
use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;

/// Errors from loading ONNX Runtime or a model.
#[derive(Clone, Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The ONNX Runtime shared library could not be found or loaded.
    #[error(
        "cannot load the ONNX Runtime library ({tried}): {reason}; run tools/setup.sh or set ORT_DYLIB_PATH"
    )]
    Library { tried: String, reason: String },
    /// A model file could not be read or prepared.
    #[error("cannot load model {path}: {reason}")]
    Model { path: PathBuf, reason: String },
}

static ENVIRONMENT: OnceLock<Result<Environment, RuntimeError>> = OnceLock::new();

/// Where the ONNX Runtime library is looked for, in order.
pub fn library_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        out.push(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(3) {
            out.push(dir.join("lib").join("libonnxruntime.so"));
        }
    }
    if let Some(p) = option_env!("ORT_DYLIB_PATH") {
        out.push(PathBuf::from(p));
    }
    out
}

fn init() -> Result<Environment, RuntimeError> {
    let candidates = library_candidates();
    let tried = candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
    let path = candidates
        .iter()
        .find(|p| p.exists())
        .ok_or_else(|| RuntimeError::Library { tried: tried.clone(), reason: "no such file".into() })?;
    let builder = ort::init_from(path)
        .map_err(|e| RuntimeError::Library { tried: path.display().to_string(), reason: e.to_string() })?;
    builder
        .with_name("vigil")
        .with_telemetry(false)
        .build()
        .map_err(|e| RuntimeError::Library { tried: path.display().to_string(), reason: e.to_string() })
}

/// The process-wide environment, created on first use.
pub fn environment() -> Result<&'static Environment, RuntimeError> {
    ENVIRONMENT.get_or_init(init).as_ref().map_err(Clone::clone)
}

fn builder(intra_threads: usize) -> Result<ort::session::builder::SessionBuilder, String> {
    let env = environment().map_err(|e| e.to_string())?;
    Session::builder(env)
        .and_then(|b| b.with_optimization_level(GraphOptimizationLevel::Level3).map_err(Into::into))
        .and_then(|b| b.with_intra_threads(intra_threads.max(1)).map_err(Into::into))
        .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
        // Without a memory pattern, each run takes its tensors from the arena one by one instead of reserving
        // one block planned for the whole run next to the arena's own: measured on the failure model, 9 MB
        // (fp32) and 5 MB (int8) less resident memory, no slower.
        .and_then(|b| b.with_memory_pattern(false).map_err(Into::into))
        .map_err(|e: ort::Error| e.to_string())
}

/// A new session for the model file at `path`, using `intra_threads` threads per inference. ONNX Runtime reads
/// the file itself, so no copy of the model is held on this side while the session is prepared.
pub fn session_from_file(path: &Path, intra_threads: usize) -> Result<Session, RuntimeError> {
    if let Err(e @ RuntimeError::Library { .. }) = environment() {
        return Err(e);
    }
    // ONNX Runtime's own message for a missing file does not always name it.
    std::fs::metadata(path)
        .map_err(|e| RuntimeError::Model { path: path.to_path_buf(), reason: e.to_string() })?;
    let session = builder(intra_threads)
        .and_then(|mut b| b.commit_from_file(path).map_err(|e| e.to_string()))
        .map_err(|reason| RuntimeError::Model { path: path.to_path_buf(), reason })?;
    release_free_heap();
    Ok(session)
}

/// A new session for a model already in memory; `origin` names it in errors. The caller may drop `bytes` as
/// soon as this returns: the session keeps its own copy of what it needs.
pub fn session_from_memory(
    bytes: &[u8],
    origin: &Path,
    intra_threads: usize,
) -> Result<Session, RuntimeError> {
    if let Err(e @ RuntimeError::Library { .. }) = environment() {
        return Err(e);
    }
    let session = builder(intra_threads)
        .and_then(|mut b| b.commit_from_memory(bytes).map_err(|e| e.to_string()))
        .map_err(|reason| RuntimeError::Model { path: origin.to_path_buf(), reason })?;
    release_free_heap();
    Ok(session)
}

/// Hands the heap memory freed while a session was prepared (the parsed model, graph copies made by the
/// optimiser: tens of MB for the failure model) back to the system. glibc keeps freed memory below the top of
/// its heap resident otherwise, and the process's resident size would stay at its loading peak.
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator's own heaps to the system; it takes no
    // pointers and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_model_is_an_error_naming_the_file() {
        let err = session_from_file(Path::new("/nonexistent/model.onnx"), 1).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/model.onnx"), "{err}");
    }

    #[test]
    fn garbage_bytes_are_refused_as_a_model() {
        let err = session_from_memory(b"not a model", Path::new("junk.onnx"), 1).unwrap_err();
        assert!(matches!(err, RuntimeError::Model { .. }), "{err}");
        assert!(err.to_string().contains("junk.onnx"));
    }

    #[test]
    fn the_environment_is_created_once_and_shared_across_threads() {
        let handles: Vec<_> =
            (0..4).map(|_| std::thread::spawn(|| environment().map(|e| e as *const _ as usize))).collect();
        let ptrs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap().unwrap()).collect();
        assert!(ptrs.windows(2).all(|w| w[0] == w[1]));
    }
}
