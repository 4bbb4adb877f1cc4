//! SCIM 2.0 under `/scim/v2`: Users, Groups, Schemas, with Ironclad's
//! paging, filters, scopes and as-user rules.

// Errors here are finished HTTP responses on their way out, not values
// callers inspect, so their size doesn't matter.
#![allow(clippy::result_large_err)]

use std::ops::Range;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::endless;
use crate::errors::{scim_error, scim_json};
use crate::oauth::{self, AsUserError};
use crate::page_churn;
use crate::password::{check_password, PASSWORD_RULE};
use crate::server::Shared;
use crate::tenant::{Group, Membership, NewUser, User};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE_EXT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const IRONCLAD_EXT: &str = "urn:ietf:params:scim:schemas:extension:ironclad:2.0:User";
const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

const READ_USERS: &str = "scim.users.readUsers";
const CREATE_USERS: &str = "scim.users.createUsers";
const UPDATE_USERS: &str = "scim.users.updateUsers";
const DELETE_USERS: &str = "scim.users.deleteUsers";
const READ_GROUPS: &str = "scim.groups.readGroups";
const CREATE_GROUPS: &str = "scim.groups.createGroups";
const UPDATE_GROUPS: &str = "scim.groups.updateGroups";
const DELETE_GROUPS: &str = "scim.groups.deleteGroups";
const READ_SCHEMAS: &str = "scim.schemas.readSchemas";

pub(crate) const DEFAULT_COUNT: i64 = 25;
pub(crate) const MAX_COUNT: i64 = 1000;

type Reply = Result<Response, Response>;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/Users", get(list_users).post(create_user))
        .route(
            "/Users/{id}",
            get(get_user)
                .delete(delete_user)
                .patch(patch_user)
                .put(|s: State<Arc<Shared>>, h: HeaderMap| unsupported(s, h, UPDATE_USERS)),
        )
        .route(
            "/Groups",
            get(list_groups)
                .post(|s: State<Arc<Shared>>, h: HeaderMap| unsupported(s, h, CREATE_GROUPS)),
        )
        .route(
            "/Groups/{id}",
            get(get_group)
                .patch(patch_group)
                .put(|s: State<Arc<Shared>>, h: HeaderMap| unsupported(s, h, UPDATE_GROUPS))
                .delete(|s: State<Arc<Shared>>, h: HeaderMap| unsupported(s, h, DELETE_GROUPS)),
        )
        .route("/Schemas", get(list_schemas))
        .route("/Schemas/{id}", get(get_schema))
        .fallback(|| async { scim_error(StatusCode::NOT_FOUND, None, "Resource not found") })
}

