//! A tenant whose names and ids try to fool the people and programs reading
//! them: display names with escape sequences, BEL, CR, LF and bidirectional
//! overrides, and user and group ids holding `:` and `\`, among them the
//! pair whose memberships a plain `:` join makes one (group `a` holding
//! user `b:member:user:c`, group `a:member:user:b` holding user `c`).
//! Ironclad's ids are ObjectIds and UUIDs; another application's need not be.

use crate::tenant::Tenant;

/// Group `a` holds this user; group [`COLLIDING_GROUP`] holds [`PLAIN_USER`].
pub const COLLIDING_USER: &str = "b:member:user:c";
pub const PLAIN_USER: &str = "c";
pub const PLAIN_GROUP: &str = "a";
pub const COLLIDING_GROUP: &str = "a:member:user:b";
/// A user id with a backslash and a colon, in [`COLLIDING_GROUP`].
pub const BACKSLASH_USER: &str = r"d\:e\f";

/// Names that rewrite the terminal when printed raw: a window title and a
/// screen clear, a colour, a carriage return over the row, a line feed
/// forging a row, a right-to-left override, BEL.
pub const HOSTILE_GIVEN_NAME: &str = "Eve\u{202e}nimdA";
pub const HOSTILE_FAMILY_NAME: &str = "\u{1b}]0;pwned\u{7}\u{1b}[2J";
pub const HOSTILE_GROUP_NAME: &str = "\u{1b}[31mLegal\u{1b}[0m Approvers\u{7}";
pub const FORGING_GROUP_NAME: &str = "Ops\r\n+  grant     group:forged:member:user:x  Forged";
pub const FORGING_GIVEN_NAME: &str = "Mal\rlory";
pub const FORGING_FAMILY_NAME: &str = "Row\nuser  forged  Forged Person";

/// Makes `tenant` hostile: users 1 to 3 and groups 0 and 1 get the ids and
/// names above (their memberships follow them). The first user, the admin
/// the connector acts as, is left alone. Needs 4 users and 2 groups.
pub fn apply(tenant: &mut Tenant) {
    if tenant.users.len() < 4 || tenant.groups.len() < 2 {
        return;
    }
    let renames = [
        (1, COLLIDING_USER, HOSTILE_GIVEN_NAME, HOSTILE_FAMILY_NAME),
        (2, PLAIN_USER, FORGING_GIVEN_NAME, FORGING_FAMILY_NAME),
        (3, BACKSLASH_USER, "Back\u{2066}slash", "User\u{9b}2J"),
    ];
    for (i, id, given, family) in renames {
        let old = std::mem::replace(&mut tenant.users[i].id, id.to_string());
        tenant.users[i].given_name = given.to_string();
        tenant.users[i].family_name = family.to_string();
        for g in &mut tenant.groups {
            for m in g.members.iter_mut().filter(|m| **m == old) {
                *m = id.to_string();
            }
        }
    }
    tenant.users[1].title = Some("\u{1b}[2JTitle".to_string());
    for (i, id, name) in [
        (0, PLAIN_GROUP, HOSTILE_GROUP_NAME),
        (1, COLLIDING_GROUP, FORGING_GROUP_NAME),
    ] {
        tenant.groups[i].id = id.to_string();
        tenant.groups[i].display_name = name.to_string();
    }
    let mut join = |g: usize, u: &str| {
        if !tenant.groups[g].members.iter().any(|m| m == u) {
            tenant.groups[g].members.push(u.to_string());
        }
    };
    join(0, COLLIDING_USER);
    join(1, PLAIN_USER);
    join(1, BACKSLASH_USER);
}
