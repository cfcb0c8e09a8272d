//! Links libjpeg-turbo's TurboJPEG library (Debian: `libturbojpeg0-dev`; for cross-builds the sysroot's copy,
//! found through the linker's search path).

fn main() {
    println!("cargo:rustc-link-lib=turbojpeg");
    if let Ok(dir) = std::env::var("VIGIL_TURBOJPEG_LIB_DIR") {
        println!("cargo:rustc-link-search=native={dir}");
    }
    println!("cargo:rerun-if-env-changed=VIGIL_TURBOJPEG_LIB_DIR");
    println!("cargo:rerun-if-changed=build.rs");
}
