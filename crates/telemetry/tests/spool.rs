//! Spool, bundle format and `vigil spool` inspection: durability, bounds, retention under bad clocks,
//! erasure, junk, disk full and read-only spools.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vigil_telemetry::bundle::{self, BundleKind, DICTIONARY};
use vigil_telemetry::fsutil::{FaultHook, FaultPoint};
use vigil_telemetry::testkit::worker_event;
use vigil_telemetry::{
    inspect, Body, Clock, DeletionReason, ManualClock, Region, Spool, SpoolLimits, TelemetryError,
};

const NOW: i64 = 1_790_000_000; // 2026-09-21
const DAY: i64 = 86_400;

fn limits() -> SpoolLimits {
    SpoolLimits { max_bytes: 1 << 30, max_bundles: 1000, min_free_bytes: 0, retention_days: 14 }
}

fn open(dir: &Path, l: SpoolLimits, clock: &Arc<ManualClock>) -> Spool {
    let c: Arc<dyn Clock> = clock.clone();
    match Spool::open(dir, l, c) {
        Ok(s) => s,
        Err(e) => panic!("opening spool {}: {e}", dir.display()),
    }
}

fn write(s: &mut Spool, n: u64) -> String {
    let (rec, snaps) = worker_event(n);
    match s.write_event(&rec, &snaps) {
        Ok(id) => id,
        Err(e) => panic!("write {n}: {e}"),
    }
}

fn bundle_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.retain(|n| bundle::parse_file_name(n).is_some());
    v.sort();
    v
}

fn tmp() -> tempfile::TempDir {
    match tempfile::tempdir() {
        Ok(t) => t,
        Err(e) => panic!("tempdir: {e}"),
    }
}

#[test]
fn bundle_round_trips_with_dictionary_head_and_stored_jpegs() {
    let t = tmp();
    let clock = Arc::new(ManualClock::new(NOW));
    let mut s = open(t.path(), limits(), &clock);
    let id = write(&mut s, 7);
    let data = fs::read(t.path().join(format!("{id}.zst"))).expect("bundle file");
    let b = bundle::decode(&data).expect("decodes");
    let (rec, snaps) = worker_event(7);
    assert_eq!(b.body, Body::Event { record: rec, snapshots: snaps.clone() });
    assert_eq!(b.manifest.id, id);
    assert_eq!(b.manifest.created_unix, Some(NOW));
    // JPEGs are stored, not recompressed: the file is at least as large as the snapshots.
    let jpeg_bytes: usize = snaps.iter().map(|s| s.jpeg.len()).sum();
    assert!(data.len() >= jpeg_bytes, "{} < {jpeg_bytes}", data.len());
    assert!(data.len() < jpeg_bytes + 4096);
    // The head frame names the shipped dictionary.
    let dict_id = zstd::zstd_safe::get_dict_id_from_dict(DICTIONARY).expect("dictionary has an id");
    assert_eq!(zstd::zstd_safe::get_dict_id_from_frame(&data), Some(dict_id));
}

#[test]
fn every_truncation_and_every_content_changing_flip_is_detected() {
    let t = tmp();
    let clock = Arc::new(ManualClock::new(NOW));
    let mut s = open(t.path(), limits(), &clock);
    let (rec, mut snaps) = worker_event(3);
    snaps.truncate(1);
    snaps[0].jpeg.truncate(200);
    let id = s.write_event(&rec, &snaps).expect("write");
    let data = fs::read(t.path().join(format!("{id}.zst"))).expect("read");
    assert!(bundle::decode(&data).is_ok());
    for len in 0..data.len() {
        assert!(bundle::decode(&data[..len]).is_err(), "truncation to {len} bytes not detected");
    }
    let original = bundle::decode(&data).expect("decodes");
    let mut harmless = 0;
    for i in 0..data.len() {
        let mut d = data.clone();
        d[i] ^= 0x01;
        // A flip either fails verification or hits a bit zstd's entropy coder does not use (padding), in
        // which case the content is exactly the original: never different content.
        match bundle::decode(&d) {
            Err(_) => {}
            Ok(b) => {
                assert_eq!(b, original, "flipped byte {i} changed the content undetected");
                harmless += 1;
            }
        }
    }
    assert!(harmless * 50 < data.len(), "{harmless} of {} flips went unnoticed", data.len());
    let mut longer = data.clone();
    longer.push(0);
    assert!(bundle::decode(&longer).is_err(), "trailing byte not detected");
}

