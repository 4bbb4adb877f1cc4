//! The model's records as the c1z stores them: protobuf blobs (MODEL.md),
//! the stats column and the local times of the format.

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::encoding::WireType;
use prost::Message as _;
use prost_types::Timestamp;
#[cfg(test)]
use prost_types::{value::Kind as ValueKind, Struct, Value};
use rusqlite::Connection;
use serde::Serialize;

use super::proto;
#[cfg(test)]
use super::proto::user_trait;
use crate::model as output;

/// The `stats` column: the sync's stats plus which connector wrote it (the
/// v1 tables have no other place for that).
#[derive(Serialize)]
pub(super) struct StoredStats<'a> {
    pub connector: &'a output::ConnectorInfo,
    #[serde(flatten)]
    pub stats: &'a output::Stats,
}

/// `YYYY-MM-DD HH:MM:SS[.fraction]` in local time, the fraction without
/// trailing zeros (MODEL.md). SQLite's `localtime` is libc's, so the zone
/// is the machine's, as the SDK's Go writer would use.
pub(super) fn local_time(conn: &Connection, t: SystemTime) -> rusqlite::Result<String> {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let base: String = conn.query_row(
        "SELECT datetime(?1, 'unixepoch', 'localtime')",
        [d.as_secs() as i64],
        |r| r.get(0),
    )?;
    Ok(with_fraction(base, d.subsec_nanos()))
}

fn with_fraction(mut s: String, nanos: u32) -> String {
    if nanos != 0 {
        let f = format!("{nanos:09}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s
}

/// An entitlement as a grant embeds it, with the columns a grant copies.
pub(super) struct EntitlementRow {
    pub resource_type: String,
    pub resource: String,
    /// The embedded form: the owning resource and the id
    /// ([`proto::encode_grant_entitlement`]).
    pub data: Vec<u8>,
    /// Made up from the id: the sync never listed this entitlement.
    pub orphan: bool,
}

/// An entitlement the sync did not list, from its id
/// (`<type>:<resource>:<slug>`) as far as that can be split.
pub(super) fn orphan_entitlement(id: &str) -> EntitlementRow {
    let (resource_type, resource, _slug) = crate::ids::split_entitlement_id(id);
    let mut data = Vec::new();
    proto::encode_grant_entitlement(
        &bare_resource(&resource_type, &resource).encode_to_vec(),
        id,
        &mut data,
    );
    EntitlementRow {
        resource_type,
        resource,
        data,
        orphan: true,
    }
}

/// A resource named by its id only.
pub(super) fn bare_resource(resource_type: &str, resource: &str) -> proto::Resource {
    proto::Resource {
        id: Some(resource_id(resource_type, resource)),
        ..Default::default()
    }
}

fn resource_id(resource_type: &str, resource: &str) -> proto::ResourceId {
    proto::ResourceId {
        resource_type: resource_type.to_string(),
        resource: resource.to_string(),
        baton_resource: false,
    }
}

fn trait_value(t: output::Trait) -> proto::Trait {
    match t {
        output::Trait::User => proto::Trait::User,
        output::Trait::Group => proto::Trait::Group,
        output::Trait::Role => proto::Trait::Role,
        output::Trait::App => proto::Trait::App,
        output::Trait::Secret => proto::Trait::Secret,
        output::Trait::Unspecified => proto::Trait::Unspecified,
    }
}

fn status_value(s: output::AccountStatus) -> proto::ResourceStatus {
    match s {
        output::AccountStatus::Enabled => proto::ResourceStatus::Enabled,
        output::AccountStatus::Disabled => proto::ResourceStatus::Disabled,
        output::AccountStatus::Deleted => proto::ResourceStatus::Deleted,
        output::AccountStatus::Unspecified => proto::ResourceStatus::Unspecified,
    }
}

fn purpose_value(p: output::Purpose) -> proto::Purpose {
    match p {
        output::Purpose::Assignment => proto::Purpose::Assignment,
        output::Purpose::Permission => proto::Purpose::Permission,
        output::Purpose::Ownership => proto::Purpose::Ownership,
        output::Purpose::Unspecified => proto::Purpose::Unspecified,
    }
}

pub(super) fn resource_type(t: &output::ResourceType) -> proto::ResourceType {
    proto::ResourceType {
        id: t.id.clone(),
        display_name: t.display_name.clone(),
        traits: t.traits.iter().map(|n| trait_value(*n) as i32).collect(),
        annotations: Vec::new(),
        description: t.description.clone(),
        sourced_externally: false,
    }
}

#[cfg(test)]
fn profile(p: &BTreeMap<String, String>) -> Option<Struct> {
    if p.is_empty() {
        return None;
    }
    Some(Struct {
        fields: p
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    Value {
                        kind: Some(ValueKind::StringValue(v.clone())),
                    },
                )
            })
            .collect(),
    })
}

