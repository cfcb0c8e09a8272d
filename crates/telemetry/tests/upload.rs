//! Upload manager rules, the telemetry stage with a scripted uploader (opt-out during an upload, regions),
//! and the HTTP uploader against a real nginx: the fault table and what the server stored.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigil_telemetry::bundle::{self, BundleKind};
use vigil_telemetry::http::idempotency_key;
use vigil_telemetry::testkit::{nginx_binary, worker_event, Nginx};
use vigil_telemetry::{
    Backoff, Body, Clock, Decision, Endpoints, HttpUploader, ManualClock, Outcome, Pending, RateLimit, Step,
    SystemClock, Telemetry, TelemetryConfig, TelemetryError, Timeouts, UploadManager, UploadRequest,
    Uploader, Verdict,
};

const S: Duration = Duration::from_secs(1);

fn pending(kind: BundleKind) -> Vec<Pending> {
    vec![Pending { id: "x".into(), kind }]
}

fn manager() -> UploadManager {
    UploadManager::new(
        RateLimit { max_uploads: 100, per_secs: 60 },
        Backoff { initial_ms: 1000, max_ms: 8000, jitter: 0.5, max_retry_after_secs: 60 },
        42,
    )
}

fn status(code: u16) -> Outcome {
    Outcome::Status { code, retry_after: None }
}

#[test]
fn manager_is_idle_with_nothing_pending_and_sends_the_first_in_order() {
    let mut m = manager();
    assert_eq!(m.decide(Duration::ZERO, &[]), Decision::Idle);
    assert_eq!(m.decide(Duration::ZERO, &pending(BundleKind::Event)), Decision::Send(0));
}

#[test]
fn two_xx_delivers_and_resets_the_backoff() {
    let mut m = manager();
    assert!(matches!(m.record(S, BundleKind::Event, &status(503)), Verdict::Retry(_)));
    assert_eq!(m.failures(), 1);
    assert_eq!(m.record(10 * S, BundleKind::Event, &status(201)), Verdict::Delivered);
    assert_eq!(m.failures(), 0);
    assert_eq!(m.decide(10 * S, &pending(BundleKind::Event)), Decision::Send(0));
}

#[test]
fn final_4xx_deletes_and_counts_413_included() {
    let mut m = manager();
    assert_eq!(m.record(S, BundleKind::Event, &status(413)), Verdict::Rejected(413));
    assert_eq!(m.record(S, BundleKind::Event, &status(400)), Verdict::Rejected(400));
    assert_eq!(m.counters().rejected, 2);
    assert_eq!(m.counters().rejected_too_large, 1);
    assert_eq!(m.decide(S, &pending(BundleKind::Event)), Decision::Send(0), "a 4xx does not back off");
}

#[test]
fn server_errors_timeouts_and_refusals_retry_with_exponential_jittered_backoff() {
    let mut m = manager();
    let outcomes = [
        status(500),
        Outcome::Timeout,
        Outcome::Refused,
        status(502),
        Outcome::Failed("x".into()),
        status(503),
    ];
    let mut now = Duration::ZERO;
    for (i, o) in outcomes.iter().enumerate() {
        let Verdict::Retry(d) = m.record(now, BundleKind::Event, o) else { panic!("{o:?} must retry") };
        let base = (1000u64 << i).min(8000);
        assert!(
            d >= Duration::from_millis(base / 2) && d <= Duration::from_millis(base),
            "attempt {i}: delay {d:?} outside [{}, {base}] ms",
            base / 2
        );
        assert_eq!(m.decide(now, &pending(BundleKind::Event)), Decision::Wait(d));
        now += d;
        assert_eq!(m.decide(now, &pending(BundleKind::Event)), Decision::Send(0));
    }
    let c = m.counters();
    assert_eq!((c.server_errors, c.timeouts, c.refused, c.transport_errors), (3, 1, 1, 1));
}

#[test]
fn jitter_spreads_delays() {
    let delays: Vec<Duration> = (1..20u64)
        .map(|seed| {
            let mut m = UploadManager::new(RateLimit::default(), Backoff::default(), seed);
            match m.record(Duration::ZERO, BundleKind::Event, &status(500)) {
                Verdict::Retry(d) => d,
                v => panic!("{v:?}"),
            }
        })
        .collect();
    let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
    assert!(distinct.len() > 10, "{delays:?}");
}

