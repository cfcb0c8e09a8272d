//! Live sources against real servers started on 127.0.0.1 by each test: ffmpeg serving MJPEG over HTTP
//! (its `mpjpeg` muxer), ustreamer (which serves its "no signal" picture without a camera), GStreamer's RTSP
//! server (tests/servers/rtsp_server.py) and Python's static HTTP server for snapshot URLs. Each server is
//! killed mid-stream and the source must report one outage and deliver frames again once it is back.
//! A test skips, saying why, only when its server is not installed (tools/setup.sh --test installs them).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_capture::{open_spec, Backoff, CaptureError, FrameSource, LiveOptions, SourceSpec, Timing};

struct Server(Child);

impl Server {
    fn start(cmd: &mut Command) -> Server {
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        Server(child)
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.pid().to_string()]).status().unwrap().success();
        assert!(ok, "kill {sig} {}", self.pid());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16, within: Duration) {
    let until = Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "nothing listens on 127.0.0.1:{port} after {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("SKIP: {tool} is not installed (tools/setup.sh --test installs it)");
    }
    found
}

/// Options for tests: short timeouts and backoff, and a watchdog that stops the source after `limit`.
fn options(limit: Duration) -> LiveOptions {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        s.store(true, Ordering::Relaxed);
    });
    LiveOptions {
        connect_timeout: Duration::from_secs(2),
        stall_timeout: Duration::from_millis(1500),
        backoff: Backoff { min: Duration::from_millis(100), max: Duration::from_millis(400) },
        decode_min_side: Some(192),
        stop: Some(stop),
        ..LiveOptions::default()
    }
}

/// Reads `n` frames, skipping none; returns their (width, height).
fn frames(src: &mut Box<dyn FrameSource>, n: usize) -> Vec<(u32, u32)> {
    (0..n)
        .map(|_| match src.next_frame() {
            Ok(Some(f)) => (f.image.width(), f.image.height()),
            other => panic!("expected a frame, got {other:?}"),
        })
        .collect()
}

/// Lets a source that was started before its server report the initial outage and connect.
fn skip_initial_outage(src: &mut Box<dyn FrameSource>) {
    let mut probe = src.next_frame();
    if matches!(probe, Err(CaptureError::Outage { .. })) {
        probe = src.next_frame();
    }
    assert!(matches!(probe, Ok(Some(_))), "{probe:?}");
}

/// Calls `next_frame` until it reports the outage; returns how long that took.
fn until_outage(src: &mut Box<dyn FrameSource>) -> Duration {
    let t = Instant::now();
    for _ in 0..200 {
        match src.next_frame() {
            Err(CaptureError::Outage { .. }) => return t.elapsed(),
            Ok(Some(_)) | Err(CaptureError::CorruptFrame { .. }) => continue,
            other => panic!("expected an outage, got {other:?}"),
        }
    }
    panic!("no outage reported")
}

/// Time until the next frame after an outage.
fn until_frame(src: &mut Box<dyn FrameSource>) -> (Duration, u64) {
    let t = Instant::now();
    match src.next_frame() {
        Ok(Some(f)) => (t.elapsed(), f.seq),
        other => panic!("expected a frame after reconnecting, got {other:?}"),
    }
}

fn ffmpeg_mjpeg(port: u16) -> Server {
    Server::start(Command::new("ffmpeg").args([
        "-hide_banner",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=1280x720:rate=10",
        "-q:v",
        "6",
        "-f",
        "mpjpeg",
        "-content_type",
        "multipart/x-mixed-replace;boundary=ffmpeg",
        "-listen",
        "1",
        &format!("http://127.0.0.1:{port}/stream"),
    ]))
}

#[test]
fn mjpeg_from_ffmpeg_is_decoded_at_reduced_scale_and_recovers_when_the_server_is_killed() {
    if !have("ffmpeg") {
        return;
    }
    let port = free_port();
    // ffmpeg's `-listen 1` serves exactly one client, so nothing may probe the port first: the source
    // waits for it instead.
    let mut server = ffmpeg_mjpeg(port);
    let spec = SourceSpec::parse(&format!("http://127.0.0.1:{port}/stream"), None).unwrap();
    let mut opts = options(Duration::from_secs(30));
    opts.retry_first = true;
    let mut src = open_spec(&spec, Timing::Media, &opts).unwrap();
    assert!(src.is_live());
    skip_initial_outage(&mut src);
    // 1280x720 decoded at 1/2 DCT scale for a 192-pixel model.
    assert_eq!(frames(&mut src, 5), vec![(640, 360); 5]);

    server.signal("-KILL");
    let detect = until_outage(&mut src);
    server = ffmpeg_mjpeg(port);
    let (reconnect, seq) = until_frame(&mut src);
    eprintln!(
        "ffmpeg mpjpeg: outage seen {detect:?} after the kill, first frame {reconnect:?} after restart"
    );
    assert!(detect < Duration::from_secs(2), "{detect:?}");
    assert!(reconnect < Duration::from_secs(5), "{reconnect:?}");
    assert!(seq >= 5, "frame numbers go on across connections: {seq}");
    drop(server);
}

