//! The improvement programme end to end through `vigil replay`: real decoding, the real failure
//! model raising the event, the real face model and scrubber, the real spool on disk. Every check reads
//! the bytes that were written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const MAC: &str = "02:42:ac:11:00:02";
const SERIAL: &str = "SN-VIGIL-TEST-0042";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn vigil(cfg: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("--config")
        .arg(cfg)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// A config whose every state file lives in `dir`; the snapshot window is `window_s` media seconds.
fn config(dir: &Path, window_s: f64, spacing_s: f64) -> PathBuf {
    config_in(dir, window_s, spacing_s, "DE")
}

fn config_in(dir: &Path, window_s: f64, spacing_s: f64, country: &str) -> PathBuf {
    let d = dir.display();
    let text = format!(
        "[device]\nprinter_model = \"K1\"\nfirmware = \"1.2.3\"\nmac = \"{MAC}\"\nserial = \"{SERIAL}\"\n\
         [privacy]\nconsent_file = \"{d}/consent.json\"\ndevice_key_file = \"{d}/device.key\"\n\
         audit_log = \"{d}/audit.jsonl\"\ncountry = \"{country}\"\n\
         [privacy.purpose]\nwindow_s = {window_s}\nmin_spacing_s = {spacing_s}\nframes_per_event = 3\n\
         [telemetry]\nspool_dir = \"{d}/spool\"\n"
    );
    let path = dir.join("vigil.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn event_bundles(spool: &Path) -> Vec<PathBuf> {
    files_under(spool)
        .into_iter()
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("e-") && n.ends_with(".zst"))
        })
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn assert_no_identifiers(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let mac_plain = MAC.replace(':', "");
    for needle in [MAC, &MAC.to_uppercase(), &mac_plain, &mac_plain.to_uppercase(), SERIAL] {
        assert!(!contains(&bytes, needle.as_bytes()), "{} contains {needle}", path.display());
    }
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn without_consent_a_replay_with_a_failure_writes_nothing_but_its_own_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 30.0, 5.0);
    let sum = dir.path().join("summary.json");
    ok(vigil(
        &cfg,
        &["replay", "fixtures/footage/spaghetti.mkv", "--interval", "10", "--summary", sum.to_str().unwrap()],
    ));
    let s = summary(dir.path());
    assert!(
        s["events"].as_u64().unwrap() >= 1,
        "the fixture must raise an event for this test to mean anything"
    );
    assert_eq!((s["snapshots_kept"].as_u64(), s["bundles"].as_u64()), (Some(0), Some(0)));
    let mut written: Vec<_> =
        files_under(dir.path()).into_iter().map(|p| p.file_name().unwrap().to_owned()).collect();
    written.sort();
    assert_eq!(
        written,
        vec!["summary.json", "vigil.toml"],
        "no spool, audit log, key or snapshot may appear"
    );
}

#[test]
fn with_consent_a_failure_spools_one_scrubbed_bundle_without_identifiers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 30.0, 5.0);
    ok(vigil(&cfg, &["consent", "on"]));
    let sum = dir.path().join("summary.json");
    ok(vigil(
        &cfg,
        &["replay", "fixtures/footage/spaghetti.mkv", "--interval", "10", "--summary", sum.to_str().unwrap()],
    ));
    let s = summary(dir.path());
    assert_eq!(s["snapshots_kept"], 3, "{s}");
    assert_eq!(s["bundles"], 1, "{s}");
    let bundles = event_bundles(&dir.path().join("spool"));
    assert_eq!(bundles.len(), 1);

    // Unpack it with the CLI and look at every byte that would leave the printer.
    let out = dir.path().join("out");
    let shown =
        ok(vigil(&cfg, &["spool", "show", bundles[0].to_str().unwrap(), "--extract", out.to_str().unwrap()]));
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("\"us\"") || text.contains("region: us") || text.contains("us"),
        "DE is routed to the US: {text}"
    );
    assert_no_identifiers(&bundles[0]);
    let extracted = files_under(&out);
    let jpegs: Vec<_> = extracted.iter().filter(|p| p.extension().is_some_and(|e| e == "jpg")).collect();
    assert_eq!(jpegs.len(), 3, "{extracted:?}");
    for f in &extracted {
        assert_no_identifiers(f);
    }
    for j in jpegs {
        let bytes = std::fs::read(j).unwrap();
        assert!(vigil_privacy::verify(&bytes).is_ok(), "{} has non-structural segments", j.display());
    }
    // Nothing but the spool, the programme's state files and the requested outputs was written.
    for f in files_under(dir.path()) {
        let rel = f.strip_prefix(dir.path()).unwrap().to_string_lossy().into_owned();
        let allowed = ["vigil.toml", "summary.json", "consent.json", "device.key", "audit.jsonl"];
        assert!(
            allowed.contains(&rel.as_str()) || rel.starts_with("spool/") || rel.starts_with("out/"),
            "unexpected file {rel}"
        );
    }
}