#[test]
fn retry_after_is_honoured_for_503_and_429_and_capped() {
    let mut m = manager();
    let v =
        m.record(Duration::ZERO, BundleKind::Event, &Outcome::Status { code: 503, retry_after: Some(7 * S) });
    assert_eq!(v, Verdict::Retry(7 * S));
    assert_eq!(m.decide(6 * S, &pending(BundleKind::Event)), Decision::Wait(S));
    let v = m.record(7 * S, BundleKind::Event, &Outcome::Status { code: 429, retry_after: Some(3 * S) });
    assert_eq!(v, Verdict::Retry(3 * S), "429 is retried, not deleted");
    let v =
        m.record(10 * S, BundleKind::Event, &Outcome::Status { code: 503, retry_after: Some(86_400 * S) });
    assert_eq!(v, Verdict::Retry(60 * S), "capped at max_retry_after_secs");
    assert_eq!(m.counters().retry_after_honoured, 3);
    assert_eq!(m.counters().throttled, 1);
}

#[test]
fn rate_limit_spaces_uploads() {
    let mut m = UploadManager::new(RateLimit { max_uploads: 2, per_secs: 10 }, Backoff::default(), 1);
    let p = pending(BundleKind::Event);
    for t in [0u32, 1] {
        assert_eq!(m.decide(t * S, &p), Decision::Send(0));
        m.record(t * S, BundleKind::Event, &status(201));
    }
    assert_eq!(m.decide(2 * S, &p), Decision::Wait(8 * S));
    assert_eq!(m.decide(10 * S, &p), Decision::Send(0));
}

#[test]
fn a_deletion_request_is_retried_on_4xx_until_a_2xx() {
    let mut m = manager();
    let mut now = Duration::ZERO;
    for code in [400u16, 403, 413, 500] {
        let Verdict::Retry(d) = m.record(now, BundleKind::DeletionRequest, &status(code)) else {
            panic!("{code} must not drop a deletion request")
        };
        now += d;
    }
    assert_eq!(m.record(now, BundleKind::DeletionRequest, &status(204)), Verdict::Delivered);
    assert_eq!(m.counters().deletion_retries, 3);
}

// --- the stage with a scripted uploader ------------------------------------------------------------------

fn config(dir: &Path, us: &str, cn: &str) -> TelemetryConfig {
    TelemetryConfig {
        spool_dir: dir.to_path_buf(),
        min_free_bytes: 0,
        endpoints: Endpoints { us: us.into(), cn: cn.into() },
        rate_limit: RateLimit { max_uploads: 1000, per_secs: 1 },
        backoff: Backoff { initial_ms: 10, max_ms: 20, jitter: 0.0, max_retry_after_secs: 60 },
        timeouts: Timeouts { connect_ms: 1000, io_ms: 400 },
        ..TelemetryConfig::default()
    }
}

fn stage(config: TelemetryConfig) -> Telemetry {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(1_790_000_000));
    match Telemetry::open(config, clock, true) {
        Ok(t) => t,
        Err(e) => panic!("open: {e}"),
    }
}

/// Records every request and answers with a fixed status.
struct Recorder {
    urls: Arc<Mutex<Vec<(String, String)>>>,
    answer: u16,
}

impl Uploader for Recorder {
    fn upload(&mut self, req: &UploadRequest<'_>) -> Outcome {
        if let Ok(mut u) = self.urls.lock() {
            u.push((req.url(), req.idempotency_key.to_string()));
        }
        status(self.answer)
    }
}

