//! Spellings a manifest accepts as Python does (NumPy dtype names), and the likely intent of a
//! misspelt name.

use crate::schema::Schema;

/// The NumPy dtype names Python's `np.dtype(...)` accepts, with the array-interface type string
/// each stands for on the 64-bit little-endian Linux machines shmline runs on (`long` and `intp`
/// are 64-bit there). Type strings (`"<f4"`, `"u1"`, `"S16"`, `"M8[ns]"`) are accepted as they
/// are.
const NUMPY_NAMES: &[(&str, &str)] = &[
    ("bool", "|b1"),
    ("bool_", "|b1"),
    ("?", "|b1"),
    ("int8", "|i1"),
    ("byte", "|i1"),
    ("b", "|i1"),
    ("uint8", "|u1"),
    ("ubyte", "|u1"),
    ("B", "|u1"),
    ("int16", "<i2"),
    ("short", "<i2"),
    ("h", "<i2"),
    ("uint16", "<u2"),
    ("ushort", "<u2"),
    ("H", "<u2"),
    ("int32", "<i4"),
    ("intc", "<i4"),
    ("i", "<i4"),
    ("uint32", "<u4"),
    ("uintc", "<u4"),
    ("I", "<u4"),
    ("int64", "<i8"),
    ("int", "<i8"),
    ("int_", "<i8"),
    ("long", "<i8"),
    ("longlong", "<i8"),
    ("intp", "<i8"),
    ("l", "<i8"),
    ("q", "<i8"),
    ("p", "<i8"),
    ("uint64", "<u8"),
    ("uint", "<u8"),
    ("ulong", "<u8"),
    ("ulonglong", "<u8"),
    ("uintp", "<u8"),
    ("L", "<u8"),
    ("Q", "<u8"),
    ("P", "<u8"),
    ("float16", "<f2"),
    ("half", "<f2"),
    ("e", "<f2"),
    ("float32", "<f4"),
    ("single", "<f4"),
    ("f", "<f4"),
    ("float64", "<f8"),
    ("float", "<f8"),
    ("double", "<f8"),
    ("float_", "<f8"),
    ("d", "<f8"),
    ("float128", "<f16"),
    ("longdouble", "<f16"),
    ("g", "<f16"),
    ("complex64", "<c8"),
    ("csingle", "<c8"),
    ("F", "<c8"),
    ("complex128", "<c16"),
    ("complex", "<c16"),
    ("cdouble", "<c16"),
    ("complex_", "<c16"),
    ("D", "<c16"),
    ("complex256", "<c32"),
    ("clongdouble", "<c32"),
    ("G", "<c32"),
];

/// The type string of a dtype given as Python accepts it: a NumPy name (`float32`,
/// `datetime64[ns]`) or a type string (`<f4`); otherwise why not.
pub(super) fn resolve_dtype(dtype: &str) -> std::result::Result<String, String> {
    if let Some((_, code)) = NUMPY_NAMES.iter().find(|(name, _)| *name == dtype) {
        return Ok((*code).to_owned());
    }
    let spelled = if let Some(unit) = dtype.strip_prefix("datetime64") {
        format!("<M8{unit}")
    } else if let Some(unit) = dtype.strip_prefix("timedelta64") {
        format!("<m8{unit}")
    } else {
        dtype.to_owned()
    };
    Schema::new(&spelled, &[])
        .map(|schema| schema.dtype().to_owned())
        .map_err(|_| {
            let hint = match closest(dtype, NUMPY_NAMES.iter().map(|(n, _)| *n)) {
                Some(near) => format!("did you mean {near:?}? "),
                None => String::new(),
            };
            format!(
                "unknown dtype {dtype:?} ({hint}expected a NumPy name such as float32, float64, \
                 int16, uint8, complex64, bool or datetime64[ns], or a type string such as \
                 \"<f4\", \"|u1\" or \"S16\")"
            )
        })
}

pub(super) fn unknown_policy(policy: &str) -> String {
    let names = ["block", "fail", "drop_newest", "drop_oldest"];
    let hint = match closest(policy, names.into_iter()) {
        Some(near) => format!("did you mean {near:?}? "),
        None => String::new(),
    };
    format!(
        "unknown backpressure {policy:?} ({hint}expected one of: {})",
        names.join(", ")
    )
}

/// The candidate within two edits of `word` (the closest), if any: a typo's likely intent.
pub(super) fn closest<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .filter(|c| c.len() > 1)
        .map(|c| (edits(word, c), c))
        .filter(|&(d, _)| d <= 2)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance between `a` and `b`.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_is_matched_to_the_closest_name_within_two_edits() {
        assert_eq!(
            closest("flaot32", ["float32", "float64"].into_iter()),
            Some("float32")
        );
        assert_eq!(closest("zzz", ["float32"].into_iter()), None);
        assert_eq!(edits("kitten", "sitting"), 3);
    }

    #[test]
    fn numpy_names_and_type_strings_resolve_and_anything_else_is_refused() {
        assert_eq!(resolve_dtype("float32").unwrap(), "<f4");
        assert_eq!(resolve_dtype("timedelta64[s]").unwrap(), "<m8[s]");
        assert_eq!(resolve_dtype("=i2").unwrap(), "<i2");
        assert!(resolve_dtype("object")
            .unwrap_err()
            .contains("unknown dtype"));
    }
}
