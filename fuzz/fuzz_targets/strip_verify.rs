//! Fuzzes vigil-privacy's JPEG segment stripper and verifier (the module is compiled in directly, so the
//! target needs neither image decoding nor ONNX Runtime). Properties, for any input:
//! - neither function panics, overflows or reads out of bounds;
//! - whatever `strip` returns passes `verify`, is no longer than the input, and strips to itself with nothing
//!   dropped (idempotence);
//! - whatever `verify` accepts, `strip` returns unchanged.
#![no_main]

#[path = "../../crates/privacy/src/segments.rs"]
#[allow(dead_code)]
mod segments;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let verified = segments::verify(data);
    match segments::strip(data) {
        Ok(s) => {
            assert!(s.bytes.len() <= data.len());
            if let Err(e) = segments::verify(&s.bytes) {
                panic!("stripped output fails verification: {e}");
            }
            let again = segments::strip(&s.bytes).expect("stripped output strips again");
            assert_eq!(again.bytes, s.bytes);
            assert!(again.dropped.is_empty());
            if verified.is_ok() {
                assert_eq!(s.bytes, data);
                assert!(s.dropped.is_empty());
            }
        }
        Err(_) => assert!(verified.is_err(), "verify accepted what strip refused"),
    }
});
