//! `docs/VOCABULARY.md` is true: every name its tables list exists in its binding, every retired
//! name is gone, and its status table has the library's status names and numbers.
//!
//! The checks are textual (the bindings are read as source, not compiled): enough to catch a
//! rename that forgot a binding or the page, which is what the page is for. How a table cell is
//! read is described at the top of `docs/VOCABULARY.md`.

use std::fs;
use std::path::{Path, PathBuf};

/// The repository root.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The text of `docs/VOCABULARY.md`.
fn page() -> String {
    fs::read_to_string(root().join("docs/VOCABULARY.md")).expect("docs/VOCABULARY.md is readable")
}

/// One Markdown table: its header cells and its rows of cells.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// The index of the column named `name`, if the table has one.
    fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }
}

/// Splits a Markdown table line into its trimmed cells.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_owned()).collect()
}

/// Every table of the page, in order.
fn tables(text: &str) -> Vec<Table> {
    let mut tables = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let is_header = line.starts_with('|')
            && lines
                .peek()
                .is_some_and(|next| next.starts_with("|---") || next.starts_with("| ---"));
        if !is_header {
            continue;
        }
        lines.next();
        let mut table = Table {
            header: cells(line),
            rows: Vec::new(),
        };
        while let Some(row) = lines.next_if(|l| l.starts_with('|')) {
            let row = cells(row);
            assert_eq!(
                row.len(),
                table.header.len(),
                "docs/VOCABULARY.md: a row of the table {:?} has {} cells, not {}: {row:?}",
                table.header,
                row.len(),
                table.header.len()
            );
            table.rows.push(row);
        }
        tables.push(table);
    }
    tables
}

/// The code spans of a table cell: the names it lists.
fn spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_owned())
        .collect()
}

/// The languages of the page, with the column that lists their names.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Binding {
    Rust,
    C,
    Cpp,
    Python,
    Cli,
}

impl Binding {
    /// The column heading of this binding in the page's tables.
    fn column(self) -> &'static str {
        match self {
            Binding::Rust => "Rust",
            Binding::C => "C",
            Binding::Cpp => "C++",
            Binding::Python => "Python",
            Binding::Cli => "CLI / manifest",
        }
    }

    /// The source files whose text holds this binding's names.
    fn sources(self) -> Vec<Source> {
        let mut files = Vec::new();
        match self {
            Binding::Rust => collect(&root().join("src"), "rs", &mut files),
            Binding::C => files.push(root().join("include/shmline.h")),
            Binding::Cpp => collect(&root().join("bindings/cpp/include"), "hpp", &mut files),
            Binding::Python => collect(&root().join("bindings/python/shmline"), "py", &mut files),
            Binding::Cli => {
                collect(&root().join("cli/src"), "rs", &mut files);
                collect(&root().join("src/pipeline"), "rs", &mut files);
            }
        }
        // The C ABI spells Rust's names in C terms; Rust names must be in the Rust API itself.
        let ffi = root().join("src/ffi");
        if self == Binding::Rust {
            files.retain(|f| !f.starts_with(&ffi));
        }
        // The PYTHUSA and dsline compatibility layers keep those projects' own names on purpose
        // (`pythusa.Pipeline.join`, ...): programs written for them run unchanged.
        let python = root().join("bindings/python/shmline");
        if self == Binding::Python {
            files.retain(|f| {
                !f.starts_with(python.join("pythusa")) && !f.starts_with(python.join("dsline.py"))
            });
        }
        assert!(!files.is_empty(), "no source files found for {self:?}");
        files
            .into_iter()
            .map(|path| Source {
                text: fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
            })
            .collect()
    }
}

/// The text of one source file of a binding.
struct Source {
    text: String,
}

