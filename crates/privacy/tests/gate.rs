//! The gate end to end: consent, purpose, region, identifiers and the audit log, on the files it writes.

mod common;

use std::sync::Arc;

use common::*;
use vigil_frame::{Frame, Image, PixelFormat};
use vigil_privacy::{
    opt_in, opt_out, AuditAction, AuditLog, ConsentStore, DirSink, EventKind, FrameOutcome, PrivacyGate,
    Scrubber,
};

/// A 10 fps replay frame: a gradient with the frame number in its first row, so frames differ.
fn frame(seq: u64) -> Frame {
    let (w, h) = (160u32, 120u32);
    let mut data = vec![0u8; (w * h * 3) as usize];
    for (i, px) in data.chunks_exact_mut(3).enumerate() {
        let (x, y) = (i as u32 % w, i as u32 / w);
        px.copy_from_slice(&[(x + seq as u32) as u8, y as u8, 200]);
    }
    Frame::new(
        seq,
        seq as f64 / 10.0,
        Arc::from("replay"),
        Image::new(w, h, PixelFormat::Bgr8, data).unwrap(),
    )
}

fn files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    tree(dir)
}

#[test]
fn nothing_is_written_anywhere_while_consent_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let out = dir.path().join("out");
    let mut gate = PrivacyGate::new(&cfg, ids(), DirSink::new(&out));
    assert_eq!(gate.on_event(EventKind::Failure, 1.0, "print-1"), None);
    for seq in 0..200 {
        assert_eq!(gate.on_frame(&frame(seq)), FrameOutcome::ConsentOff);
    }
    // Not a snapshot, not an audit line, not a temporary file: the directory is empty.
    assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()).iter().map(|f| &f.0).collect::<Vec<_>>());
}

#[test]
fn opting_out_in_the_middle_of_a_replay_stops_all_writes_at_the_next_frame() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let out = dir.path().join("out");
    opt_in(&cfg).unwrap();
    let mut cfg_one = cfg.clone();
    cfg_one.purpose.min_spacing_s = 1.0;
    cfg_one.purpose.frames_per_event = 10;
    let mut gate = PrivacyGate::new(&cfg_one, ids(), DirSink::new(&out));
    // Another process (the `vigil consent` command) holds its own store on the same file.
    let cli = ConsentStore::new(&cfg.consent_file);
    let mut handed = 0;
    let mut snapshot_at_opt_out = None;
    for seq in 0..300u64 {
        if seq == 10 {
            assert!(gate.on_event(EventKind::Failure, 1.0, "print-1").is_some());
        }
        if seq == 45 {
            opt_out(&cfg).unwrap();
            assert!(!cli.is_on());
            snapshot_at_opt_out = Some(files(dir.path()));
        }
        if seq == 150 {
            // An event after opting out is not even looked at.
            assert_eq!(gate.on_event(EventKind::Failure, 15.0, "print-1"), None);
        }
        match gate.on_frame(&frame(seq)) {
            FrameOutcome::HandedOn { .. } => {
                assert!(seq < 45, "frame {seq} handed on after opt-out");
                handed += 1;
            }
            FrameOutcome::ConsentOff => assert!(seq >= 45),
            FrameOutcome::NotSelected => assert!(seq < 45),
            other => panic!("frame {seq}: {other:?}"),
        }
    }
    // Frames at 1.0, 2.0, 3.0 and 4.0 s were handed on before the opt-out at 4.5 s.
    assert_eq!(handed, 4);
    let before = snapshot_at_opt_out.unwrap();
    let after = files(dir.path());
    // Every byte on disk at the end is what was there right after the opt-out (its own consent file, new
    // device key and audit line included): no snapshot, manifest, audit line or temporary file came later.
    let changed: Vec<_> = after
        .iter()
        .filter(|(p, b)| before.iter().find(|(q, _)| q == p).map(|(_, c)| c != b).unwrap_or(true))
        .map(|(p, _)| p.strip_prefix(dir.path()).unwrap().to_path_buf())
        .collect();
    assert!(changed.is_empty(), "changed after opt-out: {changed:?}");
    assert_eq!(
        after
            .iter()
            .filter(|(p, _)| p.starts_with(&out) && p.extension().is_some_and(|e| e == "jpg"))
            .count(),
        4
    );
}

#[test]
fn mac_and_serial_appear_in_no_output_byte() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let out = dir.path().join("out");
    opt_in(&cfg).unwrap();
    let mut gate = PrivacyGate::new(&cfg, ids(), DirSink::new(&out));
    gate.on_event(EventKind::Failure, 0.0, "print-1");
    for seq in 0..400 {
        gate.on_frame(&frame(seq));
    }
    let written = files(dir.path());
    assert!(written.iter().filter(|(p, _)| p.extension().is_some_and(|e| e == "jpg")).count() == 3);
    for (path, bytes) in &written {
        for pat in ids().forbidden_patterns() {
            assert!(
                !contains(bytes, &pat),
                "{} contains {:?}",
                path.display(),
                String::from_utf8_lossy(&pat)
            );
        }
    }
    // The manifest carries the HMAC device id instead.
    let manifest = written.iter().find(|(p, _)| p.extension().is_some_and(|e| e == "json")).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&manifest.1).unwrap();
    let key = vigil_privacy::DeviceKey::load(&cfg.device_key_file).unwrap();
    assert_eq!(v["device_id"], key.device_id(&ids()));
}