#[cfg(test)]
fn or_empty(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

/// The Resource message built with prost: the reference [`resource_into`]
/// is held to.
#[cfg(test)]
pub(super) fn resource(r: &output::Resource) -> proto::Resource {
    let profile = profile(&r.profile);
    let created_at = r
        .created_at
        .as_deref()
        .and_then(|s| s.parse::<Timestamp>().ok());
    let mut annotations = Vec::new();
    let mut status = None;
    if let Some(u) = &r.user {
        let st = status_value(u.status) as i32;
        status = Some(proto::Status {
            status: st,
            details: String::new(),
        });
        let structured_name = (u.given_name.is_some() || u.family_name.is_some()).then(|| {
            user_trait::StructuredName {
                given_name: or_empty(&u.given_name),
                family_name: or_empty(&u.family_name),
                ..Default::default()
            }
        });
        let ut = proto::UserTrait {
            emails: u
                .emails
                .iter()
                .map(|e| user_trait::Email {
                    address: e.address.clone(),
                    is_primary: e.primary,
                })
                .collect(),
            status: Some(user_trait::Status {
                status: st,
                details: String::new(),
            }),
            profile: profile.clone(),
            account_type: proto::AccountType::Human as i32,
            login: u.login.clone(),
            login_aliases: Vec::new(),
            created_at,
            last_login: None,
            structured_name,
            employee_ids: Vec::new(),
        };
        annotations.push(proto::any(proto::USER_TRAIT_URL, &ut));
    }
    if let Some(g) = &r.group {
        let gt = proto::GroupTrait {
            profile: profile.clone(),
            group_source_type: or_empty(&g.source),
        };
        annotations.push(proto::any(proto::GROUP_TRAIT_URL, &gt));
    }
    proto::Resource {
        id: Some(resource_id(&r.id.resource_type, &r.id.resource)),
        parent_resource_id: r
            .parent
            .as_ref()
            .map(|p| resource_id(&p.resource_type, &p.resource)),
        display_name: r.display_name.clone(),
        annotations,
        description: or_empty(&r.description),
        profile,
        status,
        created_at,
    }
}

/// Encodes the Resource message into `buf` (cleared first): the resource
/// with its trait as an annotation. Profile, status and created-at go on
/// both the resource (fields 9, 11, 12, newer readers) and the trait (older
/// ones).
///
/// Written field by field rather than through prost's structs: every
/// resource of the tenant passes here, and building the messages (each
/// string copied, the profile map twice) cost several times the encoding.
/// A test holds it to prost's bytes (deterministic: fields in number
/// order, defaults left out).
pub(super) fn resource_into(r: &output::Resource, buf: &mut Vec<u8>) {
    buf.clear();
    let created = r
        .created_at
        .as_deref()
        .and_then(|s| s.parse::<Timestamp>().ok());
    // The profile goes on the resource and on its trait: encoded once.
    let mut profile = Vec::new();
    profile_into(&mut profile, &r.profile);
    let profile = profile.as_slice();
    message(buf, 1, |b| resource_id_into(b, &r.id));
    if let Some(p) = &r.parent {
        message(buf, 2, |b| resource_id_into(b, p));
    }
    string(buf, 3, &r.display_name);
    if let Some(u) = &r.user {
        message(buf, 4, |b| {
            string(b, 1, proto::USER_TRAIT_URL);
            message_unless_empty(b, 2, |b| user_trait_into(b, u, profile, created));
        });
    }
    if let Some(g) = &r.group {
        message(buf, 4, |b| {
            string(b, 1, proto::GROUP_TRAIT_URL);
            message_unless_empty(b, 2, |b| {
                if !r.profile.is_empty() {
                    bytes_always(b, 2, profile);
                }
                string(b, 3, g.source.as_deref().unwrap_or(""));
            });
        });
    }
    string(buf, 5, r.description.as_deref().unwrap_or(""));
    if !r.profile.is_empty() {
        bytes_always(buf, 9, profile);
    }
    if let Some(u) = &r.user {
        message(buf, 11, |b| {
            varint(b, 1, status_value(u.status) as i32 as u64)
        });
    }
    if let Some(t) = created {
        message(buf, 12, |b| timestamp_into(b, t));
    }
}

fn user_trait_into(
    b: &mut Vec<u8>,
    u: &output::UserTrait,
    profile: &[u8],
    created: Option<Timestamp>,
) {
    for e in &u.emails {
        message(b, 1, |b| {
            string(b, 1, &e.address);
            varint(b, 2, u64::from(e.primary));
        });
    }
    message(b, 2, |b| varint(b, 1, status_value(u.status) as i32 as u64));
    if !profile.is_empty() {
        bytes_always(b, 3, profile);
    }
    varint(b, 5, proto::AccountType::Human as i32 as u64);
    string(b, 6, &u.login);
    if let Some(t) = created {
        message(b, 8, |b| timestamp_into(b, t));
    }
    if u.given_name.is_some() || u.family_name.is_some() {
        message(b, 12, |b| {
            string(b, 1, u.given_name.as_deref().unwrap_or(""));
            string(b, 2, u.family_name.as_deref().unwrap_or(""));
        });
    }
}

fn resource_id_into(b: &mut Vec<u8>, id: &output::ResourceId) {
    string(b, 1, &id.resource_type);
    string(b, 2, &id.resource);
}

/// The body of a `google.protobuf.Struct` of string values: map entries in
/// key order, each `{1: key, 2: Value{3: string}}` (a set oneof is written
/// even empty). Empty for an empty map.
fn profile_into(b: &mut Vec<u8>, p: &BTreeMap<String, String>) {
    for (k, v) in p {
        message(b, 1, |b| {
            string(b, 1, k);
            message(b, 2, |b| bytes_always(b, 3, v.as_bytes()));
        });
    }
}

fn timestamp_into(b: &mut Vec<u8>, t: Timestamp) {
    varint(b, 1, t.seconds as u64);
    varint(b, 2, i64::from(t.nanos) as u64);
}

fn key(b: &mut Vec<u8>, tag: u32, wire: WireType) {
    prost::encoding::encode_key(tag, wire, b);
}

/// A varint field, left out when zero (proto3).
fn varint(b: &mut Vec<u8>, tag: u32, v: u64) {
    if v != 0 {
        key(b, tag, WireType::Varint);
        prost::encoding::encode_varint(v, b);
    }
}

/// A string field, left out when empty (proto3).
fn string(b: &mut Vec<u8>, tag: u32, s: &str) {
    if !s.is_empty() {
        bytes_always(b, tag, s.as_bytes());
    }
}

fn bytes_always(b: &mut Vec<u8>, tag: u32, v: &[u8]) {
    key(b, tag, WireType::LengthDelimited);
    prost::encoding::encode_varint(v.len() as u64, b);
    b.extend_from_slice(v);
}

/// A message field (present, even when empty): its body is written in
/// place after a one-byte length, which grows (shifting the body) in the
/// rare case the body is 128 bytes or more.
fn message(b: &mut Vec<u8>, tag: u32, body: impl FnOnce(&mut Vec<u8>)) {
    key(b, tag, WireType::LengthDelimited);
    let at = b.len();
    b.push(0);
    body(b);
    let len = b.len() - at - 1;
    let mut prefix = [0u8; 10];
    let mut n = 0;
    let mut v = len as u64;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            prefix[n] = byte;
            n += 1;
            break;
        }
        prefix[n] = byte | 0x80;
        n += 1;
    }
    if n > 1 {
        b.resize(b.len() + n - 1, 0);
        b.copy_within(at + 1..at + 1 + len, at + n);
    }
    b[at..at + n].copy_from_slice(&prefix[..n]);
}