/// Adds every file under `dir` whose name ends in `.ext` to `out`.
fn collect(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether `word` occurs in `text` as a whole identifier (not inside a longer one).
fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// The first identifier of `rest` after skipping a generic parameter list (`<'a> Foo` -> `Foo`).
fn defined_name(rest: &str) -> &str {
    let mut rest = rest.trim_start();
    if rest.starts_with('<') {
        let mut depth = 0;
        for (i, c) in rest.char_indices() {
            match c {
                '<' => depth += 1,
                '>' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                rest = rest[i + 1..].trim_start();
                break;
            }
        }
    }
    let end = rest.find(|c| !is_ident(c)).unwrap_or(rest.len());
    &rest[..end]
}

/// The bodies (as text) of every definition of type `owner` in `binding`'s sources: Rust
/// `struct`/`enum`/inherent `impl` blocks, C++ `class`/`struct`/`enum class` bodies, Python
/// `class` bodies.
fn bodies(binding: Binding, sources: &[Source], owner: &str) -> Vec<String> {
    const RUST: [&str; 8] = [
        "pub struct ",
        "pub enum ",
        "pub(crate) struct ",
        "pub(crate) enum ",
        "struct ",
        "enum ",
        "impl",
        "pub trait ",
    ];
    const CPP: [&str; 3] = ["enum class ", "class ", "struct "];
    let mut found = Vec::new();
    for source in sources {
        let lines: Vec<&str> = source.text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            let keywords: &[&str] = match binding {
                Binding::Rust => &RUST,
                Binding::Cpp => &CPP,
                Binding::Python => &["class "],
                Binding::C | Binding::Cli => &[],
            };
            let defines = keywords.iter().any(|k| {
                trimmed
                    .strip_prefix(k)
                    .is_some_and(|rest| defined_name(rest) == owner)
            });
            // A declaration without a body (`class Stream;`) defines nothing here.
            if !defines || trimmed.ends_with(';') {
                continue;
            }
            let body: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| {
                    let t = l.trim_start();
                    let at = l.len() - t.len();
                    match binding {
                        // Python: the body is everything indented deeper than `class`.
                        Binding::Python => t.is_empty() || t.starts_with('#') || at > indent,
                        // Brace languages: up to the `}` at the definition's own indentation.
                        _ => !(at == indent && t.starts_with('}')),
                    }
                })
                .copied()
                .collect();
            found.push(body.join("\n"));
        }
    }
    found
}

/// Whether a Python class body defines `member` (a method, property or class attribute).
fn python_defines(body: &str, member: &str) -> bool {
    body.lines().any(|l| {
        let t = l.trim_start();
        t.strip_prefix("def ")
            .or_else(|| t.strip_prefix("async def "))
            .is_some_and(|rest| defined_name(rest) == member)
            || (defined_name(t) == member && t[member.len()..].trim_start().starts_with([':', '=']))
    })
}

/// What a code span of a binding's column names, in a form [`exists`] can look up.
enum Name {
    /// A string the binding accepts or prints, with its quotes.
    Literal(String),
    /// A member of a type: `Stream::info`, `Event.create`.
    Member { owner: String, member: String },
    /// A plain identifier.
    Word(String),
}

/// Reads one code span of `binding`'s column.
fn name(binding: Binding, span: &str) -> Name {
    let mut s = span.trim().trim_end_matches("()").to_owned();
    if binding == Binding::Cli {
        // Command lines and manifest tables: `shmline clean`, `--wait`, `[streams.NAME]`.
        s = s
            .trim_start_matches("shmline ")
            .trim_start_matches("--")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches(".NAME")
            .to_owned();
    }
    if s.starts_with('"') {
        return Name::Literal(s);
    }
    let separator = match binding {
        Binding::Python => ".",
        _ => "::",
    };
    match s.rsplit_once(separator) {
        Some((owner, member)) => Name::Member {
            owner: owner.rsplit(separator).next().unwrap().to_owned(),
            member: member.to_owned(),
        },
        None => Name::Word(s),
    }
}

/// Whether `name` exists in `binding`'s sources.
fn exists(binding: Binding, sources: &[Source], name: &Name) -> bool {
    match name {
        Name::Literal(quoted) => {
            let single = format!("'{}'", quoted.trim_matches('"'));
            sources.iter().any(|s| {
                s.text.contains(quoted.as_str())
                    || (binding == Binding::Python && s.text.contains(&single))
            })
        }
        Name::Word(word) => sources.iter().any(|s| has_word(&s.text, word)),
        Name::Member { owner, member } => {
            bodies(binding, sources, owner)
                .iter()
                .any(|body| match binding {
                    Binding::Python => python_defines(body, member),
                    _ => has_word(body, member),
                })
        }
    }
}

/// Every name of `binding`'s column in the page's tables that its sources lack.
fn missing(binding: Binding) -> Vec<String> {
    let text = page();
    let sources = binding.sources();
    let mut checked = 0;
    let mut missing = Vec::new();
    for table in tables(&text) {
        let Some(col) = table.column(binding.column()) else {
            continue;
        };
        for row in &table.rows {
            for span in spans(&row[col]) {
                checked += 1;
                if !exists(binding, &sources, &name(binding, &span)) {
                    missing.push(format!("`{span}` (row \"{}\")", row[0]));
                }
            }
        }
    }
    assert!(
        checked >= 20,
        "docs/VOCABULARY.md lists only {checked} {binding:?} names: were its tables renamed?"
    );
    missing
}

