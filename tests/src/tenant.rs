//! The simulated company: deterministic generation from a seed, and the
//! indexed state the HTTP handlers and the test API read and change.

use std::collections::{HashMap, HashSet};

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::clock;

/// How big a tenant to generate, and from which seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantSpec {
    pub users: usize,
    pub groups: usize,
    /// Clamped to `users * groups` (a user is in a group at most once).
    pub memberships: usize,
    pub seed: u64,
}

impl Default for TenantSpec {
    fn default() -> Self {
        TenantSpec {
            users: 50,
            groups: 5,
            memberships: 120,
            seed: 1,
        }
    }
}

/// A snapshot of the company's users and groups, in creation order (the
/// order SCIM lists them in).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Tenant {
    pub users: Vec<User>,
    pub groups: Vec<Group>,
}

#[derive(Clone, Debug, Serialize)]
pub struct User {
    /// 24 hex characters, like Ironclad's (MongoDB ObjectId) ids.
    pub id: String,
    /// The email; unique (case-insensitively).
    pub user_name: String,
    pub given_name: String,
    pub family_name: String,
    pub title: Option<String>,
    pub department: Option<String>,
    /// `local`, `magicLink`, `saml` or `google`.
    pub provider: String,
    /// RFC 3339 with milliseconds.
    pub created: String,
    pub admin: bool,
    /// Only for users created through SCIM (or the test API) with one: lets
    /// tests check what a connector sent. Never rendered by SCIM reads.
    pub password: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Group {
    /// A UUID, like Ironclad's group ids.
    pub id: String,
    pub display_name: String,
    pub external_id: Option<String>,
    /// User ids, in the order they were added, no duplicates.
    pub members: Vec<String>,
}

impl Tenant {
    /// Generates a tenant; the same spec always gives the same tenant.
    pub fn generate(spec: &TenantSpec) -> Tenant {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        let mut ids = ObjectIds::new(&mut rng);
        let users = generate_users(spec.users, &mut rng, &mut ids);
        let mut groups = generate_groups(spec.groups, &mut rng);
        let max = spec.users.saturating_mul(spec.groups);
        let pairs =
            generate_memberships(spec.memberships.min(max), spec.users, spec.groups, &mut rng);
        for (g, members) in groups.iter_mut().zip(pairs) {
            g.members = members
                .into_iter()
                .map(|u| users[u as usize].id.clone())
                .collect();
        }
        Tenant { users, groups }
    }

    /// Total group memberships.
    pub fn memberships(&self) -> usize {
        self.groups.iter().map(|g| g.members.len()).sum()
    }

    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    /// By userName (email), case-insensitively.
    pub fn user_by_name(&self, user_name: &str) -> Option<&User> {
        self.users
            .iter()
            .find(|u| u.user_name.eq_ignore_ascii_case(user_name))
    }

    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.id == id)
    }

    pub fn group_by_name(&self, display_name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.display_name == display_name)
    }
}

const FIRST_NAMES: &[&str] = &[
    "Ada", "Alan", "Alice", "Amara", "Ana", "Andre", "Anika", "Ben", "Bianca", "Carlos", "Chen",
    "Chloe", "Daniel", "Diana", "Dmitri", "Elena", "Emeka", "Emma", "Farah", "Felix", "Grace",
    "Hana", "Hugo", "Ines", "Ivan", "Jamal", "Jane", "Jonas", "Julia", "Kai", "Kenji", "Lara",
    "Leo", "Lina", "Lucas", "Maya", "Mei", "Mira", "Nadia", "Nia", "Noah", "Olga", "Omar", "Priya",
    "Rafael", "Rosa", "Ruth", "Sam", "Sara", "Sofia", "Tariq", "Tomas", "Uma", "Victor", "Wei",
    "Yara", "Yusuf", "Zoe",
];

const LAST_NAMES: &[&str] = &[
    "Abbott",
    "Adeyemi",
    "Alvarez",
    "Andersen",
    "Baker",
    "Banerjee",
    "Becker",
    "Brown",
    "Castro",
    "Chen",
    "Cohen",
    "Costa",
    "Dubois",
    "Duarte",
    "Edwards",
    "Eriksson",
    "Fischer",
    "Garcia",
    "Gupta",
    "Haddad",
    "Hansen",
    "Hernandez",
    "Ito",
    "Jansen",
    "Johnson",
    "Kaur",
    "Kim",
    "Kowalski",
    "Larsen",
    "Lee",
    "Lopez",
    "Martin",
    "Meyer",
    "Moreau",
    "Nakamura",
    "Nguyen",
    "Novak",
    "Okafor",
    "Olsen",
    "Patel",
    "Petrov",
    "Quinn",
    "Rossi",
    "Sato",
    "Schmidt",
    "Silva",
    "Singh",
    "Smith",
    "Tanaka",
    "Taylor",
    "Turner",
    "Vargas",
    "Wagner",
    "Walker",
    "Wang",
    "Weber",
    "Williams",
    "Yilmaz",
    "Young",
    "Zhang",
];

