//! Keeping configured secrets out of everything the host shows.
//!
//! A component is not trusted to scrub its own messages, and what it quotes
//! may hold a secret re-encoded (a JSON string, a URL, an HTTP Basic header)
//! or cut short at a length limit. So the host looks for every common form of
//! each secret, and for pieces of those forms, not just the plain value.
//!
//! The rule for pieces: any run of [`MIN_RUN`] or more characters of a form
//! is redacted, and so is a shorter prefix (down to [`MIN_LEN`]) that ends the
//! text or stands right before an ellipsis, where a quote was cut. Eight
//! characters keep ordinary words and ids from being taken for a secret (a
//! secret is random, a run of eight of it does not occur by chance) while
//! leaving at most seven characters of one that straddles a cut in some other
//! way, too few to matter for secrets of the usual 20 to 64 characters.

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use zeroize::Zeroizing;

/// Shorter values are not scrubbed: they would hit ordinary words and ruin
/// every message, and a secret that short protects nothing anyway.
pub const MIN_LEN: usize = 4;
/// The shortest run of a secret that is redacted wherever it appears.
pub const MIN_RUN: usize = 8;

const REDACTED: &str = "[redacted]";

/// RFC 3986's unreserved characters stay as they are in most URL encoders.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Secret values, in every form worth looking for, held only to scrub them
/// from text the host shows. Zeroized when dropped.
#[derive(Clone, Default)]
pub struct Secrets {
    forms: Vec<Zeroizing<String>>,
    /// What `scrub` looks text up in: the forms' pieces.
    pieces: Pieces,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} forms hidden)", self.forms.len())
    }
}

impl Secrets {
    /// `secrets` are the values to hide; `companions` are the other settings'
    /// values, which a component may pair with a secret as `id:secret` in an
    /// HTTP Basic header (the base64 of the whole pair is hidden, so none of
    /// its characters tells anything of the secret).
    pub fn new<'a>(
        secrets: impl IntoIterator<Item = &'a str>,
        companions: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Secrets {
        let mut forms: Vec<Zeroizing<String>> = Vec::new();
        for secret in secrets {
            if secret.len() < MIN_LEN {
                continue;
            }
            forms.extend(encodings(secret).into_iter().map(Zeroizing::new));
            for id in companions.clone() {
                let pair = Zeroizing::new(format!("{id}:{secret}"));
                forms.push(Zeroizing::new(STANDARD.encode(pair.as_bytes())));
                forms.push(Zeroizing::new(URL_SAFE.encode(pair.as_bytes())));
            }
        }
        Secrets::of_forms(forms)
    }

    /// The set of `forms`, sorted and without repeats, and its index.
    fn of_forms(mut forms: Vec<Zeroizing<String>>) -> Secrets {
        forms.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        forms.dedup_by(|a, b| a.as_str() == b.as_str());
        let pieces = Pieces::of(&forms);
        Secrets { forms, pieces }
    }

    /// These secrets and `secret` too (a password the host learns while it
    /// runs), in every form.
    pub fn with(&self, secret: &str) -> Secrets {
        self.merged(&Secrets::new([secret], std::iter::empty::<&str>()))
    }

    /// These secrets and `other`'s: what a process serving several
    /// tenants scrubs from its shared log.
    pub fn merged(&self, other: &Secrets) -> Secrets {
        let mut forms = self.forms.clone();
        forms.extend(other.forms.iter().cloned());
        Secrets::of_forms(forms)
    }

    /// No secret to hide.
    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    /// `text` with every form of every secret, and every piece of one by the
    /// rule above, replaced by `[redacted]`.
    pub fn scrub(&self, text: &str) -> String {
        if self.forms.is_empty() {
            return text.to_string();
        }
        scrub_with(&self.pieces, text)
    }
}

/// `text` with every byte `pieces` cover replaced, a run of them by one
/// `[redacted]`.
fn scrub_with(pieces: &Pieces, text: &str) -> String {
    let bytes = text.as_bytes();
    let mut hidden = vec![false; bytes.len()];
    pieces.mark(bytes, &mut hidden);
    if !hidden.contains(&true) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut in_secret = false;
    for (i, c) in text.char_indices() {
        // A character is hidden when any of its bytes is.
        if hidden[i..i + c.len_utf8()].contains(&true) {
            if !in_secret {
                out.push_str(REDACTED);
            }
            in_secret = true;
        } else {
            out.push(c);
            in_secret = false;
        }
    }
    out
}

