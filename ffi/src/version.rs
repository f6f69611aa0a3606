//! The C ABI's version, for the compiler (`INGEST_VERSION_MAJOR`, ... in
//! ingest.h) and at run time (ingest_version()).
//!
//! cbindgen writes only literals into the header, so the numbers are
//! written here and a test holds them to the package version.

/// The major version: the ABI stays compatible while it does not change
/// (see the README), and it is the SONAME's number (`libingest.so.0`).
pub const INGEST_VERSION_MAJOR: u32 = 0;
/// The minor version: new functions and enum values, nothing removed.
pub const INGEST_VERSION_MINOR: u32 = 1;
/// The patch version: fixes only. ingest_version() answers
/// `"MAJOR.MINOR.PATCH"` of the library actually loaded.
pub const INGEST_VERSION_PATCH: u32 = 0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_version_is_the_package_version() {
        let parts = [
            env!("CARGO_PKG_VERSION_MAJOR"),
            env!("CARGO_PKG_VERSION_MINOR"),
            env!("CARGO_PKG_VERSION_PATCH"),
        ];
        let numbers = [INGEST_VERSION_MAJOR, INGEST_VERSION_MINOR, INGEST_VERSION_PATCH].map(|n| n.to_string());
        assert_eq!(numbers, parts, "update ffi/src/version.rs, then `make header`");
    }
}
