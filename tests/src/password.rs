//! Ironclad's password rule for users created with a password.

/// The characters Ironclad counts as "special" (ASCII punctuation).
pub const PASSWORD_SPECIALS: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// The rule as Ironclad words it; quoted in the 400 a weak password gets.
pub const PASSWORD_RULE: &str = "Password must be at least 16 characters long and contain a \
lowercase letter, an uppercase letter, a number and a special character \
(!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~)";

/// True when `p` satisfies Ironclad's rule: at least 16 characters, with a
/// lowercase letter, an uppercase letter, a digit and one of
/// [`PASSWORD_SPECIALS`].
pub fn check_password(p: &str) -> bool {
    p.chars().count() >= 16
        && p.chars().any(|c| c.is_ascii_lowercase())
        && p.chars().any(|c| c.is_ascii_uppercase())
        && p.chars().any(|c| c.is_ascii_digit())
        && p.chars().any(|c| PASSWORD_SPECIALS.contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule() {
        assert!(check_password("Abcdefghijklmn1!"));
        assert!(check_password("aB3~aaaaaaaaaaaaaaaa"));
        assert!(check_password("aB3\\aaaaaaaaaaaa"));
        // 15 characters.
        assert!(!check_password("Abcdefghijklm1!"));
        assert!(!check_password("abcdefghijklmn1!"));
        assert!(!check_password("ABCDEFGHIJKLMN1!"));
        assert!(!check_password("Abcdefghijklmno!"));
        assert!(!check_password("Abcdefghijklmno1"));
        // A space or a non-ASCII symbol is not one of the specials.
        assert!(!check_password("Abcdefghijklm 1x"));
        assert!(!check_password("Abcdefghijklm§1x"));
        assert!(!check_password(""));
        assert_eq!(PASSWORD_SPECIALS.len(), 32);
        assert!(PASSWORD_SPECIALS.chars().all(|c| c.is_ascii_punctuation()));
    }
}