const TITLES: &[&str] = &[
    "Counsel",
    "Senior Counsel",
    "General Counsel",
    "Paralegal",
    "Contract Manager",
    "Legal Operations Manager",
    "Account Executive",
    "Sales Director",
    "Procurement Specialist",
    "Finance Analyst",
    "Controller",
    "HR Business Partner",
    "Software Engineer",
    "Product Manager",
    "Security Engineer",
    "Office Manager",
];

const DEPARTMENTS: &[&str] = &[
    "Legal",
    "Sales",
    "Procurement",
    "Finance",
    "People",
    "Engineering",
    "Product",
    "Security",
    "Marketing",
    "Operations",
];

/// Group names are `<team> <role>` pairs, then numbered once those run out,
/// so every name is unique without a lookup.
const GROUP_TEAMS: &[&str] = &[
    "Legal",
    "Sales",
    "Sales EMEA",
    "Sales APAC",
    "Procurement",
    "Finance",
    "People",
    "Engineering",
    "Product",
    "Security",
    "Marketing",
    "Operations",
    "Partnerships",
    "Support",
    "Executive",
    "Privacy",
    "Compliance",
    "Real Estate",
    "Facilities",
    "Research",
];

const GROUP_ROLES: &[&str] = &[
    "Approvers",
    "Reviewers",
    "Signers",
    "Editors",
    "Viewers",
    "Contract Owners",
    "Workflow Admins",
    "Team",
    "Leads",
    "Observers",
];

/// A provider for a generated user; most companies using SCIM also use SSO.
fn pick_provider(rng: &mut ChaCha8Rng) -> &'static str {
    match rng.random_range(0..100) {
        0..45 => "saml",
        45..70 => "local",
        70..85 => "google",
        _ => "magicLink",
    }
}

/// Generated users are created from 2019-01-07 on, a few minutes apart.
const FIRST_CREATED_SECS: i64 = 1_546_819_200;

fn generate_users(n: usize, rng: &mut ChaCha8Rng, ids: &mut ObjectIds) -> Vec<User> {
    let mut users = Vec::with_capacity(n);
    let mut t = FIRST_CREATED_SECS;
    for i in 0..n {
        t += rng.random_range(30..2400);
        let created_ms = t * 1000 + rng.random_range(0..1000);
        let given = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())];
        let family = LAST_NAMES[rng.random_range(0..LAST_NAMES.len())];
        let user_name = format!(
            "{}.{}.{}@example-tenant.test",
            given.to_ascii_lowercase(),
            family.to_ascii_lowercase(),
            i + 1
        );
        let title = rng
            .random_bool(0.65)
            .then(|| TITLES[rng.random_range(0..TITLES.len())].to_string());
        let department = rng
            .random_bool(0.6)
            .then(|| DEPARTMENTS[rng.random_range(0..DEPARTMENTS.len())].to_string());
        let provider = pick_provider(rng).to_string();
        // The first user set the company up; a few others were made admins.
        let admin = i == 0 || rng.random_ratio(1, 30);
        users.push(User {
            id: ids.next(t),
            user_name,
            given_name: given.to_string(),
            family_name: family.to_string(),
            title,
            department,
            provider,
            created: clock::rfc3339_millis(created_ms),
            admin,
            password: None,
        });
    }
    users
}

fn generate_groups(n: usize, rng: &mut ChaCha8Rng) -> Vec<Group> {
    let pairs = GROUP_TEAMS.len() * GROUP_ROLES.len();
    (0..n)
        .map(|i| {
            let pair = i % pairs;
            let base = format!(
                "{} {}",
                GROUP_TEAMS[pair % GROUP_TEAMS.len()],
                GROUP_ROLES[pair / GROUP_TEAMS.len()]
            );
            let display_name = if i < pairs {
                base
            } else {
                format!("{base} {}", i / pairs + 1)
            };
            let id = uuid_v4(rng);
            // Groups pushed by an identity provider carry its id.
            let external_id = rng.random_bool(0.3).then(|| uuid_v4(rng));
            Group {
                id,
                display_name,
                external_id,
                members: Vec::new(),
            }
        })
        .collect()
}

