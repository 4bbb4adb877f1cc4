//! Offset paging over SCIM lists. The page token is the 1-based `startIndex` as a decimal string,
//! followed by `:` and the `totalResults` the listing's first page announced when it announced
//! one ("2001:2500"): opaque to the host, trivial to check here, and enough to tell a listing that
//! never ends from one whose total was a little off. A plain number (what earlier versions issued)
//! is still accepted.

use crate::wit::ConnectorError;

/// Ironclad's maximum page size: fewer round trips under its per-minute rate limits.
pub const PAGE_SIZE: u32 = 1000;

/// `startIndex` is an int32 in Ironclad's document.
const MAX_START: u64 = i32::MAX as u64;

/// Full pages a listing may run past its first total, however small that total: ten, or the
/// total itself when that is more (see [`runaway_bound`]).
const RUNAWAY_PAGES: u64 = 10;

/// Where a token points: the `startIndex` to ask for, and the first page's `totalResults`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub start: u64,
    pub first_total: Option<u64>,
}

/// The position a token stands for. No token (or an empty one) starts the list.
pub fn position(token: Option<&str>) -> Result<Position, ConnectorError> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(Position {
            start: 1,
            first_total: None,
        });
    };
    let (start, total) = match token.split_once(':') {
        Some((start, total)) => (start, Some(total)),
        None => (token, None),
    };
    let start = decimal(start).filter(|s| (1..=MAX_START).contains(s));
    let first_total = total.map(decimal);
    match (start, first_total) {
        (Some(start), None) => Ok(Position {
            start,
            first_total: None,
        }),
        (Some(start), Some(Some(total))) => Ok(Position {
            start,
            first_total: Some(total),
        }),
        _ => Err(ConnectorError::InvalidArgument(format!(
            "page token '{}' was not issued by this connector: start the listing again without a token",
            crate::errors::truncate(token)
        ))),
    }
}

/// Digits only: no sign, blank or exponent slips through `parse`.
fn decimal(s: &str) -> Option<u64> {
    s.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| s.parse::<u64>().ok())
        .flatten()
}

/// The token for `start`, carrying the first total along.
fn token(start: u64, first_total: Option<u64>) -> String {
    match first_total {
        Some(total) => format!("{start}:{total}"),
        None => start.to_string(),
    }
}

/// What one page tells about the next.
pub struct Page {
    /// What is listed, for the error: "users" or "groups".
    pub noun: &'static str,
    /// The `startIndex` asked for.
    pub start: u64,
    /// Entries Ironclad sent, named or not.
    pub len: usize,
    /// Entries already returned from an earlier page of this listing.
    pub repeated: usize,
    pub total_results: Option<u64>,
    /// `totalResults` of the listing's first page (of the first page this token chain knows,
    /// after a plain-number token).
    pub first_total: Option<u64>,
}

/// How many entries a listing may deliver, counted from its start, before it is stopped: twice
/// the first total, and at least [`RUNAWAY_PAGES`] full pages past it. A total that lies low, or
/// a tenant that grows while it is listed, stays well within; a server that never ends the
/// listing (fresh ids on every full page) would otherwise be paged until the host runs out of
/// memory or `startIndex` runs out of int32.
pub fn runaway_bound(first_total: u64) -> u64 {
    let pages = RUNAWAY_PAGES * u64::from(PAGE_SIZE);
    first_total
        .saturating_mul(2)
        .max(first_total.saturating_add(pages))
}

/// The token for the page after `page`, `None` when the list is done, or an error when the
/// listing has run past [`runaway_bound`] of its first total.
///
/// Done when the page is empty, when it reaches `totalResults`, or when every entry is one we
/// already returned: a server that ignores `startIndex` would otherwise be paged forever.
///
/// A `totalResults` that is visibly wrong (this page already runs past it) is not trusted: the
/// listing then goes on while pages come back full, so a total that lies low loses nothing. One
/// that lies high costs one empty page at the end.
pub fn next_token(page: &Page) -> Result<Option<String>, ConnectorError> {
    let Some(next) = next_start(page) else {
        return Ok(None);
    };
    if let Some(first) = page.first_total {
        let bound = runaway_bound(first);
        // `next - 1` entries delivered so far, this page's included.
        if next - 1 > bound {
            return Err(runaway(page.noun, first, bound));
        }
    }
    Ok(Some(token(next, page.first_total)))
}