/// The forms a component may print a secret in: as is, JSON-escaped,
/// percent-encoded (every common flavour), and base64 at each of the three
/// alignments it can take inside a longer encoded string.
fn encodings(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_string()];
    if let Ok(json) = serde_json::to_string(secret) {
        let inner = &json[1..json.len() - 1];
        out.push(inner.to_string());
        out.push(inner.replace('/', "\\/"));
        // Go's encoder (what many APIs are written in) escapes these three.
        out.push(
            inner
                .replace('<', "\\u003c")
                .replace('>', "\\u003e")
                .replace('&', "\\u0026"),
        );
    }
    // Some encoders escape every character that is not a letter or digit.
    for upper in [false, true] {
        let escaped: String = secret
            .chars()
            .map(|c| match c {
                c if c.is_ascii_alphanumeric() => c.to_string(),
                c if (c as u32) < 0x10000 && upper => format!("\\u{:04X}", c as u32),
                c if (c as u32) < 0x10000 => format!("\\u{:04x}", c as u32),
                c => c.to_string(),
            })
            .collect();
        out.push(escaped);
    }
    let percent = utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string();
    out.push(lower_hex(&percent));
    out.push(percent);
    let percent = utf8_percent_encode(secret, NOT_UNRESERVED).to_string();
    out.push(lower_hex(&percent));
    out.push(percent);
    out.push(url::form_urlencoded::byte_serialize(secret.as_bytes()).collect());
    for engine in [&STANDARD, &URL_SAFE] {
        for offset in 0..3 {
            let mut shifted = Zeroizing::new(vec![0u8; offset]);
            shifted.extend_from_slice(secret.as_bytes());
            let encoded = Zeroizing::new(engine.encode(&*shifted));
            // The first group mixes in the bytes before the secret and the
            // last one those after it; only the groups between are certain.
            let start = if offset == 0 { 0 } else { 4 };
            let end = encoded.len().saturating_sub(4);
            if end > start {
                out.push(encoded[start..end].to_string());
            }
            if offset == 0 {
                out.push(encoded.trim_end_matches('=').to_string());
            }
        }
    }
    out.retain(|f| f.len() >= MIN_LEN);
    out
}

/// `%2f` as well as `%2F`: encoders differ.
fn lower_hex(percent: &str) -> String {
    let mut out = String::with_capacity(percent.len());
    let mut after_percent = 0;
    for c in percent.chars() {
        if after_percent > 0 {
            out.push(c.to_ascii_lowercase());
            after_percent -= 1;
        } else {
            out.push(c);
        }
        if c == '%' {
            after_percent = 2;
        }
    }
    out
}

/// Every piece of a set of forms that scrubbing looks for, as keyed hashes:
/// each form's runs of [`MIN_RUN`] bytes (a shorter form's whole self), and
/// its prefixes of [`MIN_LEN`] bytes and more that are shorter than a run.
/// Scrubbing then costs a few lookups a byte of text, however many secrets
/// there are (a service's log is scrubbed of every tenant's). Kept as
/// hashes under a key drawn at start, so the index holds no piece of a
/// secret in clear (the forms themselves are zeroized when dropped).
#[derive(Clone, Default)]
struct Pieces {
    /// By length, `MIN_LEN..=MIN_RUN`: runs (and whole short forms).
    runs: [Keys; MIN_RUN - MIN_LEN + 1],
    /// By length, `MIN_LEN..MIN_RUN`: prefixes cut short.
    prefixes: [Keys; MIN_RUN - MIN_LEN],
}

type Keys = std::collections::HashSet<u64, std::hash::BuildHasherDefault<Prehashed>>;

