//! The checked-in C header, `include/shmline.h`, is exactly what cbindgen generates from
//! `src/ffi/` with `cbindgen.toml`.
//!
//! Regenerate it after changing the C ABI with `SHMLINE_BLESS=1 cargo test --test header`.

use std::path::Path;

/// Generates the header from the sources with the pinned cbindgen library.
fn generate() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).unwrap();
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/ffi/mod.rs"))
        .generate()
        .expect("cbindgen could not generate the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn the_checked_in_header_is_what_cbindgen_generates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/shmline.h");
    let fresh = generate();
    if std::env::var_os("SHMLINE_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &fresh).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != fresh {
        let line = checked_in
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| checked_in.lines().count().min(fresh.lines().count()));
        panic!(
            "include/shmline.h is stale (first difference at line {}): the C ABI in src/ffi/ \
             changed. Regenerate it with `SHMLINE_BLESS=1 cargo test --test header` and commit it.",
            line + 1
        );
    }
}

#[test]
fn the_header_declares_every_exported_function_and_constant_once() {
    let header = generate();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ffi");
    for entry in std::fs::read_dir(root).unwrap() {
        let source = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for export in source.split("extern \"C\" fn ").skip(1) {
            let name = export.split('(').next().unwrap();
            let declarations = header
                .lines()
                .filter(|line| !line.starts_with([' ', '/']) && line.contains(&format!("{name}(")))
                .count();
            assert_eq!(
                declarations, 1,
                "{name} is exported but not declared once in the header"
            );
        }
        for constant in source.split("pub const ").skip(1) {
            let name = constant.split(':').next().unwrap();
            assert_eq!(
                header.matches(&format!("#define {name} ")).count(),
                1,
                "{name} is not defined exactly once in the header (a clash of C names?)"
            );
        }
    }
}