#[test]
fn each_bundle_goes_only_to_its_own_regions_endpoint() {
    let t = tempfile::tempdir().expect("tmp");
    let s = stage(config(t.path(), "https://us.invalid/in", "https://cn.invalid/in"));
    for n in 0..6 {
        let (rec, snaps) = worker_event(n);
        s.submit(&rec, &snaps).expect("submit");
    }
    let urls = Arc::new(Mutex::new(Vec::new()));
    let mut up = Recorder { urls: urls.clone(), answer: 201 };
    s.drain(&mut up, S).expect("drain");
    let urls = urls.lock().expect("urls").clone();
    assert_eq!(urls.len(), 6);
    for (url, key) in &urls {
        let region_ok = (url.starts_with("https://us.invalid/in/dev-us-0001/e-")
            || url.starts_with("https://cn.invalid/in/dev-cn-0001/e-"))
            && url.ends_with(".zst");
        assert!(region_ok, "{url}");
        assert!(url.contains(key.split('.').nth(1).unwrap_or("?")), "key {key} names the bundle of {url}");
    }
    assert_eq!(urls.iter().filter(|(u, _)| u.starts_with("https://cn.invalid/")).count(), 3);
}

/// Blocks inside the upload until told to answer, so the test can opt out while a bundle is in flight.
struct Gate {
    started: mpsc::Sender<String>,
    release: mpsc::Receiver<u16>,
    sent: Arc<Mutex<Vec<String>>>,
}

impl Uploader for Gate {
    fn upload(&mut self, req: &UploadRequest<'_>) -> Outcome {
        if let Ok(mut s) = self.sent.lock() {
            s.push(req.bundle_id.to_string());
        }
        let _ = self.started.send(req.bundle_id.to_string());
        status(self.release.recv().unwrap_or(500))
    }
}

#[test]
fn opt_out_during_an_upload_deletes_everything_and_then_sends_only_the_deletion_request() {
    let t = tempfile::tempdir().expect("tmp");
    let s = Arc::new(stage(config(t.path(), "https://us.invalid", "https://cn.invalid")));
    for n in [0, 2, 4] {
        let (rec, snaps) = worker_event(n);
        s.submit(&rec, &snaps).expect("submit");
    }
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let mut gate = Gate { started: started_tx, release: release_rx, sent: sent.clone() };
    let s2 = s.clone();
    let worker = std::thread::spawn(move || {
        let first = s2.step(&mut gate);
        (first, gate)
    });
    let in_flight = started_rx.recv_timeout(5 * S).expect("an upload started");
    assert!(in_flight.starts_with("e-"));
    // The owner opts out while that bundle is on the wire.
    let report = s.opt_out("dev-us-0001", vigil_telemetry::Region::Us);
    assert_eq!(report.deleted, 3, "the in-flight bundle's file is deleted too");
    let del = report.deletion_request.clone().expect("deletion request written");
    assert!(matches!(s.submit(&worker_event(6).0, &worker_event(6).1), Err(TelemetryError::NoConsent)));
    release_tx.send(201).expect("release");
    let (first, mut gate) = worker.join().expect("join");
    assert!(matches!(first, Ok(Step::Sent { verdict: Verdict::Delivered, .. })), "{first:?}");
    // Next: only the deletion request goes out, and it is retried until a 2xx.
    let s3 = s.clone();
    let worker = std::thread::spawn(move || {
        let mut steps = Vec::new();
        for _ in 0..50 {
            match s3.step(&mut gate) {
                Ok(Step::Idle) => break,
                Ok(Step::Wait(d)) => std::thread::sleep(d),
                Ok(st) => steps.push(st),
                Err(e) => panic!("{e}"),
            }
        }
        steps
    });
    for answer in [503u16, 400, 204] {
        let id = started_rx.recv_timeout(5 * S).expect("deletion request sent");
        assert_eq!(id, del);
        release_tx.send(answer).expect("answer");
    }
    let steps = worker.join().expect("join");
    assert_eq!(steps.len(), 3);
    let sent = sent.lock().expect("sent").clone();
    assert_eq!(sent, vec![in_flight, del.clone(), del.clone(), del]);
    let left: Vec<_> = fs::read_dir(t.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().and_then(bundle::parse_file_name).is_some())
        .collect();
    assert!(left.is_empty(), "spool empty after the deletion request was accepted");
    assert_eq!(s.counters().refused_no_consent, 1);
}

// --- real nginx -------------------------------------------------------------------------------------------

fn nginx(dir: &Path) -> Option<Nginx> {
    let Some(bin) = nginx_binary() else {
        println!("SKIP: nginx not installed under .local/nginx (tools/setup.d/nginx.sh installs it)");
        return None;
    };
    match Nginx::start(&bin, dir) {
        Ok(n) => Some(n),
        Err(e) => panic!("nginx is installed but did not start: {e}"),
    }
}