#[test]
fn stock_zstd_tool_decodes_a_bundle_with_the_dictionary() {
    if Command::new("zstd").arg("--version").output().is_err() {
        println!("SKIP: no zstd command on this machine");
        return;
    }
    let t = tmp();
    let clock = Arc::new(ManualClock::new(NOW));
    let mut s = open(&t.path().join("spool"), limits(), &clock);
    let id = write(&mut s, 4);
    let dict = t.path().join("records.zdict");
    fs::write(&dict, DICTIONARY).expect("dict");
    let out = Command::new("zstd")
        .arg("-q")
        .arg("-d")
        .arg("-c")
        .arg("-D")
        .arg(&dict)
        .arg(t.path().join("spool").join(format!("{id}.zst")))
        .output()
        .expect("zstd runs");
    assert!(out.status.success(), "zstd failed: {}", String::from_utf8_lossy(&out.stderr));
    let (_, snaps) = worker_event(4);
    let mut tail = Vec::new();
    for s in &snaps {
        tail.extend_from_slice(&s.jpeg);
    }
    assert!(out.stdout.starts_with(b"{\"manifest\":"));
    assert!(out.stdout.ends_with(&tail));
}

#[test]
fn sequence_numbers_persist_across_restarts_whatever_the_clock_says() {
    let t = tmp();
    let clock = Arc::new(ManualClock::new(NOW));
    let mut ids = Vec::new();
    {
        let mut s = open(t.path(), limits(), &clock);
        ids.push(write(&mut s, 0));
        ids.push(write(&mut s, 1));
        for id in ids.clone() {
            assert!(s.remove(&id).expect("remove"));
        }
    }
    clock.set(0); // rebooted into 1970
    {
        let mut s = open(t.path(), limits(), &clock);
        ids.push(write(&mut s, 2));
    }
    clock.set(NOW + 3650 * DAY);
    {
        let mut s = open(t.path(), limits(), &clock);
        ids.push(write(&mut s, 3));
    }
    clock.set(NOW);
    let s = open(t.path(), limits(), &clock);
    ids.push(format!("next {}", s.next_seq()));
    let seqs: Vec<u64> = ids[..4].iter().map(|i| bundle::parse_bundle_id(i).expect("id").1).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "not increasing: {seqs:?}");
    assert!(s.next_seq() > seqs[3]);
}

#[test]
fn rescan_removes_temp_files_quarantines_corrupt_bundles_and_leaves_junk_alone() {
    let t = tmp();
    let dir = t.path();
    let clock = Arc::new(ManualClock::new(NOW));
    let good = {
        let mut s = open(dir, limits(), &clock);
        let good = write(&mut s, 1);
        let victim = write(&mut s, 2);
        let data = fs::read(dir.join(format!("{victim}.zst"))).expect("read");
        fs::write(dir.join(format!("{victim}.zst")), &data[..data.len() / 2]).expect("truncate");
        good
    };
    fs::write(dir.join(".tmp-e-000000000099-00000000.zst"), b"half a bundle").expect("temp");
    fs::write(dir.join("e-000000000050-0000beef.zst"), b"not zstd at all").expect("garbage");
    fs::create_dir(dir.join("e-000000000051-0000beef.zst")).expect("dir named like a bundle");
    fs::write(dir.join("notes.txt"), b"someone's file").expect("junk");
    fs::write(
        dir.join(bundle::bundle_id(BundleKind::Event, 60, 1) + ".zst"),
        zstd::encode_all(&b"{}"[..], 3).expect("z"),
    )
    .expect("valid zstd, not a bundle");
    let s = open(dir, limits(), &clock);
    let c = s.counters();
    assert_eq!(c.temp_removed, 1);
    assert_eq!(c.quarantined, 4);
    assert_eq!(c.ignored, 1);
    assert_eq!(s.entries().map(|e| e.id.clone()).collect::<Vec<_>>(), vec![good]);
    assert!(dir.join("notes.txt").exists(), "foreign files are left alone");
    assert_eq!(fs::read_dir(dir.join("quarantine")).expect("quarantine").count(), 4);
    assert!(s.next_seq() > 60, "sequence continues after quarantined names too");
}

