//! What one component instance remembers between calls. A host keeps an instance for a whole
//! sync, so this is where the access token, the rate limiter's bookings, the ids already listed and
//! the groups' members live; a fresh instance simply starts empty.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};

use crate::oauth::Token;
use crate::rate_limit::Limiter;

/// A group as seen in a listing: enough to answer its entitlements and grants without a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CachedGroup {
    pub name: String,
    /// `None` when Ironclad left members out of the listing.
    pub members: Option<Vec<String>>,
}

#[derive(Default)]
pub struct State {
    pub token: Option<Token>,
    pub limiter: Limiter,
    /// Per resource type: id → the `startIndex` of the page it was first returned on.
    seen: HashMap<String, HashMap<String, u64>>,
    pub groups: HashMap<String, CachedGroup>,
}

impl State {
    /// Keeps the entries of one page not already returned by an earlier page of the same
    /// listing, and counts the ones dropped. An entry first returned on this same page is kept,
    /// so a host that asks for a page again (say, after a failure on its side) gets it whole.
    pub fn dedupe<T>(
        &mut self,
        kind: &str,
        restart: bool,
        start: u64,
        entries: Vec<(String, T)>,
    ) -> (Vec<T>, usize) {
        let seen = self.seen.entry(kind.to_owned()).or_default();
        if restart {
            seen.clear();
        }
        let mut on_this_page = HashSet::new();
        let mut kept = Vec::with_capacity(entries.len());
        let mut repeated = 0;
        for (id, item) in entries {
            let first_page = *seen.entry(id.clone()).or_insert(start);
            if first_page != start || !on_this_page.insert(id) {
                repeated += 1;
            } else {
                kept.push(item);
            }
        }
        (kept, repeated)
    }
}

thread_local! {
    static STATE: Cell<State> = Cell::new(State::default());
}

/// Runs `f` on the instance's state. Take-and-put-back instead of a `RefCell` borrow: there is
/// nothing that could panic, and calls never nest.
pub fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|cell| {
        let mut state = cell.take();
        let result = f(&mut state);
        cell.set(state);
        result
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn page(ids: &[&str]) -> Vec<(String, String)> {
        ids.iter()
            .map(|i| ((*i).to_owned(), (*i).to_owned()))
            .collect()
    }

    #[test]
    fn later_pages_drop_ids_already_listed() {
        let mut s = State::default();
        let (a, r) = s.dedupe("user", true, 1, page(&["a", "b", "c"]));
        assert_eq!((a, r), (vec!["a".into(), "b".into(), "c".into()], 0));
        // "c" shifted onto the next page because someone was added before it.
        let (b, r) = s.dedupe("user", false, 4, page(&["c", "d"]));
        assert_eq!((b, r), (vec!["d".to_owned()], 1));
    }

    #[test]
    fn duplicates_within_a_page_are_dropped() {
        let mut s = State::default();
        let (a, r) = s.dedupe("user", true, 1, page(&["a", "a", "b"]));
        assert_eq!((a, r), (vec!["a".into(), "b".into()], 1));
    }

    #[test]
    fn asking_for_the_same_page_again_returns_it_whole() {
        let mut s = State::default();
        s.dedupe("user", true, 1, page(&["a", "b"]));
        s.dedupe("user", false, 3, page(&["c"]));
        let (again, r) = s.dedupe("user", false, 3, page(&["c"]));
        assert_eq!((again, r), (vec!["c".to_owned()], 0));
    }

    #[test]
    fn no_token_starts_afresh_and_types_are_separate() {
        let mut s = State::default();
        s.dedupe("user", true, 1, page(&["a"]));
        let (g, _) = s.dedupe("group", true, 1, page(&["a"]));
        assert_eq!(g.len(), 1);
        let (u, _) = s.dedupe("user", true, 1, page(&["a"]));
        assert_eq!(u.len(), 1);
    }

    #[test]
    fn state_survives_between_calls() {
        with(|s| {
            s.groups.insert("g".into(), CachedGroup::default());
        });
        assert!(with(|s| s.groups.contains_key("g")));
    }
}
