//! `page_churn`: a tenant that changes while it is listed, as a pure
//! function of the request. The `GET /Users` page at `startIndex=s`,
//! `count=c` is answered as if the tenant had churned once per page before
//! it: k = (s-1)/c steps, step i deleting the user at position i of the real
//! listing (never the first, the admin) and creating two users made from i
//! alone. Nothing is changed for real, so whatever order, repetition or
//! concurrency the pages are asked in (a sync killed and resumed, pages
//! asked ahead), the same page gets the same answer, and two syncs of the
//! same tenant can be compared row for row. `Faults::churn` changes the
//! tenant on every request instead, which no two syncs see alike.

use std::borrow::Cow;
use std::ops::Range;

use crate::clock;
use crate::scim::MAX_COUNT;
use crate::tenant::User;

/// Churn steps before the page at `start_index` of `count` entries, read as
/// the handler reads them (below 1 counts as 1, `count` capped; a page of
/// nothing has no page before it).
pub(crate) fn steps(start_index: i64, count: i64) -> usize {
    let start = usize::try_from(start_index.max(1)).unwrap_or(usize::MAX);
    let count = usize::try_from(count.clamp(0, MAX_COUNT)).unwrap_or(0);
    if count == 0 {
        return 0;
    }
    (start - 1) / count
}

/// The listing after some steps: the admin, the real users past those
/// deleted, then the made ones in the order they were made. Positions are
/// computed, not collected, so a page costs its own length.
pub(crate) struct View<'a> {
    real: &'a [User],
    /// Real users at positions 1..=deleted are gone (fewer than the steps
    /// once only the admin is left).
    deleted: usize,
    steps: usize,
}

impl<'a> View<'a> {
    pub(crate) fn new(real: &'a [User], steps: usize) -> Self {
        View {
            real,
            deleted: steps.min(real.len().saturating_sub(1)),
            steps,
        }
    }

    /// `totalResults` of the churned tenant: one more per step while there
    /// are users to delete, two more after.
    pub(crate) fn len(&self) -> usize {
        self.kept() + 2 * self.steps
    }

    fn kept(&self) -> usize {
        self.real.len() - self.deleted
    }

    /// The entries at `positions` (0-based, within [`View::len`]).
    pub(crate) fn entries(&self, positions: Range<usize>) -> Vec<Cow<'a, User>> {
        positions
            .map(|p| match p {
                0 if self.kept() > 0 => Cow::Borrowed(&self.real[0]),
                p if p < self.kept() => Cow::Borrowed(&self.real[p + self.deleted]),
                p => Cow::Owned(made(p - self.kept())),
            })
            .collect()
    }
}

/// The `n`th (0-based) user made by the steps: the two of step i are
/// `2(i-1)` and `2(i-1)+1`. Everything in it comes from `n`: an ObjectId
/// whose time is its creation (2024-06-01 plus n seconds, an instant no
/// generated user has, so no id can clash) and a fixed "process" part.
fn made(n: usize) -> User {
    let step = n / 2 + 1;
    let which = ["a", "b"][n % 2];
    let created_secs = 1_717_200_000 + n as i64;
    User {
        id: format!("{created_secs:08x}636875726e{:06x}", n % (1 << 24)),
        user_name: format!("churn.{step}.{which}@example-tenant.test"),
        given_name: "Churn".into(),
        family_name: format!("Step{step}{}", which.to_uppercase()),
        title: None,
        department: None,
        provider: "local".into(),
        created: clock::rfc3339_millis(created_secs * 1000),
        admin: false,
        password: None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::tenant::{Tenant, TenantSpec};

    fn tenant(users: usize) -> Tenant {
        Tenant::generate(&TenantSpec {
            users,
            groups: 0,
            memberships: 0,
            seed: 5,
        })
    }

    fn ids(view: &View<'_>) -> Vec<String> {
        view.entries(0..view.len())
            .into_iter()
            .map(|u| u.id.clone())
            .collect()
    }

    #[test]
    fn steps_count_the_pages_before() {
        assert_eq!(steps(1, 1000), 0);
        assert_eq!(steps(1000, 1000), 0);
        assert_eq!(steps(1001, 1000), 1);
        assert_eq!(steps(3001, 1000), 3);
        // The handler's reading: below 1 is 1, count capped, none is none.
        assert_eq!(steps(-5, 10), 0);
        assert_eq!(steps(2001, 5000), 2);
        assert_eq!(steps(51, 0), 0);
    }

    #[test]
    fn each_step_drops_one_early_user_and_adds_two() {
        let t = tenant(10);
        for k in 0..6 {
            let view = View::new(&t.users, k);
            assert_eq!(view.len(), 10 + k, "one more per step");
            let got = ids(&view);
            assert_eq!(got[0], t.users[0].id, "the admin stays first");
            let gone: Vec<&str> = t.users[1..=k].iter().map(|u| u.id.as_str()).collect();
            assert!(got.iter().all(|id| !gone.contains(&id.as_str())));
            assert_eq!(&got[1..10 - k], &ids(&View::new(&t.users[k..], 0))[1..]);
            let unique: std::collections::HashSet<_> = got.iter().collect();
            assert_eq!(unique.len(), got.len());
        }
    }

    #[test]
    fn the_admin_is_never_dropped_even_when_alone() {
        let t = tenant(3);
        let view = View::new(&t.users, 7);
        assert_eq!(view.len(), 1 + 14);
        let got = ids(&view);
        assert_eq!(got[0], t.users[0].id);
        assert!(t.users[1..].iter().all(|u| !got.contains(&u.id)));
        assert_eq!(View::new(&[], 4).len(), 8, "nobody to delete");
    }

    #[test]
    fn made_users_depend_on_their_step_alone() {
        let a = made(5);
        let b = made(5);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        assert_eq!(a.user_name, "churn.3.b@example-tenant.test");
        assert_eq!(a.id.len(), 24);
        assert!(a.id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(made(4).id, a.id);
        assert!(
            a.created.starts_with("2024-06-01T00:00:05"),
            "{}",
            a.created
        );
        // The same step made in a bigger or smaller tenant is the same user.
        let (small, big) = (tenant(4), tenant(40));
        let last = |t: &Tenant| {
            let v = View::new(&t.users, 3);
            v.entries(v.len() - 1..v.len())[0].id.clone()
        };
        assert_eq!(last(&small), last(&big));
    }
}
