//! Ironclad's SCIM (and userinfo) bodies as serde types.
//!
//! Parsed loosely on purpose: Ironclad's documents disagree with themselves in places (a numeric
//! field given as a string, `schema` for `schemas`), so unknown fields are ignored, every field is
//! optional, and a field of the wrong shape reads as absent instead of failing a whole page.

use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A field's JSON value read for a scalar: objects and arrays are skipped as they are read, never
/// built, so a page of a hundred thousand members costs no tree of values.
enum Scalar {
    Str(String),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    Nothing,
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar::Str(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::U64(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::I64(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::F64(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Nothing)
            }
            fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Nothing)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
                Scalar::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Nothing)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Nothing)
            }
        }
        d.deserialize_any(V)
    }
}

/// A string, or a number/bool written as one; anything else reads as absent.
pub fn loose_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Scalar::deserialize(d)? {
        Scalar::Str(s) => Some(s),
        Scalar::U64(n) => Some(n.to_string()),
        Scalar::I64(n) => Some(n.to_string()),
        // Written as JSON writes it (`1.0`, `1e21`), as it reads in the body.
        Scalar::F64(f) => serde_json::Number::from_f64(f).map(|n| n.to_string()),
        Scalar::Bool(b) => Some(b.to_string()),
        Scalar::Nothing => None,
    })
}

pub fn loose_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Scalar::deserialize(d)? {
        Scalar::Bool(b) => Some(b),
        Scalar::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    })
}

pub fn loose_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Scalar::deserialize(d)? {
        Scalar::U64(n) => Some(n),
        Scalar::I64(n) => u64::try_from(n).ok(),
        Scalar::F64(f) => (f.is_finite() && f >= 0.0).then_some(f as u64),
        Scalar::Str(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// A value parsed as `T` on its own: one that does not fit reads as `None` without failing what
/// holds it. The value's text is copied (briefly: one value at a time) and parsed; no tree of
/// values is built.
#[derive(Debug)]
pub struct Maybe<T>(Option<T>);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Maybe<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <Box<RawValue>>::deserialize(d)?;
        Ok(Maybe(serde_json::from_str(raw.get()).ok()))
    }
}

/// A nested object of the wrong shape reads as absent.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    Ok(Maybe::<T>::deserialize(d)?.0)
}

/// Hands `keep` each entry of an array that parses as `T`, as it is read; says whether the value
/// was an array at all (anything else is skipped unbuilt).
fn lenient_seq<'de, D, T, F>(d: D, keep: F) -> Result<bool, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
    F: FnMut(T),
{
    struct V<T, F>(F, std::marker::PhantomData<T>);
    impl<'de, T: DeserializeOwned, F: FnMut(T)> Visitor<'de> for V<T, F> {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<bool, A::Error> {
            while let Some(Maybe(item)) = seq.next_element::<Maybe<T>>()? {
                if let Some(item) = item {
                    (self.0)(item);
                }
            }
            Ok(true)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(false)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_none<E: de::Error>(self) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
            Ok(false)
        }
    }
    d.deserialize_any(V(keep, std::marker::PhantomData))
}

/// A list keeps the entries that parse; anything but an array reads as empty.
fn lenient_list<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
    let mut out = Vec::new();
    lenient_seq(d, |item| out.push(item))?;
    Ok(out)
}

/// A SCIM ListResponse whose entries are parsed as `T` one by one, straight from the body: an
/// entry that does not fit is kept as a gap rather than failing the page, so the page's length
/// (which drives paging) counts every entry Ironclad sent.
#[derive(Debug, Deserialize)]
#[serde(default, bound(deserialize = "T: DeserializeOwned"))]
pub struct ListResponse<T> {
    #[serde(rename = "totalResults", deserialize_with = "loose_u64")]
    pub total_results: Option<u64>,
    #[serde(rename = "Resources")]
    pub resources: Option<Vec<Maybe<T>>>,
}

impl<T> Default for ListResponse<T> {
    fn default() -> Self {
        ListResponse {
            total_results: None,
            resources: None,
        }
    }
}