/// Members (user indexes) per group: `total` distinct (group, user) pairs,
/// half spread evenly and half skewed towards a few big groups, as in real
/// companies. `total` must be at most `users * groups`.
fn generate_memberships(
    total: usize,
    users: usize,
    groups: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<Vec<u32>> {
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); groups];
    if total == 0 || users == 0 || groups == 0 {
        return members;
    }
    let mut cumulative = Vec::with_capacity(groups);
    let mut sum = 0.0f64;
    for g in 0..groups {
        sum += 1.0 / ((g + 1) as f64).powf(0.7);
        cumulative.push(sum);
    }
    let users64 = users as u64;
    let mut taken: HashSet<u64> = HashSet::with_capacity(total);
    let mut placed = 0usize;
    // Random placement with a bounded number of tries; a nearly full matrix
    // (tiny tenants) is finished by the sweep below.
    let mut tries = total.saturating_mul(8).saturating_add(1000);
    while placed < total && tries > 0 {
        tries -= 1;
        let g = if rng.random_bool(0.5) {
            rng.random_range(0..groups)
        } else {
            let x = rng.random::<f64>() * sum;
            cumulative.partition_point(|&c| c < x).min(groups - 1)
        };
        let u = rng.random_range(0..users);
        if taken.insert(g as u64 * users64 + u as u64) {
            members[g].push(u as u32);
            placed += 1;
        }
    }
    'sweep: for (g, list) in members.iter_mut().enumerate() {
        for u in 0..users {
            if placed >= total {
                break 'sweep;
            }
            if taken.insert(g as u64 * users64 + u as u64) {
                list.push(u as u32);
                placed += 1;
            }
        }
    }
    members
}

/// A random (version 4) UUID, lower case.
pub(crate) fn uuid_v4(rng: &mut impl RngCore) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    s
}

/// MongoDB-style ObjectIds: 4 bytes of creation time, 5 bytes fixed per
/// "process", a 3-byte counter. Unique as long as the counter doesn't wrap
/// (16 million ids).
#[derive(Clone, Debug)]
struct ObjectIds {
    process: [u8; 5],
    counter: u32,
}

impl ObjectIds {
    fn new(rng: &mut ChaCha8Rng) -> Self {
        let mut process = [0u8; 5];
        rng.fill_bytes(&mut process);
        ObjectIds {
            process,
            counter: rng.random_range(0..0x0010_0000),
        }
    }

    fn next(&mut self, created_secs: i64) -> String {
        let mut b = [0u8; 12];
        b[0..4].copy_from_slice(&(created_secs as u32).to_be_bytes());
        b[4..9].copy_from_slice(&self.process);
        b[9..12].copy_from_slice(&self.counter.to_be_bytes()[1..4]);
        self.counter = (self.counter + 1) & 0x00ff_ffff;
        hex(&b)
    }
}

/// What a new user is made of (SCIM POST or the test API).
#[derive(Clone, Debug, Default)]
pub(crate) struct NewUser {
    pub user_name: String,
    pub given_name: String,
    pub family_name: String,
    pub title: Option<String>,
    pub department: Option<String>,
    pub provider: String,
    pub password: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Membership {
    Changed,
    Unchanged,
    NoGroup,
    NoUser,
}

/// The live tenant plus the indexes that keep lookups O(1) on 100,000 users.
pub(crate) struct TenantState {
    tenant: Tenant,
    user_pos: HashMap<String, usize>,
    /// Lower-cased userName: emails compare case-insensitively.
    user_by_name: HashMap<String, usize>,
    group_pos: HashMap<String, usize>,
    group_by_name: HashMap<String, usize>,
    ids: ObjectIds,
}

impl TenantState {
    pub(crate) fn new(tenant: Tenant, seed: u64) -> Self {
        // Ids for users created later come from their own stream, so they
        // don't depend on how big the generated tenant was.
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5ca1_ab1e_0000_0001);
        let ids = ObjectIds::new(&mut rng);
        let mut state = TenantState {
            tenant,
            user_pos: HashMap::new(),
            user_by_name: HashMap::new(),
            group_pos: HashMap::new(),
            group_by_name: HashMap::new(),
            ids,
        };
        state.reindex_users();
        state.group_pos.reserve(state.tenant.groups.len());
        for (i, g) in state.tenant.groups.iter().enumerate() {
            state.group_pos.insert(g.id.clone(), i);
            state.group_by_name.insert(g.display_name.to_lowercase(), i);
        }
        state
    }

