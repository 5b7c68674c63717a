//! Padded values (`--value-size BYTES`, `--value-size-dist`): what writes carry on the wire
//! when a run asks for large values, and how reads are decoded and verified.
//!
//! The checker's models work on integers, so the logical value stays an integer `v` (the
//! history records `v`, as without padding) and the wire value is the text
//! `"<v>:<filler>"`. The filler is a pure function of `(v, key, the run's value stream)`:
//! its length is drawn from the size distribution and its bytes (64 URL-safe characters, no
//! JSON escaping needed) from a generator seeded with the stream's seed mixed with the key and
//! `v` ([`Stream::Values`]). So every write of `v` to `key` in a run sends the same text, and
//! a read can recompute what `v`'s writer sent and compare it byte for byte.
//!
//! A read whose text is not exactly what some write of its `v` would have sent (a flipped
//! byte, a truncated value, a value moved from another key, a bare integer) is a corrupted
//! read: it decodes to [`CORRUPT`] (`i64::MIN`), a value no workload ever writes, so the model
//! finds it illegal and the checker reports the key invalid; the summary counts such reads
//! (`corrupt reads`).
//!
//! # Sizes
//! The wire length `L` of a value (prefix included; at least the prefix `"<v>:"`):
//! - `constant`: `L = size`;
//! - `uniform`: `L` uniform in `1..=2·size` (mean `size`);
//! - `exponential`: `L = ⌈size · −ln U⌉` for `U` uniform in `(0, 1]`, capped at `8·size`
//!   (mean `size·(1 − e⁻⁸)`, within 0.04 % of `size`, plus ½ for the ceiling), at least 1.
//!
//! [`parse_size`] reads `--value-size`: a number of bytes, optionally with a unit (`B`, `KB`
//! = 1000, `KiB` = 1024, `MB`, `MiB`, `GB`, `GiB`; case-insensitive, `K`/`M`/`G` alone are
//! the decimal units).

use crate::seeds::{sub_seed, Seeds, Stream};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a corrupted read decodes to: a value no write of any workload writes (they write
/// small non-negative integers, unique values above them, or appended positive values).
pub const CORRUPT: i64 = i64::MIN;

/// The largest `--value-size` (a value is one HTTP body; the node's client limit is larger).
pub const MAX_VALUE_SIZE: usize = 64 << 20;

/// The filler's alphabet: 64 characters that need no escaping in JSON, URLs or shells.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// `--value-size-dist`: how wire lengths spread around `--value-size` (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SizeDist {
    #[default]
    Constant,
    Uniform,
    Exponential,
}

impl SizeDist {
    pub const ALL: [SizeDist; 3] = [SizeDist::Constant, SizeDist::Uniform, SizeDist::Exponential];

    /// The `--value-size-dist` name.
    pub fn name(self) -> &'static str {
        match self {
            SizeDist::Constant => "constant",
            SizeDist::Uniform => "uniform",
            SizeDist::Exponential => "exponential",
        }
    }

    /// A wire length for mean `size` (≥ 1) from `rng`.
    fn draw(self, size: usize, rng: &mut impl Rng) -> usize {
        let size = size.max(1);
        match self {
            SizeDist::Constant => size,
            SizeDist::Uniform => rng.gen_range(1..=2 * size),
            SizeDist::Exponential => {
                // 1 − gen::<f64>() is in (0, 1]: ln is finite and ≤ 0.
                let u: f64 = 1.0 - rng.gen::<f64>();
                let l = (-(u.ln()) * size as f64).ceil() as usize;
                l.clamp(1, 8 * size)
            }
        }
    }
}

impl std::str::FromStr for SizeDist {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        SizeDist::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| {
                format!("--value-size-dist {s:?}: expected constant, uniform or exponential")
            })
    }
}

