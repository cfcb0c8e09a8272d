//! Test support shared by the integration tests and the tools: a throw-away nginx WebDAV server with fault
//! locations, the worker protocol and the kill -9 harness. Not used by vigil itself.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::bundle::{self, Body, BundleKind};
use crate::record::{EventRecord, Region, Snapshot};
use crate::sample::{self, Rng};

/// Where the project's setup script puts nginx: `$VIGIL_ROOT/.local/nginx/usr/sbin/nginx` (`VIGIL_ROOT` is
/// set for cargo by `.cargo/config.toml`; the run-time variable of the same name is used otherwise).
pub fn nginx_binary() -> Option<PathBuf> {
    let root = option_env!("VIGIL_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("VIGIL_ROOT").map(PathBuf::from))?;
    let p = root.join(".local/nginx/usr/sbin/nginx");
    p.is_file().then_some(p)
}

/// A running nginx on 127.0.0.1: WebDAV PUT under `/us/` and `/cn/` stores into [`Nginx::store`];
/// `/e500/`, `/e503/` (Retry-After 7), `/e429/` (Retry-After 3), `/e413/` (1 KiB body limit) and `/stall/`
/// (proxied to a listener that never accepts) are the fault locations. Stopped by PID on drop.
pub struct Nginx {
    /// Port it listens on.
    pub port: u16,
    /// WebDAV root: PUT `/us/a/b.zst` lands in `store/us/a/b.zst`.
    pub store: PathBuf,
    prefix: PathBuf,
    child: Child,
    _stall: TcpListener,
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Nginx {
    /// Starts nginx with a generated configuration under `dir` (which must exist and be empty).
    pub fn start(binary: &Path, dir: &Path) -> io::Result<Nginx> {
        let mut last = io::Error::other("nginx did not start");
        for attempt in 0..3 {
            let prefix = dir.join(format!("nginx{attempt}"));
            match Self::try_start(binary, &prefix) {
                Ok(n) => return Ok(n),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn try_start(binary: &Path, prefix: &Path) -> io::Result<Nginx> {
        let store = prefix.join("store");
        // create_full_put_path creates folders below the location's own folder only.
        for d in ["conf", "logs", "tmp", "store/us", "store/cn", "store/e413"] {
            fs::create_dir_all(prefix.join(d))?;
        }
        let stall = TcpListener::bind("127.0.0.1:0")?;
        let stall_port = stall.local_addr()?.port();
        let port = free_port()?;
        let p = prefix.display();
        let s = store.display();
        let dav = format!("root {s}; dav_methods PUT; create_full_put_path on; dav_access user:rw;");
        // As root, nginx's workers would run as nobody and could not write into our folders.
        // SAFETY: geteuid has no preconditions.
        let user = if unsafe { libc::geteuid() } == 0 { "user root root;\n" } else { "" };
        let conf = format!(
            "{user}worker_processes 1;\ndaemon off;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log warn;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  log_format k '$request_method $uri $status $http_idempotency_key';\n\
               access_log {p}/logs/access.log k;\n\
               client_body_temp_path {p}/tmp/body; proxy_temp_path {p}/tmp/proxy;\n\
               fastcgi_temp_path {p}/tmp/fastcgi; uwsgi_temp_path {p}/tmp/uwsgi; scgi_temp_path {p}/tmp/scgi;\n\
               server {{\n    listen 127.0.0.1:{port};\n    client_max_body_size 64m;\n\
                 location /us/ {{ {dav} }}\n    location /cn/ {{ {dav} }}\n\
                 location /e500/ {{ return 500; }}\n\
                 location /e503/ {{ add_header Retry-After 7 always; return 503; }}\n\
                 location /e429/ {{ add_header Retry-After 3 always; return 429; }}\n\
                 location /e413/ {{ client_max_body_size 1k; {dav} }}\n\
                 location /stall/ {{ proxy_pass http://127.0.0.1:{stall_port}; proxy_read_timeout 60s; }}\n\
               }}\n}}\n"
        );
        fs::write(prefix.join("conf/nginx.conf"), conf)?;
        let mut child = Command::new(binary)
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg("conf/nginx.conf")
            .arg("-e")
            .arg("logs/error.log")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Some(st) = child.try_wait()? {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                let log = fs::read_to_string(prefix.join("logs/error.log")).unwrap_or_default();
                return Err(io::Error::other(format!("nginx exited ({st}): {err} {log}")));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other("nginx did not listen within 5 s"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Nginx { port, store, prefix: prefix.to_path_buf(), child, _stall: stall })
    }

    /// `http://127.0.0.1:{port}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The access log: one `METHOD URI STATUS IDEMPOTENCY-KEY` line per request.
    pub fn access_log(&self) -> String {
        fs::read_to_string(self.prefix.join("logs/access.log")).unwrap_or_default()
    }

    /// Every file stored under the WebDAV root, relative to it, sorted.
    pub fn stored(&self) -> Vec<(String, PathBuf)> {
        let mut out = Vec::new();
        walk(&self.store, &self.store, &mut out);
        out.sort();
        out
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.filter_map(|e| e.ok()) {
        let p = e.path();
        if p.is_dir() {
            walk(root, &p, out);
        } else if let Ok(rel) = p.strip_prefix(root) {
            out.push((rel.to_string_lossy().into_owned(), p));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling our own child process by its PID.
        unsafe { libc::kill(pid, libc::SIGQUIT) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The event a worker submits for number `n`: record and snapshots are a pure function of `n`, so the
/// checker can regenerate exactly what was sent. Even `n` belong to a US device, odd to a CN one.
pub fn worker_event(n: u64) -> (EventRecord, Vec<Snapshot>) {
    let mut rng = Rng::new(n.wrapping_mul(0x9E37_79B9).wrapping_add(17));
    let (dev, region) = if n % 2 == 0 { ("dev-us-0001", Region::Us) } else { ("dev-cn-0001", Region::Cn) };
    let mut rec = sample::event_record(&mut rng, dev, region, Some(1_790_000_000));
    rec.event_id = format!("ev-{n}");
    let count = 1 + rng.below(3) as usize;
    let size = 2_000 + rng.below(20_000) as usize;
    (rec, sample::snapshots(&mut rng, count, size))
}

/// Figures of a kill -9 run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kill9Report {
    /// Worker processes started and killed with SIGKILL.
    pub iterations: u64,
    /// Events the worker reported as stored (acknowledged to the caller).
    pub stored: u64,
    /// Uploads the worker saw acknowledged with a 2xx.
    pub acked: u64,
    /// Stored events not delivered at the end (upload: not on the server; hand-off: in neither spool nor
    /// outbox).
    pub lost: u64,
    /// Bundle files (spool, outbox, server) that did not verify, or differ from what was sent.
    pub corrupt: u64,
    /// Extra copies of an event (two files with one event id).
    pub duplicated: u64,
    /// Bundles delivered to the wrong region's endpoint.
    pub wrong_region: u64,
    /// Temp files seen after a kill (removed at the next start; not an error).
    pub temp_files_seen: u64,
    /// The longest kill delay used: `max_delay`, or longer where the worker is slower (see [`kill9`]).
    pub max_delay: Duration,
}

/// Where the harness's worker sends its bundles.
#[derive(Clone, Debug)]
pub enum Target {
    /// Upload to these US and CN endpoints (nginx).
    Upload {
        /// US endpoint.
        us: String,
        /// CN endpoint.
        cn: String,
        /// The server's WebDAV root, to check.
        store: PathBuf,
    },
    /// Hand off into this outbox.
    Handoff(PathBuf),
}

fn event_number(record: &EventRecord) -> Option<u64> {
    record.event_id.strip_prefix("ev-")?.parse().ok()
}

/// Checks one bundle file against what the worker sent; returns the event number.
fn check_bundle(data: &[u8]) -> Result<Option<(u64, Region)>, String> {
    let b = bundle::decode(data).map_err(|e| e.to_string())?;
    match b.body {
        Body::Event { record, snapshots } => {
            let n = event_number(&record).ok_or("unexpected event id")?;
            let (want_rec, want_snaps) = worker_event(n);
            if record != want_rec || snapshots != want_snaps {
                return Err(format!("event {n} differs from what was sent"));
            }
            Ok(Some((n, b.manifest.region)))
        }
        Body::Deletion(_) => Ok(None),
    }
}

/// Starts `worker` `iterations` times on one spool, kills each with SIGKILL after a random delay of up to
/// `max_delay`, checks the spool after every kill, then lets one last worker finish and checks that every
/// stored event arrived exactly once, whole, at its own region.
///
/// Delays count from the worker's `START` line, so the time a process takes to be loaded (long under an
/// emulator) is not spent before it runs a line of its own. A first, unkilled run of three events measures
/// how long the worker takes; where that is longer than `max_delay` (a slow or emulated machine), the
/// delays span that instead, so kills still land before, inside and after its writes.
pub fn kill9(
    worker: &Path,
    work: &Path,
    target: &Target,
    iterations: u64,
    max_delay: Duration,
    seed: u64,
) -> io::Result<Kill9Report> {
    let spool = work.join("spool");
    fs::create_dir_all(&spool)?;
    let mut rng = Rng::new(seed);
    let mut report = Kill9Report::default();
    let mut stored: BTreeSet<u64> = BTreeSet::new();
    let base_args = |cmd: &mut Command| {
        cmd.arg("--spool").arg(&spool);
        match target {
            Target::Upload { us, cn, .. } => {
                cmd.args(["--us", us, "--cn", cn]);
            }
            Target::Handoff(outbox) => {
                cmd.arg("--outbox").arg(outbox);
            }
        }
    };
    let run =
        |start: u64, events: u64, kill_after: Option<Duration>| -> io::Result<(Vec<String>, Duration)> {
            let mut cmd = Command::new(worker);
            base_args(&mut cmd);
            cmd.args(["--start", &start.to_string(), "--events", &events.to_string()]);
            let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
            let mut out = child.stdout.take().map(BufReader::new);
            let mut lines = Vec::new();
            // The worker's first line says it is running; the delay starts there.
            let mut first = String::new();
            if let Some(out) = out.as_mut() {
                out.read_line(&mut first)?;
            }
            let started = Instant::now();
            if let Some(d) = kill_after {
                std::thread::sleep(d);
                child.kill()?; // SIGKILL
            }
            if !first.is_empty() {
                lines.push(first.trim_end().to_string());
            }
            if let Some(out) = out {
                for l in out.lines() {
                    lines.push(l?);
                }
            }
            let took = started.elapsed();
            child.wait()?;
            Ok((lines, took))
        };
    let scan = |report: &mut Kill9Report| -> io::Result<()> {
        for e in fs::read_dir(&spool)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(crate::fsutil::TEMP_PREFIX) {
                report.temp_files_seen += 1;
            } else if bundle::parse_file_name(&name).is_some() && check_bundle(&fs::read(e.path())?).is_err()
            {
                report.corrupt += 1;
            }
        }
        if spool.join(crate::spool::QUARANTINE_DIR).exists() {
            report.corrupt += fs::read_dir(spool.join(crate::spool::QUARANTINE_DIR))?.count() as u64;
            fs::remove_dir_all(spool.join(crate::spool::QUARANTINE_DIR))?;
        }
        Ok(())
    };
    let mut tally = |lines: &[String], report: &mut Kill9Report| {
        for l in lines {
            let mut it = l.split_whitespace();
            match (it.next(), it.next()) {
                (Some("STORED"), Some(n)) => {
                    if let Ok(n) = n.parse() {
                        stored.insert(n);
                        report.stored += 1;
                    }
                }
                (Some("ACK"), Some(_)) => report.acked += 1,
                _ => {}
            }
        }
    };
    // How long the worker takes to store and deliver three events here, unkilled (numbered after the
    // killed runs' events, and checked with them at the end).
    let (lines, took) = run(1_000 * (iterations + 1), 3, None)?;
    tally(&lines, &mut report);
    scan(&mut report)?;
    let max_delay = max_delay.max(took * 2);
    report.max_delay = max_delay;
    for i in 0..iterations {
        let events = 1 + rng.below(6);
        let delay = Duration::from_micros(rng.below(max_delay.as_micros() as u64 + 1));
        let (lines, _) = run(1_000 * (i + 1), events, Some(delay))?;
        report.iterations += 1;
        tally(&lines, &mut report);
        scan(&mut report)?;
    }
    let (lines, _) = run(0, 0, None)?;
    if !lines.iter().any(|l| l == "DONE") {
        return Err(io::Error::other("the final worker did not finish its drain"));
    }
    tally(&lines, &mut report);
    scan(&mut report)?;

    // Final state: where every event ended up.
    let mut found: BTreeMap<u64, u64> = BTreeMap::new();
    let mut files: Vec<PathBuf> = Vec::new();
    let push_dir = |d: &Path, files: &mut Vec<PathBuf>| {
        if let Ok(rd) = fs::read_dir(d) {
            files.extend(rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| {
                p.file_name().and_then(|n| n.to_str()).and_then(bundle::parse_file_name).is_some()
            }));
        }
    };
    match target {
        Target::Handoff(outbox) => {
            push_dir(&spool, &mut files);
            push_dir(outbox, &mut files);
        }
        Target::Upload { store, .. } => {
            let mut all = Vec::new();
            walk(store, store, &mut all);
            for (rel, p) in all {
                let data = fs::read(&p)?;
                match check_bundle(&data) {
                    Ok(Some((n, region))) => {
                        *found.entry(n).or_default() += 1;
                        let want = if n % 2 == 0 { Region::Us } else { Region::Cn };
                        if region != want || !rel.starts_with(&format!("{}/", want.as_str())) {
                            report.wrong_region += 1;
                        }
                    }
                    Ok(None) => {}
                    Err(_) => report.corrupt += 1,
                }
            }
        }
    }
    for p in files {
        match check_bundle(&fs::read(&p)?) {
            Ok(Some((n, _))) => *found.entry(n).or_default() += 1,
            Ok(None) => {}
            Err(_) => report.corrupt += 1,
        }
    }
    report.lost = stored.iter().filter(|n| !found.contains_key(n)).count() as u64;
    report.duplicated = found.values().map(|c| c.saturating_sub(1)).sum();
    Ok(report)
}

/// Kinds are re-exported for the worker's output.
pub fn kind_name(k: BundleKind) -> &'static str {
    match k {
        BundleKind::Event => "event",
        BundleKind::DeletionRequest => "deletion-request",
    }
}