    fn reindex_users(&mut self) {
        self.user_pos.clear();
        self.user_by_name.clear();
        self.user_pos.reserve(self.tenant.users.len());
        self.user_by_name.reserve(self.tenant.users.len());
        for (i, u) in self.tenant.users.iter().enumerate() {
            self.user_pos.insert(u.id.clone(), i);
            self.user_by_name.insert(u.user_name.to_lowercase(), i);
        }
    }

    pub(crate) fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    pub(crate) fn users(&self) -> &[User] {
        &self.tenant.users
    }

    pub(crate) fn groups(&self) -> &[Group] {
        &self.tenant.groups
    }

    pub(crate) fn user(&self, id: &str) -> Option<&User> {
        self.user_pos.get(id).map(|&i| &self.tenant.users[i])
    }

    pub(crate) fn user_by_name(&self, user_name: &str) -> Option<&User> {
        self.user_by_name
            .get(&user_name.to_lowercase())
            .map(|&i| &self.tenant.users[i])
    }

    pub(crate) fn group(&self, id: &str) -> Option<&Group> {
        self.group_pos.get(id).map(|&i| &self.tenant.groups[i])
    }

    pub(crate) fn group_by_name(&self, display_name: &str) -> Option<&Group> {
        self.group_by_name
            .get(&display_name.to_lowercase())
            .map(|&i| &self.tenant.groups[i])
    }

    /// Adds a user at the end of the creation order; `Err` with the existing
    /// user's id when the userName is taken.
    pub(crate) fn create_user(&mut self, new: NewUser) -> Result<&User, String> {
        let key = new.user_name.to_lowercase();
        if let Some(&i) = self.user_by_name.get(&key) {
            return Err(self.tenant.users[i].id.clone());
        }
        let now = clock::now_millis();
        let user = User {
            id: self.ids.next(now.div_euclid(1000)),
            user_name: new.user_name,
            given_name: new.given_name,
            family_name: new.family_name,
            title: new.title,
            department: new.department,
            provider: new.provider,
            created: clock::rfc3339_millis(now),
            admin: false,
            password: new.password,
        };
        let pos = self.tenant.users.len();
        self.user_pos.insert(user.id.clone(), pos);
        self.user_by_name.insert(key, pos);
        self.tenant.users.push(user);
        Ok(&self.tenant.users[pos])
    }

    /// Removes a user from the company and from every group.
    pub(crate) fn delete_user(&mut self, id: &str) -> bool {
        let Some(pos) = self.user_pos.get(id).copied() else {
            return false;
        };
        self.tenant.users.remove(pos);
        // Positions after the removed user shift down by one.
        self.reindex_users();
        for g in &mut self.tenant.groups {
            g.members.retain(|m| m != id);
        }
        true
    }

    pub(crate) fn add_member(&mut self, group_id: &str, user_id: &str) -> Membership {
        let Some(&gi) = self.group_pos.get(group_id) else {
            return Membership::NoGroup;
        };
        if !self.user_pos.contains_key(user_id) {
            return Membership::NoUser;
        }
        let members = &mut self.tenant.groups[gi].members;
        if members.iter().any(|m| m == user_id) {
            return Membership::Unchanged;
        }
        members.push(user_id.to_string());
        Membership::Changed
    }