fn one_bundle_stage(dir: &Path, endpoint: &str) -> Telemetry {
    let s = stage(config(dir, endpoint, endpoint));
    let (rec, snaps) = worker_event(0);
    s.submit(&rec, &snaps).expect("submit");
    s
}

fn spool_count(dir: &Path) -> usize {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_str().and_then(bundle::parse_file_name).is_some())
                .count()
        })
        .unwrap_or(0)
}

/// The fault table: what the uploader does for each kind of failure a real server produces.
#[test]
fn nginx_fault_table() {
    let t = tempfile::tempdir().expect("tmp");
    let Some(ng) = nginx(t.path()) else { return };
    let refused_port =
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    // Nothing listens on refused_port once the listener is dropped here.
    let cases: Vec<(&str, String)> = vec![
        ("500", ng.url("/e500")),
        ("503 + Retry-After 7", ng.url("/e503")),
        ("429 + Retry-After 3", ng.url("/e429")),
        ("413", ng.url("/e413")),
        ("stall", ng.url("/stall")),
        ("refused", format!("http://127.0.0.1:{refused_port}/x")),
        ("201", ng.url("/us")),
    ];
    let mut table = BTreeMap::new();
    for (i, (name, url)) in cases.iter().enumerate() {
        let dir = t.path().join(format!("spool{i}"));
        let s = one_bundle_stage(&dir, url);
        let mut up = HttpUploader::new(&s.config().timeouts, Arc::new(SystemClock));
        let t0 = Instant::now();
        let step = s.step(&mut up).expect("step");
        let took = t0.elapsed();
        let Step::Sent { verdict, .. } = step else { panic!("{name}: nothing sent: {step:?}") };
        let kept = spool_count(&dir);
        let c = s.counters().upload;
        println!("fault table: {name:<22} -> {verdict:?}, bundle kept: {}, {took:?}", kept == 1);
        table.insert(*name, (verdict, kept, c, took));
    }
    let retry = |name: &str, at_least: Duration| {
        let (v, kept, _, _) = &table[name];
        assert!(matches!(v, Verdict::Retry(d) if *d >= at_least), "{name}: {v:?}");
        assert_eq!(*kept, 1, "{name}: bundle must be kept");
    };
    retry("500", Duration::from_millis(10));
    retry("503 + Retry-After 7", 7 * S);
    retry("429 + Retry-After 3", 3 * S);
    retry("stall", Duration::from_millis(10));
    retry("refused", Duration::from_millis(10));
    assert_eq!(table["500"].2.server_errors, 1);
    assert_eq!(table["503 + Retry-After 7"].2.retry_after_honoured, 1);
    assert_eq!(table["429 + Retry-After 3"].2.throttled, 1);
    assert_eq!(table["stall"].2.timeouts, 1, "a stalled server is a timeout");
    assert!(table["stall"].3 < 2 * S, "the stall is cut by the 400 ms I/O timeout");
    assert_eq!(table["refused"].2.refused, 1);
    let (v, kept, c, _) = &table["413"];
    assert_eq!((v, *kept, c.rejected_too_large), (&Verdict::Rejected(413), 0, 1), "413 deletes and counts");
    let (v, kept, _, _) = &table["201"];
    assert_eq!((v, *kept), (&Verdict::Delivered, 0));
}

