//! Ironclad's SCIM (and userinfo) bodies as serde types.
//!
//! Parsed loosely on purpose: Ironclad's documents disagree with themselves in places (a numeric
//! field given as a string, `schema` for `schemas`), so unknown fields are ignored, every field is
//! optional, and a field of the wrong shape reads as absent instead of failing a whole page.

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A string, or a number/bool written as one; anything else reads as absent.
pub fn loose_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

pub fn loose_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => Some(b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    })
}

pub fn loose_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// A nested object of the wrong shape reads as absent.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    Ok(serde_json::from_value(Value::deserialize(d)?).ok())
}

/// A list keeps the entries that parse; anything but an array reads as empty.
fn lenient_list<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect(),
        _ => Vec::new(),
    })
}

/// A SCIM ListResponse. `Resources` stays raw so that one odd entry cannot fail the page and so
/// the page's length (which drives paging) counts every entry Ironclad sent.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListResponse {
    #[serde(rename = "totalResults", deserialize_with = "loose_u64")]
    pub total_results: Option<u64>,
    #[serde(rename = "Resources")]
    pub resources: Option<Vec<Value>>,
}

impl ListResponse {
    pub fn page_len(&self) -> usize {
        self.resources.as_ref().map_or(0, Vec::len)
    }

    /// The entries that are objects of type `T` with an id; the rest cannot be named, so they are
    /// left out.
    pub fn items<T: DeserializeOwned + HasId>(&self) -> Vec<T> {
        self.resources
            .iter()
            .flatten()
            .filter_map(|v| serde_json::from_value::<T>(v.clone()).ok())
            .filter(|t| t.id().is_some_and(|id| !id.is_empty()))
            .collect()
    }
}

pub trait HasId {
    fn id(&self) -> Option<&str>;
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Meta {
    #[serde(deserialize_with = "loose_string")]
    pub created: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Name {
    #[serde(rename = "givenName", deserialize_with = "loose_string")]
    pub given_name: Option<String>,
    #[serde(rename = "familyName", deserialize_with = "loose_string")]
    pub family_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Email {
    #[serde(deserialize_with = "loose_string")]
    pub value: Option<String>,
    #[serde(deserialize_with = "loose_bool")]
    pub primary: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EnterpriseUser {
    #[serde(deserialize_with = "loose_string")]
    pub department: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct IroncladUser {
    #[serde(deserialize_with = "loose_string")]
    pub provider: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct User {
    #[serde(deserialize_with = "loose_string")]
    pub id: Option<String>,
    #[serde(rename = "userName", deserialize_with = "loose_string")]
    pub user_name: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub name: Option<Name>,
    #[serde(deserialize_with = "loose_string")]
    pub title: Option<String>,
    #[serde(deserialize_with = "lenient_list")]
    pub emails: Vec<Email>,
    #[serde(deserialize_with = "loose_bool")]
    pub active: Option<bool>,
    #[serde(
        rename = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        deserialize_with = "lenient"
    )]
    pub enterprise: Option<EnterpriseUser>,
    #[serde(
        rename = "urn:ietf:params:scim:schemas:extension:ironclad:2.0:User",
        deserialize_with = "lenient"
    )]
    pub ironclad: Option<IroncladUser>,
    #[serde(deserialize_with = "lenient")]
    pub meta: Option<Meta>,
}

impl HasId for User {
    fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Member {
    #[serde(deserialize_with = "loose_string")]
    pub value: Option<String>,
    #[serde(rename = "type", deserialize_with = "loose_string")]
    pub kind: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Group {
    #[serde(deserialize_with = "loose_string")]
    pub id: Option<String>,
    #[serde(rename = "displayName", deserialize_with = "loose_string")]
    pub display_name: Option<String>,
    #[serde(rename = "externalId", deserialize_with = "loose_string")]
    pub external_id: Option<String>,
    /// `None` when Ironclad left the attribute out (e.g. `excludedAttributes=members`), which is
    /// not the same as a group with no members.
    #[serde(deserialize_with = "lenient_members")]
    pub members: Option<Vec<Member>>,
    #[serde(deserialize_with = "lenient")]
    pub meta: Option<Meta>,
}

fn lenient_members<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Member>>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => Some(
            items
                .into_iter()
                .filter_map(|v| serde_json::from_value(v).ok())
                .collect(),
        ),
        _ => None,
    })
}

impl Group {
    /// Member user ids. Only `User` members (or untyped ones, as Ironclad lists only users) count.
    pub fn member_user_ids(&self) -> Option<Vec<String>> {
        self.members.as_ref().map(|members| {
            members
                .iter()
                .filter(|m| {
                    m.kind
                        .as_deref()
                        .is_none_or(|k| k.eq_ignore_ascii_case("user"))
                })
                .filter_map(|m| m.value.clone())
                .filter(|v| !v.is_empty())
                .collect()
        })
    }
}

impl HasId for Group {
    fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// A `POST /Users` body. Its `Debug` leaves the password out.
#[derive(Serialize)]
pub struct NewUser<'a> {
    pub schemas: Vec<&'static str>,
    #[serde(rename = "userName")]
    pub user_name: &'a str,
    pub name: NewName<'a>,
    pub emails: Vec<NewEmail<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<&'a str>,
    #[serde(
        rename = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        skip_serializing_if = "Option::is_none"
    )]
    pub enterprise: Option<NewEnterprise<'a>>,
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<&'a str>,
}

