//! `vigil scrub` through the real binary: scrubbed JPEGs out, dropped inputs named on stderr, exit status.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

#[test]
fn scrub_writes_verified_jpegs_and_names_dropped_inputs_with_a_failing_exit() {
    let out = tempfile::tempdir().unwrap();
    let corpus = root().join("fixtures/privacy/corpus");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&corpus).unwrap().map(|e| e.unwrap().path()).collect();
    inputs.sort();
    inputs.push(root().join("fixtures/privacy/astronaut.jpg"));
    let run = |extra: &[PathBuf]| {
        Command::new(env!("CARGO_BIN_EXE_vigil"))
            .arg("scrub")
            .args(&inputs)
            .args(extra)
            .arg("--out")
            .arg(out.path())
            .current_dir(root())
            .output()
            .unwrap()
    };
    let ok = run(&[]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let written: Vec<PathBuf> = std::fs::read_dir(out.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(written.len(), inputs.len());
    for p in &written {
        let bytes = std::fs::read(p).unwrap();
        vigil_privacy::verify(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(!bytes.windows(6).any(|w| w == b"SECRET"), "{}", p.display());
    }
    let bad = root().join("Cargo.toml");
    let failed = run(std::slice::from_ref(&bad));
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("dropped") && stderr.contains("Cargo.toml") && stderr.contains("format"),
        "{stderr}"
    );
    assert!(!out.path().join("Cargo.jpg").exists());
}