#[test]
fn quota_evicts_oldest_event_bundles_first_and_exempts_the_deletion_request() {
    let t = tmp();
    let clock = Arc::new(ManualClock::new(NOW));
    let mut s = open(t.path(), SpoolLimits { max_bundles: 3, ..limits() }, &clock);
    let del = s.write_deletion("dev-us-0001", Region::Us, DeletionReason::OptOut).expect("deletion");
    let ids: Vec<String> = (0..5).map(|n| write(&mut s, n)).collect();
    assert_eq!(s.counters().evicted, 2);
    let mut want: Vec<String> = ids[2..].iter().map(|i| format!("{i}.zst")).collect();
    want.insert(0, format!("{del}.zst"));
    assert_eq!(bundle_files(t.path()), want);

    // By bytes: each worker event is a few KiB to 60 KiB; a 70 KiB quota keeps only the newest.
    let t2 = tmp();
    let mut s = open(t2.path(), SpoolLimits { max_bytes: 70 * 1024, ..limits() }, &clock);
    for n in 0..6 {
        write(&mut s, n);
        assert!(s.usage().0 <= 70 * 1024);
    }
    assert!(s.counters().evicted >= 3);
    let kept: Vec<u64> = s.entries().map(|e| e.seq).collect();
    assert_eq!(kept.last(), Some(&5), "the newest is kept: {kept:?}");
}

#[test]
fn a_bundle_larger_than_max_bytes_is_refused_and_counted() {
    let t = tmp();
    let clock = Arc::new(ManualClock::new(NOW));
    let mut s = open(t.path(), SpoolLimits { max_bytes: 64 * 1024, ..limits() }, &clock);
    let (rec, mut snaps) = worker_event(1);
    snaps[0].jpeg.resize(100 * 1024, 7);
    let err = s.write_event(&rec, &snaps).expect_err("too large");
    assert!(matches!(err, TelemetryError::TooLarge { .. }), "{err}");
    assert_eq!(s.counters().refused_too_large, 1);
    assert!(bundle_files(t.path()).is_empty());
}

#[test]
fn free_disk_floor_refuses_new_writes_instead_of_purging() {
    let t = tmp();
    let clock = Arc::new(ManualClock::new(NOW));
    let first = {
        let mut s = open(t.path(), limits(), &clock);
        write(&mut s, 1)
    };
    let mut s = open(t.path(), SpoolLimits { min_free_bytes: 1 << 50, ..limits() }, &clock);
    let err = s.write_event(&worker_event(2).0, &worker_event(2).1).expect_err("below the floor");
    assert!(matches!(err, TelemetryError::LowDisk { .. }), "{err}");
    assert_eq!(s.counters().refused_low_disk, 1);
    assert_eq!(s.counters().evicted, 0);
    assert_eq!(bundle_files(t.path()), vec![format!("{first}.zst")], "nothing was purged");
}

#[test]
fn retention_deletes_old_bundles_while_offline() {
    let t = tmp();
    let clock = Arc::new(ManualClock::new(NOW));
    let mut s = open(t.path(), limits(), &clock);
    write(&mut s, 1);
    clock.set(NOW + 10 * DAY);
    let young = write(&mut s, 2);
    clock.set(NOW + 14 * DAY + 10);
    assert_eq!(s.enforce_retention(), 1);
    assert_eq!(s.counters().expired, 1);
    assert_eq!(bundle_files(t.path()), vec![format!("{young}.zst")]);
}

