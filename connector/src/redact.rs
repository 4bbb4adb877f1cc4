//! Finding a secret in quoted text, whatever form it was quoted in.
//!
//! Ironclad (or a proxy in front of it) may echo a request inside its error, and a secret in that
//! request then comes back JSON-escaped (`\"`, `\\`, `\/`, `\u0022`), percent- or form-encoded,
//! or escaped twice (a JSON body quoted inside a JSON error that is read raw). Matching each
//! character of the secret against every form that character may take finds all of these, mixed
//! ones included: Python escapes `"` as `\"` but `é` as `\u00e9`, encoders disagree on which
//! punctuation to leave alone. A long secret is hidden even when only part of it is quoted (an
//! echo cut short by the server): any [`MIN_RUN`] of its characters in a row.

use std::cell::OnceCell;

/// What a hidden secret is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Shorter secrets (in bytes) are not hidden: they would hide ordinary words.
pub const MIN_SECRET_LEN: usize = 4;

/// A secret at least this many characters long is hidden wherever this many of its characters
/// appear in a row; a shorter one only whole.
pub const MIN_RUN: usize = 8;

/// How many encodings deep a character is looked for: an escape of an escape, no further.
const DEPTH: usize = 2;

/// One secret, as every form it may take in a quoted text. The forms are worked out the first
/// time a text is searched: most calls quote nothing, and a call knows up to three secrets.
pub struct SecretForms {
    raw: String,
    compiled: OnceCell<Compiled>,
}

struct Compiled {
    /// Per character of the secret: every string that may stand for it.
    forms: Vec<Vec<String>>,
    /// Per byte: the character positions a long enough run may start at with a form that begins
    /// with that byte. Most bytes of a text start no form at all, so most positions cost one
    /// lookup.
    starts: Vec<Vec<usize>>,
    /// The fewest characters in a row that are hidden.
    min_run: usize,
}

impl SecretForms {
    /// `None` for a secret too short to hide.
    pub fn new(raw: &str) -> Option<SecretForms> {
        (raw.len() >= MIN_SECRET_LEN).then(|| SecretForms {
            raw: raw.to_owned(),
            compiled: OnceCell::new(),
        })
    }

    pub fn raw(&self) -> &str {
        &self.raw
    }

    fn compiled(&self) -> &Compiled {
        self.compiled.get_or_init(|| {
            let forms: Vec<Vec<String>> = self.raw.chars().map(char_forms).collect();
            let min_run = forms.len().min(MIN_RUN);
            let mut starts = vec![Vec::new(); 256];
            let last_start = forms.len().saturating_sub(min_run);
            for (at, char_forms) in forms.iter().enumerate().take(last_start + 1) {
                for f in char_forms {
                    if let Some(&b) = f.as_bytes().first() {
                        let list: &mut Vec<usize> = &mut starts[usize::from(b)];
                        if list.last() != Some(&at) {
                            list.push(at);
                        }
                    }
                }
            }
            Compiled {
                forms,
                starts,
                min_run,
            }
        })
    }

    /// Where the longest run of this secret that starts at byte `at` of `text` ends, when it is
    /// long enough to hide. Every form is whole UTF-8, so the end is a character boundary. Each
    /// comparison is paid from `budget`; `Err` when it runs out.
    fn run_at(&self, text: &[u8], at: usize, budget: &mut usize) -> Result<Option<usize>, Spent> {
        let Some(&first) = text.get(at) else {
            return Ok(None);
        };
        let c = self.compiled();
        let mut best = None;
        for &start in &c.starts[usize::from(first)] {
            // Every place the run may have reached so far: a form can be a prefix of another
            // (`\` and `\\`), so more than one reading of the text can go on.
            let mut ends = vec![at];
            for (n, char_forms) in c.forms[start..].iter().enumerate() {
                let mut next = Vec::new();
                for &end in &ends {
                    *budget = budget.checked_sub(char_forms.len()).ok_or(Spent)?;
                    for f in char_forms {
                        if text[end..].starts_with(f.as_bytes()) {
                            next.push(end + f.len());
                        }
                    }
                }
                next.sort_unstable();
                next.dedup();
                if next.is_empty() {
                    break;
                }
                ends = next;
                if n + 1 >= c.min_run {
                    best = best.max(ends.iter().copied().max());
                }
            }
        }
        Ok(best)
    }
}

/// The comparisons of forms one [`hide`] may make: a hundred times what a real quote needs,
/// and a bound on a text built to be slow (a run of backslashes, against a secret full of them,
/// can be read in very many ways).
const BUDGET: usize = 1 << 18;

/// The budget ran out.
#[derive(Debug)]
struct Spent;

/// `text` with every run of a secret replaced by [`REDACTED`], cut at `limit` characters of the
/// result; `true` when something was cut off. Work stops at the cut, so a huge body costs no more
/// than the part quoted (plus the lookahead of a run that starts before the cut). Should the
/// budget run out, the rest of the text is hidden whole: failing closed.
pub fn hide(text: &str, secrets: &[SecretForms], limit: usize) -> (String, bool) {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut written = 0usize;
    let mut at = 0;
    let mut budget = BUDGET;
    while at < bytes.len() {
        if written >= limit {
            return (out, true);
        }
        let mut end = None;
        for secret in secrets {
            match secret.run_at(bytes, at, &mut budget) {
                Ok(run) => end = end.max(run),
                Err(Spent) => {
                    end = Some(bytes.len());
                    break;
                }
            }
        }
        if let Some(end) = end {
            for c in REDACTED.chars().take(limit - written) {
                out.push(c);
            }
            written += REDACTED.chars().count();
            at = end;
            continue;
        }
        let Some(c) = text.get(at..).and_then(|rest| rest.chars().next()) else {
            break;
        };
        out.push(c);
        written += 1;
        at += c.len_utf8();
    }
    // A marker cut short at the very end still means something was cut.
    (out, written > limit)
}

