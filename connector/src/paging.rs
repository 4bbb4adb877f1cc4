//! Offset paging over SCIM lists. The page token is the 1-based `startIndex` as a decimal string:
//! opaque to the host, trivial to check here.

use crate::wit::ConnectorError;

/// Ironclad's maximum page size: fewer round trips under its per-minute rate limits.
pub const PAGE_SIZE: u32 = 1000;

/// `startIndex` is an int32 in Ironclad's document.
const MAX_START: u64 = i32::MAX as u64;

/// The `startIndex` a token stands for. No token (or an empty one) starts the list.
pub fn start_index(token: Option<&str>) -> Result<u64, ConnectorError> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(1);
    };
    token
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| token.parse::<u64>().ok())
        .flatten()
        .filter(|s| (1..=MAX_START).contains(s))
        .ok_or_else(|| {
            ConnectorError::InvalidArgument(format!(
                "page token '{}' was not issued by this connector: start the listing again without a token",
                crate::errors::truncate(token)
            ))
        })
}

/// What one page tells about the next.
pub struct Page {
    /// The `startIndex` asked for.
    pub start: u64,
    /// Entries Ironclad sent, named or not.
    pub len: usize,
    /// Entries already returned from an earlier page of this listing.
    pub repeated: usize,
    pub total_results: Option<u64>,
}

/// The token for the page after `page`, or `None` when the list is done.
///
/// Done when the page is empty, when it reaches `totalResults`, or when every entry is one we
/// already returned: a server that ignores `startIndex` would otherwise be paged forever.
///
/// A `totalResults` that is visibly wrong (this page already runs past it) is not trusted: the
/// listing then goes on while pages come back full, so a total that lies low loses nothing. One
/// that lies high costs one empty page at the end.
pub fn next_token(page: &Page) -> Option<String> {
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
            (delivered_past_total && full).then(|| next.to_string())
        }
        _ => Some(next.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn next(start: u64, len: usize, repeated: usize, total: Option<u64>) -> Option<String> {
        next_token(&Page {
            start,
            len,
            repeated,
            total_results: total,
        })
    }

    #[test]
    fn a_total_that_lies_low_is_not_trusted_while_pages_are_full() {
        // Claims 1500, but the second full page already runs to 2000.
        assert_eq!(next(1001, 1000, 0, Some(1500)).as_deref(), Some("2001"));
        // A short page past a lying total ends the listing.
        assert_eq!(next(2001, 600, 0, Some(1500)), None);
        // An honest total is trusted: no extra request at an exact multiple.
        assert_eq!(next(1001, 1000, 0, Some(2000)), None);
    }

    #[test]
    fn a_total_that_lies_high_ends_at_the_first_empty_page() {
        assert_eq!(next(1, 1000, 0, Some(1_000_000)).as_deref(), Some("1001"));
        assert_eq!(next(1001, 0, 0, Some(1_000_000)), None);
    }

    #[test]
    fn tokens_round_trip() {
        assert_eq!(start_index(None).unwrap(), 1);
        assert_eq!(start_index(Some("")).unwrap(), 1);
        assert_eq!(start_index(Some("1001")).unwrap(), 1001);
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
        ] {
            assert!(
                matches!(
                    start_index(Some(bad)),
                    Err(ConnectorError::InvalidArgument(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn next_token_follows_total_results() {
        assert_eq!(next(1, 1000, 0, Some(2500)).as_deref(), Some("1001"));
        assert_eq!(next(1001, 1000, 0, Some(2500)).as_deref(), Some("2001"));
        assert_eq!(next(2001, 500, 0, Some(2500)), None);
        // Exactly one full page.
        assert_eq!(next(1, 1000, 0, Some(1000)), None);
        // One entry past a full page.
        assert_eq!(next(1, 1000, 0, Some(1001)).as_deref(), Some("1001"));
        // A short page that does not reach the total (entries removed while paging): go on.
        assert_eq!(next(1, 10, 0, Some(1000)).as_deref(), Some("11"));
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
        assert_eq!(next(1, 1000, 0, None).as_deref(), Some("1001"));
        assert_eq!(next(1001, 3, 0, None).as_deref(), Some("1004"));
    }

    #[test]
    fn a_page_that_repeats_ends_the_list() {
        // Everything already seen: the server ignored startIndex.
        assert_eq!(next(1001, 1000, 1000, None), None);
        assert_eq!(next(1001, 1000, 1000, Some(5000)), None);
        // Some repeats (a user removed and re-added while paging) are not a loop.
        assert_eq!(next(1001, 1000, 3, Some(5000)).as_deref(), Some("2001"));
    }

    #[test]
    fn next_token_never_equals_the_current_one_or_overflows() {
        for (start, len) in [(1, 1), (7, 3), (MAX_START - 1, 1)] {
            if let Some(t) = next(start, len, 0, None) {
                assert_ne!(t, start.to_string());
            }
        }
        assert_eq!(next(MAX_START, 1000, 0, None), None);
        assert_eq!(next(u64::MAX, 1, 0, None), None);
    }
}