#[test]
fn leaving_the_programme_mid_replay_stops_everything_from_the_next_frame() {
    let dir = tempfile::tempdir().unwrap();
    // Frames 0.5 s apart, paced in real time: the event comes at frame 12 (6 s), its window lasts 4 s.
    let cfg = config(dir.path(), 4.0, 0.5);
    ok(vigil(&cfg, &["consent", "on"]));
    let sum = dir.path().join("summary.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("--config")
        .arg(&cfg)
        .args(["replay", "fixtures/footage/spaghetti.mkv", "--interval", "0.5", "--realtime"])
        .args(["--summary", sum.to_str().unwrap()])
        .current_dir(root())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the first snapshot to be handed on, then leave.
    let audit = dir.path().join("audit.jsonl");
    let started = Instant::now();
    while !std::fs::read_to_string(&audit).unwrap_or_default().contains("\"handed_on\"") {
        // Generous: only a guard against a replay that never hands anything on (slow under an emulator).
        assert!(started.elapsed() < Duration::from_secs(300), "no snapshot was ever handed on");
        assert!(child.try_wait().unwrap().is_none(), "replay ended before any snapshot");
        std::thread::sleep(Duration::from_millis(20));
    }
    ok(vigil(&cfg, &["consent", "off"]));
    let status = child.wait().unwrap();
    assert!(status.success());

    let s = summary(dir.path());
    assert_eq!(s["bundles"], 0, "the event's bundle was still being gathered and must be discarded: {s}");
    assert!(event_bundles(&dir.path().join("spool")).is_empty());
    // The audit log shows nothing kept or handed on after the opt-out.
    let log = std::fs::read_to_string(&audit).unwrap();
    let lines: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let off =
        lines.iter().position(|l| l["action"] == "consent" && l["on"] == false).expect("opt-out recorded");
    for l in &lines[off..] {
        assert!(l["action"] != "kept" && l["action"] != "handed_on", "after opt-out: {l}");
    }
    // No image of any kind is left anywhere.
    for f in files_under(dir.path()) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.starts_with(&[0xff, 0xd8]) && !contains(&bytes, &[0xff, 0xd8, 0xff]),
            "{} holds a JPEG",
            f.display()
        );
    }
}

#[test]
fn a_printer_in_mainland_china_spools_for_the_china_region() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_in(dir.path(), 30.0, 5.0, "CN");
    ok(vigil(&cfg, &["consent", "on"]));
    ok(vigil(&cfg, &["replay", "fixtures/footage/spaghetti.mkv", "--interval", "10"]));
    let bundles = event_bundles(&dir.path().join("spool"));
    assert_eq!(bundles.len(), 1);
    let shown = ok(vigil(&cfg, &["spool", "show", bundles[0].to_str().unwrap()]));
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("\"region\": \"cn\"") && !text.contains("\"region\": \"us\""), "{text}");
}
