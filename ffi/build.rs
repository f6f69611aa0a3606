//! The shared library's SONAME: `libingest.so.MAJOR`, so that programs
//! linked against one major version load any later library of it and never
//! one of another (see the README on ABI compatibility).

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os == "freebsd" {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libingest.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