fn next_start(page: &Page) -> Option<u64> {
    let len = page.len as u64;
    if len == 0 || page.repeated >= page.len {
        return None;
    }
    let next = page.start.checked_add(len)?;
    if next > MAX_START {
        return None;
    }
    // `next > total` is Ironclad's `startIndex + len(Resources) - 1 >= totalResults`.
    match page.total_results {
        Some(total) if next > total => {
            let delivered_past_total = next - 1 > total;
            let full = len >= u64::from(PAGE_SIZE);
            (delivered_past_total && full).then_some(next)
        }
        _ => Some(next),
    }
}

/// Not a silent stop: the host must not take a cut-off listing for the whole tenant.
fn runaway(noun: &str, first_total: u64, bound: u64) -> ConnectorError {
    ConnectorError::Other(format!(
        "Ironclad announced {first_total} {noun} but kept sending full pages past {bound}; the listing was stopped: Ironclad (or a proxy in front of it) is not ending the listing, so sync again later, and report it to Ironclad support if it happens again"
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// The next page's `startIndex`, on a page whose total is also the listing's first.
    fn next(start: u64, len: usize, repeated: usize, total: Option<u64>) -> Option<u64> {
        next_token(&Page {
            noun: "users",
            start,
            len,
            repeated,
            total_results: total,
            first_total: total,
        })
        .unwrap()
        .map(|t| {
            let at = position(Some(&t)).unwrap();
            assert_eq!(at.first_total, total, "{t}");
            at.start
        })
    }

    /// The next token, on a page of a listing whose first page announced `first`: full pages
    /// with nothing repeated.
    fn next_in(
        first: Option<u64>,
        start: u64,
        len: usize,
        total: Option<u64>,
    ) -> Result<Option<String>, ConnectorError> {
        next_token(&Page {
            noun: "users",
            start,
            len,
            repeated: 0,
            total_results: total,
            first_total: first,
        })
    }

    /// The message of a listing stopped as a runaway.
    fn stopped(r: Result<Option<String>, ConnectorError>) -> String {
        match r {
            Err(ConnectorError::Other(m)) => m,
            other => panic!("expected the listing to be stopped, got {other:?}"),
        }
    }

    #[test]
    fn a_total_that_lies_low_is_not_trusted_while_pages_are_full() {
        // Claims 1500, but the second full page already runs to 2000.
        assert_eq!(next(1001, 1000, 0, Some(1500)), Some(2001));
        // A short page past a lying total ends the listing.
        assert_eq!(next(2001, 600, 0, Some(1500)), None);
        // An honest total is trusted: no extra request at an exact multiple.
        assert_eq!(next(1001, 1000, 0, Some(2000)), None);
    }

    #[test]
    fn a_total_that_lies_high_ends_at_the_first_empty_page() {
        assert_eq!(next(1, 1000, 0, Some(1_000_000)), Some(1001));
        assert_eq!(next(1001, 0, 0, Some(1_000_000)), None);
    }

    fn at(start: u64, first_total: Option<u64>) -> Position {
        Position { start, first_total }
    }

    #[test]
    fn tokens_round_trip() {
        assert_eq!(position(None).unwrap(), at(1, None));
        assert_eq!(position(Some("")).unwrap(), at(1, None));
        assert_eq!(position(Some("1001:2500")).unwrap(), at(1001, Some(2500)));
        assert_eq!(position(Some("1001:0")).unwrap(), at(1001, Some(0)));
        assert_eq!(
            next_in(Some(2500), 1, 1000, Some(2500)).unwrap().as_deref(),
            Some("1001:2500")
        );
        // No total announced: a plain number, as before.
        assert_eq!(
            next_in(None, 1, 1000, None).unwrap().as_deref(),
            Some("1001")
        );
    }

    #[test]
    fn plain_number_tokens_are_still_accepted() {
        assert_eq!(position(Some("1001")).unwrap(), at(1001, None));
        // Resumed from one, the listing carries this page's total from there on.
        assert_eq!(
            next_in(Some(2500), 1001, 1000, Some(2500))
                .unwrap()
                .as_deref(),
            Some("2001:2500")
        );
    }

    #[test]
    fn foreign_tokens_are_refused() {
        for bad in [
            "0",
            "-5",
            "+3",
            "abc",
            " 7",
            "1e3",
            "99999999999999999999",
            "2147483648",
            "1001:",
            ":2500",
            "0:2500",
            "1001:-1",
            "1001:2500:7",
            "1001: 2500",
            "1001:99999999999999999999",
        ] {
            assert!(
                matches!(position(Some(bad)), Err(ConnectorError::InvalidArgument(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_bound_is_twice_the_first_total_or_ten_pages_past_it() {
        assert_eq!(runaway_bound(0), 10_000);
        assert_eq!(runaway_bound(2500), 12_500);
        assert_eq!(runaway_bound(10_000), 20_000);
        assert_eq!(runaway_bound(100_000), 200_000);
        assert_eq!(runaway_bound(u64::MAX), u64::MAX);
    }

    #[test]
    fn small_lies_still_page_on() {
        // Announced 1500, really 5300: full pages go on past the total, the last one ends it.
        let first = Some(1500);
        for start in [1001, 2001, 3001, 4001] {
            let t = next_in(first, start, 1000, first).unwrap().unwrap();
            assert_eq!(t, format!("{}:1500", start + 1000));
        }
        assert_eq!(next_in(first, 5001, 300, first).unwrap(), None);
        // A tenant that grew while it was listed: later pages announce more, still within.
        assert_eq!(
            next_in(Some(3500), 3001, 1000, Some(3700))
                .unwrap()
                .as_deref(),
            Some("4001:3500")
        );
        // Up to the bound itself, inclusive.
        assert_eq!(
            next_in(Some(2500), 11_501, 1000, Some(2500))
                .unwrap()
                .as_deref(),
            Some("12501:2500")
        );
    }

    #[test]
    fn full_pages_far_past_the_first_total_stop_the_listing() {
        // Ten pages past 2500 (12,500): the page that delivers the 12,501st entry stops it.
        let m = stopped(next_in(Some(2500), 11_502, 1000, Some(2500)));
        assert_eq!(
            m,
            "Ironclad announced 2500 users but kept sending full pages past 12500; the listing was stopped: Ironclad (or a proxy in front of it) is not ending the listing, so sync again later, and report it to Ironclad support if it happens again"
        );
        // Twice a large total, whatever later pages announce.
        assert!(next_in(Some(100_000), 199_001, 1000, Some(100_000)).is_ok());
        stopped(next_in(Some(100_000), 200_001, 1000, Some(10)));
        stopped(next_in(Some(100_000), 200_001, 1000, None));
        // A tenant that claims to be empty gets ten pages.
        stopped(next_in(Some(0), 10_001, 1000, Some(0)));
        // Ending the listing is never an error, however far it ran.
        assert_eq!(next_in(Some(0), 50_001, 0, Some(0)).unwrap(), None);
        assert_eq!(next_in(Some(10), 50_001, 5, Some(10)).unwrap(), None);
    }

    #[test]
    fn without_a_first_total_there_is_no_bound() {
        assert_eq!(
            next_in(None, 1_000_001, 1000, None).unwrap().as_deref(),
            Some("1001001")
        );
    }

    #[test]
    fn next_token_follows_total_results() {
        assert_eq!(next(1, 1000, 0, Some(2500)), Some(1001));
        assert_eq!(next(1001, 1000, 0, Some(2500)), Some(2001));
        assert_eq!(next(2001, 500, 0, Some(2500)), None);
        // Exactly one full page.
        assert_eq!(next(1, 1000, 0, Some(1000)), None);
        // One entry past a full page.
        assert_eq!(next(1, 1000, 0, Some(1001)), Some(1001));
        // A short page that does not reach the total (entries removed while paging): go on.
        assert_eq!(next(1, 10, 0, Some(1000)), Some(11));
        // totalResults smaller than what was sent (entries added while paging): stop.
        assert_eq!(next(1, 30, 0, Some(25)), None);
        assert_eq!(next(1, 5, 0, Some(0)), None);
    }

    #[test]
    fn empty_page_ends_the_list() {
        assert_eq!(next(1, 0, 0, None), None);
        assert_eq!(next(1001, 0, 0, Some(5000)), None);
    }

    #[test]
    fn without_total_results_pages_until_empty() {
        assert_eq!(next(1, 1000, 0, None), Some(1001));
        assert_eq!(next(1001, 3, 0, None), Some(1004));
    }

    #[test]
    fn a_page_that_repeats_ends_the_list() {
        // Everything already seen: the server ignored startIndex.
        assert_eq!(next(1001, 1000, 1000, None), None);
        assert_eq!(next(1001, 1000, 1000, Some(5000)), None);
        // Some repeats (a user removed and re-added while paging) are not a loop.
        assert_eq!(next(1001, 1000, 3, Some(5000)), Some(2001));
    }

    #[test]
    fn next_token_never_equals_the_current_one_or_overflows() {
        for (start, len) in [(1, 1), (7, 3), (MAX_START - 1, 1)] {
            if let Some(t) = next(start, len, 0, None) {
                assert_ne!(t, start);
            }
        }
        assert_eq!(next(MAX_START, 1000, 0, None), None);
        assert_eq!(next(u64::MAX, 1, 0, None), None);
    }
}
