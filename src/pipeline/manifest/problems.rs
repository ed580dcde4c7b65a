//! The problems found in a manifest: collected with the table and key they are about, and
//! placed on their line of the file.

use super::spelling::closest;
use super::{Field, Unknown};
use crate::pipeline::spec::Pipeline;
use std::fmt;

/// The keys that make a stream's schema: one that could not be read makes the others look wrong.
pub(super) const SCHEMA_KEYS: &[&str] = &["dtype", "shape", "max_frame_size"];

/// The problems found while reading a manifest: (table, key, what is wrong).
#[derive(Default)]
pub(super) struct Found {
    pub(super) problems: Vec<(String, String, String)>,
}

impl Found {
    pub(super) fn add(&mut self, table: &str, key: &str, message: impl fmt::Display) {
        self.problems
            .push((table.to_owned(), key.to_owned(), message.to_string()));
    }

    /// The value of `key` in `table`, if given and of the right type.
    pub(super) fn take<T>(&mut self, table: &str, key: &str, field: Field<T>) -> Option<T> {
        match field {
            Field::Absent => None,
            Field::Given(v) => Some(v),
            Field::Wrong(why) => {
                self.add(table, key, why);
                None
            }
        }
    }

    /// Reports every key of `table` that is not one of `known`.
    pub(super) fn unknown(&mut self, table: &str, unknown: Unknown, known: &[&str]) {
        for key in unknown.0 {
            let hint = match closest(&key, known.iter().copied()) {
                Some(near) => format!("did you mean {near:?}? "),
                None => String::new(),
            };
            self.add(
                table,
                &key,
                format!("unknown key ({hint}expected one of: {})", known.join(", ")),
            );
        }
    }
}

/// The manifest table and key of a validation problem's dotted entry (`tasks.sink.reads.input`
/// is key `reads.input` of table `tasks.sink`). Names may hold dots, so the table is found by
/// the declared names, not by splitting.
pub(super) fn locate(pipeline: &Pipeline, entry: &str) -> (String, String) {
    let names = [
        (
            "streams",
            pipeline.streams.iter().map(|s| &s.name).collect::<Vec<_>>(),
        ),
        ("events", pipeline.events.iter().map(|e| &e.name).collect()),
        ("tasks", pipeline.tasks.iter().map(|t| &t.name).collect()),
    ];
    let mut best: Option<(String, String)> = None;
    for (section, declared) in names {
        for name in declared {
            let table = format!("{section}.{name}");
            let key = match entry.strip_prefix(&table) {
                Some("") => "",
                Some(rest) => match rest.strip_prefix('.') {
                    Some(key) => key,
                    None => continue,
                },
                None => continue,
            };
            if best.as_ref().is_none_or(|(t, _)| t.len() < table.len()) {
                best = Some((table, key.to_owned()));
            }
        }
    }
    best.unwrap_or_else(|| match entry.split_once('.') {
        Some((table, key)) => (table.to_owned(), key.to_owned()),
        None => (entry.to_owned(), String::new()),
    })
}

/// The line (from 1) where `key` of `table` is written in `text`, or where the table starts.
pub(super) fn line_of(
    text: &str,
    root: &toml::de::DeTable<'_>,
    table: &str,
    key: &str,
) -> Option<usize> {
    fn find<'t, 'i>(
        t: &'t toml::de::DeTable<'i>,
        k: &str,
    ) -> Option<(usize, &'t toml::Spanned<toml::de::DeValue<'i>>)> {
        t.iter()
            .find(|(name, _)| name.get_ref().as_ref() == k)
            .map(|(name, value)| (name.span().start, value))
    }
    // Table names may hold dots: match the first segment, then the rest as one declared name.
    let (section, name) = table.split_once('.').unwrap_or((table, ""));
    let (mut at, mut value) = find(root, section)?;
    if !name.is_empty() {
        let toml::de::DeValue::Table(t) = value.get_ref() else {
            return None;
        };
        (at, value) = find(t, name)?;
    }
    if !key.is_empty() {
        let toml::de::DeValue::Table(t) = value.get_ref() else {
            return None;
        };
        if let Some((key_at, _)) = find(t, key.split('.').next().unwrap_or(key)) {
            at = key_at;
        }
    }
    Some(text[..at.min(text.len())].matches('\n').count() + 1)
}
