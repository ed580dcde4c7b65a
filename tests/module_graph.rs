//! The modules of `src/` import each other without a cycle.
//!
//! Shared bookkeeping lives in leaf modules that the handles build on (STYLE.md: "no import cycles
//! between modules"). This test reads every `src/**/*.rs`, finds each path that starts with
//! `crate::`, `super::` or `self::` (in `use` lines and in code), and turns it into an edge between
//! two sibling modules: a reference from `ring::reader` to `crate::ring::multi::repair` is the
//! edge `reader -> multi` among the children of `ring`; one from `pipeline::registry` to
//! `crate::ring::Stream` is `pipeline -> ring` among the children of the crate root. A child using
//! an item of its parent (`super::Shared`) is no edge. Any cycle among siblings fails the test,
//! naming the modules on it and the file and line of each edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One reference between sibling modules: `from -> to` among the children of `parent`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    parent: Vec<String>,
    from: String,
    to: String,
    /// Where the reference is (`file:line`).
    at: String,
}

/// A source file: its module path (`["ring", "reader"]`, `[]` for the crate root) and its text.
struct Source {
    module: Vec<String>,
    file: String,
    text: String,
}

/// The module path of `src/`-relative file `rel` (`ring/reader.rs` -> `["ring", "reader"]`).
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `text` with comments, string literals and character literals blanked out (newlines kept, so
/// line numbers stay right): what is left is code whose braces balance.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |out: &mut String, s: &[u8]| {
        for &c in s {
            out.push(if c == b'\n' { '\n' } else { ' ' });
        }
    };
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest.starts_with(b"/*") {
            let end = text[i + 2..].find("*/").map_or(rest.len(), |e| e + 4);
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest.starts_with(b"r\"") || rest.starts_with(b"r#") || rest.starts_with(b"br\"") {
            // A raw string: r"...", r#"..."#, br"...".
            let start = rest.iter().position(|&c| c == b'r').unwrap() + 1;
            let hashes = rest[start..].iter().take_while(|&&c| c == b'#').count();
            if rest.get(start + hashes) != Some(&b'"') {
                out.push(rest[0] as char);
                i += 1;
                continue;
            }
            let close = format!("\"{}", "#".repeat(hashes));
            let body = start + hashes + 1;
            let end = text[i + body..]
                .find(&close)
                .map_or(rest.len(), |e| body + e + close.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest[0] == b'"' {
            let mut j = 1;
            while j < rest.len() && rest[j] != b'"' {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(rest.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest[0] == b'\'' {
            // A character literal ('x', '\n', '\u{7f}'), or a lifetime ('a), left as it is.
            let end = if rest.get(1) == Some(&b'\\') {
                rest[2..].iter().position(|&c| c == b'\'').map(|e| e + 3)
            } else {
                let ch = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                (rest.get(1 + ch) == Some(&b'\'')).then_some(2 + ch)
            };
            match end {
                Some(end) => {
                    blank(&mut out, &rest[..end]);
                    i += end;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifiers a path that starts at `s` (just after its `crate::`/`super::`/`self::` prefix)
/// reaches at its first segment: one (`multi::repair`) or several (`{group, tables, Shared}`).
fn first_segments(s: &str) -> Vec<String> {
    let s = s.trim_start();
    if let Some(list) = s.strip_prefix('{') {
        let mut depth = 0;
        let mut items = vec![String::new()];
        for c in list.chars() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => items.push(String::new()),
                _ => items.last_mut().unwrap().push(c),
            }
        }
        items
            .iter()
            .filter_map(|item| {
                let id: String = item.trim().chars().take_while(|&c| is_ident(c)).collect();
                (!id.is_empty()).then_some(id)
            })
            .collect()
    } else {
        let id: String = s.chars().take_while(|&c| is_ident(c)).collect();
        if id.is_empty() {
            vec![]
        } else {
            vec![id]
        }
    }
}

/// One path in code: where it is, the module of the code using it, the absolute path it names
/// up to its last segment or brace list, and the names it reaches there.
struct Reference {
    line: usize,
    here: Vec<String>,
    prefix: Vec<String>,
    names: Vec<String>,
}

/// The references of one file. Inline modules (`mod tests { .. }`) shift what `super` means.
fn references(src: &Source) -> Vec<Reference> {
    let code = code_only(&src.text);
    let mut refs = Vec::new();
    // Inline modules open at brace depth `d`: (name, d).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let chars: Vec<(usize, char)> = code.char_indices().collect();
    let mut line = 1;
    let mut k = 0;
    let mut pending_mod: Option<String> = None;
    while k < chars.len() {
        let (pos, c) = chars[k];
        match c {
            '\n' => line += 1,
            '{' => {
                if let Some(name) = pending_mod.take() {
                    inline.push((name, depth));
                }
                depth += 1;
            }
            '}' => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|&(_, d)| d == depth) {
                    inline.pop();
                }
            }
            ';' => pending_mod = None,
            _ => {}
        }
        let at_word = is_ident(c) && (pos == 0 || !code[..pos].ends_with(is_ident));
        if !at_word {
            k += 1;
            continue;
        }
        let rest = &code[pos..];
        let word: String = rest.chars().take_while(|&c| is_ident(c)).collect();
        if word == "mod" {
            let name: String = rest[3..]
                .trim_start()
                .chars()
                .take_while(|&c| is_ident(c))
                .collect();
            pending_mod = Some(name);
        }
        if matches!(word.as_str(), "crate" | "super" | "self")
            && rest[word.len()..].starts_with("::")
        {
            let here: Vec<String> = src
                .module
                .iter()
                .cloned()
                .chain(inline.iter().map(|(n, _)| n.clone()))
                .collect();
            // Resolve the prefix: crate::, then any number of super::/self::.
            let mut target = if word == "crate" {
                vec![]
            } else {
                here.clone()
            };
            let mut p = pos;
            loop {
                let r = &code[p..];
                if let Some(t) = r.strip_prefix("crate::") {
                    p = code.len() - t.len();
                } else if let Some(t) = r.strip_prefix("super::") {
                    target.pop();
                    p = code.len() - t.len();
                } else if let Some(t) = r.strip_prefix("self::") {
                    p = code.len() - t.len();
                } else {
                    break;
                }
            }
            // Follow plain segments (`ring::multi::`) down to the last one or a brace list.
            loop {
                let r = &code[p..];
                let id: String = r.chars().take_while(|&c| is_ident(c)).collect();
                if !id.is_empty() && r[id.len()..].starts_with("::") {
                    target.push(id.clone());
                    p += id.len() + 2;
                } else {
                    break;
                }
            }
            let names = first_segments(&code[p..]);
            refs.push(Reference {
                line,
                here,
                prefix: target,
                names,
            });
            // Skip past the prefix so `super::super` is one reference.
            while k < chars.len() && chars[k].0 < p {
                if chars[k].1 == '\n' {
                    line += 1;
                }
                k += 1;
            }
            continue;
        }
        k += word.chars().count();
    }
    refs
}

/// The sibling edges of every source file, given the set of module paths that exist.
fn edges(sources: &[Source]) -> Vec<Edge> {
    let modules: BTreeSet<Vec<String>> = sources.iter().map(|s| s.module.clone()).collect();
    let mut out = Vec::new();
    for src in sources {
        for Reference {
            line,
            here,
            prefix,
            names,
        } in references(src)
        {
            for name in &names {
                let mut target = prefix.clone();
                target.push(name.clone());
                let common = here.iter().zip(&target).take_while(|(a, b)| a == b).count();
                let (Some(from), Some(to)) = (here.get(common), target.get(common)) else {
                    // Within one module, or a child using its parent's items.
                    continue;
                };
                let parent = here[..common].to_vec();
                let mut to_path = parent.clone();
                to_path.push(to.clone());
                let mut from_path = parent.clone();
                from_path.push(from.clone());
                // Only real modules (from files) count; inline ones (`tests`) belong to their file.
                if !modules.contains(&to_path) || !modules.contains(&from_path) {
                    continue;
                }
                out.push(Edge {
                    parent,
                    from: from.clone(),
                    to: to.clone(),
                    at: format!("{}:{line}", src.file),
                });
            }
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.parent == b.parent && a.from == b.from && a.to == b.to);
    out
}

/// Every cycle among siblings, as the list of modules on it (one cycle per strongly connected
/// group of siblings), each with the edges that close it.
fn cycles(edges: &[Edge]) -> Vec<String> {
    let mut by_parent: BTreeMap<&Vec<String>, Vec<&Edge>> = BTreeMap::new();
    for e in edges {
        by_parent.entry(&e.parent).or_default().push(e);
    }
    let mut found = Vec::new();
    for (parent, es) in by_parent {
        let nodes: BTreeSet<&str> = es
            .iter()
            .flat_map(|e| [e.from.as_str(), e.to.as_str()])
            .collect();
        let reach = |from: &str| {
            let mut seen = BTreeSet::new();
            let mut stack = vec![from];
            while let Some(n) = stack.pop() {
                for e in es.iter().filter(|e| e.from == n) {
                    if seen.insert(e.to.as_str()) {
                        stack.push(e.to.as_str());
                    }
                }
            }
            seen
        };
        let mut done = BTreeSet::new();
        for &n in &nodes {
            if done.contains(n) {
                continue;
            }
            let from_n = reach(n);
            if !from_n.contains(n) {
                continue;
            }
            // n's strongly connected group: what n reaches and what reaches n.
            let group: BTreeSet<&str> = nodes
                .iter()
                .copied()
                .filter(|&m| m == n || from_n.contains(m) && reach(m).contains(n))
                .collect();
            let inner: Vec<String> = es
                .iter()
                .filter(|e| group.contains(e.from.as_str()) && group.contains(e.to.as_str()))
                .map(|e| format!("{} -> {} ({})", e.from, e.to, e.at))
                .collect();
            found.push(format!(
                "in crate::{}: {}",
                parent.join("::"),
                inner.join(", ")
            ));
            done.extend(group);
        }
    }
    found
}

fn sources_of_src() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    files
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(&root).unwrap();
            Source {
                module: module_of(rel),
                file: format!("src/{}", rel.display()),
                text: std::fs::read_to_string(f).unwrap(),
            }
        })
        .collect()
}

fn source(module: &str, text: &str) -> Source {
    Source {
        module: module
            .split("::")
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        file: format!("{module}.rs"),
        text: text.to_string(),
    }
}

#[test]
fn the_modules_of_src_import_each_other_without_a_cycle() {
    let sources = sources_of_src();
    let edges = edges(&sources);
    // The check sees the edges that exist (a parser that saw nothing would pass vacuously).
    let has = |parent: &[&str], from: &str, to: &str| {
        edges
            .iter()
            .any(|e| e.parent == parent && e.from == from && e.to == to)
    };
    assert!(has(&["ring"], "reader", "tables"), "{edges:#?}");
    assert!(has(&[], "pipeline", "ring"), "{edges:#?}");
    let cycles = cycles(&edges);
    assert!(
        cycles.is_empty(),
        "import cycles among sibling modules of src/ (move the shared part to a leaf module both \
         use):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_cycle_check_finds_a_cycle_through_a_use_list_and_a_path_in_code() {
    let sources = [
        source("", "mod a; mod b; mod c;"),
        source("a", "use super::{b, Thing};\nfn f() { b::g() }"),
        source("b", "fn g() { crate::c::h(\"crate::a::\") }"),
        source("c", "// crate::a::f\nfn h() { super::a::f() }"),
    ];
    let cycles = cycles(&edges(&sources));
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(cycles[0].contains("a -> b (a.rs:1)"), "{}", cycles[0]);
    assert!(cycles[0].contains("c -> a (c.rs:2)"), "{}", cycles[0]);
}

#[test]
fn a_child_using_its_parent_or_a_test_module_using_its_file_is_no_cycle() {
    let sources = [
        source("", "mod ring;"),
        source("ring", "mod reader; mod tables; pub struct Shared; use reader::Reader;"),
        source(
            "ring::reader",
            "use super::{tables, Shared};\n#[cfg(test)]\nmod tests { use super::*; fn t() { super::super::tables::f() } }",
        ),
        source("ring::tables", "use super::Shared; fn f() { let _ = '{'; }"),
    ];
    let edges = edges(&sources);
    assert_eq!(
        edges
            .iter()
            .map(|e| (e.from.as_str(), e.to.as_str()))
            .collect::<Vec<_>>(),
        [("reader", "tables")]
    );
    assert!(cycles(&edges).is_empty());
}
