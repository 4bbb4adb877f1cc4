//! What reaches a person's terminal. Display names, ids and error text come
//! from the application (through the component) and may hold escape
//! sequences, BEL, CR, LF or bidirectional overrides: printed raw they
//! could clear the screen, retitle the window, or overwrite or forge a row.
//! Every such string printed for a person goes through [`escape`], which
//! shows those characters as visible escapes (`\x1b`, `\n`, `\u{202e}`).
//! JSON for scripts is left exact: its readers decode it, they do not
//! render it.
//!
//! A backslash is not doubled: ids escape `:` with `\` (see
//! `sync_store::ids`) and must be copied from a table into `revoke --grant`
//! as they are. The escaping is for safety, not to be reversed.

use std::borrow::Cow;
use std::fmt;

use tracing::field::Field;
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::Writer;

/// True for what must not reach a terminal as is: control characters (C0,
/// DEL, C1), the bidirectional formatting characters, line and paragraph
/// separators, and the invisible zero-width ones.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'              // Arabic letter mark
            | '\u{200b}'..='\u{200f}' // zero-width space, joiners, LRM, RLM
            | '\u{2028}'..='\u{202e}' // line/paragraph separators, LRE … RLO
            | '\u{2060}'..='\u{2069}' // word joiner … pop directional isolate
            | '\u{feff}' // zero-width no-break space
        )
}

/// `text` with every unsafe character as a visible escape: `\n`, `\r`,
/// `\t`, `\x1b` for other ASCII controls, `\u{202e}` for the rest.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if unsafe_char(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Prints a line for a person on stdout, escaped; a closed pipe (`| head`)
/// is not an error.
pub fn say(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{}", escape(text));
}

/// The fields of text log lines, escaped: an event's message and values
/// may quote the application. Installed with
/// `tracing_subscriber::fmt().fmt_fields(EscapedFields)`.
pub struct EscapedFields;

impl<'a> MakeVisitor<Writer<'a>> for EscapedFields {
    type Visitor = EscapedVisitor<'a>;

    fn make_visitor(&self, target: Writer<'a>) -> Self::Visitor {
        EscapedVisitor {
            writer: target,
            first: true,
            result: Ok(()),
        }
    }
}

/// Writes `message` first-class and other fields as `name=value`, as the
/// default formatter does, each value escaped.
pub struct EscapedVisitor<'a> {
    writer: Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl tracing::field::Visit for EscapedVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, &format!("{value:?}"));
    }
}

impl EscapedVisitor<'_> {
    fn write(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        let sep = if self.first { "" } else { " " };
        self.first = false;
        let value = escape(value);
        self.result = match field.name() {
            "message" => write!(self.writer, "{sep}{value}"),
            // `log` crate records carry their origin in `log.*` fields.
            name if name.starts_with("log.") => Ok(()),
            name => write!(self.writer, "{sep}{name}={value}"),
        };
    }
}

impl VisitOutput<fmt::Result> for EscapedVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for EscapedVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn plain_text_is_untouched_and_not_copied() {
        for s in ["Noah Adeyemi", r"group:a\:b:member", "Zoë 山田 ☃", ""] {
            assert!(matches!(escape(s), Cow::Borrowed(t) if t == s));
        }
    }

    #[test]
    fn controls_are_shown_as_escapes() {
        assert_eq!(
            escape("\u{1b}]0;pwned\u{7}\u{1b}[2J"),
            r"\x1b]0;pwned\x07\x1b[2J"
        );
        assert_eq!(escape("a\r\nb\tc\u{0}\u{7f}"), r"a\r\nb\tc\x00\x7f");
        // C1: 0x9b is a one-byte CSI on some terminals.
        assert_eq!(escape("x\u{9b}2J"), r"x\u{9b}2J");
    }

    #[test]
    fn bidirectional_and_invisible_characters_are_shown_as_escapes() {
        assert_eq!(escape("Eve\u{202e}nimda"), r"Eve\u{202e}nimda");
        for c in [
            '\u{061c}', '\u{200b}', '\u{200e}', '\u{200f}', '\u{2028}', '\u{2029}', '\u{202a}',
            '\u{2066}', '\u{2069}', '\u{feff}',
        ] {
            let e = escape(&c.to_string()).into_owned();
            assert_eq!(e, c.escape_unicode().to_string());
        }
    }

    #[test]
    fn the_escaped_text_holds_no_unsafe_character() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        assert!(!escape(&all).chars().any(unsafe_char));
    }

    #[test]
    fn log_fields_are_escaped() {
        use tracing_subscriber::fmt::MakeWriter;

        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        impl<'a> MakeWriter<'a> for Buf {
            type Writer = Buf;
            fn make_writer(&'a self) -> Buf {
                self.clone()
            }
        }

        let buf = Buf::default();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(EscapedFields)
            .with_writer(buf.clone())
            .with_ansi(false)
            .without_time()
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let name = "Mallory\r\u{1b}[2K";
            tracing::warn!(group = %"a\u{202e}b", who = name, "refused {name}");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(
            out.contains(r"refused Mallory\r\x1b[2K group=a\u{202e}b who="),
            "{out}"
        );
        assert_eq!(out.matches('\n').count(), 1, "one line: {out:?}");
        assert!(!out.contains('\u{1b}') && !out.contains('\r'), "{out:?}");
    }
}
