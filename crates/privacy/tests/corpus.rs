//! The metadata corpus through the scrubber: every output is a bare JPEG that our verifier and exiftool
//! agree carries nothing but structure, and no planted identifier survives.

mod common;

use std::process::Command;

use common::*;
use vigil_privacy::{strip, verify, Scrubber};

/// Tags exiftool may report for a scrubbed output: file-system facts, the JPEG structure and JFIF header.
const STRUCTURAL: &[&str] = &[
    "[ExifTool] ExifToolVersion",
    "[System] FileName",
    "[System] Directory",
    "[System] FileSize",
    "[System] FileModifyDate",
    "[System] FileAccessDate",
    "[System] FileInodeChangeDate",
    "[System] FilePermissions",
    "[File] FileType",
    "[File] FileTypeExtension",
    "[File] MIMEType",
    "[File] ImageWidth",
    "[File] ImageHeight",
    "[File] EncodingProcess",
    "[File] BitsPerSample",
    "[File] ColorComponents",
    "[File] YCbCrSubSampling",
    "[JFIF] JFIFVersion",
    "[JFIF] ResolutionUnit",
    "[JFIF] XResolution",
    "[JFIF] YResolution",
    "[Composite] ImageSize",
    "[Composite] Megapixels",
];

fn exiftool_tags(path: &std::path::Path) -> Vec<String> {
    let out = Command::new("exiftool")
        .args(["-a", "-G1", "-s"])
        .arg(path)
        .output()
        .expect("exiftool not found: install libimage-exiftool-perl (tools/setup.sh --test)");
    assert!(out.status.success(), "exiftool failed on {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (tag, _) = l.split_once(" : ").unwrap_or((l, ""));
            tag.split_whitespace().collect::<Vec<_>>().join(" ")
        })
        .collect()
}

#[test]
fn every_corpus_output_keeps_only_structural_segments_and_tags() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mut scrubber = Scrubber::from_config(&cfg).forbid_identifiers(&ids());
    assert!(scrubber.face_model_ready());
    let files = corpus_files();
    assert!(files.len() >= 18, "corpus has {} files", files.len());
    let mut checked = 0;
    for input in &files {
        let bytes = std::fs::read(input).unwrap();
        let out = scrubber.scrub_bytes(&bytes).unwrap_or_else(|e| panic!("{}: {e}", input.display()));
        // Our verifier: nothing but SOI, APP0/JFIF, DQT, SOF, DHT, DRI, SOS, RSTn, EOI.
        let report = verify(&out.jpeg).unwrap();
        assert!(report
            .markers
            .iter()
            .all(|m| matches!(m, 0xD8 | 0xE0 | 0xDB | 0xC0 | 0xC4 | 0xDD | 0xDA | 0xD0..=0xD7 | 0xD9)));
        assert_eq!(strip(&out.jpeg).unwrap().bytes, out.jpeg, "stripping again changes nothing");
        for s in secrets() {
            assert!(
                !contains(&out.jpeg, &s),
                "{}: output contains {:?}",
                input.display(),
                String::from_utf8_lossy(&s)
            );
        }
        let path = dir.path().join(format!("{}.jpg", input.file_name().unwrap().to_string_lossy()));
        std::fs::write(&path, &out.jpeg).unwrap();
        let tags = exiftool_tags(&path);
        let extra: Vec<&String> = tags.iter().filter(|t| !STRUCTURAL.contains(&t.as_str())).collect();
        assert!(extra.is_empty(), "{}: exiftool reports non-structural tags {extra:?}", input.display());
        assert!(tags.iter().any(|t| t == "[JFIF] JFIFVersion"));
        checked += 1;
    }
    assert_eq!(checked, files.len());
}

#[test]
fn the_inputs_really_carry_the_metadata_the_outputs_lack() {
    // Guards the test above against a corpus that lost its metadata.
    let mut groups = std::collections::BTreeSet::new();
    for input in corpus_files() {
        for t in exiftool_tags(&input) {
            if let Some(g) = t.split(']').next() {
                groups.insert(g.trim_start_matches('[').to_string());
            }
        }
        let bytes = std::fs::read(&input).unwrap();
        assert!(contains(&bytes, SERIAL.as_bytes()) || contains(&bytes, b"SECRET"), "{}", input.display());
    }
    for g in [
        "GPS",
        "ExifIFD",
        "IFD1",
        "XMP-dc",
        "XMP-xmpNote",
        "IPTC",
        "ICC-header",
        "Ducky",
        "Adobe",
        "PNG",
        "RIFF",
    ] {
        assert!(groups.contains(g), "no {g} tags in the corpus: {groups:?}");
    }
}

#[test]
fn orientation_is_applied_before_anything_else() {
    // Each jpeg-orientation-N.jpg stores the scene transformed so that applying tag N gives it back: the red
    // block must come out top-left and the blue bar along the bottom, at 160x120.
    let dir = tempfile::tempdir().unwrap();
    let mut scrubber = Scrubber::from_config(&config(dir.path()));
    let mut names: Vec<String> = (2..=8).map(|n| format!("jpeg-orientation-{n}.jpg")).collect();
    names.push("png-orientation-6.png".into());
    for name in names {
        let bytes = std::fs::read(fixtures().join("corpus").join(&name)).unwrap();
        let out = scrubber.scrub_bytes(&bytes).unwrap();
        let img = image::load_from_memory(&out.jpeg).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (160, 120), "{name}");
        let red = img.get_pixel(20, 15);
        let blue = img.get_pixel(80, 115);
        assert!(red[0] > 180 && red[2] < 80, "{name}: top-left is {red:?}");
        assert!(blue[2] > 180 && blue[0] < 80, "{name}: bottom is {blue:?}");
    }
}