impl Pieces {
    fn of<'a>(forms: impl IntoIterator<Item = &'a Zeroizing<String>>) -> Pieces {
        let mut pieces = Pieces::default();
        for form in forms {
            pieces.add(form.as_bytes());
        }
        pieces
    }

    fn add(&mut self, form: &[u8]) {
        if form.len() < MIN_LEN {
            return;
        }
        let run = MIN_RUN.min(form.len());
        let runs = &mut self.runs[run - MIN_LEN];
        for window in form.windows(run) {
            runs.insert(key(window));
        }
        for len in MIN_LEN..run {
            self.prefixes[len - MIN_LEN].insert(key(&form[..len]));
        }
    }

    fn is_empty(&self) -> bool {
        self.runs.iter().all(|s| s.is_empty())
    }

    /// Marks in `hidden` every byte of `text` covered by a run of a form, or
    /// by a prefix of one cut short at the end of the text or before an
    /// ellipsis.
    fn mark(&self, text: &[u8], hidden: &mut [bool]) {
        if text.len() < MIN_LEN || self.is_empty() {
            return;
        }
        for (i, set) in self.runs.iter().enumerate() {
            let run = MIN_LEN + i;
            if set.is_empty() || text.len() < run {
                continue;
            }
            for (at, window) in text.windows(run).enumerate() {
                if set.contains(&key(window)) {
                    hidden[at..at + run].fill(true);
                }
            }
        }
        for cut in cut_points(text) {
            for (i, set) in self.prefixes.iter().enumerate() {
                let len = MIN_LEN + i;
                if len <= cut && !set.is_empty() && set.contains(&key(&text[cut - len..cut])) {
                    hidden[cut - len..cut].fill(true);
                }
            }
        }
    }
}

/// The keyed hash of a piece. 64 bits: a chance hit among a million pieces
/// is about one in 10^13 a lookup.
fn key(piece: &[u8]) -> u64 {
    use std::hash::BuildHasher as _;
    static KEY: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    KEY.get_or_init(Default::default).hash_one(piece)
}

/// A hasher for keys that are already hashes.
#[derive(Default)]
struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; any other input is folded in whole.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Many owners' secrets, scrubbed together (a service's log holds every
/// tenant's lines). Setting an owner's unchanged set again costs a
/// comparison, a new owner's set is added to the index, and a changed or
/// removed one (a rotated secret, a tenant gone) rebuilds the index from
/// every owner's forms: rare, and about 25 µs an owner.
#[derive(Default)]
pub struct SecretPool {
    /// Each owner's forms, without their index (it would double the
    /// memory): what the pool's index is rebuilt from.
    owners: std::collections::HashMap<String, Vec<Zeroizing<String>>>,
    pieces: Pieces,
}

impl SecretPool {
    /// Makes `secrets` the set of `owner`; false when it already was.
    pub fn set(&mut self, owner: &str, secrets: &Secrets) -> bool {
        if self.owners.get(owner) == Some(&secrets.forms) {
            return false;
        }
        if self
            .owners
            .insert(owner.to_string(), secrets.forms.clone())
            .is_some()
        {
            self.rebuild();
        } else {
            for form in &secrets.forms {
                self.pieces.add(form.as_bytes());
            }
        }
        true
    }

    /// Forgets `owner`'s secrets.
    pub fn remove(&mut self, owner: &str) {
        if self.owners.remove(owner).is_some() {
            self.rebuild();
        }
    }

    fn rebuild(&mut self) {
        self.pieces = Pieces::of(self.owners.values().flatten());
    }

    /// No secret to hide.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// [`Secrets::scrub`] with every owner's secrets.
    pub fn scrub(&self, text: &str) -> String {
        scrub_with(&self.pieces, text)
    }
}