#[test]
fn bundles_written_in_1970_start_ageing_when_the_clock_is_right() {
    let t = tmp();
    let clock = Arc::new(ManualClock::new(12)); // booted in 1970
    {
        let mut s = open(t.path(), limits(), &clock);
        let id = write(&mut s, 1);
        let b = bundle::decode(&fs::read(t.path().join(format!("{id}.zst"))).expect("read")).expect("decode");
        assert_eq!(b.manifest.created_unix, None, "an implausible clock is not recorded");
        assert_eq!(s.enforce_retention(), 0, "no retention without a plausible clock");
        clock.set(NOW); // NTP arrives
        assert_eq!(s.enforce_retention(), 0);
        assert_eq!(s.counters().restamped, 1);
    }
    clock.set(NOW + 13 * DAY);
    {
        let mut s = open(t.path(), limits(), &clock); // the age count survives a restart
        assert_eq!(s.enforce_retention(), 0);
    }
    clock.set(NOW + 15 * DAY);
    let mut s = open(t.path(), limits(), &clock);
    assert_eq!(s.enforce_retention(), 1);
    assert!(bundle_files(t.path()).is_empty());
}

#[test]
fn clock_years_ahead_ages_bundles_out_and_a_future_date_does_not_pin_a_bundle_forever() {
    // Written at the right time, then the clock jumps years ahead: retention deletes (errs on deleting).
    let t = tmp();
    let clock = Arc::new(ManualClock::new(NOW));
    let mut s = open(t.path(), limits(), &clock);
    write(&mut s, 1);
    clock.set(NOW + 3 * 365 * DAY);
    assert_eq!(s.enforce_retention(), 1);

    // Written while the clock was years ahead, then the clock is corrected: the age count restarts now.
    let t2 = tmp();
    clock.set(NOW + 5 * 365 * DAY);
    let mut s = open(t2.path(), limits(), &clock);
    write(&mut s, 2);
    clock.set(NOW);
    assert_eq!(s.enforce_retention(), 0);
    assert_eq!(s.counters().restamped, 1);
    drop(s);
    clock.set(NOW + 15 * DAY);
    let mut s = open(t2.path(), limits(), &clock);
    assert_eq!(s.enforce_retention(), 1, "expires 14 days after the correction, not in 5 years");
}

#[test]
fn erasure_deletes_every_pending_bundle_and_leaves_exactly_one_deletion_request() {
    let t = tmp();
    let clock = Arc::new(ManualClock::new(NOW));
    let mut s = open(t.path(), limits(), &clock);
    for n in 0..4 {
        write(&mut s, n * 2);
    }
    let r = s.erase(None, DeletionReason::OptOut);
    assert_eq!(r.deleted, 4);
    let del = r.deletion_request.clone().expect("deletion request");
    let r2 = s.erase(None, DeletionReason::Purge);
    assert_eq!(r2.deletion_request, Some(del.clone()), "a second erase keeps the one request");
    drop(s);
    let s = open(t.path(), SpoolLimits { max_bundles: 1, ..limits() }, &clock);
    assert_eq!(bundle_files(t.path()), vec![format!("{del}.zst")]);
    let e = s.pending_deletion().expect("pending after restart");
    let b = bundle::decode(&fs::read(t.path().join(e.file_name())).expect("read")).expect("decode");
    match b.body {
        Body::Deletion(d) => {
            assert_eq!(d.device_id, "dev-us-0001");
            assert_eq!(d.region, Region::Us);
        }
        other => panic!("not a deletion request: {other:?}"),
    }
}

fn injecting(point: FaultPoint, errno: i32, armed: Arc<AtomicBool>) -> FaultHook {
    Arc::new(move |p, path: &Path| {
        let is_bundle = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains("e-"));
        if p == point && is_bundle && armed.load(Ordering::SeqCst) {
            Err(io::Error::from_raw_os_error(errno))
        } else {
            Ok(())
        }
    })
}