#[test]
fn bundles_are_routed_cn_for_mainland_china_and_us_for_everything_else() {
    for (country, want) in
        [("CN", "cn"), ("HK", "us"), ("TW", "us"), ("MO", "us"), ("DE", "us"), ("US", "us")]
    {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.country = country.into();
        opt_in(&cfg).unwrap();
        let out = dir.path().join("out");
        let mut gate = PrivacyGate::new(&cfg, ids(), DirSink::new(&out));
        gate.on_event(EventKind::Failure, 0.0, "p");
        assert!(matches!(gate.on_frame(&frame(0)), FrameOutcome::HandedOn { .. }));
        let manifest = std::fs::read(out.join("000001-00.json")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(v["region"], want, "{country}");
        let audit = std::fs::read_to_string(&cfg.audit_log).unwrap();
        assert!(audit.contains(&format!("\"region\":\"{want}\"")), "{country}: {audit}");
    }
}

#[test]
fn without_a_country_nothing_is_handed_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.country = String::new();
    opt_in(&cfg).unwrap();
    let out = dir.path().join("out");
    let mut gate = PrivacyGate::new(&cfg, ids(), DirSink::new(&out));
    gate.on_event(EventKind::Failure, 0.0, "p");
    assert!(matches!(gate.on_frame(&frame(0)), FrameOutcome::Dropped(r) if r.starts_with("no_region")));
    assert!(!out.exists());
}

#[test]
fn only_frames_after_a_failure_are_handed_on_and_warnings_only_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    opt_in(&cfg).unwrap();
    let out = dir.path().join("out");
    let mut gate = PrivacyGate::new(&cfg, ids(), DirSink::new(&out));
    for seq in 0..100 {
        assert_eq!(gate.on_frame(&frame(seq)), FrameOutcome::NotSelected);
    }
    gate.on_event(EventKind::Warning, 10.0, "p");
    for seq in 100..200 {
        assert_eq!(gate.on_frame(&frame(seq)), FrameOutcome::NotSelected);
    }
    assert!(!out.exists());
    gate.on_event(EventKind::Failure, 20.0, "p");
    let handed: Vec<u64> =
        (150..800).filter(|&s| matches!(gate.on_frame(&frame(s)), FrameOutcome::HandedOn { .. })).collect();
    // 3 frames, 5 s apart, from the failure at 20 s on; none before it.
    assert_eq!(handed, vec![200, 250, 300]);
    let names: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names.iter().filter(|n| n.ends_with(".jpg")).count(), 3);
}

#[test]
fn the_audit_log_records_kept_dropped_and_handed_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    opt_in(&cfg).unwrap();
    let mut gate = PrivacyGate::new(&cfg, ids(), DirSink::new(dir.path().join("out")));
    gate.on_event(EventKind::Failure, 0.0, "p");
    gate.on_frame(&frame(0));
    gate.on_event(EventKind::Warning, 100.0, "p");
    // A second gate whose face model is gone drops its snapshot.
    cfg.faces.model = dir.path().join("missing.onnx");
    let scrubber = Scrubber::from_config(&cfg);
    let mut broken = PrivacyGate::with_scrubber(&cfg, ids(), scrubber, DirSink::new(dir.path().join("out2")));
    broken.on_event(EventKind::Failure, 0.0, "q");
    assert!(
        matches!(broken.on_frame(&frame(0)), FrameOutcome::Dropped(r) if r.starts_with("face_model_unavailable"))
    );
    assert!(!dir.path().join("out2").exists());
    let log = AuditLog::read_all(&cfg.audit_log).unwrap();
    let actions: Vec<&AuditAction> = log.iter().map(|(_, a)| a).collect();
    assert!(matches!(actions[0], AuditAction::Consent { on: true }));
    assert!(matches!(actions[1], AuditAction::Event { event_id: 1, .. }));
    assert!(matches!(actions[2], AuditAction::Kept { event_id: 1, index: 0, .. }));
    assert!(matches!(actions[3], AuditAction::HandedOn { event_id: 1, index: 0, .. }));
    assert!(matches!(actions[4], AuditAction::EventRefused { .. }));
    assert!(matches!(actions[5], AuditAction::Event { .. }));
    assert!(matches!(actions[6], AuditAction::Dropped { reason, .. } if reason.contains("face")));
    let text = std::fs::read(&cfg.audit_log).unwrap();
    for pat in ids().forbidden_patterns() {
        assert!(!contains(&text, &pat));
    }
}

#[test]
fn opting_out_replaces_the_device_key_so_ids_do_not_link() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    opt_in(&cfg).unwrap();
    let before = vigil_privacy::DeviceKey::load(&cfg.device_key_file).unwrap().device_id(&ids());
    opt_out(&cfg).unwrap();
    let after_out = vigil_privacy::DeviceKey::load(&cfg.device_key_file).unwrap().device_id(&ids());
    opt_in(&cfg).unwrap();
    let after_in = vigil_privacy::DeviceKey::load(&cfg.device_key_file).unwrap().device_id(&ids());
    assert_ne!(before, after_out);
    assert_ne!(before, after_in);
    assert_ne!(after_out, after_in);
}
