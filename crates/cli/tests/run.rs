//! `vigil run` and `vigil config check` through the real binary, against real servers on 127.0.0.1: ffmpeg
//! serving the fixture footage as an MJPEG stream (killed and restarted mid-run), and OctoPrint with its
//! Virtual Printer, which vigil must pause once when the footage shows spaghetti. Signals: SIGHUP reloads
//! the config, SIGTERM drains and exits 0. Tests skip, saying why, only where a server is not installed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn have(tool: &str) -> bool {
    let ok = Command::new("sh").args(["-c", &format!("command -v {tool}")]).stdout(Stdio::null()).status();
    let found = ok.is_ok_and(|s| s.success());
    if !found {
        eprintln!("SKIP: {tool} is not installed (tools/setup.sh --test installs it)");
    }
    found
}

/// ffmpeg serving `clip` (looped, `rate` times real time) as multipart MJPEG to one client.
fn stream(clip: &str, port: u16, rate: &str) -> Proc {
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-readrate", rate, "-stream_loop", "-1", "-i"])
        .arg(root().join(clip))
        .args(["-q:v", "5", "-f", "mpjpeg", "-content_type", "multipart/x-mixed-replace;boundary=ffmpeg"])
        .args(["-listen", "1", &format!("http://127.0.0.1:{port}/stream")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Proc(child)
}

fn vigil(args: &[&str], config: &Path, log: &Path) -> Proc {
    let out = std::fs::File::create(log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .current_dir(root())
        .env("VIGIL_LOG", "info")
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    Proc(child)
}

/// One metric's value from `GET /metrics`, None while the endpoint is not up.
fn metric(port: u16, name: &str) -> Option<f64> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(s, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.lines().find_map(|l| l.strip_prefix(&format!("{name} ")).and_then(|v| v.trim().parse().ok()))
}

fn wait_until(within: Duration, what: &str, log: &Path, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        if t.elapsed() > within {
            panic!(
                "timed out after {within:?} waiting for {what}; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    t.elapsed()
}

fn signal(p: &Proc, sig: &str) {
    assert!(Command::new("kill").args([sig, &p.0.id().to_string()]).status().unwrap().success());
}

#[test]
fn config_check_prints_every_default_and_refuses_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("vigil.toml");
    std::fs::write(
        &good,
        "[printer]\ntype = \"moonraker\"\naction = \"pause\"\n[source]\nstall_timeout_s = 3.0\n",
    )
    .unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_vigil")).args(["config", "check"]).arg(&good).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for line in [
        "url = \"http://127.0.0.1:7125\"",
        "action = \"pause\"",
        "resume_cooldown_s = 600.0",
        "stall_timeout_s = 3.0",
        "backoff_max_s = 30.0",
        "listen = \"127.0.0.1:9464\"",
        "sensitivity = ",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    // The printed configuration is itself a valid configuration.
    let printed = dir.path().join("printed.toml");
    std::fs::write(&printed, text.as_bytes()).unwrap();
    let again =
        Command::new(env!("CARGO_BIN_EXE_vigil")).args(["config", "check"]).arg(&printed).output().unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[metrics]\nlisten = \"0.0.0.0:9464\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil")).args(["config", "check"]).arg(&bad).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

#[test]
fn run_survives_a_killed_stream_reloads_on_sighup_and_drains_on_sigterm() {
    if !have("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cam, mport) = (free_port(), free_port());
    let config = dir.path().join("vigil.toml");
    let write_config = |sensitivity: &str| {
        std::fs::write(
            &config,
            format!(
                "[judge]\nsensitivity = \"{sensitivity}\"\n[metrics]\nlisten = \"127.0.0.1:{mport}\"\n[source]\n\
                 spec = \"http://127.0.0.1:{cam}/stream\"\nbackoff_min_s = 0.2\nbackoff_max_s = 1.0\nstall_timeout_s = 2.0\n"
            ),
        )
        .unwrap()
    };
    write_config("medium");
    let log = dir.path().join("vigil.log");
    let camera = Camera::start("fixtures/footage/normal.mkv", cam, "4");
    let daemon = vigil(&["run"], &config, &log);
    wait_until(Duration::from_secs(30), "frames to be analysed", &log, || {
        metric(mport, "vigil_frames_analysed_total").is_some_and(|n| n >= 4.0)
    });
    assert_eq!(metric(mport, "vigil_source_up"), Some(1.0));

    // Kill the camera server mid-stream: the outage shows in the metrics, and frames flow again once it
    // is back.
    let before = metric(mport, "vigil_frames_read_total").unwrap();
    camera.kill();
    let seen = wait_until(Duration::from_secs(10), "the outage", &log, || {
        metric(mport, "vigil_source_outages_total").is_some_and(|n| n >= 1.0)
    });
    let back = wait_until(Duration::from_secs(15), "frames after the restart", &log, || {
        metric(mport, "vigil_frames_read_total").is_some_and(|n| n > before + 1.0)
    });
    eprintln!("vigil run: outage in the metrics {seen:?} after the kill, frames again {back:?} later");
    assert_eq!(metric(mport, "vigil_source_up"), Some(1.0));
    assert!(metric(mport, "vigil_source_outage_seconds_total").is_some_and(|s| s > 0.0));

    // SIGHUP with a broken file keeps the running config; with a good one it reloads.
    std::fs::write(&config, "[judge]\nfailure_treshold = 0.5\n").unwrap();
    signal(&daemon, "-HUP");
    wait_until(Duration::from_secs(10), "the refused reload", &log, || {
        metric(mport, "vigil_config_reload_errors_total") == Some(1.0)
    });
    write_config("low");
    signal(&daemon, "-HUP");
    wait_until(Duration::from_secs(10), "the reload", &log, || {
        metric(mport, "vigil_config_reloads_total") == Some(1.0)
    });
    let analysed = metric(mport, "vigil_frames_analysed_total").unwrap();
    wait_until(Duration::from_secs(15), "frames after the reload", &log, || {
        metric(mport, "vigil_frames_analysed_total").is_some_and(|n| n > analysed)
    });

    // SIGTERM: drains and exits 0 promptly.
    let mut daemon = daemon;
    signal(&daemon, "-TERM");
    let t = Instant::now();
    let status = loop {
        if let Some(s) = daemon.0.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "vigil did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{text}");
    assert!(text.contains("configuration reloaded") && text.contains("reload refused"), "{text}");
    assert!(text.contains("vigil: stopped: frames read"), "{text}");
    eprintln!("vigil run exited {:?} after SIGTERM", t.elapsed());
    drop(camera);
}

/// A camera server that serves any number of connections one after another, as ustreamer would:
/// ffmpeg is started again whenever its one client has gone (for at most two minutes).
struct Camera {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    child: std::sync::Arc<std::sync::Mutex<Option<Proc>>>,
}

impl Camera {
    fn start(clip: &'static str, port: u16, rate: &'static str) -> Camera {
        use std::sync::atomic::Ordering;
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let child = std::sync::Arc::new(std::sync::Mutex::new(None::<Proc>));
        let (d, c) = (done.clone(), child.clone());
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(120);
            while !d.load(Ordering::Relaxed) && Instant::now() < until {
                let mut slot = c.lock().unwrap();
                let exited = match slot.as_mut() {
                    None => true,
                    Some(p) => p.0.try_wait().ok().flatten().is_some(),
                };
                if exited && !d.load(Ordering::Relaxed) {
                    *slot = Some(stream(clip, port, rate));
                }
                drop(slot);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Camera { done, child }
    }
}

impl Camera {
    /// Kills the running ffmpeg mid-stream (it is started again within 0.1 s).
    fn kill(&self) {
        if let Some(p) = self.child.lock().unwrap().as_mut() {
            let _ = p.0.kill();
        }
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.done.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut c) = self.child.lock() {
            c.take();
        }
    }
}

/// A webhook receiver: collects the JSON bodies POSTed to it.
fn webhook_receiver() -> (u16, std::sync::mpsc::Receiver<serde_json::Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in listener.incoming().take(20) {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut l = String::new();
                if r.read_line(&mut l).unwrap_or(0) == 0 || l.trim().is_empty() {
                    break;
                }
                if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            if let Ok(v) = serde_json::from_slice(&body) {
                let _ = tx.send(v);
            }
        }
    });
    (port, rx)
}

const KEY: &str = "VIGILRUNTESTKEY0123456789AB";

#[test]
fn run_pauses_an_octoprint_print_once_when_the_camera_shows_spaghetti() {
    let octoprint = root().join(".local/octoprint/bin/octoprint");
    if !octoprint.is_file() {
        eprintln!("SKIP: {} is missing (tools/setup.sh --test installs it)", octoprint.display());
        return;
    }
    if !have("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("octoprint");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(
        base.join("config.yaml"),
        "server:\n  firstRun: false\n  onlineCheck:\n    enabled: false\n  pluginBlacklist:\n    enabled: false\n  \
         pythonEolCheck:\n    enabled: false\nplugins:\n  virtual_printer:\n    enabled: true\n  _disabled:\n  - tracking\n  \
         - softwareupdate\n  - announcements\n  - errortracking\n",
    )
    .unwrap();
    let out = Command::new(&octoprint)
        .arg("-b")
        .arg(&base)
        .args(["user", "add", "admin", "--password", "vigil-test", "--admin"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let users = std::fs::read_to_string(base.join("users.yaml")).unwrap();
    std::fs::write(base.join("users.yaml"), users.replace("apikey: null", &format!("apikey: {KEY}")))
        .unwrap();
    let oport = free_port();
    let op_log = std::fs::File::create(dir.path().join("octoprint.log")).unwrap();
    let _op = Proc(
        Command::new(&octoprint)
            .arg("serve")
            .arg("-b")
            .arg(&base)
            .args(["--host", "127.0.0.1", "--port", &oport.to_string(), "--iknowwhatimdoing"])
            .stdin(Stdio::null())
            .stdout(op_log.try_clone().unwrap())
            .stderr(op_log)
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{oport}");
    let api = |method: &str, path: &str, body: Option<&str>| -> (u16, String) {
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
        let r = agent.request(method, &format!("{url}{path}")).set("X-Api-Key", KEY);
        let res = match body {
            Some(b) => r.set("Content-Type", "application/json").send_string(b),
            None => r.call(),
        };
        match res {
            Ok(resp) => (resp.status(), resp.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(s, resp)) => (s, resp.into_string().unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    };
    let state = || -> String {
        let (_, body) = api("GET", "/api/job", None);
        serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["state"].as_str().map(String::from))
            .unwrap_or_default()
    };
    let log = dir.path().join("vigil.log");
    wait_until(Duration::from_secs(40), "OctoPrint", &log, || api("GET", "/api/version", None).0 == 200);
    assert_eq!(api("POST", "/api/connection", Some(r#"{"command":"connect","port":"VIRTUAL"}"#)).0, 204);
    wait_until(Duration::from_secs(20), "the virtual printer", &log, || state() == "Operational");
    let gcode: String =
        (0..400).map(|i| if i % 2 == 0 { "G1 X20 Y20 F600\n" } else { "G1 X0 Y0 F600\n" }).collect();
    let up = ureq::post(&format!("{url}/api/files/local"))
        .set("X-Api-Key", KEY)
        .set("Content-Type", "multipart/form-data; boundary=vb")
        .send_string(&format!(
            "--vb\r\nContent-Disposition: form-data; name=\"file\"; filename=\"part.gcode\"\r\n\r\n{gcode}\r\n--vb\r\n\
             Content-Disposition: form-data; name=\"select\"\r\n\r\ntrue\r\n--vb--\r\n"
        ))
        .unwrap();
    assert_eq!(up.status(), 201);

    // vigil: the camera (spaghetti footage at 4x), OctoPrint with action = pause, and a webhook.
    let (cam, mport) = (free_port(), free_port());
    let (hook, hooks) = webhook_receiver();
    let _camera = Camera::start("fixtures/footage/spaghetti.mkv", cam, "4");
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[printer]\ntype = \"octoprint\"\nurl = \"{url}\"\napi_key = \"{KEY}\"\naction = \"pause\"\npoll_s = 0.5\n\
             webhook = \"http://127.0.0.1:{hook}/vigil\"\n[judge]\ncooldown_s = 1.0\n[metrics]\nlisten = \"127.0.0.1:{mport}\"\n\
             [source]\nspec = \"http://127.0.0.1:{cam}/stream\"\nbackoff_min_s = 0.2\n[privacy]\nconsent_file = \"{}\"\n",
            dir.path().join("consent.json").display()
        ),
    )
    .unwrap();
    let daemon = vigil(&["run"], &config, &log);
    wait_until(Duration::from_secs(20), "the metrics", &log, || metric(mport, "vigil_printing") == Some(0.0));
    // Not printing: nothing is analysed.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(metric(mport, "vigil_frames_analysed_total"), Some(0.0));

    assert_eq!(api("POST", "/api/job", Some(r#"{"command":"start"}"#)).0, 204);
    let paused =
        wait_until(Duration::from_secs(40), "vigil to pause the print", &log, || state() == "Paused");
    eprintln!("paused {paused:?} after the print started");
    assert_eq!(metric(mport, "vigil_pauses_total"), Some(1.0));
    let note = hooks.recv_timeout(Duration::from_secs(5)).expect("a webhook call");
    assert_eq!(note["action"], "paused", "{note}");
    assert_eq!(note["event"]["type"], "failure", "{note}");
    assert!(note.get("snapshot_jpeg_base64").is_none(), "no snapshot without consent: {note}");

    // The user resumes: later failures of this print do not pause it again.
    assert_eq!(api("POST", "/api/job", Some(r#"{"command":"pause","action":"resume"}"#)).0, 204);
    wait_until(Duration::from_secs(10), "the print to resume", &log, || state() == "Printing");
    wait_until(Duration::from_secs(30), "a refused pause", &log, || {
        metric(mport, "vigil_pauses_refused_total").is_some_and(|n| n >= 1.0)
    });
    assert_eq!(state(), "Printing");
    assert_eq!(metric(mport, "vigil_pauses_total"), Some(1.0));
    let later = hooks.recv_timeout(Duration::from_secs(5)).expect("a second webhook call");
    assert!(later["action"].as_str().unwrap_or("").starts_with("not paused"), "{later}");
    assert_eq!(api("POST", "/api/job", Some(r#"{"command":"cancel"}"#)).0, 204);
    signal(&daemon, "-TERM");
}
