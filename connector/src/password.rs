//! Passwords for new accounts, built to Ironclad's rule: at least 16 characters with a lowercase
//! letter, an uppercase letter, a digit and one of its specials. Every character is drawn
//! uniformly (rejection sampling) from a random source and the positions are shuffled with the
//! same source, so where a required class lands says nothing. The source is a trait so the rule
//! can be checked natively with a deterministic one; the component uses `wasi:random/random`.

use std::fmt;

use crate::wit::RandomPassword;

pub const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
pub const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
pub const DIGITS: &[u8] = b"0123456789";
/// The characters Ironclad counts as special (all of ASCII punctuation).
pub const SPECIALS: &[u8] = b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// Ironclad refuses shorter passwords.
pub const MIN_LENGTH: u32 = 16;
/// Longer requests are cut to this; nobody types these, and the body stays small.
pub const MAX_LENGTH: u32 = 128;

/// Where the randomness comes from.
pub trait RandomSource {
    fn next_u64(&mut self) -> u64;
}

/// The host's cryptographically secure source (`wasi:random/random`).
pub struct WasiRandom;

impl RandomSource for WasiRandom {
    fn next_u64(&mut self) -> u64 {
        crate::wasi::random::random::get_random_u64()
    }
}

/// A generated password: never shown by `Debug`, handed out only by `expose`/`into_inner`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What will be generated: the request, raised to what Ironclad requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub length: u32,
    pub min_lower: u32,
    pub min_upper: u32,
    pub min_digits: u32,
    pub min_special: u32,
}

impl Policy {
    /// Raises the length to Ironclad's 16 and every class minimum to one, caps the length at
    /// [`MAX_LENGTH`]; refuses minimums that cannot fit.
    pub fn for_request(r: &RandomPassword) -> Result<Policy, String> {
        let p = Policy {
            length: r.length.clamp(MIN_LENGTH, MAX_LENGTH),
            min_lower: r.min_lower.max(1),
            min_upper: r.min_upper.max(1),
            min_digits: r.min_digits.max(1),
            min_special: r.min_special.max(1),
        };
        let required = [p.min_lower, p.min_upper, p.min_digits, p.min_special]
            .iter()
            .fold(0u64, |sum, n| sum + u64::from(*n));
        if required > u64::from(MAX_LENGTH) {
            return Err(format!(
                "the password's per-class minimums add up to {required} characters, more than the {MAX_LENGTH} this connector generates"
            ));
        }
        // Minimums that add up to more than the length make it longer, not fail.
        let length = p.length.max(u32::try_from(required).unwrap_or(MAX_LENGTH));
        Ok(Policy { length, ..p })
    }
}

/// A uniform index below `n` (> 0): draws in the short top range that would favour low values
/// are thrown away.
fn below(rng: &mut impl RandomSource, n: usize) -> usize {
    let n = n as u64;
    // 2^64 mod n: accepting only draws at or above it leaves a multiple of n outcomes.
    let reject_under = n.wrapping_neg() % n;
    loop {
        let x = rng.next_u64();
        if x >= reject_under {
            return (x % n) as usize;
        }
    }
}

fn pick(rng: &mut impl RandomSource, set: &[u8]) -> u8 {
    set[below(rng, set.len())]
}

