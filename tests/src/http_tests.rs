//! Loopback tests through real HTTP, with a minimal HTTP/1.1 client on a
//! TcpStream (no client crate needed for a few requests).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};

use crate::{Faults, SimConfig, Simulator, TenantSpec};

mod page_churn;

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn request(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Resp {
    let addr = base.strip_prefix("http://").unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_txt = std::str::from_utf8(&data[..eol]).unwrap();
        let size = usize::from_str_radix(size_txt.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn token_with(sim: &Simulator, scope: Option<&str>) -> String {
    let mut body = json!({
        "grant_type": "client_credentials",
        "client_id": sim.client_id(),
        "client_secret": sim.client_secret(),
    });
    if let Some(s) = scope {
        body["scope"] = json!(s);
    }
    let r = request(
        &sim.base_url(),
        "POST",
        "/oauth/token",
        &[("Content-Type", "application/json")],
        Some(&body.to_string()),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["access_token"].as_str().unwrap().to_string()
}

fn scim(sim: &Simulator, token: &str, method: &str, path: &str, body: Option<&Value>) -> Resp {
    let auth = format!("Bearer {token}");
    let email = sim.admin_email();
    let body = body.map(Value::to_string);
    request(
        &sim.base_url(),
        method,
        &format!("/scim/v2{path}"),
        &[
            ("Authorization", &auth),
            ("x-as-user-email", &email),
            ("Content-Type", "application/scim+json"),
        ],
        body.as_deref(),
    )
}

fn small() -> Simulator {
    Simulator::start(SimConfig::default()).unwrap()
}

#[test]
fn token_errors_and_client_auth() {
    let sim = small();
    let base = sim.base_url();
    let post = |ctype: &str, body: &str, extra: &[(&str, &str)]| {
        let mut h = vec![("Content-Type", ctype)];
        h.extend_from_slice(extra);
        request(&base, "POST", "/oauth/token", &h, Some(body))
    };
    let id = sim.client_id();

    let wrong = post(
        "application/json",
        &json!({"grant_type":"client_credentials","client_id":id,"client_secret":"nope"})
            .to_string(),
        &[],
    );
    assert_eq!(wrong.status, 403);
    assert_eq!(wrong.json()["error"], "unauthorized_client");
    assert!(wrong.json()["error_description"].is_string());

    let unknown = post(
        "application/json",
        &json!({"grant_type":"client_credentials",
            "client_id":"11111111-2222-4333-8444-555555555555","client_secret":sim.client_secret()})
        .to_string(),
        &[],
    );
    assert_eq!(unknown.status, 403);
    assert_eq!(unknown.json()["error"], "unauthorized_client");

    let malformed = post(
        "application/x-www-form-urlencoded",
        "grant_type=client_credentials&client_id=not-a-uuid&client_secret=x",
        &[],
    );
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.json()["error"], "invalid_request");

    let grant = post(
        "application/json",
        &json!({"grant_type":"password","client_id":id,"client_secret":sim.client_secret()})
            .to_string(),
        &[],
    );
    assert_eq!(grant.status, 400);
    assert_eq!(grant.json()["error"], "unsupported_grant_type");

    let scope = post(
        "application/json",
        &json!({"grant_type":"client_credentials","client_id":id,
            "client_secret":sim.client_secret(),"scope":"scim.users.readUsers public.records.readRecords"})
        .to_string(),
        &[],
    );
    assert_eq!(scope.status, 400);
    assert_eq!(scope.json()["error"], "invalid_scope");

    // Basic auth with a form body.
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{}", sim.client_secret()))
    );
    let ok = post(
        "application/x-www-form-urlencoded",
        "grant_type=client_credentials&scope=scim.users.readUsers",
        &[("Authorization", &basic)],
    );
    assert_eq!(ok.status, 200);
    let v = ok.json();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 21600);
    assert_eq!(v["scope"], "scim.users.readUsers");
    assert!(v.get("refresh_token").is_none());

    // No scope asked: every allowed scope.
    let all = post(
        "application/json",
        &json!({"grant_type":"client_credentials","client_id":id,"client_secret":sim.client_secret()})
            .to_string(),
        &[],
    );
    assert_eq!(all.json()["scope"].as_str().unwrap().split(' ').count(), 9);

    assert_eq!(sim.tokens_issued(), 2);
    // Faults never touch the token endpoint.
    sim.set_faults(Faults {
        rate_limit_every: Some(1),
        ..Faults::default()
    });
    token_with(&sim, None);
    assert_eq!(sim.requests().get("POST /oauth/token"), Some(&8));
}

#[test]
fn bearer_and_as_user_checks() {
    let sim = small();
    let base = sim.base_url();
    let token = token_with(&sim, None);
    let auth = format!("Bearer {token}");

    let none = request(&base, "GET", "/scim/v2/Users", &[], None);
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["message"], "invalid authentication token");
    assert_eq!(none.json()["code"], "UNAUTHORIZED");

    let bogus = request(
        &base,
        "GET",
        "/scim/v2/Users",
        &[
            ("Authorization", "Bearer abc"),
            ("x-as-user-email", &sim.admin_email()),
        ],
        None,
    );
    assert_eq!(bogus.status, 401);

    let missing = request(
        &base,
        "GET",
        "/scim/v2/Users",
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(missing.status, 400);
    let v = missing.json();
    assert_eq!(
        v["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(v["status"], "400");
    assert!(v["detail"].as_str().unwrap().contains("x-as-user-email"));
    assert!(v["detail"].as_str().unwrap().contains("required"));

    let unknown = request(
        &base,
        "GET",
        "/scim/v2/Users",
        &[
            ("Authorization", &auth),
            ("x-as-user-email", "nobody@nowhere.test"),
        ],
        None,
    );
    assert_eq!(unknown.status, 403);
    assert_eq!(unknown.json()["status"], "403");

    let by_id = request(
        &base,
        "GET",
        "/scim/v2/Users",
        &[("Authorization", &auth), ("x-as-user-id", &sim.admin_id())],
        None,
    );
    assert_eq!(by_id.status, 200);

    // userinfo names the as-user.
    let info = request(
        &base,
        "GET",
        "/oauth/userinfo",
        &[
            ("Authorization", &auth),
            ("x-as-user-email", &sim.admin_email()),
        ],
        None,
    );
    assert_eq!(info.status, 200);
    assert_eq!(info.json()["email"], json!(sim.admin_email()));
    assert_eq!(info.json()["id"], json!(sim.admin_id()));
    assert_eq!(info.json()["scopes"].as_array().unwrap().len(), 9);
    let info = request(
        &base,
        "GET",
        "/oauth/userinfo",
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(info.status, 400);
    let info = request(&base, "GET", "/oauth/userinfo", &[], None);
    assert_eq!(info.status, 401);
}

#[test]
fn token_expiry_is_real() {
    let sim = Simulator::start(SimConfig {
        token_lifetime: Duration::from_secs(1),
        ..SimConfig::default()
    })
    .unwrap();
    let token = token_with(&sim, None);
    assert_eq!(
        scim(&sim, &token, "GET", "/Users?count=1", None).status,
        200
    );
    std::thread::sleep(Duration::from_millis(1100));
    let r = scim(&sim, &token, "GET", "/Users?count=1", None);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["message"], "token has expired");
}

#[test]
fn scopes_and_admin_enforced() {
    let sim = small();
    let read_only = token_with(&sim, Some("scim.users.readUsers scim.groups.readGroups"));
    let tenant = sim.tenant();
    let group = &tenant.groups[0];
    let outsider = tenant
        .users
        .iter()
        .find(|u| !group.members.contains(&u.id))
        .unwrap();
    let patch = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations":[{"op":"add","path":"members","value":[{"value":outsider.id}]}]});

    assert_eq!(scim(&sim, &read_only, "GET", "/Groups", None).status, 200);
    let denied = scim(
        &sim,
        &read_only,
        "PATCH",
        &format!("/Groups/{}", group.id),
        Some(&patch),
    );
    assert_eq!(denied.status, 403);
    assert!(denied.json()["detail"]
        .as_str()
        .unwrap()
        .contains("scim.groups.updateGroups"));
    let denied = scim(&sim, &read_only, "POST", "/Users", Some(&json!({})));
    assert_eq!(denied.status, 403);
    assert_eq!(sim.write_requests(), 2);
    assert!(!sim.tenant().groups[0].members.contains(&outsider.id));

    // A full token but a non-admin as-user: writes refused, reads fine.
    let full = token_with(&sim, None);
    let plain_user = tenant.users.iter().find(|u| !u.admin).unwrap();
    let r = request(
        &sim.base_url(),
        "PATCH",
        &format!("/scim/v2/Groups/{}", group.id),
        &[
            ("Authorization", &format!("Bearer {full}")),
            ("x-as-user-email", &plain_user.user_name),
        ],
        Some(&patch.to_string()),
    );
    assert_eq!(r.status, 403);

    let ok = scim(
        &sim,
        &full,
        "PATCH",
        &format!("/Groups/{}", group.id),
        Some(&patch),
    );
    assert_eq!(ok.status, 200);
    assert!(ok.json()["members"]
        .as_array()
        .unwrap()
        .contains(&json!({"type":"User","value":outsider.id})));
    assert!(sim.tenant().groups[0].members.contains(&outsider.id));
}

#[test]
fn paging_one_based_with_cap() {
    let sim = Simulator::start(SimConfig {
        tenant: TenantSpec {
            users: 1500,
            groups: 3,
            memberships: 100,
            seed: 9,
        },
        ..SimConfig::default()
    })
    .unwrap();
    let token = token_with(&sim, None);
    let tenant = sim.tenant();

    let first = scim(&sim, &token, "GET", "/Users", None).json();
    assert_eq!(
        first["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:ListResponse"
    );
    assert_eq!(first["totalResults"], 1500);
    assert_eq!(first["startIndex"], 1);
    assert_eq!(first["itemsPerPage"], 25);
    assert_eq!(first["Resources"][0]["id"], json!(tenant.users[0].id));

    let big = scim(&sim, &token, "GET", "/Users?startIndex=1&count=5000", None).json();
    assert_eq!(big["Resources"].as_array().unwrap().len(), 1000);
    assert_eq!(big["itemsPerPage"], 1000);
    let rest = scim(
        &sim,
        &token,
        "GET",
        "/Users?startIndex=1001&count=1000",
        None,
    )
    .json();
    assert_eq!(rest["Resources"].as_array().unwrap().len(), 500);
    assert_eq!(rest["startIndex"], 1001);
    let ids: Vec<&str> = big["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["Resources"].as_array().unwrap())
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    let want: Vec<&str> = tenant.users.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids, want);

    let zero = scim(&sim, &token, "GET", "/Users?startIndex=0&count=2", None).json();
    assert_eq!(zero["startIndex"], 1);
    assert_eq!(zero["Resources"][0]["id"], json!(tenant.users[0].id));
    let past = scim(&sim, &token, "GET", "/Users?startIndex=1501", None).json();
    assert_eq!(past["Resources"].as_array().unwrap().len(), 0);
    assert_eq!(past["totalResults"], 1500);

    // Filters and excludedAttributes.
    let name = &tenant.users[7].user_name;
    let hit = scim(
        &sim,
        &token,
        "GET",
        &format!("/Users?filter=userName%20eq%20%22{name}%22"),
        None,
    )
    .json();
    assert_eq!(hit["totalResults"], 1);
    assert_eq!(hit["Resources"][0]["userName"], json!(name));
    let bad = scim(
        &sim,
        &token,
        "GET",
        "/Users?filter=title%20eq%20%22x%22",
        None,
    );
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["scimType"], "invalidFilter");
    let slim = scim(
        &sim,
        &token,
        "GET",
        "/Groups?excludedAttributes=members",
        None,
    )
    .json();
    assert_eq!(slim["totalResults"], 3);
    assert!(slim["Resources"][0].get("members").is_none());
    let full = scim(&sim, &token, "GET", "/Groups", None).json();
    assert!(full["Resources"][0]["members"].is_array());
    assert_eq!(sim.requests().get("GET /scim/v2/Users"), Some(&7));
}

#[test]
fn rate_limits_every_nth_with_and_without_retry_after() {
    let sim = small();
    let token = token_with(&sim, None);
    sim.set_faults(Faults {
        rate_limit_every: Some(3),
        ..Faults::default()
    });
    let statuses: Vec<u16> = (0..6)
        .map(|_| scim(&sim, &token, "GET", "/Users?count=1", None).status)
        .collect();
    assert_eq!(statuses, vec![200, 200, 429, 200, 200, 429]);
    // Tokens are not faulted and do not advance the schedule.
    token_with(&sim, None);
    let mut last = Vec::new();
    for _ in 0..3 {
        last.push(scim(&sim, &token, "GET", "/Users?count=1", None));
    }
    let r = &last[2];
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), None);

    sim.set_faults(Faults {
        rate_limit_every: Some(2),
        retry_after_secs: Some(2),
        ..Faults::default()
    });
    assert_eq!(scim(&sim, &token, "GET", "/Groups", None).status, 200);
    let r = scim(&sim, &token, "GET", "/Groups", None);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("2"));

    sim.set_faults(Faults {
        server_error_every: Some(2),
        server_error_status: 504,
        ..Faults::default()
    });
    assert_eq!(scim(&sim, &token, "GET", "/Groups", None).status, 504);
    assert_eq!(scim(&sim, &token, "GET", "/Groups", None).status, 200);
    assert_eq!(sim.requests().get("GET /scim/v2/Groups"), Some(&4));
}