/// The checks every SCIM request passes, in this order: bearer token (401),
/// as-user header present (400) and a user of the company (403), token
/// scope (403), admin for writes (403).
fn authorize(
    shared: &Shared,
    headers: &HeaderMap,
    scope: &str,
    write: bool,
) -> Result<(), Response> {
    let token = oauth::bearer(shared, headers)?;
    let state = shared.read();
    let user = match oauth::as_user(&state, headers) {
        Ok(u) => u,
        Err(AsUserError::Missing) => {
            return Err(scim_error(
                StatusCode::BAD_REQUEST,
                None,
                "The x-as-user-email or x-as-user-id header is required for requests made with a client credentials token",
            ))
        }
        Err(AsUserError::Unknown(who)) => {
            return Err(scim_error(
                StatusCode::FORBIDDEN,
                None,
                format!("User {who} given in the as-user header is not a member of this company"),
            ))
        }
    };
    if !token.has_scope(scope) {
        return Err(scim_error(
            StatusCode::FORBIDDEN,
            None,
            format!("Insufficient scope: this request requires the {scope} scope"),
        ));
    }
    if write && !user.admin {
        return Err(scim_error(
            StatusCode::FORBIDDEN,
            None,
            format!(
                "User {} does not have permission to perform this action: an admin is required",
                user.user_name
            ),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------- listing

#[derive(Debug, Default)]
struct ListQuery {
    start_index: i64,
    count: i64,
    filter: Option<String>,
    excluded: Vec<String>,
}

/// Query parameters; SCIM parameter names are matched case-insensitively.
fn parse_list_query(raw: Option<&str>) -> Result<ListQuery, Response> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|_| {
            scim_error(
                StatusCode::BAD_REQUEST,
                Some("invalidSyntax"),
                "Malformed query string",
            )
        })?;
    let mut q = ListQuery {
        start_index: 1,
        count: DEFAULT_COUNT,
        ..ListQuery::default()
    };
    for (k, v) in pairs {
        let int = |name: &str| {
            v.trim().parse::<i64>().map_err(|_| {
                scim_error(
                    StatusCode::BAD_REQUEST,
                    Some("invalidValue"),
                    format!("{name} must be an integer"),
                )
            })
        };
        match k.to_ascii_lowercase().as_str() {
            "startindex" => q.start_index = int("startIndex")?,
            "count" => q.count = int("count")?,
            "filter" => q.filter = Some(v),
            "excludedattributes" => {
                q.excluded = v
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            }
            _ => {}
        }
    }
    Ok(q)
}

/// Offset paging: `startIndex` is 1-based (below 1 counts as 1), `count` is
/// capped at 1000 (below 0 counts as 0). Returns the startIndex to echo and
/// the 0-based positions of the page.
pub(crate) fn page(total: usize, start_index: i64, count: i64) -> (usize, Range<usize>) {
    let start = usize::try_from(start_index.max(1)).unwrap_or(usize::MAX);
    let count = usize::try_from(count.clamp(0, MAX_COUNT)).unwrap_or(0);
    let from = (start - 1).min(total);
    let to = from.saturating_add(count).min(total);
    (start, from..to)
}

/// `attr eq "value"`, the only filter form Ironclad documents. Returns the
/// attribute as written and the unescaped value.
pub(crate) fn parse_eq_filter(filter: &str) -> Option<(String, String)> {
    let f = filter.trim();
    let (attr, rest) = f.split_once(char::is_whitespace)?;
    let rest = rest.trim_start();
    let (op, rest) = rest.split_once(char::is_whitespace)?;
    if !op.eq_ignore_ascii_case("eq") || attr.is_empty() {
        return None;
    }
    let quoted = rest.trim();
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    let mut value = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => value.push(chars.next()?),
            // An unescaped quote means more than one value: not our grammar.
            '"' => return None,
            c => value.push(c),
        }
    }
    if !attr
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == ':' || c == '_')
    {
        return None;
    }
    Some((attr.to_string(), value))
}

fn invalid_filter(detail: impl Into<String>) -> Response {
    scim_error(StatusCode::BAD_REQUEST, Some("invalidFilter"), detail)
}

/// The single attribute a resource type can be filtered on: returns the
/// value to look up, or the 400.
fn filter_value(filter: &str, attr: &str) -> Result<String, Response> {
    let (a, value) = parse_eq_filter(filter).ok_or_else(|| {
        invalid_filter(format!(
            "Unsupported filter: {filter}. Only '{attr} eq \"value\"' is supported"
        ))
    })?;
    if !a.eq_ignore_ascii_case(attr) {
        return Err(invalid_filter(format!(
            "Unsupported filter attribute: {a}. Only '{attr} eq \"value\"' is supported"
        )));
    }
    Ok(value)
}

/// `{schemas, totalResults, Resources, startIndex, itemsPerPage}`, serialised
/// straight from the typed documents: a page of 1,000 groups can carry
/// 100,000 member references.
#[derive(Serialize)]
struct ListResponse<'a> {
    schemas: [&'static str; 1],
    #[serde(rename = "totalResults")]
    total_results: usize,
    #[serde(rename = "Resources")]
    resources: Vec<Doc<'a>>,
    #[serde(rename = "startIndex")]
    start_index: usize,
    #[serde(rename = "itemsPerPage")]
    items_per_page: usize,
}

fn list_response(total: usize, start: usize, resources: Vec<Doc<'_>>) -> Response {
    let body = ListResponse {
        schemas: [LIST_RESPONSE],
        total_results: total,
        items_per_page: resources.len(),
        resources,
        start_index: start,
    };
    scim_json(StatusCode::OK, &body)
}

