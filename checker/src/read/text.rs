//! Helpers shared by the readers (a leaf module: it imports nothing from them).

/// An error at a 1-based line: `(line, message)`.
pub(crate) type LineError = (usize, String);

/// `s` cut to `n` characters, with `…` when cut (for quoting input in errors).
pub(crate) fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}
