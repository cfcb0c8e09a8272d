//! Durable file operations: atomic writes (temp file in the same folder, fsync, rename, fsync the folder),
//! free-space queries, and a fault hook through which tests inject I/O errors.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

/// Prefix of temporary files; start-up rescan removes them.
pub const TEMP_PREFIX: &str = ".tmp-";

/// A step of an atomic write at which a [`FaultHook`] may inject an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultPoint {
    /// Creating the temp file.
    Create,
    /// Writing its bytes.
    Write,
    /// fsync of the temp file.
    Sync,
    /// The rename into place.
    Rename,
    /// fsync of the folder.
    DirSync,
    /// Deleting a bundle.
    Remove,
}

/// Called before each [`FaultPoint`] with the file concerned; an `Err` is returned from the operation as if
/// the kernel had said it.
pub type FaultHook = Arc<dyn Fn(FaultPoint, &Path) -> io::Result<()> + Send + Sync>;

pub(crate) fn fault(hook: &Option<FaultHook>, point: FaultPoint, path: &Path) -> io::Result<()> {
    match hook {
        Some(h) => h(point, path),
        None => Ok(()),
    }
}

/// fsync a folder, so a rename or unlink in it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `dir/name` atomically: `dir/.tmp-name`, fsync, rename, fsync `dir`. On error the temp
/// file is removed (best effort) and the old file, if any, is untouched.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8], hook: &Option<FaultHook>) -> io::Result<()> {
    let tmp = dir.join(format!("{TEMP_PREFIX}{name}"));
    let dest = dir.join(name);
    let result = (|| {
        fault(hook, FaultPoint::Create, &tmp)?;
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        fault(hook, FaultPoint::Write, &tmp)?;
        f.write_all(bytes)?;
        fault(hook, FaultPoint::Sync, &tmp)?;
        f.sync_all()?;
        drop(f);
        fault(hook, FaultPoint::Rename, &dest)?;
        fs::rename(&tmp, &dest)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fault(hook, FaultPoint::DirSync, dir)?;
    sync_dir(dir)
}

/// Bytes available to unprivileged writers on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    // SAFETY: statvfs is plain old data; zeroed is a valid value and the call only writes into it.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated string and `s` a valid, writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)]
    Ok((s.f_bavail as u64).saturating_mul(s.f_frsize as u64))
}

/// True when the error says the disk (or quota) is full.
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || e.kind() == io::ErrorKind::StorageFull
}

/// True when the error says the filesystem is read-only or the folder is not writable.
pub fn is_read_only(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EROFS) | Some(libc::EACCES) | Some(libc::EPERM))
        || e.kind() == io::ErrorKind::ReadOnlyFilesystem
}

/// 32 bits from the kernel's random source; falls back to a hash of time, pid and a counter.
pub fn random_u32() -> u32 {
    use std::io::Read;
    let mut b = [0u8; 4];
    if File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_ok() {
        return u32::from_le_bytes(b);
    }
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let t =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let x = crate::xxh64::xxh64(
        format!("{t}-{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
            .as_bytes(),
    );
    x as u32
}
