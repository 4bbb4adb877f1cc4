//! The `c1.connector.v2` messages a c1z file stores, written by hand with
//! the field numbers of the baton SDK (see shared/baton/MODEL.md) so no
//! protoc or build script is needed. Only the fields this host reads or
//! writes are declared; prost skips the others when decoding.
//!
//! prost encodes fields in tag order and `Struct` maps are `BTreeMap`s, so
//! every encoding here is deterministic, as the format asks.

use prost_types::{Any, Struct, Timestamp};

pub const USER_TRAIT_URL: &str = "type.googleapis.com/c1.connector.v2.UserTrait";
pub const GROUP_TRAIT_URL: &str = "type.googleapis.com/c1.connector.v2.GroupTrait";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Trait {
    Unspecified = 0,
    User = 1,
    Group = 2,
    Role = 3,
    App = 4,
    Secret = 5,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ResourceStatus {
    Unspecified = 0,
    Enabled = 1,
    Disabled = 2,
    Deleted = 3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Purpose {
    Unspecified = 0,
    Assignment = 1,
    Permission = 2,
    Ownership = 3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum AccountType {
    Unspecified = 0,
    Human = 1,
    Service = 2,
    System = 3,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceType {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub display_name: String,
    #[prost(enumeration = "Trait", repeated, tag = "3")]
    pub traits: Vec<i32>,
    #[prost(message, repeated, tag = "4")]
    pub annotations: Vec<Any>,
    #[prost(string, tag = "5")]
    pub description: String,
    #[prost(bool, tag = "6")]
    pub sourced_externally: bool,
}

#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct ResourceId {
    #[prost(string, tag = "1")]
    pub resource_type: String,
    #[prost(string, tag = "2")]
    pub resource: String,
    #[prost(bool, tag = "3")]
    pub baton_resource: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    #[prost(message, optional, tag = "1")]
    pub id: Option<ResourceId>,
    #[prost(message, optional, tag = "2")]
    pub parent_resource_id: Option<ResourceId>,
    #[prost(string, tag = "3")]
    pub display_name: String,
    #[prost(message, repeated, tag = "4")]
    pub annotations: Vec<Any>,
    #[prost(string, tag = "5")]
    pub description: String,
    #[prost(message, optional, tag = "9")]
    pub profile: Option<Struct>,
    #[prost(message, optional, tag = "11")]
    pub status: Option<Status>,
    #[prost(message, optional, tag = "12")]
    pub created_at: Option<Timestamp>,
}

/// The resource-level status (`c1.connector.v2.Status`, Resource field 11).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(enumeration = "ResourceStatus", tag = "1")]
    pub status: i32,
    #[prost(string, tag = "2")]
    pub details: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Entitlement {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(string, tag = "2")]
    pub id: String,
    #[prost(string, tag = "3")]
    pub display_name: String,
    #[prost(string, tag = "4")]
    pub description: String,
    #[prost(message, repeated, tag = "5")]
    pub grantable_to: Vec<ResourceType>,
    #[prost(message, repeated, tag = "6")]
    pub annotations: Vec<Any>,
    #[prost(enumeration = "Purpose", tag = "7")]
    pub purpose: i32,
    #[prost(string, tag = "8")]
    pub slug: String,
}

/// The Grant message, for tests to hold [`encode_grant`] to: writing goes
/// through `encode_grant` so 500,000 grants don't each clone their
/// entitlement and principal, and reading takes grants from their columns.
#[cfg(test)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct Grant {
    #[prost(message, optional, tag = "1")]
    pub entitlement: Option<Entitlement>,
    #[prost(message, optional, tag = "2")]
    pub principal: Option<Resource>,
    #[prost(string, tag = "3")]
    pub id: String,
    #[prost(message, repeated, tag = "4")]
    pub annotations: Vec<Any>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UserTrait {
    #[prost(message, repeated, tag = "1")]
    pub emails: Vec<user_trait::Email>,
    #[prost(message, optional, tag = "2")]
    pub status: Option<user_trait::Status>,
    #[prost(message, optional, tag = "3")]
    pub profile: Option<Struct>,
    #[prost(enumeration = "AccountType", tag = "5")]
    pub account_type: i32,
    #[prost(string, tag = "6")]
    pub login: String,
    #[prost(string, repeated, tag = "7")]
    pub login_aliases: Vec<String>,
    #[prost(message, optional, tag = "8")]
    pub created_at: Option<Timestamp>,
    #[prost(message, optional, tag = "9")]
    pub last_login: Option<Timestamp>,
    #[prost(message, optional, tag = "12")]
    pub structured_name: Option<user_trait::StructuredName>,
    #[prost(string, repeated, tag = "13")]
    pub employee_ids: Vec<String>,
}

pub mod user_trait {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Email {
        #[prost(string, tag = "1")]
        pub address: String,
        #[prost(bool, tag = "2")]
        pub is_primary: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Status {
        #[prost(enumeration = "super::ResourceStatus", tag = "1")]
        pub status: i32,
        #[prost(string, tag = "2")]
        pub details: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StructuredName {
        #[prost(string, tag = "1")]
        pub given_name: String,
        #[prost(string, tag = "2")]
        pub family_name: String,
        #[prost(string, repeated, tag = "3")]
        pub middle_names: Vec<String>,
        #[prost(string, tag = "4")]
        pub prefix: String,
        #[prost(string, tag = "5")]
        pub suffix: String,
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GroupTrait {
    #[prost(message, optional, tag = "2")]
    pub profile: Option<Struct>,
    #[prost(string, tag = "3")]
    pub group_source_type: String,
}

/// Appends a length-delimited field: a message already encoded, a string or
/// bytes (the same on the wire: tag, length, payload).
fn put_field(tag: u32, payload: &[u8], buf: &mut Vec<u8>) {
    use prost::encoding::{encode_key, encode_varint, WireType};
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(payload.len() as u64, buf);
    buf.extend_from_slice(payload);
}

/// Appends a string field as prost does: an empty string (proto3's default)
/// is left out.
fn put_string(tag: u32, s: &str, buf: &mut Vec<u8>) {
    if !s.is_empty() {
        put_field(tag, s.as_bytes(), buf);
    }
}

/// Encodes a Grant from already-encoded parts into `buf` (cleared first).
/// A message field and a bytes field are the same on the wire, so this is
/// byte for byte what encoding a [`Grant`] holding those messages gives; a
/// unit test holds it to that.
pub fn encode_grant(entitlement: &[u8], principal: &[u8], id: &str, buf: &mut Vec<u8>) {
    buf.clear();
    put_field(1, entitlement, buf);
    put_field(2, principal, buf);
    put_string(3, id, buf);
}

/// Appends a Resource that names its resource by id only,
/// `Resource { id: Some(ResourceId { resource_type, resource }) }`, the way
/// baton connectors give a grant's principal: byte for byte what prost
/// encodes for it, without building the message.
pub fn encode_resource_ref(resource_type: &str, resource: &str, buf: &mut Vec<u8>) {
    use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};
    let field = |s: &str| {
        if s.is_empty() {
            0
        } else {
            1 + encoded_len_varint(s.len() as u64) + s.len()
        }
    };
    let id_len = field(resource_type) + field(resource);
    encode_key(1, WireType::LengthDelimited, buf);
    encode_varint(id_len as u64, buf);
    put_string(1, resource_type, buf);
    put_string(2, resource, buf);
}

/// Encodes an Entitlement whose owning resource (field 1) is already
/// encoded into `buf` (cleared first); `rest` holds the other fields and no
/// resource. Field 1 comes first in a deterministic encoding, so this is
/// byte for byte the whole message encoded at once.
pub fn encode_entitlement(owner: &[u8], rest: &Entitlement, buf: &mut Vec<u8>) {
    buf.clear();
    put_field(1, owner, buf);
    buf.extend_from_slice(&prost::Message::encode_to_vec(rest));
}

/// Encodes the Entitlement a grant embeds into `buf` (cleared first): its
/// owning resource (already encoded) and its id, nothing else, as the SDK's
/// `grant.NewGrant` builds it; the entitlement's other fields are in its
/// own row. Byte for byte `Entitlement { resource, id }` encoded by prost.
pub fn encode_grant_entitlement(owner: &[u8], id: &str, buf: &mut Vec<u8>) {
    buf.clear();
    put_field(1, owner, buf);
    put_string(2, id, buf);
}

#[cfg(test)]
pub fn any(type_url: &str, msg: &impl prost::Message) -> Any {
    Any {
        type_url: type_url.to_string(),
        value: msg.encode_to_vec(),
    }
}

/// The first annotation of the given type, decoded; `None` when absent or
/// undecodable (a reader shows what it can).
pub fn find_annotation<M: prost::Message + Default>(
    annotations: &[Any],
    type_url: &str,
) -> Option<M> {
    annotations
        .iter()
        .find(|a| a.type_url == type_url)
        .and_then(|a| M::decode(a.value.as_slice()).ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use prost::Message;

    fn user() -> Resource {
        let ut = UserTrait {
            login: "a@x.com".into(),
            account_type: AccountType::Human as i32,
            ..Default::default()
        };
        Resource {
            id: Some(ResourceId {
                resource_type: "user".into(),
                resource: "u1".into(),
                baton_resource: false,
            }),
            display_name: "A".into(),
            annotations: vec![any(USER_TRAIT_URL, &ut)],
            ..Default::default()
        }
    }

    #[test]
    fn the_assembled_grant_is_the_grant_message() {
        let ent = Entitlement {
            resource: Some(Resource {
                id: Some(ResourceId {
                    resource_type: "group".into(),
                    resource: "g1".into(),
                    baton_resource: false,
                }),
                display_name: "G".into(),
                ..Default::default()
            }),
            id: "group:g1:member".into(),
            purpose: Purpose::Assignment as i32,
            slug: "member".into(),
            ..Default::default()
        };
        let principal = user();
        let grant = Grant {
            entitlement: Some(ent.clone()),
            principal: Some(principal.clone()),
            id: "group:g1:member:user:u1".into(),
            annotations: vec![],
        };
        let mut buf = Vec::new();
        encode_grant(
            &ent.encode_to_vec(),
            &principal.encode_to_vec(),
            &grant.id,
            &mut buf,
        );
        assert_eq!(buf, grant.encode_to_vec());
        assert_eq!(Grant::decode(buf.as_slice()).unwrap(), grant);
    }

    #[test]
    fn a_grants_entitlement_is_its_resource_and_id_only() {
        let owner = user();
        for id in ["group:g1:member", ""] {
            let whole = Entitlement {
                resource: Some(owner.clone()),
                id: id.into(),
                ..Default::default()
            };
            let mut buf = vec![9, 9];
            encode_grant_entitlement(&owner.encode_to_vec(), id, &mut buf);
            assert_eq!(buf, whole.encode_to_vec());
        }
    }

    #[test]
    fn a_resource_ref_and_an_entitlement_from_parts_are_the_messages() {
        for (t, id) in [("user", "u1"), ("", "u1"), ("user", ""), ("", "")] {
            let r = Resource {
                id: Some(ResourceId {
                    resource_type: t.into(),
                    resource: id.into(),
                    baton_resource: false,
                }),
                ..Default::default()
            };
            let mut buf = vec![7];
            encode_resource_ref(t, id, &mut buf);
            assert_eq!(buf[1..], r.encode_to_vec(), "{t:?} {id:?}");
        }
        let owner = user();
        let rest = Entitlement {
            id: "group:g1:member".into(),
            slug: "member".into(),
            purpose: Purpose::Assignment as i32,
            ..Default::default()
        };
        let mut buf = vec![1, 2, 3];
        encode_entitlement(&owner.encode_to_vec(), &rest, &mut buf);
        let whole = Entitlement {
            resource: Some(owner),
            ..rest
        };
        assert_eq!(buf, whole.encode_to_vec());
    }

    #[test]
    fn field_numbers_are_the_sdk_ones() {
        // ResourceId{1:"user",2:"u1"}: tag bytes 0x0a and 0x12.
        let id = ResourceId {
            resource_type: "user".into(),
            resource: "u1".into(),
            baton_resource: false,
        };
        assert_eq!(id.encode_to_vec(), b"\x0a\x04user\x12\x02u1");
        // Status at 11 (0x5a), created_at at 12 (0x62), profile at 9 (0x4a).
        let r = Resource {
            profile: Some(Struct::default()),
            status: Some(Status {
                status: ResourceStatus::Enabled as i32,
                details: String::new(),
            }),
            created_at: Some(Timestamp {
                seconds: 1,
                nanos: 0,
            }),
            ..Default::default()
        };
        assert_eq!(
            r.encode_to_vec(),
            b"\x4a\x00\x5a\x02\x08\x01\x62\x02\x08\x01"
        );
        // Traits are packed varints at 3.
        let t = ResourceType {
            traits: vec![Trait::User as i32],
            ..Default::default()
        };
        assert_eq!(t.encode_to_vec(), b"\x1a\x01\x01");
    }

    #[test]
    fn annotations_are_found_by_type_url() {
        let r = user();
        let ut: UserTrait = find_annotation(&r.annotations, USER_TRAIT_URL).unwrap();
        assert_eq!(ut.login, "a@x.com");
        assert!(find_annotation::<GroupTrait>(&r.annotations, GROUP_TRAIT_URL).is_none());
    }
}