#[test]
fn create_patch_delete() {
    let sim = small();
    let token = token_with(&sim, None);
    let user = |pw: &str| {
        json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName":"new.hire@example-tenant.test",
            "name":{"givenName":"New","familyName":"Hire"},"title":"Counsel","password":pw,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Legal"}})
    };
    let weak = scim(&sim, &token, "POST", "/Users", Some(&user("password")));
    assert_eq!(weak.status, 400);
    assert_eq!(weak.json()["scimType"], "invalidValue");
    assert!(weak.json()["detail"].as_str().unwrap().contains("16"));

    let created = scim(
        &sim,
        &token,
        "POST",
        "/Users",
        Some(&user("Str0ng!Passw0rd-xyz")),
    );
    assert_eq!(created.status, 201);
    let v = created.json();
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 24);
    assert_eq!(v["userName"], "new.hire@example-tenant.test");
    assert!(v.get("password").is_none());
    let snapshot = sim.tenant();
    let stored = snapshot.user(&id).unwrap();
    assert_eq!(stored.password.as_deref(), Some("Str0ng!Passw0rd-xyz"));
    assert_eq!(stored.department.as_deref(), Some("Legal"));

    let dup = scim(
        &sim,
        &token,
        "POST",
        "/Users",
        Some(&user("Str0ng!Passw0rd-xyz")),
    );
    assert_eq!(dup.status, 409);
    assert_eq!(dup.json()["scimType"], "uniqueness");

    let gid = snapshot.groups[1].id.clone();
    let op = |op: &str, uid: &str| {
        json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations":[{"op":op,"path":"members","value":[{"value":uid}]}]})
    };
    let bad_user = scim(
        &sim,
        &token,
        "PATCH",
        &format!("/Groups/{gid}"),
        Some(&op("add", "000000000000000000000000")),
    );
    assert_eq!(bad_user.status, 400);
    let bad_body = scim(
        &sim,
        &token,
        "PATCH",
        &format!("/Groups/{gid}"),
        Some(&json!({"Operations": 3})),
    );
    assert_eq!(bad_body.status, 400);
    assert_eq!(bad_body.json()["scimType"], "invalidValue");
    let no_group = scim(
        &sim,
        &token,
        "PATCH",
        "/Groups/74906dd6-f2c6-4442-8875-57846f15b061",
        Some(&op("add", &id)),
    );
    assert_eq!(no_group.status, 404);

    sim.set_faults(Faults {
        patch_returns_204: true,
        ..Faults::default()
    });
    let added = scim(
        &sim,
        &token,
        "PATCH",
        &format!("/Groups/{gid}"),
        Some(&op("add", &id)),
    );
    assert_eq!(added.status, 204);
    assert!(added.body.is_empty());
    assert!(sim.tenant().group(&gid).unwrap().members.contains(&id));
    sim.set_faults(Faults::default());
    let removed = scim(
        &sim,
        &token,
        "PATCH",
        &format!("/Groups/{gid}"),
        Some(&op("remove", &id)),
    );
    assert_eq!(removed.status, 200);
    assert!(!removed.json()["members"]
        .as_array()
        .unwrap()
        .contains(&json!({"type":"User","value":id})));

    assert!(sim.add_member(&gid, &id));
    assert_eq!(
        scim(&sim, &token, "DELETE", &format!("/Users/{id}"), None).status,
        204
    );
    assert_eq!(
        scim(&sim, &token, "GET", &format!("/Users/{id}"), None).status,
        404
    );
    assert_eq!(
        scim(&sim, &token, "DELETE", &format!("/Users/{id}"), None).status,
        404
    );
    assert!(!sim.tenant().group(&gid).unwrap().members.contains(&id));
    assert_eq!(sim.write_requests(), 10);
    assert_eq!(sim.requests().get("PATCH /scim/v2/Groups/{id}"), Some(&5));

    // The test API's own mutations show up over HTTP.
    let uid = sim.add_user("added@example-tenant.test", "Ad", "Ded");
    let got = scim(&sim, &token, "GET", &format!("/Users/{uid}"), None).json();
    assert_eq!(got["name"]["givenName"], "Ad");
    assert!(sim.delete_user(&uid));
    assert!(!sim.remove_member(&gid, &uid));
}