#[test]
fn nginx_stores_every_bundle_whole_in_its_region_and_a_retry_is_stored_once() {
    let t = tempfile::tempdir().expect("tmp");
    let Some(ng) = nginx(t.path()) else { return };
    let dir = t.path().join("spool");
    let s = stage(config(&dir, &ng.url("/us"), &ng.url("/cn")));
    let mut sent: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for n in 0..6 {
        let (rec, snaps) = worker_event(n);
        let id = s.submit(&rec, &snaps).expect("submit");
        sent.insert(id.clone(), fs::read(dir.join(format!("{id}.zst"))).expect("spooled"));
    }
    let mut up = HttpUploader::new(&s.config().timeouts, Arc::new(SystemClock));
    let steps = s.drain(&mut up, S).expect("drain");
    assert_eq!(steps.len(), 6);
    assert_eq!(spool_count(&dir), 0);
    // Server side: decompress every received bundle with the dictionary and compare with what was sent.
    let stored = ng.stored();
    assert_eq!(stored.len(), 6, "{stored:?}");
    for (rel, path) in &stored {
        let data = fs::read(path).expect("stored file");
        let b = bundle::decode(&data).expect("server copy decodes with the dictionary");
        assert_eq!(&data, &sent[&b.manifest.id], "{rel} is byte-identical to what was sent");
        let Body::Event { record, snapshots } = b.body else { panic!("{rel}: not an event") };
        let n: u64 = record.event_id.trim_start_matches("ev-").parse().expect("event number");
        assert_eq!((record.clone(), snapshots), worker_event(n), "{rel}: content equals the original");
        assert_eq!(rel, &format!("{}/{}/{}.zst", record.region, record.device_id, b.manifest.id));
    }
    // A retry of an acknowledged bundle (acknowledgement lost): same URL and key, stored once.
    let (id, body) = sent.iter().next().expect("one");
    let key = idempotency_key("dev-us-0001", id);
    let endpoint = ng.url("/us");
    let req = UploadRequest {
        endpoint: &endpoint,
        device_id: "dev-us-0001",
        bundle_id: id,
        idempotency_key: &key,
        body,
    };
    assert_eq!(up.upload(&req), Outcome::Status { code: 204, retry_after: None });
    assert_eq!(ng.stored().len(), 6);
    // nginx writes its access log line just after answering: poll briefly.
    let deadline = Instant::now() + 2 * S;
    let mut log = ng.access_log();
    while log.lines().filter(|l| l.ends_with(&key)).count() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        log = ng.access_log();
    }
    let lines: Vec<&str> = log.lines().filter(|l| l.ends_with(&key)).collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines[0].contains(" 201 ") && lines[1].contains(" 204 "), "{lines:?}");
}

#[test]
fn an_https_endpoint_speaks_tls_and_never_sends_plain_http() {
    let t = tempfile::tempdir().expect("tmp");
    let Some(ng) = nginx(t.path()) else { return };
    let dir = t.path().join("spool");
    let https = format!("https://127.0.0.1:{}/us", ng.port);
    let s = one_bundle_stage(&dir, &https);
    let mut up = HttpUploader::new(&s.config().timeouts, Arc::new(SystemClock));
    let step = s.step(&mut up).expect("step");
    assert!(matches!(step, Step::Sent { verdict: Verdict::Retry(_), .. }), "{step:?}");
    assert!(!ng.access_log().contains("PUT"), "no plain PUT reached the server: {}", ng.access_log());
    assert_eq!(spool_count(&dir), 1);
    assert!(ng.stored().is_empty());
}

#[test]
fn handoff_mode_moves_finished_bundles_into_the_outbox_and_opt_out_clears_it() {
    let t = tempfile::tempdir().expect("tmp");
    let outbox = t.path().join("outbox");
    let mut cfg = config(&t.path().join("spool"), "https://us.invalid", "https://cn.invalid");
    cfg.mode = vigil_telemetry::Mode::Handoff;
    cfg.outbox_dir = Some(outbox.clone());
    let s = stage(cfg);
    let mut ids = Vec::new();
    for n in [0, 2] {
        let (rec, snaps) = worker_event(n);
        ids.push(s.submit(&rec, &snaps).expect("submit"));
    }
    assert_eq!(s.handoff().expect("handoff"), 2);
    assert_eq!(spool_count(&t.path().join("spool")), 0);
    for id in &ids {
        let data = fs::read(outbox.join(format!("{id}.zst"))).expect("in the outbox");
        bundle::decode(&data).expect("whole");
    }
    let r = s.opt_out("dev-us-0001", vigil_telemetry::Region::Us);
    assert_eq!(r.deleted, 2, "bundles still waiting in the outbox are deleted");
    assert_eq!(s.handoff().expect("handoff"), 1, "only the deletion request moves");
    let names: Vec<String> = fs::read_dir(&outbox)
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1);
    assert!(names[0].starts_with("d-"), "{names:?}");
}
