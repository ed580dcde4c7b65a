//! Frame schemas: a NumPy array-interface dtype string and a shape.

use crate::error::{Error, Result};
use crate::layout::{DTYPE_LEN, MAX_NDIM};
use std::fmt;

/// What every frame of a stream holds: `shape` elements of type `dtype`, C-contiguous.
///
/// `dtype` is a NumPy array-interface type string: a byte-order character (`<` little, `>` big,
/// `|` not applicable), a kind (`b i u f c m M S U V`) and the item size in bytes (characters for
/// `U`), e.g. `<f4`, `|u1`, `<c16`, `|S16`, `<M8[ns]`. A missing or native (`=`) byte order is
/// stored as `<` (shmline runs on little-endian machines).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Schema {
    dtype: String,
    shape: Vec<u64>,
}

impl Schema {
    /// Validates and normalises a dtype and shape.
    ///
    /// ```
    /// let s = shmline::Schema::new("f4", &[2, 3])?;
    /// assert_eq!(s.dtype(), "<f4");
    /// assert_eq!(s.frame_size(), 24);
    /// # Ok::<(), shmline::Error>(())
    /// ```
    pub fn new(dtype: &str, shape: &[u64]) -> Result<Schema> {
        let dtype = normalise_dtype(dtype)?;
        if shape.len() > MAX_NDIM {
            return Err(Error::InvalidArgument(format!(
                "shape {shape:?} has {} dimensions; at most {MAX_NDIM} are supported",
                shape.len()
            )));
        }
        if shape.contains(&0) {
            return Err(Error::InvalidArgument(format!(
                "shape {shape:?} has a zero dimension; frames must not be empty"
            )));
        }
        let schema = Schema {
            dtype,
            shape: shape.to_vec(),
        };
        schema.checked_frame_size().ok_or_else(|| {
            Error::InvalidArgument(format!("schema {schema} describes an absurdly large frame"))
        })?;
        Ok(schema)
    }

    /// The normalised dtype string (e.g. `<f4`).
    pub fn dtype(&self) -> &str {
        &self.dtype
    }

    /// The frame shape.
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }

    /// Bytes of one element.
    pub fn item_size(&self) -> u64 {
        item_size(&self.dtype).expect("validated at construction")
    }

    /// Bytes of one frame: item size times the product of the shape.
    pub fn frame_size(&self) -> u64 {
        self.checked_frame_size()
            .expect("validated at construction")
    }

    fn checked_frame_size(&self) -> Option<u64> {
        let items = self
            .shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))?;
        let size = items.checked_mul(item_size(&self.dtype)?)?;
        (size <= crate::layout::MAX_FRAME_SIZE as u64).then_some(size)
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.shape.iter().map(u64::to_string).collect();
        let trailing = if self.shape.len() == 1 { "," } else { "" };
        write!(f, "{} ({}{})", self.dtype, dims.join(", "), trailing)
    }
}

fn normalise_dtype(dtype: &str) -> Result<String> {
    let bad = |why: &str| {
        Err(Error::InvalidArgument(format!(
            "dtype {dtype:?} {why}; expected a NumPy type string such as '<f4', '|u1' or '<c8'"
        )))
    };
    let (order, rest) = match dtype.chars().next() {
        Some(c @ ('<' | '>' | '|')) => (c, &dtype[1..]),
        Some('=') => ('<', &dtype[1..]),
        Some(_) => ('<', dtype),
        None => return bad("is empty"),
    };
    let kind = rest.chars().next().unwrap_or(' ');
    if !"biufcmMSUV".contains(kind) {
        return bad("has an unknown kind");
    }
    // NumPy writes '|' where byte order cannot matter: bytes, strings, voids and 1-byte ints.
    let order = match (kind, &rest[1..]) {
        ('b' | 'S' | 'V', _) | ('i' | 'u', "1") => '|',
        _ => order,
    };
    let normalised = format!("{order}{rest}");
    if normalised.len() >= DTYPE_LEN {
        return bad("is too long");
    }
    if item_size(&normalised).is_none() {
        return bad("has no valid item size");
    }
    Ok(normalised)
}

/// Item size in bytes of a normalised dtype string.
fn item_size(dtype: &str) -> Option<u64> {
    let kind = dtype[1..].chars().next()?;
    let body = &dtype[2..];
    let (digits, unit) = match body.find('[') {
        Some(i) => (&body[..i], Some(&body[i..])),
        None => (body, None),
    };
    if let Some(unit) = unit {
        let ok = matches!(kind, 'm' | 'M')
            && unit.ends_with(']')
            && unit.len() > 2
            && unit[1..unit.len() - 1]
                .chars()
                .all(|c| c.is_ascii_alphanumeric());
        if !ok {
            return None;
        }
    }
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let size = match kind {
        'U' => n.checked_mul(4)?,
        'b' if n != 1 => return None,
        'i' | 'u' if ![1, 2, 4, 8].contains(&n) => return None,
        'f' if ![2, 4, 8, 16].contains(&n) => return None,
        'c' if ![8, 16, 32].contains(&n) => return None,
        'm' | 'M' if n != 8 => return None,
        _ => n,
    };
    (size > 0).then_some(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtypes_are_normalised_to_array_interface_form() {
        assert_eq!(Schema::new("<f4", &[8]).unwrap().dtype(), "<f4");
        assert_eq!(Schema::new("f8", &[8]).unwrap().dtype(), "<f8");
        assert_eq!(Schema::new("=i2", &[8]).unwrap().dtype(), "<i2");
        assert_eq!(Schema::new("u1", &[8]).unwrap().dtype(), "|u1");
        assert_eq!(Schema::new("|S16", &[2]).unwrap().frame_size(), 32);
        assert_eq!(Schema::new("<U4", &[1]).unwrap().frame_size(), 16);
        assert_eq!(Schema::new("<M8[ns]", &[3]).unwrap().frame_size(), 24);
        assert_eq!(Schema::new("<c8", &[]).unwrap().frame_size(), 8);
    }

    #[test]
    fn bad_dtypes_and_shapes_are_refused_with_the_reason() {
        assert!(Schema::new("", &[1])
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!(Schema::new("<q4", &[1])
            .unwrap_err()
            .to_string()
            .contains("kind"));
        assert!(Schema::new("<f3", &[1])
            .unwrap_err()
            .to_string()
            .contains("size"));
        assert!(Schema::new("<f4", &[0])
            .unwrap_err()
            .to_string()
            .contains("zero"));
        assert!(Schema::new("<f4", &[1; 9])
            .unwrap_err()
            .to_string()
            .contains("dimensions"));
        assert!(Schema::new("<f8", &[1 << 40, 1 << 40])
            .unwrap_err()
            .to_string()
            .contains("large"));
    }

    #[test]
    fn display_looks_like_numpy() {
        assert_eq!(Schema::new("<f4", &[8]).unwrap().to_string(), "<f4 (8,)");
        assert_eq!(
            Schema::new("<f4", &[2, 3]).unwrap().to_string(),
            "<f4 (2, 3)"
        );
    }
}
