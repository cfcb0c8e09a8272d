//! Moonraker for real: the pinned PyPI `moonraker` (tools/setup.d/printer-servers.sh) started on 127.0.0.1,
//! talking over its unix socket to tests/servers/fake_klippy.py, a small stand-in for Klipper's API server
//! (Klipper itself needs a printer's MCU). The adapter reads the print state, lists the configured webcams
//! and pauses a running print; Moonraker forwards the pause to Klippy and the state comes back paused.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use vigil_printer::{Moonraker, PauseGuard, PrintState, Printer, Refusal};

#[test]
fn moonraker_reports_state_lists_webcams_and_pauses_a_print_once() {
    let Some(moonraker) = venv_tool("moonraker", "moonraker") else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("printer_data");
    for sub in ["config", "logs", "comms", "gcodes", "database"] {
        std::fs::create_dir_all(data.join(sub)).unwrap();
    }
    let sock = data.join("comms/klippy.sock");
    let port = free_port();
    std::fs::write(
        data.join("config/moonraker.conf"),
        format!(
            "[server]\nhost: 127.0.0.1\nport: {port}\nklippy_uds_address: {}\n\n[machine]\nprovider: none\n\n\
             [authorization]\ntrusted_clients:\n  127.0.0.0/8\n\n\
             [webcam printer_cam]\nstream_url: /webcam/?action=stream\nsnapshot_url: /webcam/?action=snapshot\n\n\
             [webcam side]\nenabled: False\nstream_url: http://127.0.0.1:8081/stream\n",
            sock.display()
        ),
    )
    .unwrap();
    let t0 = Instant::now();
    let url = format!("http://127.0.0.1:{port}");
    let mut printer = Moonraker::new(&url, None, Duration::from_secs(5));

    let _server = start(
        Command::new(&moonraker)
            .arg("-d")
            .arg(&data)
            .arg("-c")
            .arg(data.join("config/moonraker.conf"))
            .arg("-l")
            .arg(data.join("logs/moonraker.log")),
        &dir.path().join("moonraker.out"),
    );
    wait_for(Duration::from_secs(30), "Moonraker to answer", || {
        (http("GET", &format!("{url}/server/info"), None, None).0 == 200).then_some(())
    });
    // Without Klippy the printer is offline, and the webcams are listed all the same.
    assert_eq!(printer.status().unwrap().state, PrintState::Offline);
    let cams = printer.webcams().unwrap();
    assert_eq!(cams.len(), 1, "the disabled camera is left out: {cams:?}");
    assert_eq!(cams[0].name, "printer_cam");
    assert_eq!(cams[0].stream_url.as_deref(), Some("http://127.0.0.1/webcam/?action=stream"));
    assert_eq!(cams[0].snapshot_url.as_deref(), Some("http://127.0.0.1/webcam/?action=snapshot"));
    assert!(printer.pause().is_err(), "no pause without Klippy");

    let script = root().join("crates/printer/tests/servers/fake_klippy.py");
    let _klippy =
        start(Command::new("/usr/bin/python3").arg(script).arg(&sock), &dir.path().join("klippy.out"));
    let standby = wait_for(Duration::from_secs(20), "Klippy to be ready behind Moonraker", || {
        printer.status().ok().filter(|s| s.state == PrintState::Standby)
    });
    eprintln!("moonraker and klippy ready after {:?}", t0.elapsed());
    assert_eq!(standby.job, None);

    let (s, b) = http(
        "POST",
        &format!("{url}/printer/gcode/script?script=SDCARD_PRINT_FILE%20FILENAME=benchy.gcode"),
        None,
        None,
    );
    assert_eq!(s, 200, "{b}");
    let printing = wait_for(Duration::from_secs(5), "printing", || {
        printer.status().ok().filter(|s| s.state == PrintState::Printing)
    });
    assert_eq!(printing.job.as_deref(), Some("benchy.gcode"));
    let mut guard = PauseGuard::new(1, Duration::from_secs(600));
    guard.observe(&printing, Instant::now());
    assert_eq!(guard.may_pause(Instant::now()), Ok(()));

    printer.pause().unwrap();
    guard.paused();
    let paused = wait_for(Duration::from_secs(5), "paused", || {
        printer.status().ok().filter(|s| s.state == PrintState::Paused)
    });
    guard.observe(&paused, Instant::now());
    let (_, b) = http("GET", &format!("{url}/printer/objects/query?pause_resume"), None, None);
    assert!(b.contains("\"is_paused\": true") || b.contains("\"is_paused\":true"), "{b}");

    let (s, _) = http("POST", &format!("{url}/printer/print/resume"), None, None);
    assert_eq!(s, 200);
    let resumed = wait_for(Duration::from_secs(5), "resumed", || {
        printer.status().ok().filter(|s| s.state == PrintState::Printing)
    });
    guard.observe(&resumed, Instant::now());
    assert_eq!(guard.may_pause(Instant::now()), Err(Refusal::AlreadyPaused { pauses: 1 }));
    // Pausing what is not printing is refused by Klippy, and the adapter reports it.
    let (s, _) = http("POST", &format!("{url}/printer/print/cancel"), None, None);
    assert_eq!(s, 200);
    assert!(printer.pause().is_err());
    eprintln!("moonraker test took {:?}", t0.elapsed());
}
