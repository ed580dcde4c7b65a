//! Formatting numbers for people, and facts about the terminal.

use serde::Serialize;
use shmline::GroupStats;
use std::io::IsTerminal;

/// A reader group's counters as `info --json` and `top --json` show them.
#[derive(Serialize, Debug, Clone)]
pub struct GroupView {
    /// The group's name.
    pub name: String,
    /// Live members.
    pub members: u32,
    /// Members whose process died (their frames are handed out again).
    pub orphans: u32,
    /// Sequence number of the next frame the group hands out.
    pub next: u64,
    /// Frames written that the group has not handed out yet.
    pub lag: u64,
    /// Frames handed out to members so far.
    pub frames_handed_out: u64,
    /// Frames handed out again because the member holding them died.
    pub redelivered: u64,
}

impl GroupView {
    /// The members column of the text tables: live members, and the dead ones if any.
    pub fn members_cell(&self) -> String {
        if self.orphans > 0 {
            format!("{} (+{} dead)", self.members, self.orphans)
        } else {
            self.members.to_string()
        }
    }
}

impl From<&GroupStats> for GroupView {
    fn from(g: &GroupStats) -> GroupView {
        GroupView {
            name: g.name.clone(),
            members: g.members,
            orphans: g.orphans,
            next: g.next,
            lag: g.lag,
            frames_handed_out: g.frames_handed_out,
            redelivered: g.redelivered,
        }
    }
}

/// `1234567.0` -> `"1.23 M"`: three significant digits and an SI prefix.
pub fn si(value: f64) -> String {
    let (scaled, prefix) = match value.abs() {
        v if v >= 1e9 => (value / 1e9, "G"),
        v if v >= 1e6 => (value / 1e6, "M"),
        v if v >= 1e3 => (value / 1e3, "k"),
        _ => (value, ""),
    };
    let digits = if scaled.abs() >= 100.0 || prefix.is_empty() && scaled.fract() == 0.0 {
        0
    } else if scaled.abs() >= 10.0 {
        1
    } else {
        2
    };
    format!("{scaled:.digits$} {prefix}")
}

/// A byte count: `"1.50 MB"`.
pub fn bytes(value: u64) -> String {
    format!("{}B", si(value as f64))
}

/// Seconds with a precision that suits their size: `"0.013 s"`, `"3.21 s"`, `"125 s"`.
pub fn seconds(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    match s {
        s if s < 1.0 => format!("{s:.3} s"),
        s if s < 100.0 => format!("{s:.2} s"),
        s => format!("{s:.0} s"),
    }
}

/// Whether stderr is a terminal (live, in-place progress makes sense).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Whether stdout is a terminal.
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Prints rows as left-aligned columns separated by two spaces (the last column is not padded).
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_three_significant_digits_and_a_prefix() {
        assert_eq!(si(1_234_567.0), "1.23 M");
        assert_eq!(si(12_345.0), "12.3 k");
        assert_eq!(si(999.0), "999 ");
        assert_eq!(si(0.5), "0.50 ");
        assert_eq!(bytes(1_500_000), "1.50 MB");
    }

    #[test]
    fn tables_align_their_columns() {
        let rows = vec![
            vec!["a".to_string(), "bb".to_string(), "c".to_string()],
            vec!["long".to_string(), "x".to_string(), "y".to_string()],
        ];
        assert_eq!(table(&rows), "a     bb  c\nlong  x   y\n");
    }
}
