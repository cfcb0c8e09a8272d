//! Trains the zstd dictionary for bundle heads on generated event records and reports the compression
//! ratio with and without it on a separate set of generated records.
//!
//! `cargo run -p vigil-telemetry --bin vigil-telemetry-train-dict --release -- [OUT] [--check]`
//! (OUT defaults to `crates/telemetry/dict/records.zdict`; `--check` only measures the shipped dictionary).

use std::process::ExitCode;

use vigil_telemetry::bundle::{compress_with, DICTIONARY};
use vigil_telemetry::sample::{random_head, Rng};

const TRAIN: usize = 4000;
const TEST: usize = 1000;
const DICT_BYTES: usize = 16 * 1024;

fn measure(dict: Option<&[u8]>, set: &[Vec<u8>]) -> Result<(usize, usize), String> {
    let mut raw = 0;
    let mut packed = 0;
    for s in set {
        raw += s.len();
        packed += compress_with(s, dict).map_err(|e| e.to_string())?.len();
    }
    Ok((raw, packed))
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let check = args.iter().any(|a| a == "--check");
    let out = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| format!("{}/dict/records.zdict", env!("CARGO_MANIFEST_DIR")));
    let mut rng = Rng::new(0x7e1e_3e7a);
    let train: Vec<Vec<u8>> = (0..TRAIN).map(|_| random_head(&mut rng)).collect();
    let mut rng = Rng::new(0x5eed_7e57);
    let test: Vec<Vec<u8>> = (0..TEST).map(|_| random_head(&mut rng)).collect();
    let dict = if check {
        DICTIONARY.to_vec()
    } else {
        let d = zstd::dict::from_samples(&train, DICT_BYTES).map_err(|e| format!("training: {e}"))?;
        std::fs::write(&out, &d).map_err(|e| format!("writing {out}: {e}"))?;
        println!("wrote {out} ({} bytes) from {TRAIN} generated heads", d.len());
        d
    };
    let (raw, plain) = measure(None, &test)?;
    let (_, with) = measure(Some(&dict), &test)?;
    println!("{TEST} held-out generated heads, {raw} bytes of JSON (mean {} bytes):", raw / TEST);
    println!("  zstd level 3 without dictionary: {plain} bytes, ratio {:.2}", raw as f64 / plain as f64);
    println!("  zstd level 3 with dictionary:    {with} bytes, ratio {:.2}", raw as f64 / with as f64);
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil-telemetry-train-dict: {e}");
            ExitCode::FAILURE
        }
    }
}