/// A resource in a response: typed on the common path, a `Value` once
/// `excludedAttributes` has trimmed it.
#[derive(Serialize)]
#[serde(untagged)]
enum Doc<'a> {
    User(UserDoc<'a>),
    Group(GroupDoc<'a>),
    Value(Value),
}

/// Drops top-level attributes named in `excludedAttributes` (never `id` or
/// `schemas`, which SCIM always returns).
fn exclude(mut v: Value, excluded: &[String]) -> Value {
    if let Some(obj) = v.as_object_mut() {
        for name in excluded {
            if name.eq_ignore_ascii_case("id") || name.eq_ignore_ascii_case("schemas") {
                continue;
            }
            let key = obj.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned();
            if let Some(k) = key {
                obj.remove(&k);
            }
        }
    }
    v
}

// ------------------------------------------------------------- rendering

#[derive(Serialize)]
struct UserDoc<'a> {
    schemas: [&'static str; 3],
    id: &'a str,
    #[serde(rename = "userName")]
    user_name: &'a str,
    name: NameDoc<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    emails: [EmailDoc<'a>; 1],
    /// Ironclad has no inactive users: a deactivated user is gone.
    active: bool,
    #[serde(rename = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")]
    enterprise: EnterpriseDoc<'a>,
    #[serde(rename = "urn:ietf:params:scim:schemas:extension:ironclad:2.0:User")]
    ironclad: IroncladDoc<'a>,
    meta: UserMeta<'a>,
}

#[derive(Serialize)]
struct NameDoc<'a> {
    #[serde(rename = "givenName")]
    given_name: &'a str,
    #[serde(rename = "familyName")]
    family_name: &'a str,
}

#[derive(Serialize)]
struct EmailDoc<'a> {
    value: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    primary: bool,
}

#[derive(Serialize)]
struct EnterpriseDoc<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    department: Option<&'a str>,
}

#[derive(Serialize)]
struct IroncladDoc<'a> {
    provider: &'a str,
    #[serde(rename = "allowProviderConversion")]
    allow_provider_conversion: bool,
}

#[derive(Serialize)]
struct UserMeta<'a> {
    #[serde(rename = "resourceType")]
    resource_type: &'static str,
    created: &'a str,
    #[serde(rename = "lastModified")]
    last_modified: &'a str,
    location: String,
}

#[derive(Serialize)]
struct GroupDoc<'a> {
    schemas: [&'static str; 1],
    id: &'a str,
    #[serde(rename = "displayName")]
    display_name: &'a str,
    #[serde(rename = "externalId", skip_serializing_if = "Option::is_none")]
    external_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    members: Option<Vec<MemberDoc<'a>>>,
    meta: GroupMeta,
}

#[derive(Serialize)]
struct MemberDoc<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    value: &'a str,
}

#[derive(Serialize)]
struct GroupMeta {
    #[serde(rename = "resourceType")]
    resource_type: &'static str,
    location: String,
}

fn user_doc<'a>(u: &'a User, base_url: &str) -> UserDoc<'a> {
    UserDoc {
        schemas: [USER_SCHEMA, ENTERPRISE_EXT, IRONCLAD_EXT],
        id: &u.id,
        user_name: &u.user_name,
        name: NameDoc {
            given_name: &u.given_name,
            family_name: &u.family_name,
        },
        title: u.title.as_deref(),
        emails: [EmailDoc {
            value: &u.user_name,
            kind: "work",
            primary: true,
        }],
        active: true,
        enterprise: EnterpriseDoc {
            department: u.department.as_deref(),
        },
        ironclad: IroncladDoc {
            provider: &u.provider,
            allow_provider_conversion: false,
        },
        meta: UserMeta {
            resource_type: "User",
            created: &u.created,
            // Users never change after creation here.
            last_modified: &u.created,
            location: format!("{base_url}/scim/v2/Users/{}", u.id),
        },
    }
}

fn group_doc<'a>(g: &'a Group, base_url: &str, with_members: bool) -> GroupDoc<'a> {
    GroupDoc {
        schemas: [GROUP_SCHEMA],
        id: &g.id,
        display_name: &g.display_name,
        external_id: g.external_id.as_deref(),
        members: with_members.then(|| {
            g.members
                .iter()
                .map(|m| MemberDoc {
                    kind: "User",
                    value: m,
                })
                .collect()
        }),
        meta: GroupMeta {
            resource_type: "Group",
            location: format!("{base_url}/scim/v2/Groups/{}", g.id),
        },
    }
}

/// The user as a SCIM document, trimmed by `excludedAttributes`.
fn render_user<'a>(u: &'a User, base_url: &str, excluded: &[String]) -> Doc<'a> {
    let doc = user_doc(u, base_url);
    if excluded.is_empty() {
        return Doc::User(doc);
    }
    Doc::Value(exclude(to_value(&doc), excluded))
}

