//! `vigil spool ls|show|purge` end to end through the real binary, on a spool written by vigil-telemetry.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use vigil_telemetry::testkit::worker_event;
use vigil_telemetry::{Clock, ManualClock, Spool, SpoolLimits};

fn vigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil")).args(args).output().expect("vigil runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn spool_ls_show_extract_and_purge_through_the_binary() {
    let t = tempfile::tempdir().expect("tmp");
    let dir = t.path().join("spool");
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(1_790_000_000));
    let limits = SpoolLimits { min_free_bytes: 0, ..SpoolLimits::default() };
    let id = {
        let mut s = Spool::open(&dir, limits, clock).expect("spool");
        let (rec, snaps) = worker_event(2);
        s.write_event(&rec, &snaps).expect("write")
    };
    let d = dir.to_str().expect("utf-8 path");

    let ls = vigil(&["spool", "--spool", d, "ls"]);
    assert!(ls.status.success(), "{}", text(&ls));
    assert!(text(&ls).contains(&format!("{id}.zst")) && text(&ls).contains("1 bundle(s)"), "{}", text(&ls));

    let out = t.path().join("out");
    let file = format!("{id}.zst");
    let show = vigil(&["spool", "--spool", d, "show", &file, "--extract", out.to_str().expect("utf-8")]);
    assert!(show.status.success(), "{}", text(&show));
    assert!(text(&show).contains("\"event_id\": \"ev-2\""), "{}", text(&show));
    assert_eq!(std::fs::read(out.join("after-000.jpg")).expect("extracted"), worker_event(2).1[0].jpeg);

    let bad = vigil(&["spool", "--spool", d, "show", "no-such-bundle.zst"]);
    assert!(!bad.status.success());

    let purge = vigil(&["spool", "--spool", d, "purge"]);
    assert!(purge.status.success(), "{}", text(&purge));
    assert!(text(&purge).contains("deletion request d-"), "{}", text(&purge));
    let left: Vec<String> = std::fs::read_dir(Path::new(&dir))
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".zst"))
        .collect();
    assert_eq!(left.len(), 1);
    assert!(left[0].starts_with("d-"), "{left:?}");
}
