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

/// The status numbers of the C contract, frozen: a number is never changed nor reused, whatever
/// the code says. Written out here, not derived, so that renumbering a status fails this test even
/// after the header has been regenerated. A new status is appended with a new number.
const FROZEN_STATUSES: [(&str, i32); 27] = [
    ("OK", 0),
    ("FULL", 1),
    ("EMPTY", 2),
    ("TIMEOUT", 3),
    ("END_OF_STREAM", 4),
    ("WRITER_DEAD", 5),
    ("INVALID_ARGUMENT", -1),
    ("NULL_POINTER", -2),
    ("INVALID_NAME", -3),
    ("NOT_FOUND", -4),
    ("ALREADY_EXISTS", -5),
    ("PERMISSION_DENIED", -6),
    ("NOT_SHMLINE", -7),
    ("VERSION_MISMATCH", -8),
    ("CORRUPT", -9),
    ("SCHEMA_MISMATCH", -10),
    ("WRITER_EXISTS", -11),
    ("TOO_MANY_READERS", -12),
    ("FRAME_TOO_LARGE", -13),
    ("BUFFER_TOO_SMALL", -14),
    ("WRONG_STATE", -15),
    ("NO_SPACE", -16),
    ("OS_ERROR", -17),
    ("PANIC", -18),
    ("UNSUPPORTED", -19),
    ("PIPELINE_FAILED", -20),
    ("TOO_MANY_WRITERS", -21),
];

/// The value of `#define NAME value` in the checked-in header, if it defines `NAME`.
fn header_define(header: &str, name: &str) -> Option<i64> {
    let prefix = format!("#define {name} ");
    header
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.trim().parse().expect("a status macro is a number"))
}

#[test]
fn every_status_keeps_its_frozen_name_and_number_in_the_library_and_the_header() {
    let library: Vec<(&str, i32)> = shmline::Status::ALL
        .iter()
        .map(|s| (s.name(), *s as i32))
        .collect();
    assert_eq!(
        library, FROZEN_STATUSES,
        "the library's statuses differ from the frozen table: status numbers are part of the C \
         contract and never change; a new status gets a new number, appended to both"
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/shmline.h");
    let header = std::fs::read_to_string(path).unwrap();
    for (name, number) in FROZEN_STATUSES {
        let status = shmline::Status::from_code(number).unwrap();
        assert_eq!(status.name(), name);
        assert_eq!(
            header_define(&header, &format!("SHMLINE_{name}")),
            Some(i64::from(number)),
            "include/shmline.h does not define SHMLINE_{name} as {number}"
        );
    }
}