/// Parses a `--value-size`: `1024`, `1KiB`, `64KiB`, `1MB`, `2 MiB` (see the module docs).
/// Errors name the flag and say what was expected.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let bad = |why: &str| {
        format!("--value-size {s:?}: {why}; expected bytes, e.g. 1024, 1KiB, 64KiB or 1MB")
    };
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    if digits == 0 {
        return Err(bad("no number"));
    }
    let n: usize = t[..digits]
        .parse()
        .map_err(|_| bad("the number is too large"))?;
    let unit = t[digits..].trim().to_ascii_lowercase();
    let mult: usize = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return Err(bad(&format!("unknown unit {:?}", &t[digits..]))),
    };
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| bad("the size is too large"))?;
    if bytes == 0 {
        return Err(bad("must be at least 1 byte"));
    }
    if bytes > MAX_VALUE_SIZE {
        return Err(bad(&format!("at most {MAX_VALUE_SIZE} bytes (64 MiB)")));
    }
    Ok(bytes)
}

/// A run's value size: its mean wire length and distribution (`test.json`'s `value_size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueSize {
    /// Mean wire length in bytes (`--value-size`).
    pub bytes: usize,
    /// `--value-size-dist`.
    pub dist: SizeDist,
}

/// Why a read's text is not what any write of its value sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadValue {
    #[error("not a padded value (no `<v>:` prefix): {0:?}")]
    NoPrefix(String),
    #[error("the wire length is {got} bytes; value {v}'s writer sent {expected}")]
    WrongLength { v: i64, expected: usize, got: usize },
    #[error("byte {offset} differs from what value {v}'s writer sent")]
    WrongFiller { v: i64, offset: usize },
    #[error("expected a padded value (a string), found {0}")]
    NotText(String),
}

/// The padding of one run: encodes integers into padded wire text and verifies it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Padding {
    size: ValueSize,
    /// The seed of the run's [`Stream::Values`].
    seed: u64,
}

impl Padding {
    /// The padding of the run with seed `run_seed`.
    pub fn new(size: ValueSize, run_seed: u64) -> Padding {
        Padding {
            size,
            seed: Seeds::new(run_seed).of(Stream::Values),
        }
    }

    pub fn size(&self) -> ValueSize {
        self.size
    }

    /// The generator of `(key, v)`'s wire text: its first draw is the length, then filler.
    fn rng(&self, key: &str, v: i64) -> StdRng {
        // FNV-1a of the key, then splitmix: distinct keys and values get unrelated streams.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.as_bytes() {
            h = (h ^ *b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        StdRng::seed_from_u64(sub_seed(sub_seed(self.seed, h), v as u64))
    }

    /// The wire text every write of `v` to `key` sends in this run.
    pub fn encode(&self, key: &str, v: i64) -> String {
        let prefix = format!("{v}:");
        let mut rng = self.rng(key, v);
        let len = self.size.dist.draw(self.size.bytes, &mut rng);
        let mut out = prefix.into_bytes();
        let fill = len.saturating_sub(out.len());
        let mut raw = vec![0u8; fill];
        rng.fill_bytes(&mut raw);
        out.extend(raw.iter().map(|b| ALPHABET[(b & 63) as usize]));
        // Only ASCII digits, '-', ':' and the alphabet: valid UTF-8.
        String::from_utf8(out).expect("padded values are ASCII")
    }

    /// The value `text` encodes, if it is exactly what a write of that value to `key` sent.
    pub fn verify(&self, key: &str, text: &str) -> Result<i64, BadValue> {
        let no_prefix = || BadValue::NoPrefix(text.chars().take(40).collect());
        let (num, _) = text.split_once(':').ok_or_else(no_prefix)?;
        let v: i64 = num.parse().map_err(|_| no_prefix())?;
        if v == CORRUPT || num != v.to_string() {
            return Err(no_prefix());
        }
        let expected = self.encode(key, v);
        if expected.len() != text.len() {
            return Err(BadValue::WrongLength {
                v,
                expected: expected.len(),
                got: text.len(),
            });
        }
        match expected.bytes().zip(text.bytes()).position(|(a, b)| a != b) {
            Some(offset) => Err(BadValue::WrongFiller { v, offset }),
            None => Ok(v),
        }
    }

    /// The value `text` encodes, or [`CORRUPT`] if it is not what its writer sent.
    pub fn decode(&self, key: &str, text: &str) -> i64 {
        self.verify(key, text).unwrap_or(CORRUPT)
    }
}

/// How a run's values travel: plain integers, or padded text ([`Padding`]). Clients of the
/// targets that carry padding encode every written value (writes, both cas arguments, appended
/// elements) with it and decode every value read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Values {
    /// The integer itself (`--value-size` not given).
    #[default]
    Plain,
    Padded(Padding),
}