/// The group as a SCIM document; `excludedAttributes=members` (the common
/// case) stays on the typed path.
fn render_group<'a>(g: &'a Group, base_url: &str, excluded: &[String]) -> Doc<'a> {
    let with_members = !excluded.iter().any(|e| e.eq_ignore_ascii_case("members"));
    let doc = group_doc(g, base_url, with_members);
    if excluded.iter().all(|e| e.eq_ignore_ascii_case("members")) {
        return Doc::Group(doc);
    }
    Doc::Value(exclude(to_value(&doc), excluded))
}

fn to_value<T: Serialize>(doc: &T) -> Value {
    // Plain structs of strings and bools always convert.
    serde_json::to_value(doc).unwrap_or(Value::Null)
}

#[cfg(test)]
pub(crate) fn user_json(u: &User, base_url: &str) -> Value {
    to_value(&user_doc(u, base_url))
}

#[cfg(test)]
pub(crate) fn group_json(g: &Group, base_url: &str, with_members: bool) -> Value {
    to_value(&group_doc(g, base_url, with_members))
}

// ----------------------------------------------------------------- users

async fn list_users(
    State(sh): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Reply {
    authorize(&sh, &headers, READ_USERS, false)?;
    let q = parse_list_query(raw.as_deref())?;
    let state = sh.read();
    let base = sh.base_url.as_str();
    let faults = sh.faults();
    if q.filter.is_none() && faults.endless_pages {
        let users = state.users();
        let (start, positions) = endless::page(q.start_index, q.count);
        let made = endless::users(&positions, users.len());
        let docs = endless::entries(users, &made, &positions)
            .map(|u| render_user(u, base, &q.excluded))
            .collect();
        return Ok(list_response(users.len(), start, docs));
    }
    // A lookup by userName sees the real tenant: only the listing churns.
    if q.filter.is_none() && faults.page_churn {
        let view = page_churn::View::new(state.users(), page_churn::steps(q.start_index, q.count));
        let (start, positions) = page(view.len(), q.start_index, q.count);
        let users = view.entries(positions);
        let docs = users
            .iter()
            .map(|u| render_user(u, base, &q.excluded))
            .collect();
        return Ok(list_response(view.len(), start, docs));
    }
    let (total, start, resources) = match &q.filter {
        None => {
            let users = state.users();
            let (start, r) = page(users.len(), q.start_index, q.count);
            let docs = users[r]
                .iter()
                .map(|u| render_user(u, base, &q.excluded))
                .collect();
            (users.len(), start, docs)
        }
        Some(f) => {
            let name = filter_value(f, "userName")?;
            let hits: Vec<&User> = state.user_by_name(&name).into_iter().collect();
            let (start, r) = page(hits.len(), q.start_index, q.count);
            let docs = hits[r]
                .iter()
                .map(|u| render_user(u, base, &q.excluded))
                .collect();
            (hits.len(), start, docs)
        }
    };
    Ok(list_response(total, start, resources))
}

async fn get_user(
    State(sh): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Reply {
    authorize(&sh, &headers, READ_USERS, false)?;
    let q = parse_list_query(raw.as_deref())?;
    let state = sh.read();
    let user = state
        .user(&id)
        .ok_or_else(|| scim_error(StatusCode::NOT_FOUND, None, format!("User {id} not found")))?;
    Ok(scim_json(
        StatusCode::OK,
        &render_user(user, &sh.base_url, &q.excluded),
    ))
}

fn invalid_value(detail: impl Into<String>) -> Response {
    scim_error(StatusCode::BAD_REQUEST, Some("invalidValue"), detail)
}

fn parse_json_body(body: &[u8]) -> Result<Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(invalid_value("Request body must be a JSON object")),
        Err(e) => Err(scim_error(
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            format!("Request body is not valid JSON: {e}"),
        )),
    }
}

fn has_schema(body: &Map<String, Value>, schema: &str) -> bool {
    body.get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .any(|s| s.eq_ignore_ascii_case(schema))
        })
}