/// Disk-full and I/O errors injected at each step of an atomic write (the portable complement of the tmpfs
/// test below): the write fails with a typed, counted error and leaves neither a temp file nor a bundle.
#[test]
fn injected_enospc_at_every_write_step_leaves_no_partial_bundle() {
    for point in [FaultPoint::Create, FaultPoint::Write, FaultPoint::Sync, FaultPoint::Rename] {
        let t = tmp();
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW));
        let armed = Arc::new(AtomicBool::new(false));
        let hook = injecting(point, libc::ENOSPC, armed.clone());
        let mut s = Spool::open_with_faults(t.path(), limits(), clock, Some(hook)).expect("open");
        let (rec, snaps) = worker_event(1);
        let first = s.write_event(&rec, &snaps).expect("first write");
        armed.store(true, Ordering::SeqCst);
        let err = s.write_event(&rec, &snaps).expect_err("injected ENOSPC");
        assert!(err.is_disk_full(), "{point:?}: {err}");
        assert_eq!(s.counters().disk_full, 1, "{point:?}");
        let names: Vec<String> = fs::read_dir(t.path())
            .expect("ls")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.starts_with(".tmp-")), "{point:?}: temp file left: {names:?}");
        assert_eq!(bundle_files(t.path()), vec![format!("{first}.zst")], "{point:?}");
    }
}