impl Values {
    /// The values of a run: padded if `size` is given.
    pub fn new(size: Option<ValueSize>, run_seed: u64) -> Values {
        match size {
            Some(s) => Values::Padded(Padding::new(s, run_seed)),
            None => Values::Plain,
        }
    }

    pub fn is_padded(&self) -> bool {
        matches!(self, Values::Padded(_))
    }

    /// `v` as a JSON value on the wire: the number, or the padded string.
    pub fn to_json(&self, key: &str, v: i64) -> Value {
        match self {
            Values::Plain => Value::from(v),
            Values::Padded(p) => Value::String(p.encode(key, v)),
        }
    }

    /// `v` as text on the wire (etcd's values): its decimal text, or the padded text.
    pub fn to_text(&self, key: &str, v: i64) -> String {
        match self {
            Values::Plain => v.to_string(),
            Values::Padded(p) => p.encode(key, v),
        }
    }

    /// A JSON value read from `key`: `Ok(v)` (padded: [`CORRUPT`] if it is not what `v`'s
    /// writer sent), `Err` if plain and not an integer (a read of something else).
    pub fn from_json(&self, key: &str, read: &Value) -> Result<i64, String> {
        match self {
            Values::Plain => read
                .as_i64()
                .ok_or_else(|| format!("non-integer value {read}")),
            Values::Padded(p) => Ok(match read {
                Value::String(s) => p.decode(key, s),
                _ => CORRUPT,
            }),
        }
    }

    /// Text read from `key` (see [`Values::from_json`]).
    pub fn from_text(&self, key: &str, text: &str) -> Result<i64, String> {
        match self {
            Values::Plain => text
                .parse::<i64>()
                .map_err(|_| format!("non-integer value {text:?}")),
            Values::Padded(p) => Ok(p.decode(key, text)),
        }
    }
}

