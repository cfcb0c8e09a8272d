//! `vigil eval` end to end on the fixtures (every CI run) and on the shared footage (when present).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn eval(args: &[&str]) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let (json, html) = (dir.path().join("r.json"), dir.path().join("r.html"));
    let mut all = vec!["eval", "--json", json.to_str().unwrap(), "--report", html.to_str().unwrap()];
    all.extend(args);
    let out = Command::new(env!("CARGO_BIN_EXE_vigil")).args(&all).current_dir(root()).output().unwrap();
    assert!(out.status.success(), "vigil eval failed: {}", String::from_utf8_lossy(&out.stderr));
    let report = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    (report, std::fs::read_to_string(&html).unwrap())
}

#[test]
fn eval_on_the_fixtures_measures_frames_and_clips_and_writes_the_html_report() {
    let (r, html) = eval(&["--images", "fixtures/eval/images", "--footage", "fixtures/eval/footage.toml"]);
    assert_eq!(r["overall"]["n"], 8 + 24 + 24);
    assert_eq!(r["sets"][0]["n_failure"], 4);
    assert!(r["overall"]["auroc"].as_f64().unwrap() > 0.9, "{}", r["overall"]);
    let clips = r["clips"].as_array().unwrap();
    assert_eq!(clips.len(), 2);
    assert_eq!(clips[0]["false_failures"], 0, "the normal fixture raised a failure");
    assert_eq!(clips[1]["onset_frame"], 3);
    assert!(clips[1]["onset_to_failure_s"].as_f64().is_some(), "the spaghetti fixture raised no failure");
    assert!(r["footage"]["normal_hours"].as_f64().unwrap() > 0.0);
    // One plot per clip with both thresholds, and thumbnails of the worst samples.
    assert_eq!(html.matches("<svg").count(), 2);
    assert!(html.contains("warning 0.70") && html.contains("failure 0.95"));
    assert!(html.contains("data:image/jpeg;base64,"));
}

#[test]
fn eval_refuses_a_bad_labels_file_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("labels.toml");
    std::fs::write(&bad, "[[clip]]\npath = \"x.mkv\"\nfailure = [\"9-1\"]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["eval", "--footage", bad.to_str().unwrap()])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("labels.toml") && err.contains("9-1"), "{err}");
}

/// The real footage in ../shared/data (present in CI); skipped with a reason where it is absent.
#[test]
fn eval_of_the_shared_footage_alarms_on_the_scythe_spaghetti_only_within_3_frames() {
    let dir = root().join("../shared/data/footage");
    if !dir.is_dir() {
        eprintln!("skipped: {} is absent", dir.display());
        return;
    }
    let (r, _) = eval(&["--footage", "fixtures/eval/shared-footage.toml"]);
    for c in r["clips"].as_array().unwrap() {
        let path = c["path"].as_str().unwrap();
        eprintln!("{path}: events {}", c["events"]);
        if path.contains("scythe/normal") {
            assert!(c["events"].as_array().unwrap().is_empty(), "{path}: {}", c["events"]);
        }
        if path.contains("scythe/spaghetti") {
            assert!(c["onset_to_failure_frames"].as_u64().is_some_and(|n| n < 3), "{path}: {}", c["events"]);
        }
    }
    eprintln!("footage: {}", r["footage"]);
}

#[test]
fn eval_of_an_image_list_prints_figures_per_source() {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["eval", "--list", "fixtures/eval/images-list.toml"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(out.status.success(), "vigil eval failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for source in ["[cam-a]", "[cam-b]"] {
        let line =
            text.lines().find(|l| l.contains(source)).unwrap_or_else(|| panic!("no {source} row: {text}"));
        assert!(line.contains("n     4 (2/2)") && line.contains("AUROC 1.000"), "{line}");
        assert!(line.contains("recall@FPR<=2%") && line.contains("precision"), "{line}");
    }
    let (r, html) = eval(&["--list", "fixtures/eval/images-list.toml"]);
    let sets = r["sets"].as_array().unwrap();
    assert_eq!(sets.len(), 3, "the list and its two sources");
    assert_eq!(sets[1]["source"], "cam-a");
    assert_eq!(sets[2]["n_failure"], 2);
    assert!(html.contains("[cam-b]"));
}

#[test]
fn eval_refuses_a_missing_image_list_naming_it_and_skips_one_whose_images_are_absent() {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["eval", "--list", "fixtures/eval/no-such-list.toml"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-list.toml"));

    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("l.toml");
    std::fs::write(&list, "root = \"absent\"\nimage = [{ path = \"a.jpg\", label = \"normal\" }]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["eval", "--list", list.to_str().unwrap(), "--images", "fixtures/eval/images"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("l.toml: skipped, its image folder") && text.contains("is absent"), "{text}");
}