#[test]
fn a_stream_url_that_is_down_at_start_fails_fast_unless_told_to_wait() {
    let port = free_port();
    let spec = SourceSpec::parse(&format!("http://127.0.0.1:{port}/stream"), None).unwrap();
    let err = open_spec(&spec, Timing::Media, &options(Duration::from_secs(10))).err().unwrap();
    assert!(matches!(err, CaptureError::Open { .. }) && err.to_string().contains(&port.to_string()), "{err}");
    if !have("ffmpeg") {
        return;
    }
    let mut opts = options(Duration::from_secs(20));
    opts.retry_first = true;
    let mut src = open_spec(&spec, Timing::Media, &opts).unwrap();
    assert!(matches!(src.next_frame(), Err(CaptureError::Outage { .. })));
    let _server = ffmpeg_mjpeg(port);
    let (waited, seq) = until_frame(&mut src);
    assert_eq!(seq, 0);
    assert!(waited < Duration::from_secs(8), "{waited:?}");
}

fn ustreamer(port: u16) -> Server {
    Server::start(Command::new("ustreamer").args([
        "--device",
        "/dev/video-vigil-test-absent",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
    ]))
}

#[test]
fn ustreamer_without_a_camera_is_read_as_a_stream_and_as_a_snapshot_url_and_survives_a_stall_and_a_kill() {
    if !have("ustreamer") {
        return;
    }
    let port = free_port();
    let mut server = ustreamer(port);
    wait_for_port(port, Duration::from_secs(5));

    // The stream: ustreamer's 640x480 "no signal" picture, decoded at 1/2 scale.
    let spec = SourceSpec::parse(&format!("http://127.0.0.1:{port}/stream"), None).unwrap();
    let mut src = open_spec(&spec, Timing::Media, &options(Duration::from_secs(40))).unwrap();
    assert_eq!(frames(&mut src, 2), vec![(320, 240); 2]);

    // The snapshot URL, polled every 0.2 s.
    let snap = SourceSpec::parse(&format!("http://127.0.0.1:{port}/snapshot"), Some(0.2)).unwrap();
    let mut poller = open_spec(&snap, Timing::Media, &options(Duration::from_secs(40))).unwrap();
    let t = Instant::now();
    assert_eq!(frames(&mut poller, 3), vec![(320, 240); 3]);
    assert!(t.elapsed() >= Duration::from_millis(380), "three polls 0.2 s apart took {:?}", t.elapsed());

    // A stalled server (stopped, connection open) is taken as lost after the stall timeout (1.5 s).
    server.signal("-STOP");
    let stall = until_outage(&mut src);
    server.signal("-CONT");
    let (back, _) = until_frame(&mut src);
    eprintln!("ustreamer stall: outage seen after {stall:?}, frames again {back:?} after it resumed");
    assert!(stall >= Duration::from_millis(1400) && stall < Duration::from_secs(5), "{stall:?}");

    // Killed: both the stream and the poller report the outage and come back with a new server.
    server.signal("-KILL");
    let detect = until_outage(&mut src);
    let detect_poll = until_outage(&mut poller);
    server = ustreamer(port);
    let (reconnect, _) = until_frame(&mut src);
    let (reconnect_poll, _) = until_frame(&mut poller);
    eprintln!(
        "ustreamer kill: stream outage {detect:?}, frames again {reconnect:?}; snapshot outage {detect_poll:?}, again {reconnect_poll:?}"
    );
    assert!(detect < Duration::from_secs(2), "{detect:?}");
    assert!(reconnect < Duration::from_secs(5), "{reconnect:?}");
    drop(server);
}