/// A bytes field holding a message, left out when the message is empty
/// (`Any.value`).
fn message_unless_empty(b: &mut Vec<u8>, tag: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let at = b.len();
    message(b, tag, body);
    if b.len() == at + 2 {
        // key and a zero length: nothing in it
        b.truncate(at);
    }
}

/// Encodes the Entitlement message into `buf`, embedding `owner`, its
/// resource's encoded blob; `grantable_to` types are the sync's own
/// resource types when it listed them.
pub(super) fn entitlement(
    e: &output::Entitlement,
    owner: &[u8],
    types: &HashMap<String, proto::ResourceType>,
    buf: &mut Vec<u8>,
) {
    let rest = proto::Entitlement {
        resource: None,
        id: e.id.clone(),
        display_name: e.display_name.clone(),
        description: e.description.clone(),
        grantable_to: e
            .grantable_to
            .iter()
            .map(|t| {
                types
                    .get(t.as_str())
                    .cloned()
                    .unwrap_or_else(|| proto::ResourceType {
                        id: t.clone(),
                        ..Default::default()
                    })
            })
            .collect(),
        annotations: Vec::new(),
        purpose: purpose_value(e.purpose) as i32,
        slug: e.slug.clone(),
    };
    proto::encode_entitlement(owner, &rest, buf);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn local_times_drop_trailing_zeros() {
        assert_eq!(
            with_fraction("2025-01-02 03:04:05".into(), 0),
            "2025-01-02 03:04:05"
        );
        assert_eq!(
            with_fraction("2025-01-02 03:04:05".into(), 120_000_000),
            "2025-01-02 03:04:05.12"
        );
        assert_eq!(
            with_fraction("2025-01-02 03:04:05".into(), 7),
            "2025-01-02 03:04:05.000000007"
        );
        let conn = Connection::open_in_memory().unwrap();
        let s = local_time(&conn, SystemTime::now()).unwrap();
        let b = s.as_bytes();
        assert!(
            s.len() >= 19 && b[4] == b'-' && b[10] == b' ' && b[13] == b':',
            "{s}"
        );
    }

    #[test]
    fn resources_encode_to_prost_bytes() {
        let mut doc = crate::testing::sample(&["u1", "ü2"], &[]);
        let mut r = doc.resources[0].clone();
        r.parent = Some(crate::testing::rid("org", "o1"));
        r.description = Some("Counsel".into());
        r.profile.insert(String::new(), "empty key".into());
        r.profile.insert("blank".into(), String::new());
        r.profile.insert("long".into(), "x".repeat(20_000));
        r.created_at = Some("1969-12-31T23:59:58.5Z".into());
        doc.resources.push(r);
        let mut bare = doc.resources[0].clone();
        bare.user = Some(output::UserTrait {
            login: String::new(),
            emails: vec![],
            status: output::AccountStatus::Unspecified,
            given_name: None,
            family_name: Some(String::new()),
        });
        bare.profile.clear();
        bare.created_at = Some("not a time".into());
        bare.display_name.clear();
        doc.resources.push(bare);
        let mut g = crate::testing::group("g2", "Sales");
        g.group = Some(output::GroupTrait { source: None });
        doc.resources.push(g);
        let mut g = crate::testing::group("g3", "Ops");
        g.profile.insert("external_id".into(), "x".into());
        doc.resources.push(g);
        let mut plain = crate::testing::group("g4", "");
        plain.group = None;
        plain.id.resource_type = String::new();
        doc.resources.push(plain);
        let mut buf = vec![9; 3];
        for r in &doc.resources {
            resource_into(r, &mut buf);
            assert_eq!(buf, resource(r).encode_to_vec(), "{r:?}");
        }
    }

    #[test]
    fn orphan_entitlements_are_split_from_their_id() {
        let e = orphan_entitlement("group:a:b:member");
        assert_eq!(
            (e.resource_type.as_str(), e.resource.as_str()),
            ("group", "a:b")
        );
        assert!(e.orphan);
        let p = proto::Entitlement::decode(e.data.as_slice()).unwrap();
        assert_eq!(p.id, "group:a:b:member");
        assert_eq!(p.resource.unwrap(), bare_resource("group", "a:b"));
    }
}