    pub(crate) fn remove_member(&mut self, group_id: &str, user_id: &str) -> Membership {
        let Some(&gi) = self.group_pos.get(group_id) else {
            return Membership::NoGroup;
        };
        let members = &mut self.tenant.groups[gi].members;
        let before = members.len();
        members.retain(|m| m != user_id);
        if members.len() == before {
            Membership::Unchanged
        } else {
            Membership::Changed
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn spec(users: usize, groups: usize, memberships: usize, seed: u64) -> TenantSpec {
        TenantSpec {
            users,
            groups,
            memberships,
            seed,
        }
    }

    #[test]
    fn same_seed_same_tenant() {
        let a = Tenant::generate(&spec(300, 20, 900, 7));
        let b = Tenant::generate(&spec(300, 20, 900, 7));
        let c = Tenant::generate(&spec(300, 20, 900, 8));
        let ja = serde_json::to_string(&a).unwrap();
        assert_eq!(ja, serde_json::to_string(&b).unwrap());
        assert_ne!(ja, serde_json::to_string(&c).unwrap());
    }

    #[test]
    fn sizes_and_uniqueness() {
        let t = Tenant::generate(&spec(2000, 120, 9000, 3));
        assert_eq!(t.users.len(), 2000);
        assert_eq!(t.groups.len(), 120);
        assert_eq!(t.memberships(), 9000);
        let ids: HashSet<_> = t.users.iter().map(|u| &u.id).collect();
        assert_eq!(ids.len(), 2000);
        let names: HashSet<_> = t.users.iter().map(|u| u.user_name.to_lowercase()).collect();
        assert_eq!(names.len(), 2000);
        let gids: HashSet<_> = t.groups.iter().map(|g| &g.id).collect();
        assert_eq!(gids.len(), 120);
        let gnames: HashSet<_> = t.groups.iter().map(|g| &g.display_name).collect();
        assert_eq!(gnames.len(), 120);
        for g in &t.groups {
            let m: HashSet<_> = g.members.iter().collect();
            assert_eq!(
                m.len(),
                g.members.len(),
                "duplicate member in {}",
                g.display_name
            );
            assert!(g.members.iter().all(|id| ids.contains(id)));
        }
        for u in &t.users {
            assert_eq!(u.id.len(), 24);
            assert!(u.id.chars().all(|c| c.is_ascii_hexdigit()));
            assert!(u.user_name.ends_with("@example-tenant.test"));
        }
        assert!(t.users[0].admin);
        assert!(t.users.iter().filter(|u| u.admin).count() > 1);
        assert!(t.users.iter().any(|u| !u.admin));
        assert!(t.users.iter().any(|u| u.title.is_some()));
        assert!(t.users.iter().any(|u| u.title.is_none()));
        assert!(t.users.iter().any(|u| u.department.is_some()));
        let providers: HashSet<_> = t.users.iter().map(|u| u.provider.as_str()).collect();
        assert_eq!(providers.len(), 4);
        assert!(t.groups.iter().any(|g| g.external_id.is_some()));
        assert!(t.groups.iter().any(|g| g.external_id.is_none()));
        // Created timestamps follow creation order.
        assert!(t.users.windows(2).all(|w| w[0].created < w[1].created));
    }

    #[test]
    fn group_names_unique_past_the_pairs() {
        let n = GROUP_TEAMS.len() * GROUP_ROLES.len() * 3 + 7;
        let t = Tenant::generate(&spec(10, n, 0, 1));
        let names: HashSet<_> = t.groups.iter().map(|g| &g.display_name).collect();
        assert_eq!(names.len(), n);
    }

    #[test]
    fn memberships_clamped_and_full_matrix() {
        let t = Tenant::generate(&spec(7, 3, 1000, 1));
        assert_eq!(t.memberships(), 21);
        for g in &t.groups {
            assert_eq!(g.members.len(), 7);
        }
        let empty = Tenant::generate(&spec(0, 3, 10, 1));
        assert_eq!(empty.memberships(), 0);
    }

    #[test]
    fn uuid_shape() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let u = uuid_v4(&mut rng);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(crate::oauth::is_uuid(&u));
    }

    #[test]
    fn state_mutations() {
        let t = Tenant::generate(&spec(20, 3, 30, 2));
        let mut s = TenantState::new(t, 2);
        let g = s.groups()[0].id.clone();
        let victim = s.users()[5].id.clone();
        let new_id = s
            .create_user(NewUser {
                user_name: "New.Person@Example.com".into(),
                given_name: "New".into(),
                family_name: "Person".into(),
                provider: "local".into(),
                ..NewUser::default()
            })
            .unwrap()
            .id
            .clone();
        assert!(s.user_by_name("new.person@example.com").is_some());
        assert!(s
            .create_user(NewUser {
                user_name: "NEW.PERSON@example.com".into(),
                ..NewUser::default()
            })
            .is_err());
        assert_eq!(s.add_member(&g, &new_id), Membership::Changed);
        assert_eq!(s.add_member(&g, &new_id), Membership::Unchanged);
        assert_eq!(s.add_member(&g, "nope"), Membership::NoUser);
        assert_eq!(s.add_member("nope", &new_id), Membership::NoGroup);
        s.add_member(&g, &victim);
        assert!(s.delete_user(&victim));
        assert!(!s.delete_user(&victim));
        assert!(s.user(&victim).is_none());
        assert!(s.groups().iter().all(|g| !g.members.contains(&victim)));
        // Indexes still right after the shift.
        assert_eq!(s.user(&new_id).unwrap().id, new_id);
        assert_eq!(s.remove_member(&g, &new_id), Membership::Changed);
        assert_eq!(s.remove_member(&g, &new_id), Membership::Unchanged);
    }
}