/// Every string that may stand for `c`: itself and its encodings, and their encodings.
fn char_forms(c: char) -> Vec<String> {
    let mut forms = vec![c.to_string()];
    let mut newest = forms.clone();
    for _ in 0..DEPTH {
        let mut next: Vec<String> = Vec::new();
        for form in &newest {
            for encoded in encodings(form) {
                if !forms.contains(&encoded) && !next.contains(&encoded) {
                    next.push(encoded);
                }
            }
        }
        forms.extend(next.iter().cloned());
        newest = next;
    }
    // A raw body is quoted with its whitespace runs folded into one space.
    if c.is_whitespace() && c != ' ' {
        forms.push(" ".to_owned());
    }
    forms
}

/// The ways servers write `s` inside a JSON string or a URL.
fn encodings(s: &str) -> [String; 8] {
    [
        json_escaped(s, false),
        json_escaped(s, true),
        unicode_escaped(s, false),
        unicode_escaped(s, true),
        percent_encoded(s, false, false),
        percent_encoded(s, true, false),
        percent_encoded(s, false, true),
        percent_encoded(s, true, true),
    ]
}

/// serde_json's escaping (`\"`, `\\`, `\n`, `\u001f`), and the variant that escapes `/` too.
fn json_escaped(s: &str, solidus: bool) -> String {
    let quoted = serde_json::Value::String(s.to_owned()).to_string();
    let inner = quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or(&quoted);
    if solidus {
        inner.replace('/', "\\/")
    } else {
        inner.to_owned()
    }
}

/// Every character but ASCII letters and digits as `\uXXXX` (UTF-16, so a pair beyond the
/// basic plane), in upper- or lowercase hex.
fn unicode_escaped(s: &str, upper: bool) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
            continue;
        }
        let mut units = [0u16; 2];
        for unit in c.encode_utf16(&mut units) {
            out.push_str(&if upper {
                format!("\\u{unit:04X}")
            } else {
                format!("\\u{unit:04x}")
            });
        }
    }
    out
}

/// Every byte but RFC 3986's unreserved ones as `%XX`; with `plus`, a space as `+` (forms).
fn percent_encoded(s: &str, upper: bool, plus: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else if plus && b == b' ' {
            out.push('+');
        } else if upper {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn hidden(text: &str, secrets: &[&str]) -> String {
        let forms: Vec<_> = secrets.iter().filter_map(|s| SecretForms::new(s)).collect();
        hide(text, &forms, usize::MAX).0
    }

    #[test]
    fn a_character_has_its_encodings_and_theirs() {
        let quote = char_forms('"');
        for f in [
            "\"",
            "\\\"",
            "\\u0022",
            "%22",
            "\\\\\\\"",
            "\\\\u0022",
            "%5C%22",
            "%5c%22",
        ] {
            assert!(quote.contains(&f.to_owned()), "{f} in {quote:?}");
        }
        assert!(char_forms('/').contains(&"\\/".to_owned()));
        assert!(char_forms(' ').contains(&"+".to_owned()));
        assert!(char_forms('é').contains(&"\\u00E9".to_owned()));
        assert!(char_forms('é').contains(&"%c3%a9".to_owned()));
        assert!(char_forms('😀').contains(&"\\ud83d\\ude00".to_owned()));
        // A letter stands only for itself.
        assert_eq!(char_forms('a'), ["a"]);
    }

    #[test]
    fn short_secrets_match_whole_and_long_ones_by_runs() {
        assert_eq!(hidden("a s3cr3t b", &["s3cr3t"]), "a <redacted> b");
        assert_eq!(hidden("a s3cr3 b", &["s3cr3t"]), "a s3cr3 b");
        assert_eq!(hidden("abc", &["abc"]), "abc", "too short to hide");
        let long = "0123456789abcdef";
        assert_eq!(hidden("x 23456789 y", &[long]), "x <redacted> y");
        assert_eq!(hidden("x 2345678 y", &[long]), "x 2345678 y");
        assert_eq!(hidden(&format!("[{long}]"), &[long]), "[<redacted>]");
    }

    #[test]
    fn mixed_and_doubly_escaped_forms_are_found() {
        let secret = "a\"b\\c/dé f+g%h";
        for text in [
            r#"a\"b\\c/d\u00e9 f+g%h"#,
            r#"a\"b\\c\/dé f+g%h"#,
            r#"a\\\"b\\\\c/dé f+g%h"#,
            "a%22b%5Cc%2Fd%C3%A9+f%2Bg%25h",
            "a%22b%5cc%2fd%c3%a9%20f%2bg%25h",
        ] {
            assert_eq!(hidden(text, &[secret]), REDACTED, "{text}");
        }
    }

    #[test]
    fn a_text_built_to_be_slow_is_hidden_whole() {
        let forms = [SecretForms::new(&"\\".repeat(64)).unwrap()];
        let text = format!("ok {}", "\\".repeat(2000));
        let started = std::time::Instant::now();
        assert_eq!(hide(&text, &forms, 1000), (format!("ok {REDACTED}"), false));
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    }

    #[test]
    fn hiding_stops_at_the_limit() {
        let (out, cut) = hide("abcdef", &[], 3);
        assert_eq!((out.as_str(), cut), ("abc", true));
        let (out, cut) = hide("abc", &[], 3);
        assert_eq!((out.as_str(), cut), ("abc", false));
        let forms = [SecretForms::new("secret-value").unwrap()];
        let (out, cut) = hide("ab secret-value", &forms, 6);
        assert_eq!((out.as_str(), cut), ("ab <re", true));
    }
}