fn python() -> Option<&'static str> {
    ["/usr/bin/python3", "python3"].into_iter().find(|p| {
        Command::new(p)
            .arg("-c")
            .arg("import http.server")
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

#[test]
fn a_snapshot_url_is_polled_garbage_is_skipped_then_reconnected_and_a_dead_server_is_an_outage() {
    let Some(py) = python() else {
        eprintln!("SKIP: no python3 for the static HTTP server");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/frames");
    let first: PathBuf = std::fs::read_dir(&fixture)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "jpg"))
        .unwrap();
    std::fs::copy(&first, dir.path().join("snapshot.jpg")).unwrap();
    std::fs::write(dir.path().join("garbage.jpg"), b"<html>this is not a picture</html>").unwrap();
    let port = free_port();
    let server = Server::start(
        Command::new(py)
            .args(["-m", "http.server", "--bind", "127.0.0.1", &port.to_string(), "--directory"])
            .arg(dir.path()),
    );
    wait_for_port(port, Duration::from_secs(5));

    let mut opts = options(Duration::from_secs(30));
    opts.decode_min_side = None;
    opts.max_corrupt_run = 3;
    let spec = SourceSpec::parse(&format!("http://127.0.0.1:{port}/snapshot.jpg"), Some(0.1)).unwrap();
    let mut src = open_spec(&spec, Timing::Media, &opts).unwrap();
    let sizes = frames(&mut src, 3);
    let expect = vigil_capture::read_image(&first).unwrap();
    assert_eq!(sizes, vec![(expect.width(), expect.height()); 3]);

    let spec = SourceSpec::parse(&format!("http://127.0.0.1:{port}/garbage.jpg"), Some(0.05)).unwrap();
    let mut bad = open_spec(&spec, Timing::Media, &opts).unwrap();
    assert!(matches!(bad.next_frame(), Err(CaptureError::CorruptFrame { seq: 0, .. })));
    assert!(matches!(bad.next_frame(), Err(CaptureError::CorruptFrame { seq: 1, .. })));
    let e = bad.next_frame().unwrap_err();
    assert!(matches!(e, CaptureError::Outage { .. }) && e.to_string().contains("undecodable"), "{e}");

    drop(server);
    let detect = until_outage(&mut src);
    assert!(detect < Duration::from_secs(2), "{detect:?}");
}

fn rtsp_server(port: u16) -> Option<Server> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/rtsp_server.py");
    let ok = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer",
        ])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "SKIP: GStreamer's RTSP server bindings are not installed (tools/setup.sh --test installs them)"
        );
        return None;
    }
    Some(Server::start(Command::new("/usr/bin/python3").arg(script).arg(port.to_string())))
}

#[test]
fn rtsp_from_gstreamer_is_read_and_recovers_when_the_server_is_killed() {
    let port = free_port();
    let Some(mut server) = rtsp_server(port) else { return };
    wait_for_port(port, Duration::from_secs(5));
    let spec = SourceSpec::parse(&format!("rtsp://127.0.0.1:{port}/cam"), None).unwrap();
    let mut opts = options(Duration::from_secs(40));
    opts.stall_timeout = Duration::from_secs(5);
    let t = Instant::now();
    let mut src = open_spec(&spec, Timing::Media, &opts).unwrap();
    assert_eq!(frames(&mut src, 5), vec![(320, 240); 5]);
    eprintln!("rtsp: open and 5 frames in {:?}", t.elapsed());

    server.signal("-KILL");
    let detect = until_outage(&mut src);
    let Some(s) = rtsp_server(port) else { return };
    server = s;
    wait_for_port(port, Duration::from_secs(5));
    let (reconnect, seq) = until_frame(&mut src);
    eprintln!("rtsp: outage seen {detect:?} after the kill, first frame {reconnect:?} after restart");
    assert!(detect < Duration::from_secs(4), "{detect:?}");
    assert!(reconnect < Duration::from_secs(8), "{reconnect:?}");
    assert!(seq >= 5);
    drop(server);
}

#[test]
fn a_dead_rtsp_url_is_an_open_error_naming_it_and_never_shows_its_password() {
    if !have("ffmpeg") {
        return;
    }
    let port = free_port();
    let spec = SourceSpec::parse(&format!("rtsp://admin:hunter2@127.0.0.1:{port}/cam"), None).unwrap();
    let t = Instant::now();
    let err = open_spec(&spec, Timing::Media, &options(Duration::from_secs(20))).err().unwrap();
    let msg = err.to_string();
    eprintln!("dead rtsp: {msg} after {:?}", t.elapsed());
    assert!(matches!(err, CaptureError::Open { .. }), "{msg}");
    assert!(msg.contains(&format!("rtsp://127.0.0.1:{port}/cam")) && !msg.contains("hunter2"), "{msg}");
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
}

#[test]
fn a_stalled_rtsp_server_is_an_outage_after_the_stall_timeout() {
    let port = free_port();
    let Some(server) = rtsp_server(port) else { return };
    wait_for_port(port, Duration::from_secs(5));
    let spec = SourceSpec::parse(&format!("rtsp://127.0.0.1:{port}/cam"), None).unwrap();
    let mut src = open_spec(&spec, Timing::Media, &options(Duration::from_secs(30))).unwrap();
    assert_eq!(frames(&mut src, 3), vec![(320, 240); 3]);
    server.signal("-STOP");
    let stall = until_outage(&mut src);
    server.signal("-CONT");
    eprintln!("rtsp stall: outage seen after {stall:?}");
    assert!(stall >= Duration::from_millis(1000) && stall < Duration::from_secs(5), "{stall:?}");
}