fn non_empty_str(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Validates a `POST /Users` body into a new user.
fn new_user_from(body: &Map<String, Value>, saml: bool) -> Result<NewUser, Response> {
    if !has_schema(body, USER_SCHEMA) {
        return Err(invalid_value(format!(
            "schemas is required and must include {USER_SCHEMA}"
        )));
    }
    let user_name =
        non_empty_str(body.get("userName")).ok_or_else(|| invalid_value("userName is required"))?;
    if !user_name.contains('@') {
        return Err(invalid_value("userName must be an email address"));
    }
    let name = body
        .get("name")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid_value("name is required"))?;
    let given = non_empty_str(name.get("givenName"))
        .ok_or_else(|| invalid_value("name.givenName is required"))?;
    let family = non_empty_str(name.get("familyName"))
        .ok_or_else(|| invalid_value("name.familyName is required"))?;
    // A password is required unless the company signs in through SAML;
    // one that is given must meet the rule either way.
    let password = body.get("password").and_then(Value::as_str);
    if password.is_none() && !saml {
        return Err(invalid_value(format!(
            "password is required. {PASSWORD_RULE}"
        )));
    }
    if password.is_some_and(|p| !check_password(p)) {
        return Err(invalid_value(PASSWORD_RULE));
    }
    let title = non_empty_str(body.get("title")).map(str::to_string);
    let department = body
        .get(ENTERPRISE_EXT)
        .and_then(|e| non_empty_str(e.get("department")))
        .map(str::to_string);
    let provider = match body.get(IRONCLAD_EXT).and_then(|e| e.get("provider")) {
        None | Some(Value::Null) => "local".to_string(),
        Some(p) => match p.as_str() {
            Some(s @ ("local" | "magicLink" | "saml" | "google")) => s.to_string(),
            _ => {
                return Err(invalid_value(
                    "provider must be one of local, magicLink, saml, google",
                ))
            }
        },
    };
    Ok(NewUser {
        user_name: user_name.to_string(),
        given_name: given.to_string(),
        family_name: family.to_string(),
        title,
        department,
        provider,
        password: password.map(str::to_string),
    })
}

/// `--echo-body-in-errors`: the request body quoted back in a 400, as a
/// careless server's validation error does.
fn echo_body(sh: &Shared, body: &[u8]) -> Result<(), Response> {
    if !sh.faults().echo_body_in_errors {
        return Ok(());
    }
    sh.echoed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(String::from_utf8_lossy(body).into_owned());
    Err(scim_error(
        StatusCode::BAD_REQUEST,
        None,
        format!("invalid request: {}", String::from_utf8_lossy(body)),
    ))
}

async fn create_user(State(sh): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Reply {
    authorize(&sh, &headers, CREATE_USERS, true)?;
    echo_body(&sh, &body)?;
    let body = parse_json_body(&body)?;
    let new = new_user_from(&body, sh.saml)?;
    let user_name = new.user_name.clone();
    let mut state = sh.write();
    let user = state.create_user(new).map_err(|_| {
        scim_error(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            format!("User with userName {user_name} already exists"),
        )
    })?;
    let v = user_doc(user, &sh.base_url);
    let location = format!("{}/scim/v2/Users/{}", sh.base_url, user.id);
    let mut resp = scim_json(StatusCode::CREATED, &v);
    if let Ok(l) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, l);
    }
    Ok(resp)
}

/// Changing users is not simulated; with `--echo-body-in-errors` the body
/// is echoed first, as for a new user.
async fn patch_user(State(sh): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Reply {
    authorize(&sh, &headers, UPDATE_USERS, true)?;
    echo_body(&sh, &body)?;
    Err(not_implemented())
}

async fn delete_user(
    State(sh): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    authorize(&sh, &headers, DELETE_USERS, true)?;
    if sh.write().delete_user(&id) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(scim_error(
            StatusCode::NOT_FOUND,
            None,
            format!("User {id} not found"),
        ))
    }
}

// ---------------------------------------------------------------- groups