/// Where a quote may have been cut: the end of the text and every ellipsis.
fn cut_points(text: &[u8]) -> Vec<usize> {
    const ELLIPSIS: &[u8] = "…".as_bytes();
    let mut cuts: Vec<usize> = text
        .windows(ELLIPSIS.len())
        .enumerate()
        .filter(|(_, w)| *w == ELLIPSIS)
        .map(|(at, _)| at)
        .collect();
    cuts.extend(
        text.windows(3)
            .enumerate()
            .filter(|(_, w)| *w == b"...")
            .map(|(at, _)| at),
    );
    cuts.push(text.len());
    cuts
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SECRET: &str = "Zq8/vN+3kT@p!x92LmW0&rY=";

    fn secrets() -> Secrets {
        Secrets::new([SECRET], ["client-7f3a", "na1"])
    }

    fn assert_no_piece(text: &str) {
        for run in SECRET.as_bytes().windows(MIN_RUN) {
            let run = std::str::from_utf8(run).unwrap_or_default();
            assert!(!text.contains(run), "{run:?} left in {text:?}");
        }
    }

    #[test]
    fn the_plain_value_is_hidden() {
        let out = secrets().scrub(&format!("bad secret {SECRET} given"));
        assert_eq!(out, "bad secret [redacted] given");
    }

    #[test]
    fn a_value_cut_short_before_an_ellipsis_or_the_end_is_hidden() {
        for keep in [4, 5, 7, 8, 12, SECRET.len() - 1] {
            let cut = &SECRET[..keep];
            let out = secrets().scrub(&format!("Ironclad said: {cut}…"));
            assert_eq!(out, "Ironclad said: [redacted]…", "{keep}");
            let out = secrets().scrub(&format!("Ironclad said: {cut}"));
            assert_eq!(out, "Ironclad said: [redacted]", "{keep}");
        }
    }

    #[test]
    fn any_run_of_eight_characters_is_hidden_anywhere() {
        let piece = &SECRET[5..17];
        let out = secrets().scrub(&format!("x {piece} y"));
        assert_eq!(out, "x [redacted] y");
        // Seven characters in the middle of a word are left: too short to
        // tell a secret from an ordinary word.
        let out = secrets().scrub(&format!("x {} y", &SECRET[5..12]));
        assert_eq!(out, format!("x {} y", &SECRET[5..12]));
    }

    #[test]
    fn json_escaped_and_percent_encoded_forms_are_hidden() {
        let json = serde_json::to_string(SECRET).unwrap();
        let out = secrets().scrub(&format!(r#"{{"secret":{json}}}"#));
        assert_eq!(out, r#"{"secret":"[redacted]"}"#);
        let escaped = serde_json::to_string(&format!("quote: {SECRET}")).unwrap();
        assert_no_piece(&secrets().scrub(&escaped));

        let upper = utf8_percent_encode(SECRET, NON_ALPHANUMERIC).to_string();
        for encoded in [
            upper.clone(),
            lower_hex(&upper),
            utf8_percent_encode(SECRET, NOT_UNRESERVED).to_string(),
            url::form_urlencoded::byte_serialize(SECRET.as_bytes()).collect(),
        ] {
            let out = secrets().scrub(&format!("GET /token?client_secret={encoded}&x=1"));
            assert_eq!(out, "GET /token?client_secret=[redacted]&x=1", "{encoded}");
        }
    }

    #[test]
    fn base64_of_id_and_secret_is_hidden_whole() {
        let basic = STANDARD.encode(format!("client-7f3a:{SECRET}"));
        let out = secrets().scrub(&format!("Authorization: Basic {basic} refused"));
        assert_eq!(out, "Authorization: Basic [redacted] refused");
        // With an id the host does not know, what encodes the secret is
        // still hidden, whatever its alignment: at most the one group of four
        // characters it shares with the id, and the last group, are left.
        for id in ["u", "us", "use", "someone-else"] {
            let basic = URL_SAFE.encode(format!("{id}:{SECRET}"));
            let out = secrets().scrub(&basic);
            let at = out.find(REDACTED).unwrap();
            let id_groups = (id.len() + 1) / 3 * 4;
            assert!(at <= id_groups + 4, "{id}: {out}");
            assert!(out.len() - at - REDACTED.len() <= 4, "{id}: {out}");
        }
    }

    #[test]
    fn ordinary_text_and_short_values_are_left_alone() {
        let s = Secrets::new(["abc", "longer-secret-value"], ["id"]);
        let text = "abc is fine, so is longer- and value";
        assert_eq!(s.scrub(text), text);
        assert_eq!(Secrets::default().scrub("anything"), "anything");
        assert!(format!("{:?}", secrets()).contains("hidden"));
        assert!(!format!("{:?}", secrets()).contains(SECRET));
    }

    #[test]
    fn non_ascii_text_around_a_secret_stays_whole() {
        let s = Secrets::new(["clé-secrète-été"], []);
        assert_eq!(s.scrub("é clé-secrète-été é"), "é [redacted] é");
        assert_eq!(s.scrub("ééé"), "ééé");
    }

    #[test]
    fn escapes_of_every_encoder_are_hidden() {
        let pw = "Ab1<x>&\"q\\/9zZ";
        let s = Secrets::default().with(pw);
        let go = "Ab1\\u003cx\\u003e\\u0026\\\"q\\\\/9zZ";
        let escape = |upper: bool| -> String {
            pw.chars()
                .map(|c| match c {
                    c if c.is_ascii_alphanumeric() => c.to_string(),
                    c if upper => format!("\\u{:04X}", c as u32),
                    c => format!("\\u{:04x}", c as u32),
                })
                .collect()
        };
        for text in [
            format!("detail: {go}"),
            format!("detail: {}", escape(false)),
            format!("detail: {}", escape(true)),
        ] {
            let out = s.scrub(&text);
            assert_eq!(out, "detail: [redacted]", "{text}");
        }
    }

    #[test]
    fn a_short_secret_is_hidden_whole_and_cut_short() {
        let s = Secrets::new(["k9#Qz"], std::iter::empty::<&str>());
        assert_eq!(s.scrub("key k9#Qz here"), "key [redacted] here");
        assert_eq!(s.scrub("key k9#Q"), "key [redacted]");
        assert_eq!(s.scrub("k9#Q..."), "[redacted]...");
        assert_eq!(
            s.scrub("key k9# here"),
            "key k9# here",
            "3 characters are left"
        );
    }

    /// The definition the index stands for, one form at a time.
    fn reference(forms: &[&str], text: &str) -> Vec<bool> {
        let bytes = text.as_bytes();
        let mut hidden = vec![false; bytes.len()];
        for form in forms.iter().map(|f| f.as_bytes()) {
            let run = MIN_RUN.min(form.len());
            if bytes.len() < MIN_LEN || form.len() < MIN_LEN {
                continue;
            }
            for at in 0..bytes.len().saturating_sub(run - 1) {
                if form.windows(run).any(|w| w == &bytes[at..at + run]) {
                    hidden[at..at + run].fill(true);
                }
            }
            for cut in cut_points(bytes) {
                for len in MIN_LEN..run {
                    if len <= cut && form.starts_with(&bytes[cut - len..cut]) {
                        hidden[cut - len..cut].fill(true);
                    }
                }
            }
        }
        hidden
    }

    #[test]
    fn the_index_hides_what_the_definition_does() {
        let forms = ["Zq8/vN+3kT@p", "k9#Qz", "abcd", "xY7!xY7!xY7!q"];
        let pieces = Pieces::of(&forms.map(|f| Zeroizing::new(f.to_string())));
        // Texts of pieces of the forms, cut anywhere, and filler.
        let alphabet: Vec<&str> = forms
            .iter()
            .flat_map(|f| (0..f.len()).map(move |i| &f[i..]))
            .chain(["..", ".", "…", " ", "Zq8", "q", "xY7!xY"])
            .collect();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..2_000 {
            let mut text = String::new();
            for _ in 0..(seed % 5 + 1) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let piece = alphabet[(seed % alphabet.len() as u64) as usize];
                let end = (seed >> 32) as usize % (piece.len() + 1);
                text.push_str(piece.get(..end).unwrap_or(piece));
            }
            let mut got = vec![false; text.len()];
            pieces.mark(text.as_bytes(), &mut got);
            assert_eq!(got, reference(&forms, &text), "{text:?}");
        }
    }

    #[test]
    fn a_pool_scrubs_every_owner_and_replaces_one_alone() {
        let a = Secrets::new(["alpha-secret-0001"], std::iter::empty::<&str>());
        let b = Secrets::new(["bravo-secret-0002"], std::iter::empty::<&str>());
        let mut pool = SecretPool::default();
        assert!(pool.is_empty());
        assert!(pool.set("a", &a));
        assert!(pool.set("b", &b));
        assert!(!pool.set("a", &a), "the same set again changes nothing");
        let line = "a alpha-secret-0001 b bravo-secret-0002";
        assert_eq!(pool.scrub(line), "a [redacted] b [redacted]");

        // A rotated secret: the old one is no longer looked for, b's still
        // is, though the two share runs ("-secret-000").
        let a2 = Secrets::new(["alpha-rotated-9999"], std::iter::empty::<&str>());
        assert!(pool.set("a", &a2));
        assert_eq!(
            pool.scrub("alpha-rotated-9999 bravo-secret-0002"),
            "[redacted] [redacted]"
        );
        assert_eq!(pool.scrub("alpha-s"), "alpha-s", "seven characters, no run");
        pool.remove("b");
        assert_eq!(pool.scrub("bravo-secret-0002"), "bravo-secret-0002");
        pool.remove("a");
        assert!(pool.is_empty());
    }
}