/// Fails listing the names of `binding` that the page promises and the sources lack.
fn assert_all_exist(binding: Binding) {
    let missing = missing(binding);
    assert!(
        missing.is_empty(),
        "docs/VOCABULARY.md lists {} {binding:?} names that the {binding:?} sources do not have \
         (rename them in the binding, or fix the page):\n  {}",
        missing.len(),
        missing.join("\n  ")
    );
}

#[test]
fn every_rust_name_in_the_vocabulary_exists_in_the_crate() {
    assert_all_exist(Binding::Rust);
}

#[test]
fn every_c_name_in_the_vocabulary_exists_in_the_header() {
    assert_all_exist(Binding::C);
}

#[test]
fn every_cpp_name_in_the_vocabulary_exists_in_the_cpp_binding() {
    assert_all_exist(Binding::Cpp);
}

#[test]
fn every_python_name_in_the_vocabulary_exists_in_the_python_package() {
    assert_all_exist(Binding::Python);
}

#[test]
fn every_cli_and_manifest_name_in_the_vocabulary_exists_in_the_command() {
    assert_all_exist(Binding::Cli);
}

#[test]
fn no_retired_name_is_back_in_its_binding() {
    let text = page();
    let retired = tables(&text)
        .into_iter()
        .find(|t| t.column("retired").is_some())
        .expect("docs/VOCABULARY.md has a table of retired names");
    let (binding_col, retired_col) = (
        retired.column("binding").unwrap(),
        retired.column("retired").unwrap(),
    );
    assert!(retired.rows.len() >= 5, "the retired-names table lost rows");
    let mut back = Vec::new();
    for row in &retired.rows {
        let binding = [
            Binding::Rust,
            Binding::C,
            Binding::Cpp,
            Binding::Python,
            Binding::Cli,
        ]
        .into_iter()
        .find(|b| b.column() == row[binding_col])
        .unwrap_or_else(|| {
            panic!(
                "unknown binding {:?} in the retired names",
                row[binding_col]
            )
        });
        let sources = binding.sources();
        for span in spans(&row[retired_col]) {
            if exists(binding, &sources, &name(binding, &span)) {
                back.push(format!("{binding:?} `{span}`"));
            }
        }
    }
    assert!(
        back.is_empty(),
        "retired names are back (use the names in the `now` column of docs/VOCABULARY.md):\n  {}",
        back.join("\n  ")
    );
}

#[test]
fn the_status_table_has_every_status_with_its_name_and_number() {
    let text = page();
    let table = tables(&text)
        .into_iter()
        .find(|t| t.column("status name").is_some())
        .expect("docs/VOCABULARY.md has a status table");
    let (name_col, number_col) = (
        table.column("status name").unwrap(),
        table.column("number").unwrap(),
    );
    let listed: Vec<(String, i32)> = table
        .rows
        .iter()
        .map(|row| {
            let name = spans(&row[name_col]).concat();
            let number = row[number_col]
                .parse()
                .unwrap_or_else(|_| panic!("status {name}: {:?} is no number", row[number_col]));
            (name, number)
        })
        .collect();
    let library: Vec<(String, i32)> = shmline::Status::ALL
        .iter()
        .map(|s| (s.name().to_owned(), *s as i32))
        .collect();
    assert_eq!(
        listed, library,
        "the status table of docs/VOCABULARY.md differs from the library's statuses (in order)"
    );
}

#[test]
fn every_status_number_quoted_in_the_docs_is_the_library_s() {
    // Docs quote statuses as "`NAME` number" (docs/LAYOUT.md's list, the tables here): each such
    // pair must be the library's, so a doc cannot keep an old number.
    let mut docs = Vec::new();
    collect(&root().join("docs"), "md", &mut docs);
    docs.push(root().join("README.md"));
    let mut wrong = Vec::new();
    let mut checked = 0;
    for path in &docs {
        let text = fs::read_to_string(path).unwrap();
        for status in shmline::Status::ALL {
            let quoted = format!("`{}`", status.name());
            for (at, _) in text.match_indices(&quoted) {
                let rest = text[at + quoted.len()..].trim_start_matches([' ', '|']);
                let number: String = rest
                    .chars()
                    .take_while(|c| *c == '-' || c.is_ascii_digit())
                    .collect();
                if number.is_empty() || number == "-" {
                    continue;
                }
                checked += 1;
                if number.parse::<i32>() != Ok(status as i32) {
                    wrong.push(format!(
                        "{}: `{}` {number} (the library's number is {})",
                        path.strip_prefix(root()).unwrap().display(),
                        status.name(),
                        status as i32
                    ));
                }
            }
        }
    }
    assert!(
        checked >= 27,
        "only {checked} quoted status numbers found in the docs"
    );
    assert!(
        wrong.is_empty(),
        "docs quote wrong status numbers:\n  {}",
        wrong.join("\n  ")
    );
}