impl std::fmt::Debug for NewUser<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("user_name", &self.user_name)
            .field("title", &self.title)
            .field("password", &self.password.map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize)]
pub struct NewName<'a> {
    #[serde(rename = "givenName")]
    pub given_name: &'a str,
    #[serde(rename = "familyName")]
    pub family_name: &'a str,
}

#[derive(Debug, Serialize)]
pub struct NewEmail<'a> {
    pub value: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub primary: bool,
}

#[derive(Debug, Serialize)]
pub struct NewEnterprise<'a> {
    pub department: &'a str,
}

/// `GET /oauth/userinfo`: who the token acts as.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UserInfo {
    #[serde(deserialize_with = "loose_string")]
    pub email: Option<String>,
    #[serde(rename = "firstName", deserialize_with = "loose_string")]
    pub first_name: Option<String>,
    #[serde(rename = "lastName", deserialize_with = "loose_string")]
    pub last_name: Option<String>,
    #[serde(rename = "displayName", deserialize_with = "loose_string")]
    pub display_name: Option<String>,
    #[serde(rename = "companyName", deserialize_with = "loose_string")]
    pub company_name: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn list_page_keeps_raw_length_and_skips_entries_without_id() {
        let page: ListResponse = serde_json::from_str(
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                "totalResults":"3","startIndex":1,"itemsPerPage":25,
                "Resources":[{"id":"a","userName":"a@x"},{"userName":"noid@x"},"junk",{"id":7}]}"#,
        )
        .unwrap();
        assert_eq!(page.total_results, Some(3));
        assert_eq!(page.page_len(), 4);
        let users: Vec<User> = page.items();
        let ids: Vec<_> = users.iter().filter_map(|u| u.id.clone()).collect();
        assert_eq!(ids, ["a", "7"]);
    }

    #[test]
    fn empty_list_may_omit_resources() {
        let page: ListResponse = serde_json::from_str(r#"{"totalResults":0}"#).unwrap();
        assert_eq!(page.page_len(), 0);
        assert!(page.items::<Group>().is_empty());
    }

    #[test]
    fn wrong_shapes_read_as_absent() {
        let u: User = serde_json::from_str(
            r#"{"id":"u1","name":"Alex Doe","emails":{"value":"x"},"active":"false","meta":"yesterday"}"#,
        )
        .unwrap();
        assert!(u.name.is_none());
        assert!(u.emails.is_empty());
        assert_eq!(u.active, Some(false));
        assert!(u.meta.is_none());
    }

    #[test]
    fn group_members_absent_differs_from_empty() {
        let g: Group = serde_json::from_str(r#"{"id":"g"}"#).unwrap();
        assert_eq!(g.member_user_ids(), None);
        let g: Group = serde_json::from_str(
            r#"{"id":"g","members":[{"type":"User","value":"u1"},{"value":"u2"},{"type":"Group","value":"g2"},{"type":"User"}]}"#,
        )
        .unwrap();
        assert_eq!(g.member_user_ids().unwrap(), ["u1", "u2"]);
    }
}