/// A small tmpfs, mounted for the test (needs root; skipped with a reason where `mount` is not allowed).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(dir).ok()?;
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .ok()?;
        if st.status.success() {
            Some(Tmpfs(dir.to_path_buf()))
        } else {
            println!("SKIP: cannot mount a tmpfs here ({})", String::from_utf8_lossy(&st.stderr).trim());
            None
        }
    }
    fn remount_ro(&self) -> bool {
        Command::new("mount").args(["-o", "remount,ro"]).arg(&self.0).status().is_ok_and(|s| s.success())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Real ENOSPC from the kernel: the spool sits on a 256 KiB tmpfs, and just before the bundle bytes are
/// written a filler file takes the rest of the space (the free-disk check before the write passed).
#[test]
fn disk_full_on_a_small_tmpfs_is_counted_and_leaves_only_whole_bundles() {
    let t = tmp();
    let Some(mnt) = Tmpfs::mount(&t.path().join("mnt"), "256k") else { return };
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW));
    let armed = Arc::new(AtomicBool::new(false));
    let filler = mnt.0.join("filler");
    let hook: FaultHook = {
        let armed = armed.clone();
        let filler = filler.clone();
        Arc::new(move |p, _path: &Path| {
            if p == FaultPoint::Write && armed.swap(false, Ordering::SeqCst) {
                use std::io::Write;
                let mut f = fs::File::create(&filler)?;
                let block = vec![0u8; 4096];
                while f.write_all(&block).is_ok() {}
            }
            Ok(())
        })
    };
    let mut s = Spool::open_with_faults(&mnt.0, limits(), clock, Some(hook)).expect("open on tmpfs");
    let first = write(&mut s, 1);
    armed.store(true, Ordering::SeqCst);
    let err = s.write_event(&worker_event(2).0, &worker_event(2).1).expect_err("disk full");
    assert!(err.is_disk_full(), "{err}");
    assert_eq!(s.counters().disk_full, 1);
    let names: Vec<String> = fs::read_dir(&mnt.0)
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with(".tmp-")), "temp file left: {names:?}");
    assert_eq!(bundle_files(&mnt.0), vec![format!("{first}.zst")]);
    bundle::decode(&fs::read(mnt.0.join(format!("{first}.zst"))).expect("read")).expect("whole bundle");
    // Opt-out still works on a full disk: the request is tiny, and bundles are deleted either way.
    let r = s.erase(None, DeletionReason::OptOut);
    assert!(r.deletion_request.is_some(), "{r:?}");
    assert_eq!(r.deleted, 1);
    fs::remove_file(&filler).expect("free the disk");
    // With the filler gone, writes succeed again until the free-disk check refuses them (counted).
    let mut refused = false;
    for n in 3..40 {
        match s.write_event(&worker_event(n).0, &worker_event(n).1) {
            Ok(_) => {}
            Err(TelemetryError::LowDisk { .. }) => {
                refused = true;
                break;
            }
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert!(refused && s.counters().refused_low_disk == 1);
}

#[test]
fn read_only_spool_opens_refuses_writes_and_counts_them() {
    let t = tmp();
    let Some(mnt) = Tmpfs::mount(&t.path().join("mnt"), "1m") else { return };
    let clock = Arc::new(ManualClock::new(NOW));
    let id = {
        let mut s = open(&mnt.0, limits(), &clock);
        write(&mut s, 1)
    };
    fs::write(mnt.0.join(".tmp-e-000000000077-00000000.zst"), b"x").expect("temp");
    assert!(mnt.remount_ro(), "remount read-only");
    let mut s = open(&mnt.0, limits(), &clock);
    assert_eq!(s.entries().count(), 1);
    let err = s.write_event(&worker_event(2).0, &worker_event(2).1).expect_err("read-only");
    assert!(matches!(err, TelemetryError::Io { .. }), "{err}");
    assert_eq!(s.counters().read_only, 1);
    assert!(s.counters().delete_errors >= 1, "the temp file could not be removed and that is counted");
    assert!(s.remove(&id).is_err());
    let r = s.erase(None, DeletionReason::OptOut);
    assert!(r.error.is_some(), "no deletion request can be written: {r:?}");
    assert_eq!(s.entries().count(), 0, "erased bundles are forgotten even when they cannot be unlinked");
}

#[test]
fn spool_ls_show_extract_and_purge() {
    let t = tmp();
    let dir = t.path().join("spool");
    let clock = Arc::new(ManualClock::new(NOW));
    let id = {
        let mut s = open(&dir, limits(), &clock);
        write(&mut s, 1);
        write(&mut s, 3)
    };
    fs::write(dir.join("e-000000000040-0000beef.zst"), b"garbage").expect("corrupt");
    fs::write(dir.join("README"), b"x").expect("junk");
    let items = inspect::list(&dir).expect("ls");
    let text = inspect::format_list(&items);
    assert!(text.contains("CORRUPT"), "{text}");
    assert!(text.contains("not a spool file"), "{text}");
    assert!(text.contains("2 bundle(s)"), "{text}");
    assert!(text.contains("region=cn"), "{text}");

    let file = dir.join(format!("{id}.zst"));
    let shown = inspect::show(&file).expect("show");
    assert!(shown.contains("\"event_id\": \"ev-3\""), "{shown}");
    assert!(inspect::show(&dir.join("e-000000000040-0000beef.zst")).is_err());

    let out = t.path().join("out");
    let written = inspect::extract(&file, &out).expect("extract");
    let (_, snaps) = worker_event(3);
    assert_eq!(written.len(), snaps.len() + 1);
    for s in &snaps {
        assert_eq!(fs::read(out.join(&s.name)).expect("snapshot"), s.jpeg);
    }

    let c: Arc<dyn Clock> = clock.clone();
    let r = inspect::purge(&dir, c).expect("purge");
    assert_eq!(r.deleted, 2 + 1, "two bundles and the quarantined garbage");
    assert!(inspect::format_erasure(&r).contains("deletion request"));
    let left = bundle_files(&dir);
    assert_eq!(left.len(), 1);
    assert!(left[0].starts_with("d-"), "{left:?}");
}

#[test]
fn a_spool_lock_held_for_a_moment_is_waited_for() {
    // A lock released shortly after (as when a starting child process briefly holds a copy of the
    // descriptor) does not make the spool busy.
    let t = tmp();
    let clock = Arc::new(ManualClock::new(NOW));
    let held = open(t.path(), limits(), &clock);
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(150));
        drop(held);
    });
    let c: Arc<dyn Clock> = clock.clone();
    inspect::purge(t.path(), c).expect("the lock was released within the wait");
    release.join().expect("releasing thread");
}

#[test]
fn purge_refuses_while_another_process_holds_the_spool() {
    let t = tmp();
    let clock = Arc::new(ManualClock::new(NOW));
    let _held = open(t.path(), limits(), &clock);
    // flock is per open file description: a second open in this process conflicts like another process.
    let c: Arc<dyn Clock> = clock.clone();
    let err = inspect::purge(t.path(), c).expect_err("busy");
    assert!(matches!(err, TelemetryError::Busy(_)), "{err}");
}
