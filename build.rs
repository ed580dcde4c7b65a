//! Gives the shared library its SONAME, so that programs linked against `libshmline.so` record
//! `libshmline.so.0` and keep working across compatible releases (`docs/C_API.md`).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        // The major number of the C ABI: bump it (and the SONAME) only for an incompatible change.
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libshmline.so.0");
    }
}