impl<T: HasId> ListResponse<T> {
    pub fn page_len(&self) -> usize {
        self.resources.as_ref().map_or(0, Vec::len)
    }

    /// The entries that are objects of type `T` with an id; the rest cannot be named, so they are
    /// left out.
    pub fn items(self) -> Vec<T> {
        self.resources
            .into_iter()
            .flatten()
            .filter_map(|Maybe(t)| t)
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
    /// Member user ids, read as the members are: only `User` members (or untyped ones, as
    /// Ironclad lists only users) with a value count. `None` when Ironclad left the attribute out
    /// (e.g. `excludedAttributes=members`), which is not the same as a group with no members.
    #[serde(rename = "members", deserialize_with = "member_user_ids")]
    pub member_ids: Option<Vec<String>>,
    #[serde(deserialize_with = "lenient")]
    pub meta: Option<Meta>,
}

/// The user ids of a `members` array, each member kept only as its id (a page of groups can carry
/// hundreds of thousands); anything but an array reads as `None`.
fn member_user_ids<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let mut ids = Vec::new();
    let listed = lenient_seq(d, |m: Member| {
        let user = m
            .kind
            .as_deref()
            .is_none_or(|k| k.eq_ignore_ascii_case("user"));
        if let Some(id) = m.value.filter(|v| user && !v.is_empty()) {
            ids.push(id);
        }
    })?;
    Ok(listed.then_some(ids))
}

impl Group {
    /// Member user ids (see `member_ids`).
    pub fn member_user_ids(&self) -> Option<Vec<String>> {
        self.member_ids.clone()
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
        let page: ListResponse<User> = serde_json::from_str(
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
        let page: ListResponse<Group> = serde_json::from_str(r#"{"totalResults":0}"#).unwrap();
        assert_eq!(page.page_len(), 0);
        assert!(page.items().is_empty());
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
    fn scalars_read_loosely_and_structures_in_their_place_read_as_absent() {
        let u: User = serde_json::from_str(
            r#"{"id":1.0,"userName":{"a":[1,{"b":2}]},"title":[1,2],"active":"TRUE ",
                "emails":[{"value":"a@x","primary":"true"},7,{"value":["x"]},{"value":12}],
                "meta":{"created":-3}}"#,
        )
        .unwrap();
        assert_eq!(u.id.as_deref(), Some("1.0"));
        assert_eq!((u.user_name, u.title), (None, None));
        assert_eq!(u.active, Some(true));
        let emails: Vec<_> = u.emails.iter().map(|e| e.value.clone()).collect();
        assert_eq!(emails, [Some("a@x".into()), None, Some("12".into())]);
        assert_eq!(u.emails[0].primary, Some(true));
        assert_eq!(u.meta.unwrap().created.as_deref(), Some("-3"));
    }

    #[test]
    fn totals_read_loosely() {
        for (json, want) in [
            (r#"{"totalResults":12}"#, Some(12)),
            (r#"{"totalResults":"12 "}"#, Some(12)),
            (r#"{"totalResults":12.0}"#, Some(12)),
            (r#"{"totalResults":-1}"#, None),
            (r#"{"totalResults":[12]}"#, None),
            (r#"{"totalResults":null}"#, None),
        ] {
            let page: ListResponse<User> = serde_json::from_str(json).unwrap();
            assert_eq!(page.total_results, want, "{json}");
        }
    }

    #[test]
    fn members_of_the_wrong_shape() {
        for json in [
            r#"{"id":"g","members":null}"#,
            r#"{"id":"g","members":{"value":"u1"}}"#,
            r#"{"id":"g","members":"u1"}"#,
        ] {
            let g: Group = serde_json::from_str(json).unwrap();
            assert_eq!(g.member_user_ids(), None, "{json}");
        }
        let g: Group = serde_json::from_str(
            r#"{"id":"g","members":[1,{"value":"u1"},[],{"value":{"x":1}},null,{"value":"u2"}]}"#,
        )
        .unwrap();
        assert_eq!(g.member_user_ids().unwrap(), ["u1", "u2"]);
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