pub fn generate(policy: &Policy, rng: &mut impl RandomSource) -> Password {
    let all: Vec<u8> = [LOWER, UPPER, DIGITS, SPECIALS].concat();
    let mut chars = Vec::with_capacity(policy.length as usize);
    for (set, min) in [
        (LOWER, policy.min_lower),
        (UPPER, policy.min_upper),
        (DIGITS, policy.min_digits),
        (SPECIALS, policy.min_special),
    ] {
        for _ in 0..min {
            chars.push(pick(rng, set));
        }
    }
    while chars.len() < policy.length as usize {
        chars.push(pick(rng, &all));
    }
    // Fisher–Yates: the required characters end up anywhere.
    for i in (1..chars.len()).rev() {
        chars.swap(i, below(rng, i + 1));
    }
    Password(chars.into_iter().map(char::from).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// splitmix64: deterministic and good enough to exercise every path.
    struct Seq(u64);

    impl RandomSource for Seq {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
    }

    /// Replays fixed values, then repeats the last.
    struct Fixed(Vec<u64>);

    impl RandomSource for Fixed {
        fn next_u64(&mut self) -> u64 {
            if self.0.len() > 1 {
                self.0.remove(0)
            } else {
                self.0[0]
            }
        }
    }

    fn request(length: u32, mins: [u32; 4]) -> RandomPassword {
        RandomPassword {
            length,
            min_lower: mins[0],
            min_upper: mins[1],
            min_digits: mins[2],
            min_special: mins[3],
        }
    }

    fn count(p: &str, set: &[u8]) -> u32 {
        p.bytes().filter(|b| set.contains(b)).count() as u32
    }

    /// Ironclad's rule, written independently of the generator.
    fn meets_ironclad_rule(p: &str) -> bool {
        p.chars().count() >= 16
            && p.chars().any(|c| c.is_ascii_lowercase())
            && p.chars().any(|c| c.is_ascii_uppercase())
            && p.chars().any(|c| c.is_ascii_digit())
            && p.chars()
                .any(|c| "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".contains(c))
    }

    #[test]
    fn specials_are_ironclads_set() {
        assert_eq!(SPECIALS.len(), 32);
        assert!(SPECIALS.iter().all(u8::is_ascii_punctuation));
    }

    #[test]
    fn every_password_meets_the_rule() {
        let mut rng = Seq(7);
        for length in [0, 8, 16, 24, 64] {
            let policy = Policy::for_request(&request(length, [1, 1, 1, 1])).unwrap();
            for _ in 0..2000 {
                let p = generate(&policy, &mut rng);
                let p = p.expose();
                assert!(meets_ironclad_rule(p), "{p}");
                assert_eq!(p.len(), length.max(16) as usize);
                assert!(p.bytes().all(|b| b.is_ascii_graphic()));
            }
        }
    }

    #[test]
    fn zero_minimums_still_get_one_of_each() {
        let policy = Policy::for_request(&request(16, [0, 0, 0, 0])).unwrap();
        assert_eq!((policy.min_lower, policy.min_special), (1, 1));
        let mut rng = Seq(1);
        for _ in 0..2000 {
            assert!(meets_ironclad_rule(generate(&policy, &mut rng).expose()));
        }
    }

    #[test]
    fn minimums_are_honoured() {
        let mut rng = Seq(42);
        let policy = Policy::for_request(&request(20, [3, 4, 5, 6])).unwrap();
        for _ in 0..2000 {
            let p = generate(&policy, &mut rng);
            let p = p.expose();
            assert_eq!(p.len(), 20);
            assert!(count(p, LOWER) >= 3, "{p}");
            assert!(count(p, UPPER) >= 4, "{p}");
            assert!(count(p, DIGITS) >= 5, "{p}");
            assert!(count(p, SPECIALS) >= 6, "{p}");
        }
    }

    #[test]
    fn length_is_raised_and_capped() {
        assert_eq!(Policy::for_request(&request(8, [1; 4])).unwrap().length, 16);
        assert_eq!(
            Policy::for_request(&request(24, [1; 4])).unwrap().length,
            24
        );
        assert_eq!(
            Policy::for_request(&request(10_000, [1; 4]))
                .unwrap()
                .length,
            128
        );
        // Minimums longer than the length make it longer.
        assert_eq!(
            Policy::for_request(&request(16, [10, 10, 1, 1]))
                .unwrap()
                .length,
            22
        );
        let err = Policy::for_request(&request(16, [100, 100, 1, 1])).unwrap_err();
        assert!(err.contains("202"), "{err}");
        let err = Policy::for_request(&request(16, [u32::MAX; 4])).unwrap_err();
        assert!(err.contains("more than the 128"), "{err}");
    }

    #[test]
    fn sampling_rejects_the_biased_range() {
        // 2^64 mod 94 = 72: draws below 72 are refused, 72 is the first accepted.
        let mut rng = Fixed(vec![3, 71, 72]);
        assert_eq!(below(&mut rng, 94), 72);
        let mut rng = Fixed(vec![u64::MAX]);
        assert_eq!(below(&mut rng, 94), (u64::MAX % 94) as usize);
        // Powers of two reject nothing.
        let mut rng = Fixed(vec![0]);
        assert_eq!(below(&mut rng, 32), 0);
        let mut rng = Fixed(vec![5]);
        assert_eq!(below(&mut rng, 1), 0);
    }

    #[test]
    fn characters_are_spread_over_the_alphabet_and_positions() {
        let mut rng = Seq(3);
        let policy = Policy::for_request(&request(16, [1; 4])).unwrap();
        let mut seen = std::collections::HashSet::new();
        let mut special_at = [0u32; 16];
        for _ in 0..5000 {
            let p = generate(&policy, &mut rng);
            for (i, b) in p.expose().bytes().enumerate() {
                seen.insert(b);
                if SPECIALS.contains(&b) {
                    special_at[i] += 1;
                }
            }
        }
        assert_eq!(seen.len(), 94, "every character shows up");
        // The required special is not stuck at its starting position.
        assert!(special_at.iter().all(|n| *n > 500), "{special_at:?}");
    }

    #[test]
    fn debug_never_shows_it() {
        let p = generate(
            &Policy::for_request(&request(16, [1; 4])).unwrap(),
            &mut Seq(9),
        );
        assert_eq!(format!("{p:?}"), "<redacted>");
        assert!(!format!("{:?}", Some(&p)).contains(p.expose()));
    }
}