/// True if a history's read output shows a corrupted read: [`CORRUPT`] itself (registers) or
/// its token in an `append` read (`"…,-9223372036854775808,…"`).
pub fn is_corrupt_read(output: &Value) -> bool {
    match output {
        Value::Number(n) => n.as_i64() == Some(CORRUPT),
        Value::String(s) => s.split(',').any(|t| t.parse::<i64>().ok() == Some(CORRUPT)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn padding(bytes: usize, dist: SizeDist, seed: u64) -> Padding {
        Padding::new(ValueSize { bytes, dist }, seed)
    }

    #[test]
    fn parses_sizes_with_and_without_units() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("64kib"), Ok(65536));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("2 KB"), Ok(2000));
        assert_eq!(parse_size("10B"), Ok(10));
    }

    #[test]
    fn bad_sizes_are_refused_naming_the_flag() {
        for bad in [
            "",
            "KiB",
            "1XB",
            "-1",
            "0",
            "1.5KiB",
            "65MiB",
            "99999999999999999999999",
        ] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.starts_with("--value-size"), "{bad:?}: {e}");
        }
        assert!(parse_size("1XB")
            .unwrap_err()
            .contains("unknown unit \"XB\""));
        assert!("lognormal"
            .parse::<SizeDist>()
            .unwrap_err()
            .contains("--value-size-dist"));
        assert_eq!("uniform".parse::<SizeDist>(), Ok(SizeDist::Uniform));
    }

    #[test]
    fn a_padded_value_round_trips_and_has_the_asked_size() {
        let p = padding(65536, SizeDist::Constant, 7);
        for (key, v) in [
            ("k0", 0),
            ("k3", 4),
            ("register", 3_000_000_017),
            ("k9", -5),
        ] {
            let text = p.encode(key, v);
            assert_eq!(text.len(), 65536, "{key} {v}");
            assert!(text.starts_with(&format!("{v}:")));
            assert_eq!(p.verify(key, &text), Ok(v));
            assert_eq!(p.decode(key, &text), v);
        }
        // Smaller than the prefix: the prefix alone, still verified.
        let tiny = padding(1, SizeDist::Constant, 7);
        assert_eq!(tiny.encode("k", 42), "42:");
        assert_eq!(tiny.verify("k", "42:"), Ok(42));
    }

    #[test]
    fn any_tampered_byte_is_detected() {
        let p = padding(300, SizeDist::Uniform, 11);
        let text = p.encode("k1", 3);
        let bytes = text.as_bytes();
        for i in 0..bytes.len() {
            let mut t = bytes.to_vec();
            // Another character of the filler's alphabet, or another digit in the prefix.
            t[i] = if t[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(t).unwrap();
            assert_eq!(p.decode("k1", &t), CORRUPT, "byte {i} changed: {t:?}");
        }
        // Truncated, extended, moved to another key, or a bare integer.
        assert_eq!(p.decode("k1", &text[..text.len() - 1]), CORRUPT);
        assert_eq!(p.decode("k1", &format!("{text}A")), CORRUPT);
        assert_eq!(p.decode("k2", &text), CORRUPT);
        assert_eq!(p.decode("k1", "3"), CORRUPT);
        assert!(matches!(
            p.verify("k1", &text.replacen("3:", "4:", 1)),
            Err(BadValue::WrongLength { .. } | BadValue::WrongFiller { .. })
        ));
        let v = Values::Padded(p);
        assert_eq!(v.from_json("k1", &Value::from(3)), Ok(CORRUPT));
        assert_eq!(v.from_json("k1", &Value::String(text)), Ok(3));
    }

    #[test]
    fn the_same_seed_gives_the_same_text_and_another_seed_another() {
        for dist in SizeDist::ALL {
            let a = padding(1000, dist, 5).encode("k7", 2);
            assert_eq!(a, padding(1000, dist, 5).encode("k7", 2), "{dist:?}");
            assert_ne!(a, padding(1000, dist, 6).encode("k7", 2), "{dist:?}");
            assert_ne!(a, padding(1000, dist, 5).encode("k7", 1), "{dist:?}");
        }
    }

    #[test]
    fn wire_lengths_follow_their_distribution() {
        let size = 1000usize;
        for dist in SizeDist::ALL {
            let p = padding(size, dist, 3);
            let lens: Vec<usize> = (0..4000).map(|v| p.encode("k0", v).len()).collect();
            let mean = lens.iter().sum::<usize>() as f64 / lens.len() as f64;
            let (min, max) = (*lens.iter().min().unwrap(), *lens.iter().max().unwrap());
            // Standard error of the mean: uniform ≈ 577/√4000 ≈ 9, exponential ≈ 16.
            assert!(
                (mean - size as f64).abs() < 0.05 * size as f64,
                "{dist:?}: mean {mean}"
            );
            match dist {
                SizeDist::Constant => assert_eq!((min, max), (size, size)),
                SizeDist::Uniform => {
                    assert!(max <= 2 * size && max > 19 * size / 10, "{max}");
                    assert!(min < size / 10, "{min}");
                }
                SizeDist::Exponential => {
                    assert!(max <= 8 * size && max > 4 * size, "{max}");
                    assert!(min < size / 20, "{min}");
                }
            }
        }
    }

    #[test]
    fn corrupt_reads_are_recognised_in_registers_and_lists() {
        assert!(is_corrupt_read(&Value::from(CORRUPT)));
        assert!(!is_corrupt_read(&Value::from(3)));
        assert!(is_corrupt_read(&Value::String(format!("1,{CORRUPT},4,"))));
        assert!(!is_corrupt_read(&Value::String("1,2,".into())));
        assert!(!is_corrupt_read(&Value::Null));
    }
}
