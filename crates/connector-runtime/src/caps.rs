//! Bounds on one sync, whatever the component or the application says: a
//! listing that never ends (an application serving full pages of fresh ids
//! forever, a component inventing them) would otherwise fill the disk and
//! run for ever. Each cap stops the sync with a one-line error naming its
//! flag; nothing is written (the sink is dropped unfinished).

use std::time::{Duration, Instant};

use anyhow::bail;
use sync_store::model::{Entitlement, Grant, Resource, ResourceId};

/// Per-sync caps. The defaults are far above any real tenant (the
/// 400,000-user bench is 2.4 million rows) and far below what fills a disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncCaps {
    /// Pages of any one listing.
    pub max_pages_per_listing: u64,
    /// Resources, entitlements and grants in all.
    pub max_rows: u64,
    /// Bytes of the rows lifted from the component (their text, counted
    /// approximately: ids, names, profiles).
    pub max_bytes: u64,
    /// Wall time of the whole sync.
    pub deadline: Duration,
}

impl Default for SyncCaps {
    fn default() -> Self {
        SyncCaps {
            max_pages_per_listing: 100_000,
            max_rows: 100_000_000,
            max_bytes: 64 << 30,
            deadline: Duration::from_secs(24 * 3600),
        }
    }
}

/// What one sync has taken so far, checked against its caps.
#[derive(Debug)]
pub(crate) struct Tally {
    caps: SyncCaps,
    started: Instant,
    rows: u64,
    bytes: u64,
}

impl Tally {
    /// A tally for a sync starting now.
    pub(crate) fn new(caps: SyncCaps) -> Tally {
        Tally {
            caps,
            started: Instant::now(),
            rows: 0,
            bytes: 0,
        }
    }

    /// Rows and bytes taken so far.
    pub(crate) fn taken(&self) -> (u64, u64) {
        (self.rows, self.bytes)
    }

    /// Starts from what earlier processes of a continued sync took.
    pub(crate) fn restore(&mut self, rows: u64, bytes: u64) {
        self.rows = rows;
        self.bytes = bytes;
    }

    /// An error once the sync has run past its deadline.
    pub(crate) fn check_deadline(&self) -> anyhow::Result<()> {
        if self.started.elapsed() > self.caps.deadline {
            return Err(past_deadline(self.caps.deadline));
        }
        Ok(())
    }

    /// Counts `rows` rows of `bytes` bytes; an error past either cap.
    pub(crate) fn add(&mut self, rows: usize, bytes: u64) -> anyhow::Result<()> {
        self.rows = self.rows.saturating_add(rows as u64);
        self.bytes = self.bytes.saturating_add(bytes);
        if self.rows > self.caps.max_rows {
            bail!(
                "the sync passed {} rows (--max-rows); the application or the connector does not stop listing: raise the cap if the tenant really is that large",
                self.caps.max_rows
            );
        }
        if self.bytes > self.caps.max_bytes {
            bail!(
                "the sync passed {} MiB of rows (--max-sync-mb); the application or the connector does not stop listing: raise the cap if the tenant really is that large",
                self.caps.max_bytes >> 20
            );
        }
        Ok(())
    }

    /// An error when a listing has run past the page cap.
    pub(crate) fn check_pages(&self, pages: u64, what: &dyn Fn() -> String) -> anyhow::Result<()> {
        if pages > self.caps.max_pages_per_listing {
            bail!(
                "{}: more than {} pages in one listing (--max-pages); the application or the connector does not stop paging: raise the cap if the listing really is that long",
                what(),
                self.caps.max_pages_per_listing
            );
        }
        Ok(())
    }
}

/// The error for a sync past `deadline`.
pub(crate) fn past_deadline(deadline: Duration) -> anyhow::Error {
    anyhow::anyhow!(
        "the sync ran past its deadline of {} (--sync-timeout); nothing was written: raise it if the tenant needs longer",
        humantime::format_duration(deadline)
    )
}

/// The approximate size of a row: the text it carries.
pub(crate) trait Size {
    fn size(&self) -> u64;
}

fn id_size(id: &ResourceId) -> u64 {
    (id.resource_type.len() + id.resource.len()) as u64
}

impl Size for Resource {
    fn size(&self) -> u64 {
        let user = self.user.as_ref().map_or(0, |u| {
            u.login.len()
                + u.emails.iter().map(|e| e.address.len()).sum::<usize>()
                + u.given_name.as_ref().map_or(0, String::len)
                + u.family_name.as_ref().map_or(0, String::len)
        });
        let profile: usize = self.profile.iter().map(|(k, v)| k.len() + v.len()).sum();
        id_size(&self.id)
            + self.parent.as_ref().map_or(0, id_size)
            + (self.display_name.len()
                + self.description.as_ref().map_or(0, String::len)
                + user
                + profile) as u64
    }
}

impl Size for Entitlement {
    fn size(&self) -> u64 {
        id_size(&self.resource)
            + (self.id.len()
                + self.slug.len()
                + self.display_name.len()
                + self.description.len()
                + self.grantable_to.iter().map(String::len).sum::<usize>()) as u64
    }
}

impl Size for Grant {
    fn size(&self) -> u64 {
        (self.id.len() + self.entitlement.len()) as u64 + id_size(&self.principal)
    }
}

/// Rows and their size, for [`Tally::add`].
pub(crate) fn measure<T: Size>(rows: &[T]) -> (usize, u64) {
    (rows.len(), rows.iter().map(Size::size).sum())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn each_cap_names_its_flag() {
        let caps = SyncCaps {
            max_pages_per_listing: 2,
            max_rows: 10,
            max_bytes: 100 << 20,
            deadline: Duration::from_secs(1),
        };
        let mut t = Tally::new(caps);
        t.add(10, 5).unwrap();
        let e = t.add(1, 5).unwrap_err().to_string();
        assert!(e.contains("passed 10 rows (--max-rows)"), "{e}");
        let mut t = Tally::new(caps);
        let e = t.add(1, 101 << 20).unwrap_err().to_string();
        assert!(e.contains("100 MiB of rows (--max-sync-mb)"), "{e}");
        t.check_pages(2, &|| "x".into()).unwrap();
        let e = t
            .check_pages(3, &|| "listing user resources".into())
            .unwrap_err();
        assert!(e
            .to_string()
            .starts_with("listing user resources: more than 2 pages in one listing (--max-pages)"));
    }

    #[test]
    fn a_grant_counts_its_text() {
        let g = Grant {
            id: "g1".into(),
            entitlement: "e12".into(),
            principal: ResourceId {
                resource_type: "user".into(),
                resource: "u1".into(),
            },
        };
        assert_eq!(measure(&[g.clone(), g]), (2, 2 * (2 + 3 + 4 + 2)));
    }
}