async fn list_groups(
    State(sh): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Reply {
    authorize(&sh, &headers, READ_GROUPS, false)?;
    let q = parse_list_query(raw.as_deref())?;
    let state = sh.read();
    let base = sh.base_url.as_str();
    if q.filter.is_none() && sh.faults().endless_pages {
        let groups = state.groups();
        let (start, positions) = endless::page(q.start_index, q.count);
        let made = endless::groups(&positions, groups.len());
        let docs = endless::entries(groups, &made, &positions)
            .map(|g| render_group(g, base, &q.excluded))
            .collect();
        return Ok(list_response(groups.len(), start, docs));
    }
    let (total, start, resources) = match &q.filter {
        None => {
            let groups = state.groups();
            let (start, r) = page(groups.len(), q.start_index, q.count);
            let docs = groups[r]
                .iter()
                .map(|g| render_group(g, base, &q.excluded))
                .collect();
            (groups.len(), start, docs)
        }
        Some(f) => {
            let name = filter_value(f, "displayName")?;
            let hits: Vec<&Group> = state.group_by_name(&name).into_iter().collect();
            let (start, r) = page(hits.len(), q.start_index, q.count);
            let docs = hits[r]
                .iter()
                .map(|g| render_group(g, base, &q.excluded))
                .collect();
            (hits.len(), start, docs)
        }
    };
    Ok(list_response(total, start, resources))
}

async fn get_group(
    State(sh): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Reply {
    authorize(&sh, &headers, READ_GROUPS, false)?;
    let q = parse_list_query(raw.as_deref())?;
    let state = sh.read();
    let group = state
        .group(&id)
        .ok_or_else(|| scim_error(StatusCode::NOT_FOUND, None, format!("Group {id} not found")))?;
    Ok(scim_json(
        StatusCode::OK,
        &render_group(group, &sh.base_url, &q.excluded),
    ))
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum MemberOp {
    Add(Vec<String>),
    Remove(Vec<String>),
}

/// A PatchOp body touching `members`. `remove` also takes the RFC 7644 form
/// `members[value eq "id"]` without a value. `replace` and other paths are
/// refused: Ironclad documents only add/remove on members.
pub(crate) fn parse_patch(body: &Map<String, Value>) -> Result<Vec<MemberOp>, String> {
    if !has_schema(body, PATCH_OP) {
        return Err(format!("schemas must be [\"{PATCH_OP}\"]"));
    }
    let ops = body
        .get("Operations")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or("Operations must be a non-empty array")?;
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or("each operation needs an op")?
            .to_ascii_lowercase();
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or("each operation needs a path")?
            .trim();
        let mut ids = Vec::new();
        if path.eq_ignore_ascii_case("members") {
            let values = match op.get("value") {
                Some(Value::Array(a)) => a.iter().collect::<Vec<_>>(),
                Some(o @ Value::Object(_)) => vec![o],
                _ => return Err("value must be a list of {\"value\": <user id>}".into()),
            };
            if values.is_empty() {
                return Err("value must not be empty".into());
            }
            for v in values {
                let id = non_empty_str(v.get("value"))
                    .ok_or("each member needs a value (the user id)")?;
                ids.push(id.to_string());
            }
        } else if let Some(id) = member_filter_path(path) {
            if kind != "remove" {
                return Err(format!("path {path} is only valid with op remove"));
            }
            ids.push(id);
        } else {
            return Err(format!(
                "unsupported path {path}; only members is supported"
            ));
        }
        match kind.as_str() {
            "add" => out.push(MemberOp::Add(ids)),
            "remove" => out.push(MemberOp::Remove(ids)),
            other => {
                return Err(format!(
                    "unsupported op {other}; only add and remove are supported"
                ))
            }
        }
    }
    Ok(out)
}

/// `members[value eq "id"]` → the id.
fn member_filter_path(path: &str) -> Option<String> {
    let lower = path.to_ascii_lowercase();
    if !lower.starts_with("members[") || !lower.ends_with(']') {
        return None;
    }
    let inner = &path["members[".len()..path.len() - 1];
    let (attr, value) = parse_eq_filter(inner)?;
    attr.eq_ignore_ascii_case("value").then_some(value)
}

/// Adding a member twice or removing a non-member is undocumented; the
/// simulator treats both as a successful no-op (the usual SCIM behaviour).
async fn patch_group(
    State(sh): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Reply {
    authorize(&sh, &headers, UPDATE_GROUPS, true)?;
    let not_found = || scim_error(StatusCode::NOT_FOUND, None, format!("Group {id} not found"));
    if sh.read().group(&id).is_none() {
        return Err(not_found());
    }
    let body = parse_json_body(&body)?;
    let ops = parse_patch(&body).map_err(invalid_value)?;
    let mut state = sh.write();
    // Validate every user before changing anything: a PATCH is atomic.
    for op in &ops {
        let (MemberOp::Add(ids) | MemberOp::Remove(ids)) = op;
        if let Some(bad) = ids.iter().find(|u| state.user(u).is_none()) {
            return Err(invalid_value(format!("User {bad} not found")));
        }
    }
    for op in &ops {
        match op {
            MemberOp::Add(ids) => {
                for u in ids {
                    if state.add_member(&id, u) == Membership::NoGroup {
                        return Err(not_found());
                    }
                }
            }
            MemberOp::Remove(ids) => {
                for u in ids {
                    if state.remove_member(&id, u) == Membership::NoGroup {
                        return Err(not_found());
                    }
                }
            }
        }
    }
    if sh.faults().patch_returns_204 {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let group = state.group(&id).ok_or_else(not_found)?;
    Ok(scim_json(
        StatusCode::OK,
        &group_doc(group, &sh.base_url, true),
    ))
}

// --------------------------------------------------------------- schemas

fn schema_docs() -> Vec<Value> {
    [
        (USER_SCHEMA, "User", "User Account"),
        (GROUP_SCHEMA, "Group", "Group"),
        (ENTERPRISE_EXT, "EnterpriseUser", "Enterprise User"),
        (IRONCLAD_EXT, "IroncladUser", "Ironclad User"),
    ]
    .iter()
    .map(|(id, name, description)| {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": id,
            "name": name,
            "description": description,
            "attributes": [],
        })
    })
    .collect()
}

async fn list_schemas(State(sh): State<Arc<Shared>>, headers: HeaderMap) -> Reply {
    authorize(&sh, &headers, READ_SCHEMAS, false)?;
    let docs = schema_docs();
    Ok(list_response(
        docs.len(),
        1,
        docs.into_iter().map(Doc::Value).collect(),
    ))
}

async fn get_schema(
    State(sh): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    authorize(&sh, &headers, READ_SCHEMAS, false)?;
    schema_docs()
        .into_iter()
        .find(|d| d.get("id").and_then(Value::as_str) == Some(id.as_str()))
        .map(|d| scim_json(StatusCode::OK, &d))
        .ok_or_else(|| {
            scim_error(
                StatusCode::NOT_FOUND,
                None,
                format!("Schema {id} not found"),
            )
        })
}

/// Endpoints Ironclad has but the connector never needs: checked like the
/// real ones (so scope tests still mean something), then refused.
async fn unsupported(State(sh): State<Arc<Shared>>, headers: HeaderMap, scope: &str) -> Reply {
    authorize(&sh, &headers, scope, true)?;
    Err(not_implemented())
}

fn not_implemented() -> Response {
    scim_error(
        StatusCode::NOT_IMPLEMENTED,
        None,
        "Not implemented by the Ironclad simulator",
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn paging_is_one_based_and_capped() {
        assert_eq!(page(100, 1, 25), (1, 0..25));
        assert_eq!(page(100, 26, 25), (26, 25..50));
        assert_eq!(page(100, 0, 10), (1, 0..10));
        assert_eq!(page(100, -5, 10), (1, 0..10));
        assert_eq!(page(100, 95, 25), (95, 94..100));
        assert_eq!(page(100, 101, 25), (101, 100..100));
        assert_eq!(page(100, 500, 25), (500, 100..100));
        assert_eq!(page(5000, 1, 5000), (1, 0..1000));
        assert_eq!(page(100, 1, 0), (1, 0..0));
        assert_eq!(page(100, 1, -3), (1, 0..0));
        assert_eq!(page(0, 1, 25), (1, 0..0));
        assert_eq!(page(10, i64::MAX, i64::MAX), (i64::MAX as usize, 10..10));
    }

    #[test]
    fn query_defaults() {
        let q = parse_list_query(None).unwrap();
        assert_eq!((q.start_index, q.count), (1, DEFAULT_COUNT));
        let q = parse_list_query(Some(
            "StartIndex=3&count=7&excludedAttributes=members,%20meta&filter=userName%20eq%20%22a%22",
        ))
        .unwrap();
        assert_eq!((q.start_index, q.count), (3, 7));
        assert_eq!(q.excluded, vec!["members", "meta"]);
        assert_eq!(q.filter.as_deref(), Some("userName eq \"a\""));
        assert!(parse_list_query(Some("count=abc")).is_err());
    }

    #[test]
    fn filters() {
        assert_eq!(
            parse_eq_filter(r#"userName eq "a@b.test""#),
            Some(("userName".into(), "a@b.test".into()))
        );
        assert_eq!(
            parse_eq_filter(r#"  displayName EQ "Legal \"Team\"" "#),
            Some(("displayName".into(), "Legal \"Team\"".into()))
        );
        assert_eq!(parse_eq_filter(r#"userName co "a""#), None);
        assert_eq!(parse_eq_filter(r#"userName eq a"#), None);
        assert_eq!(parse_eq_filter(r#"userName eq "a" and title eq "b""#), None);
        assert_eq!(parse_eq_filter(""), None);
        assert!(filter_value(r#"username eq "x""#, "userName").is_ok());
        let err = filter_value(r#"title eq "x""#, "userName").unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert!(filter_value(r#"userName sw "x""#, "userName").is_err());
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn patch_bodies() {
        let ok = obj(json!({"schemas":[PATCH_OP],"Operations":[
            {"op":"add","path":"members","value":[{"value":"u1"},{"value":"u2"}]},
            {"op":"Remove","path":"members","value":[{"value":"u3"}]},
            {"op":"remove","path":"members[value eq \"u4\"]"}]}));
        assert_eq!(
            parse_patch(&ok).unwrap(),
            vec![
                MemberOp::Add(vec!["u1".into(), "u2".into()]),
                MemberOp::Remove(vec!["u3".into()]),
                MemberOp::Remove(vec!["u4".into()]),
            ]
        );
        for bad in [
            json!({"Operations":[{"op":"add","path":"members","value":[{"value":"u"}]}]}),
            json!({"schemas":[PATCH_OP],"Operations":[]}),
            json!({"schemas":[PATCH_OP],"Operations":[{"op":"replace","path":"members","value":[{"value":"u"}]}]}),
            json!({"schemas":[PATCH_OP],"Operations":[{"op":"add","path":"displayName","value":"x"}]}),
            json!({"schemas":[PATCH_OP],"Operations":[{"op":"add","path":"members","value":[{}]}]}),
            json!({"schemas":[PATCH_OP],"Operations":[{"op":"add","path":"members"}]}),
        ] {
            assert!(parse_patch(&obj(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn new_user_validation() {
        let good = json!({"schemas":[USER_SCHEMA],"userName":"j@acme.test",
            "name":{"givenName":"J","familyName":"Doe"},"password":"Abcdefghijklmn1!",
            ENTERPRISE_EXT: {"department":"Legal"}});
        let u = new_user_from(&obj(good.clone()), false).unwrap();
        assert_eq!(u.department.as_deref(), Some("Legal"));
        assert_eq!(u.provider, "local");
        let mut weak = obj(good.clone());
        weak.insert("password".into(), json!("short"));
        let resp = new_user_from(&weak, false).unwrap_err();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let mut no_name = obj(good);
        no_name.remove("name");
        assert!(new_user_from(&no_name, false).is_err());
    }

    #[test]
    fn rendering() {
        let u = User {
            id: "6660d37dec0eac3deffb680e".into(),
            user_name: "a@b.test".into(),
            given_name: "A".into(),
            family_name: "B".into(),
            title: None,
            department: Some("Legal".into()),
            provider: "saml".into(),
            created: "2020-01-01T00:00:00.000Z".into(),
            admin: false,
            password: Some("secret".into()),
        };
        let v = user_json(&u, "http://h");
        assert_eq!(v["emails"][0]["primary"], json!(true));
        assert_eq!(v[ENTERPRISE_EXT]["department"], json!("Legal"));
        assert_eq!(v[IRONCLAD_EXT]["provider"], json!("saml"));
        assert_eq!(
            v["meta"]["location"],
            json!("http://h/scim/v2/Users/6660d37dec0eac3deffb680e")
        );
        assert!(v.get("title").is_none());
        assert!(v.get("password").is_none());
        let g = Group {
            id: "g".into(),
            display_name: "G".into(),
            external_id: None,
            members: vec!["x".into()],
        };
        assert_eq!(
            group_json(&g, "http://h", true)["members"],
            json!([{"type":"User","value":"x"}])
        );
        let slim = exclude(
            group_json(&g, "http://h", true),
            &["members".into(), "id".into()],
        );
        assert!(slim.get("members").is_none());
        assert!(slim.get("id").is_some());
    }
}
