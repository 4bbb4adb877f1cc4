//! What one component instance remembers between calls. A host keeps an instance for a whole
//! sync, so this is where the access token, the ids already listed and
//! the groups' names live; a fresh instance simply starts empty.
//!
//! The guest's memory never shrinks and counts against the host's, so nothing is kept that a later
//! call will not need: group members only wait here until `list-grants` hands them out.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};

use crate::oauth::Token;

/// A group the instance has seen: its name answers `list-entitlements` without a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CachedGroup {
    pub name: String,
    /// Member user ids read from Ironclad but not yet handed to the host (a group a page could
    /// not include, or one `list-entitlements` had to fetch); `None` once handed out, or when
    /// the host got them in a page's `included`.
    pub members: Option<Vec<String>>,
}

#[derive(Default)]
pub struct State {
    pub token: Option<Token>,
    /// Per resource type: id → the `startIndex` of the page it was first returned on.
    seen: HashMap<String, Listed>,
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
            seen.first_page.clear();
        }
        let mut on_this_page = HashSet::with_hasher(Prehashed::default());
        let mut kept = Vec::with_capacity(entries.len());
        let mut repeated = 0;
        for (id, item) in entries {
            let id = seen.fingerprint(&id);
            let first_page = *seen.first_page.entry(id).or_insert(page_key(start));
            if first_page != page_key(start) || !on_this_page.insert(id) {
                repeated += 1;
            } else {
                kept.push(item);
            }
        }
        (kept, repeated)
    }

    /// A listing is done: the ids it returned are no longer needed (a host that lists the type
    /// again starts afresh), and their memory goes to the next listing's pages.
    pub fn listing_done(&mut self, kind: &str) {
        self.seen.remove(kind);
    }

    pub fn group_name(&self, id: &str) -> Option<String> {
        self.groups.get(id).map(|g| g.name.clone())
    }

    /// The members waiting for `list-grants`, removed: once handed out the host has them, and a
    /// host asking again gets them fresh from Ironclad.
    pub fn take_members(&mut self, id: &str) -> Option<Vec<String>> {
        self.groups.get_mut(id)?.members.take()
    }

    /// After provisioning read (or changed) the group. Members replace only members already
    /// waiting, which would be stale otherwise: provisioning many groups caches nothing new.
    pub fn refresh_group(&mut self, id: &str, name: String, members: Option<Vec<String>>) {
        let waiting = self.groups.get(id).is_some_and(|g| g.members.is_some());
        let members = members.filter(|_| waiting);
        self.groups
            .insert(id.to_owned(), CachedGroup { name, members });
    }
}

/// The ids one listing returned, as fingerprints with the page each was first returned on: a
/// tenant of millions keeps 16 bytes an id rather than the id, in memory that never shrinks.
#[derive(Default)]
struct Listed {
    keys: (RandomState, RandomState),
    first_page: HashMap<Fingerprint, u32, Prehashed>,
}

impl Listed {
    /// 96 bits from two independently keyed SipHashes: two of a million ids share one with a
    /// chance of about one in 10^17 (n² / 2^97), far below any other way a user could be missed.
    fn fingerprint(&self, id: &str) -> Fingerprint {
        let a = self.keys.0.hash_one(id);
        let b = self.keys.1.hash_one(id);
        Fingerprint([(a >> 32) as u32, a as u32, (b >> 32) as u32])
    }
}

/// `startIndex` as the map keeps it: paging never passes `i32::MAX`, so it always fits.
fn page_key(start: u64) -> u32 {
    u32::try_from(start).unwrap_or(u32::MAX)
}

/// Three `u32`s rather than two `u64`s: with the page's `u32` an entry is 16 bytes, not 24.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fingerprint([u32; 3]);

/// A fingerprint is already a keyed hash: the map uses 64 bits of it as they are.
impl Hash for Fingerprint {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64((u64::from(self.0[0]) << 32) | u64::from(self.0[1]));
    }
}

type Prehashed = BuildHasherDefault<TakeU64>;

/// The hasher of [`Prehashed`]: the last `u64` written is the hash.
#[derive(Default)]
struct TakeU64(u64);

impl Hasher for TakeU64 {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not reached by `Fingerprint`; mixes anything else rather than ignoring it.
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
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
    fn an_entry_is_16_bytes() {
        assert_eq!(std::mem::size_of::<(Fingerprint, u32)>(), 16);
    }

    #[test]
    fn fingerprints_tell_ids_apart_and_agree_on_the_same_id() {
        let listed = Listed::default();
        let ids: Vec<String> = (0..100_000).map(|i| format!("u{i}")).collect();
        let prints: HashSet<Fingerprint> = ids.iter().map(|i| listed.fingerprint(i)).collect();
        assert_eq!(prints.len(), ids.len());
        assert_eq!(listed.fingerprint("u1"), listed.fingerprint("u1"));
    }

    #[test]
    fn a_listing_done_forgets_its_ids() {
        let mut s = State::default();
        s.dedupe("user", true, 1, page(&["a", "b"]));
        s.listing_done("user");
        assert!(!s.seen.contains_key("user"));
        // Asked for again (a host retrying the last page), its entries are kept.
        let (again, r) = s.dedupe("user", false, 3, page(&["a"]));
        assert_eq!((again, r), (vec!["a".to_owned()], 0));
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

    fn cached(name: &str, members: Option<&[&str]>) -> CachedGroup {
        CachedGroup {
            name: name.to_owned(),
            members: members.map(|ms| ms.iter().map(|m| (*m).to_owned()).collect()),
        }
    }

    #[test]
    fn members_are_handed_out_once_and_the_name_stays() {
        let mut s = State::default();
        s.groups.insert("g".into(), cached("Legal", Some(&["u1"])));
        assert_eq!(s.take_members("g"), Some(vec!["u1".to_owned()]));
        assert_eq!(s.take_members("g"), None);
        assert_eq!(s.group_name("g").as_deref(), Some("Legal"));
        assert_eq!(s.take_members("unknown"), None);
        assert_eq!(s.group_name("unknown"), None);
    }

    #[test]
    fn provisioning_refreshes_waiting_members_and_adds_none() {
        let mut s = State::default();
        s.groups
            .insert("waiting".into(), cached("Old", Some(&["u1"])));
        s.groups.insert("handed-out".into(), cached("Ops", None));
        let fresh = || Some(vec!["u1".to_owned(), "u2".to_owned()]);
        s.refresh_group("waiting", "New".into(), fresh());
        s.refresh_group("handed-out", "Ops".into(), fresh());
        s.refresh_group("unseen", "Sales".into(), fresh());
        assert_eq!(s.groups["waiting"], cached("New", Some(&["u1", "u2"])));
        assert_eq!(s.groups["handed-out"], cached("Ops", None));
        assert_eq!(s.groups["unseen"], cached("Sales", None));
        // Ironclad left members out of the read: the waiting ones may be stale, so they go.
        s.refresh_group("waiting", "New".into(), None);
        assert_eq!(s.groups["waiting"], cached("New", None));
    }

    #[test]
    fn state_survives_between_calls() {
        with(|s| {
            s.groups.insert("g".into(), CachedGroup::default());
        });
        assert!(with(|s| s.groups.contains_key("g")));
    }
}
