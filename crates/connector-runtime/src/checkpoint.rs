//! Where a sync stands, saved with its rows at every checkpoint so that
//! another process can continue it: the resource types done, the listing
//! under way and the token of its next page, the current page's resources
//! whose entitlements and grants are still to be asked for, and the
//! counters the finished sync reports. The sink stores it as text, opaque
//! to it ([`sync_store::SyncSink::checkpoint`]).

use std::collections::BTreeMap;

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use sync_store::model::{ResourceId, TotalMoved};

/// What a checkpoint's rows came from, for a resumable sink's
/// [`sync_store::c1z::ResumePolicy::origin`]: the component's digest and
/// the configuration's non-secret values (a secret, even hashed, stays
/// out: rotating a credential is still the same tenant). A setting the
/// schema does not name counts as secret.
pub fn origin(
    component: &crate::Component,
    schema: &[crate::types::ConfigField],
    values: &BTreeMap<String, String>,
) -> String {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    h.update(component.digest());
    for (name, value) in values {
        if schema.iter().any(|f| &f.name == name && !f.secret) {
            // Lengths first: no two lists of settings hash alike.
            for part in [name, value] {
                h.update((part.len() as u64).to_le_bytes());
                h.update(part.as_bytes());
            }
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// This record's format: a checkpoint of another format is not continued.
const VERSION: u32 = 1;

/// A sync's position and counters at a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    v: u32,
    /// RFC 3339, when the sync first started.
    pub started_at: String,
    /// The resource type ids, in the order they are listed.
    pub types: Vec<String>,
    /// How many of them are fully listed.
    pub done: usize,
    /// The page of the listing under way that gave `pending`.
    pub page: Next,
    /// The next page of the listing under way.
    pub next: Next,
    /// Resources of the current type listed so far.
    pub listed: u64,
    /// Pages of the current listing so far (for the page cap).
    pub listing_pages: u64,
    /// The application's totals for the current type, first and latest.
    pub totals: Option<TotalMoved>,
    /// Resources of the last page whose entitlements and grants are asked
    /// for one by one, and how many have had theirs.
    pub pending: Vec<ResourceId>,
    /// Of `pending`, how many have had their entitlements listed.
    pub entitlements_done: usize,
    /// Of `pending`, how many have had their grants listed.
    pub grants_done: usize,
    /// Types whose reported total moved while they were listed.
    pub totals_moved: BTreeMap<String, TotalMoved>,
    /// Requests, retries and fetching time of every process so far.
    pub http_requests: u64,
    /// See `http_requests`.
    pub retries: u64,
    /// See `http_requests`.
    pub fetch_ms: u64,
    /// Rows and their bytes so far, for the sync's caps.
    pub rows: u64,
    /// See `rows`.
    pub bytes: u64,
}

/// The next page of a listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Next {
    /// Its first page.
    Start,
    /// The page this token names.
    Token(String),
    /// None: the listing is done once its pending resources are.
    End,
}

impl Checkpoint {
    /// The position of a sync that starts now, listing `types`.
    pub fn new(started_at: String, types: Vec<String>) -> Checkpoint {
        Checkpoint {
            v: VERSION,
            started_at,
            types,
            done: 0,
            page: Next::Start,
            next: Next::Start,
            listed: 0,
            listing_pages: 0,
            totals: None,
            pending: Vec::new(),
            entitlements_done: 0,
            grants_done: 0,
            totals_moved: BTreeMap::new(),
            http_requests: 0,
            retries: 0,
            fetch_ms: 0,
            rows: 0,
            bytes: 0,
        }
    }

    /// Reads a saved checkpoint.
    pub fn parse(text: &str) -> anyhow::Result<Checkpoint> {
        let cp: Checkpoint =
            serde_json::from_str(text).context("the saved position of the sync does not parse")?;
        if cp.v != VERSION {
            bail!(
                "the saved position of the sync is format {}, not {VERSION}",
                cp.v
            );
        }
        if cp.done > cp.types.len()
            || cp.entitlements_done > cp.pending.len()
            || cp.grants_done > cp.pending.len()
        {
            bail!("the saved position of the sync is inconsistent");
        }
        Ok(cp)
    }

    /// As saved.
    pub fn to_text(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string(self)?)
    }

    /// The current listing again from its first page, for a connector
    /// whose page tokens are only good in the instance that issued them:
    /// what it returned already is kept, and returned again counts once.
    pub fn restart_listing(&mut self) {
        self.enter_listing();
    }

    /// The state at the start of the current type's listing.
    pub(crate) fn enter_listing(&mut self) {
        self.page = Next::Start;
        self.next = Next::Start;
        self.listed = 0;
        self.listing_pages = 0;
        self.totals = None;
        self.pending.clear();
        self.entitlements_done = 0;
        self.grants_done = 0;
    }

    /// Resources of `pending` still to ask about (for their entitlements,
    /// their grants, or both).
    pub fn left(&self) -> usize {
        self.pending.len() - self.entitlements_done.min(self.grants_done)
    }

    /// Where the sync stands, in a few words for a person (type ids are
    /// the component's words: escape before showing).
    pub fn describe(&self) -> String {
        let Some(t) = self.types.get(self.done) else {
            return "the end of its listings".into();
        };
        let mut s = format!("{t} resources, {} listed", self.listed);
        let left = self.left();
        if left > 0 {
            s += &format!(", {left} to ask about");
        }
        s
    }
}

/// [`Checkpoint::describe`] of a saved state, or a stand-in when it does
/// not parse.
pub fn describe_state(text: &str) -> String {
    Checkpoint::parse(text).map_or_else(|_| "its last checkpoint".into(), |cp| cp.describe())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_checkpoint_reads_back_as_saved() {
        let mut cp = Checkpoint::new(
            "2026-11-28T00:00:00Z".into(),
            vec!["user".into(), "group".into()],
        );
        cp.done = 1;
        cp.next = Next::Token("1001:2500".into());
        cp.listed = 1000;
        cp.pending = vec![ResourceId {
            resource_type: "group".into(),
            resource: "g1".into(),
        }];
        cp.entitlements_done = 1;
        let back = Checkpoint::parse(&cp.to_text().unwrap()).unwrap();
        assert_eq!(back, cp);
        assert_eq!(
            back.describe(),
            "group resources, 1000 listed, 1 to ask about"
        );
    }

    #[test]
    fn another_format_or_an_inconsistent_one_is_refused() {
        let cp = Checkpoint::new(String::new(), vec!["user".into()]);
        let text = cp.to_text().unwrap().replace("\"v\":1", "\"v\":2");
        assert!(Checkpoint::parse(&text)
            .unwrap_err()
            .to_string()
            .contains("format 2"));
        let mut bad = cp.clone();
        bad.done = 5;
        assert!(Checkpoint::parse(&bad.to_text().unwrap()).is_err());
        assert!(Checkpoint::parse("{").is_err());
    }

    #[test]
    fn restarting_a_listing_keeps_the_types_done_and_the_counters() {
        let mut cp = Checkpoint::new(String::new(), vec!["user".into(), "group".into()]);
        cp.done = 1;
        cp.next = Next::Token("x".into());
        cp.listed = 10;
        cp.http_requests = 7;
        cp.restart_listing();
        assert_eq!(
            (cp.done, &cp.next, cp.listed, cp.http_requests),
            (1, &Next::Start, 0, 7)
        );
        assert_eq!(cp.describe(), "group resources, 0 listed");
    }
}
