//! End to end through the real binary: vigil-capture decoding the fixture footage, ONNX Runtime running
//! models/failure.onnx, events and summaries out.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn vigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil")).args(args).current_dir(root()).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn summary(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn replay(
    input: &str,
    extra: &[&str],
) -> (Output, serde_json::Value, Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let dir = tempfile::tempdir().unwrap();
    let (ev, sc, su) = (dir.path().join("e.jsonl"), dir.path().join("s.jsonl"), dir.path().join("sum.json"));
    let mut args = vec!["replay", input, "--events", ev.to_str().unwrap(), "--scores", sc.to_str().unwrap()];
    args.extend(["--summary", su.to_str().unwrap()]);
    args.extend(extra);
    let out = vigil(&args);
    assert!(out.status.success(), "replay {input} failed: {}", stderr(&out));
    (out, summary(&su), json_lines(&ev), json_lines(&sc))
}

fn mean_score(scores: &[serde_json::Value]) -> f64 {
    scores.iter().map(|s| s["score"].as_f64().unwrap()).sum::<f64>() / scores.len() as f64
}

#[test]
fn replay_of_fixture_footage_analyses_every_frame_and_prints_a_summary() {
    let (out, sum, events, scores) = replay("fixtures/footage/normal.mkv", &["--interval", "10"]);
    assert_eq!(sum["read"], 24);
    assert_eq!(sum["analysed"], 24);
    assert_eq!(sum["dropped"], 0);
    assert_eq!(sum["corrupt"], 0);
    assert_eq!(scores.len(), 24);
    for (i, s) in scores.iter().enumerate() {
        assert_eq!(s["frame"], i as u64);
        assert_eq!(s["t"].as_f64().unwrap(), i as f64 * 10.0);
        let x = s["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&x), "{x}");
    }
    assert_eq!(sum["events"].as_u64().unwrap() as usize, events.len());
    let text = stdout(&out);
    assert!(text.contains("frames read 24, analysed 24, dropped 0"), "{text}");
    assert!(text.contains("ms/frame"), "{text}");
}

#[test]
fn replay_of_h264_and_of_a_folder_works_too() {
    let (_, sum, _, _) = replay("fixtures/footage/normal.mp4", &[]);
    assert_eq!(sum["analysed"], 24);
    let (_, sum, _, scores) = replay("fixtures/frames", &["--interval", "2"]);
    assert_eq!(sum["analysed"], 8);
    assert_eq!(scores[3]["t"], 6.0);
}

#[test]
fn events_are_json_lines_with_the_documented_fields_and_match_stdout() {
    let (out, _, events, scores) = replay("fixtures/footage/spaghetti.mkv", &["--interval", "10"]);
    let printed =
        stdout(&out).lines().filter(|l| l.starts_with("failure") || l.starts_with("warning")).count();
    assert_eq!(printed, events.len());
    for e in &events {
        assert!(e["type"] == "failure" || e["type"] == "warning");
        let frame = e["frame"].as_u64().unwrap() as usize;
        assert_eq!(e["t"].as_f64().unwrap(), frame as f64 * 10.0);
        assert_eq!(e["score"], scores[frame]["score"], "the event carries its frame's score");
        assert!(e["regions"].is_array());
    }
}

#[test]
fn the_model_scores_the_spaghetti_fixture_above_the_normal_print() {
    let (_, _, _, normal) = replay("fixtures/footage/normal.mkv", &[]);
    let (_, _, _, spaghetti) = replay("fixtures/footage/spaghetti.mkv", &[]);
    // Frames 0..3 of the spaghetti clip are still a normal print; compare the tangled part.
    let (n, s) = (mean_score(&normal), mean_score(&spaghetti[8..]));
    assert!(s > n, "spaghetti {s:.3} should score above normal {n:.3}");
}

#[test]
fn a_corrupt_frame_in_a_video_is_skipped_counted_and_named() {
    let (out, sum, _, scores) = replay("fixtures/bad/corrupt-frame.mkv", &[]);
    assert_eq!(sum["corrupt"], 1);
    assert_eq!(sum["analysed"], 23);
    assert!(scores.iter().all(|s| s["frame"] != 5), "frame 5 was destroyed");
    let err = stderr(&out);
    assert!(err.contains("corrupt-frame.mkv") && err.contains("frame 5"), "{err}");
}

#[test]
fn a_corrupt_jpeg_in_a_folder_is_skipped_counted_and_named() {
    let (out, sum, _, _) = replay("fixtures/bad/frames", &[]);
    assert_eq!((sum["read"].as_u64(), sum["corrupt"].as_u64()), (Some(4), Some(1)));
    assert!(stderr(&out).contains("frame-002.jpg"), "{}", stderr(&out));
}

#[test]
fn a_truncated_video_keeps_what_it_read_and_says_where_it_stopped() {
    let (out, sum, _, scores) = replay("fixtures/bad/truncated.mkv", &[]);
    let n = sum["analysed"].as_u64().unwrap();
    assert!(n > 0 && n < 24, "{n}");
    assert_eq!(scores.len() as u64, n);
    if sum["truncated"] == 1 {
        assert!(stderr(&out).contains("truncated.mkv"), "{}", stderr(&out));
    }
}

#[test]
fn inputs_that_cannot_be_opened_are_clear_errors_naming_them() {
    for input in ["fixtures/does-not-exist.mkv", "fixtures/bad/not-a-video.mkv"] {
        let out = vigil(&["replay", input]);
        assert!(!out.status.success(), "{input}");
        assert!(stderr(&out).contains(input.rsplit('/').next().unwrap()), "{input}: {}", stderr(&out));
    }
}

#[test]
fn bad_arguments_are_refused() {
    assert_eq!(vigil(&["replay"]).status.code(), Some(2), "missing path");
    assert_eq!(vigil(&["replay", "fixtures/frames", "--interval", "abc"]).status.code(), Some(2));
    let out = vigil(&["replay", "fixtures/frames", "--interval=-1"]);
    assert!(!out.status.success() && stderr(&out).contains("interval"), "{}", stderr(&out));
    let out = vigil(&["replay", "fixtures/frames", "--model", "nope.onnx"]);
    assert!(!out.status.success() && stderr(&out).contains("nope.onnx"), "{}", stderr(&out));
    assert_eq!(vigil(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn a_bad_config_file_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("vigil.toml");
    std::fs::write(&cfg, "[judge]\nthreshhold = 0.5\n").unwrap();
    let out = vigil(&["--config", cfg.to_str().unwrap(), "replay", "fixtures/frames"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("threshhold"), "{}", stderr(&out));
}

#[test]
fn detect_json_prints_one_line_per_image_with_the_path_as_given() {
    let imgs = [
        "fixtures/images/normal.jpg",
        "./fixtures/images/spaghetti.jpg",
        "fixtures/images/gray-spaghetti.png",
    ];
    let mut args = vec!["detect", "--json"];
    args.extend(imgs);
    let out = vigil(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    for (line, path) in lines.iter().zip(imgs) {
        assert_eq!(line["path"], path);
        let s = line["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&s));
        for d in line["detections"].as_array().unwrap() {
            assert!(d["w"].as_f64().unwrap() > 0.0 && d["score"].as_f64().unwrap() >= 0.5, "{d}");
        }
    }
}

#[test]
fn detect_names_an_unreadable_image_goes_on_and_fails_at_the_end() {
    let out =
        vigil(&["detect", "--json", "fixtures/bad/corrupt.jpg", "fixtures/images/normal.jpg", "nope.jpg"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out).lines().count(), 1, "the good image is still scored");
    let err = stderr(&out);
    assert!(err.contains("corrupt.jpg") && err.contains("nope.jpg"), "{err}");
}

/// The real footage in ../shared/data (present in CI); skipped with a reason where it is absent.
#[test]
fn replay_of_the_shared_scythe_footage_alarms_on_spaghetti_only() {
    let dir = root().join("../shared/data/footage/scythe");
    if !dir.is_dir() {
        eprintln!("skipped: {} is absent", dir.display());
        return;
    }
    for (clip, frames) in [("normal-print-10s.mkv", 327), ("spaghetti-10s.mkv", 200)] {
        let path = dir.join(clip);
        let (_, sum, events, _) = replay(path.to_str().unwrap(), &["--interval", "10"]);
        assert_eq!(sum["analysed"], frames, "{clip}");
        assert_eq!(sum["corrupt"], 0, "{clip}");
        eprintln!("{clip}: {} failure event(s), {:.2} ms/frame", events.len(), sum["ms_per_frame"]);
        if clip.starts_with("normal") {
            assert!(events.is_empty(), "a normal print raised {events:?}");
        } else {
            assert!(!events.is_empty(), "the spaghetti failure raised no event");
            assert!(
                events[0]["frame"].as_u64().unwrap() < 3,
                "first event {:?} is not within 3 frames",
                events[0]
            );
        }
    }
}

#[test]
fn ctrl_c_stops_a_replay_cleanly_with_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let sum = dir.path().join("sum.json");
    let scores = dir.path().join("scores.jsonl");
    // Paced in real time, the clip would take 24 s.
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["replay", "fixtures/footage/normal.mkv", "--realtime", "--summary", sum.to_str().unwrap()])
        .arg("--scores")
        .arg(&scores)
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt it once two frames have been judged (however long the model takes to load here).
    let waiting = std::time::Instant::now();
    while std::fs::read_to_string(&scores).unwrap_or_default().lines().count() < 2 {
        assert!(child.try_wait().unwrap().is_none(), "replay ended before it was interrupted");
        assert!(waiting.elapsed() < std::time::Duration::from_secs(300), "no frame judged in 300 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let started = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "did not stop promptly");
    assert!(out.status.success(), "{}", stderr(&out));
    let s = summary(&sum);
    let n = s["analysed"].as_u64().unwrap();
    assert!(n > 0 && n < 24, "stopped part way: {n} frames");
    assert_eq!(s["read"], s["analysed"], "every frame read before the stop was analysed");
    assert!(stdout(&out).contains("summary:"));
}
