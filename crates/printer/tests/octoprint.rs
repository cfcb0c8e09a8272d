//! OctoPrint for real: the pinned PyPI `octoprint` (tools/setup.d/printer-servers.sh) started on 127.0.0.1
//! with its bundled Virtual Printer. A small gcode file is uploaded and printed; the adapter reads the
//! state, finds the webcam, pauses the print, and the pause rule refuses a second pause after the resume.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use vigil_printer::{OctoPrint, PauseGuard, PrintState, Printer, Refusal};

const KEY: &str = "VIGILTESTKEY0123456789ABCDEF";

/// Sets OctoPrint up headless in `base` (config, admin user with an API key).
fn prepare(octoprint: &std::path::Path, base: &std::path::Path) {
    std::fs::write(
        base.join("config.yaml"),
        "server:\n  firstRun: false\n  onlineCheck:\n    enabled: false\n  pluginBlacklist:\n    enabled: false\n  \
         pythonEolCheck:\n    enabled: false\nplugins:\n  virtual_printer:\n    enabled: true\n  _disabled:\n  - tracking\n  \
         - softwareupdate\n  - announcements\n  - errortracking\n",
    )
    .unwrap();
    let ok = Command::new(octoprint)
        .arg("-b")
        .arg(base)
        .args(["user", "add", "admin", "--password", "vigil-test", "--admin"])
        .output()
        .unwrap();
    assert!(ok.status.success(), "octoprint user add: {}", String::from_utf8_lossy(&ok.stderr));
    let users = base.join("users.yaml");
    let text = std::fs::read_to_string(&users).unwrap();
    assert!(text.contains("apikey: null"), "{text}");
    std::fs::write(&users, text.replace("apikey: null", &format!("apikey: {KEY}"))).unwrap();
}

#[test]
fn octoprint_virtual_printer_is_paused_once_and_the_webcam_is_found() {
    let Some(octoprint) = venv_tool("octoprint", "octoprint") else { return };
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("octoprint");
    std::fs::create_dir_all(&base).unwrap();
    let t0 = Instant::now();
    prepare(&octoprint, &base);
    let port = free_port();
    let _server = start(
        Command::new(&octoprint).arg("serve").arg("-b").arg(&base).args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--iknowwhatimdoing",
        ]),
        &dir.path().join("octoprint.log"),
    );
    let url = format!("http://127.0.0.1:{port}");
    wait_for(Duration::from_secs(40), "OctoPrint to answer", || {
        (http("GET", &format!("{url}/api/version"), Some(KEY), None).0 == 200).then_some(())
    });
    eprintln!("octoprint up after {:?}", t0.elapsed());

    let mut printer = OctoPrint::new(&url, Some(KEY.into()), Duration::from_secs(5));
    assert_eq!(printer.status().unwrap().state, PrintState::Offline);

    // Webcam settings as a user would set them, then discovery through /api/settings.
    let (s, b) = http(
        "POST",
        &format!("{url}/api/settings"),
        Some(KEY),
        Some(
            r#"{"plugins": {"classicwebcam": {"stream": "/webcam/?action=stream", "snapshot": "http://127.0.0.1:8080/?action=snapshot"}}}"#,
        ),
    );
    assert_eq!(s, 200, "{b}");
    let cams = printer.webcams().unwrap();
    eprintln!("webcams: {cams:?}");
    assert!(
        cams.iter().any(|c| c.stream_url.as_deref() == Some("http://127.0.0.1/webcam/?action=stream")
            && c.snapshot_url.as_deref() == Some("http://127.0.0.1:8080/?action=snapshot")),
        "{cams:?}"
    );

    // Connect the virtual printer, upload a small gcode and print it.
    let (s, b) = http(
        "POST",
        &format!("{url}/api/connection"),
        Some(KEY),
        Some(r#"{"command":"connect","port":"VIRTUAL"}"#),
    );
    assert_eq!(s, 204, "{b}");
    wait_for(Duration::from_secs(20), "the virtual printer to be operational", || {
        (printer.status().ok()?.state == PrintState::Standby).then_some(())
    });
    let gcode: String =
        (0..400).map(|i| if i % 2 == 0 { "G1 X20 Y20 F600\n" } else { "G1 X0 Y0 F600\n" }).collect();
    let up = ureq::post(&format!("{url}/api/files/local"))
        .set("X-Api-Key", KEY)
        .set("Content-Type", "multipart/form-data; boundary=vigilboundary")
        .send_string(&format!(
            "--vigilboundary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"vigil-test.gcode\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n{gcode}\r\n--vigilboundary\r\n\
             Content-Disposition: form-data; name=\"select\"\r\n\r\ntrue\r\n--vigilboundary--\r\n"
        ))
        .unwrap();
    assert_eq!(up.status(), 201);
    let (s, b) = http("POST", &format!("{url}/api/job"), Some(KEY), Some(r#"{"command":"start"}"#));
    assert_eq!(s, 204, "{b}");

    let mut guard = PauseGuard::new(1, Duration::from_secs(600));
    let status = wait_for(Duration::from_secs(15), "the print to start", || {
        printer.status().ok().filter(|s| s.state == PrintState::Printing)
    });
    assert_eq!(status.job.as_deref(), Some("vigil-test.gcode"));
    guard.observe(&status, Instant::now());
    assert_eq!(guard.may_pause(Instant::now()), Ok(()));

    // vigil pauses the print.
    let asked = Instant::now();
    printer.pause().unwrap();
    guard.paused();
    let paused = wait_for(Duration::from_secs(10), "the print to pause", || {
        printer.status().ok().filter(|s| s.state == PrintState::Paused)
    });
    eprintln!("paused {:?} after the request", asked.elapsed());
    // OctoPrint itself says Paused (after Pausing).
    wait_for(Duration::from_secs(10), "OctoPrint's own state to be Paused", || {
        let (_, job) = http("GET", &format!("{url}/api/job"), Some(KEY), None);
        let v: serde_json::Value = serde_json::from_str(&job).ok()?;
        (v["state"] == "Paused").then_some(())
    });
    guard.observe(&paused, Instant::now());

    // The user resumes: a second failure must not pause this print again.
    let (s, _) =
        http("POST", &format!("{url}/api/job"), Some(KEY), Some(r#"{"command":"pause","action":"resume"}"#));
    assert_eq!(s, 204);
    let resumed = wait_for(Duration::from_secs(10), "the print to resume", || {
        printer.status().ok().filter(|s| s.state == PrintState::Printing)
    });
    guard.observe(&resumed, Instant::now());
    assert_eq!(guard.may_pause(Instant::now()), Err(Refusal::AlreadyPaused { pauses: 1 }));

    let (s, _) = http("POST", &format!("{url}/api/job"), Some(KEY), Some(r#"{"command":"cancel"}"#));
    assert_eq!(s, 204);
    // Without the key OctoPrint refuses, and the adapter says so.
    let mut anonymous = OctoPrint::new(&url, None, Duration::from_secs(5));
    let err = anonymous.pause().unwrap_err();
    assert!(err.to_string().contains("HTTP 4"), "{err}");
    eprintln!("octoprint test took {:?}", t0.elapsed());
}
