//! kill -9 of the writer/uploader process at random points: every bundle on disk whole or absent, none
//! lost after it was stored or acknowledged, none stored twice, none in the other region. More iterations:
//! `vigil-telemetry-kill9` (see README.md).

use std::path::Path;
use std::time::{Duration, Instant};

use vigil_telemetry::testkit::{kill9, nginx_binary, Kill9Report, Nginx, Target};

const WORKER: &str = env!("CARGO_BIN_EXE_vigil-telemetry-worker");

fn check(r: &Kill9Report, iterations: u64) {
    assert_eq!(r.iterations, iterations);
    assert!(r.stored > iterations / 4, "too few events stored to mean anything: {r:?}");
    assert_eq!((r.lost, r.corrupt, r.duplicated, r.wrong_region), (0, 0, 0, 0), "{r:?}");
}

#[test]
fn kill9_of_writer_in_handoff_mode_200_times_loses_and_corrupts_nothing() {
    let t = tempfile::tempdir().expect("tmp");
    let outbox = t.path().join("outbox");
    let t0 = Instant::now();
    let r =
        kill9(Path::new(WORKER), t.path(), &Target::Handoff(outbox), 200, Duration::from_millis(30), 0xface)
            .expect("harness");
    println!("kill -9 hand-off: {r:?} in {:?}", t0.elapsed());
    check(&r, 200);
}

#[test]
fn kill9_of_uploader_against_nginx_200_times_loses_duplicates_and_corrupts_nothing() {
    let t = tempfile::tempdir().expect("tmp");
    let Some(bin) = nginx_binary() else {
        println!("SKIP: nginx not installed under .local/nginx (tools/setup.d/nginx.sh installs it)");
        return;
    };
    let ng = Nginx::start(&bin, t.path()).expect("nginx starts");
    let target = Target::Upload { us: ng.url("/us"), cn: ng.url("/cn"), store: ng.store.clone() };
    let t0 = Instant::now();
    let r =
        kill9(Path::new(WORKER), t.path(), &target, 200, Duration::from_millis(40), 0xbeef).expect("harness");
    println!("kill -9 upload: {r:?} in {:?}", t0.elapsed());
    check(&r, 200);
    assert!(r.acked > 0, "{r:?}");
}
