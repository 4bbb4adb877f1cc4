//! `--endless-pages`: a listing that never ends, as a hostile application
//! would send to exhaust the memory of whoever pages through it. Every page
//! is full, entries past the real tenant are made up on the spot with fresh
//! ids, and `totalResults` keeps announcing the tenant's real size.

use std::ops::Range;

use crate::scim::MAX_COUNT;
use crate::tenant::{Group, User};

/// The 0-based positions a page covers, never cut at the tenant's end:
/// `count` as asked (at most the server's page size), from `startIndex`
/// (below 1 counts as 1). Returns the startIndex to echo too.
pub(crate) fn page(start_index: i64, count: i64) -> (usize, Range<usize>) {
    let start = usize::try_from(start_index.max(1)).unwrap_or(usize::MAX);
    let count = usize::try_from(count.clamp(0, MAX_COUNT)).unwrap_or(0);
    let from = start - 1;
    (start, from..from.saturating_add(count))
}

/// The entries of `positions` from `real`, then made-up ones for the
/// positions past its end: each position always gets the same one, so a
/// page asked twice is the same page.
pub(crate) fn entries<'a, T>(
    real: &'a [T],
    made: &'a [T],
    positions: &Range<usize>,
) -> impl Iterator<Item = &'a T> {
    let from = positions.start.min(real.len());
    let to = positions.end.min(real.len());
    real[from..to].iter().chain(made)
}

/// The made-up users for the positions past `real` (the tenant's size).
pub(crate) fn users(positions: &Range<usize>, real: usize) -> Vec<User> {
    made_up(positions, real).map(user).collect()
}

pub(crate) fn groups(positions: &Range<usize>, real: usize) -> Vec<Group> {
    made_up(positions, real).map(group).collect()
}

fn made_up(positions: &Range<usize>, real: usize) -> Range<usize> {
    positions.start.max(real)..positions.end.max(real)
}

/// 24 hex characters like a real id, starting with a prefix no generated id
/// (an ObjectId from 2019 on) has.
fn user(position: usize) -> User {
    User {
        id: format!("e0d1e55{position:017x}"),
        user_name: format!("endless.{position}@example-tenant.test"),
        given_name: "Endless".into(),
        family_name: format!("User{position}"),
        title: None,
        department: None,
        provider: "local".into(),
        created: "2024-01-01T00:00:00.000Z".into(),
        admin: false,
        password: None,
    }
}

/// A UUID like a real group id, unique per position.
fn group(position: usize) -> Group {
    Group {
        id: format!("e0d1e55e-0000-4000-8000-{:012x}", position % (1 << 48)),
        display_name: format!("Endless Group {position}"),
        external_id: None,
        members: Vec::new(),
    }
}
