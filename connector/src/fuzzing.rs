//! The fuzzing entry point (`connector/fuzz`, built with the `fuzzing` feature): one body of
//! arbitrary bytes goes through everything that reads an answer from Ironclad, the way the
//! connector reads it. Nothing here may panic, whatever the bytes; the few `assert!`s are
//! properties the connector relies on (a next-page token it hands out must be one it accepts).
//!
//! Also compiled for unit tests, which run it over the seed corpus and the inputs the fuzzer
//! found, so a regression fails `cargo test` and not only a fuzzing run.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::errors::{api_error, ironclad_words, ironclad_words_within, retry_after_ms, scrub};
use crate::included::{self, ListedGroup, MAX_INCLUDED_GRANTS};
use crate::mapping::{self, GROUP, USER};
use crate::oauth::{self, Token};
use crate::paging::{self, Page};
use crate::scim::{Group, ListResponse, User, UserInfo};
use crate::state::State;
use crate::wit::{ConnectorError, Resource};

/// Every status whose wording differs, on the token endpoint or elsewhere.
const STATUSES: [u16; 10] = [200, 400, 401, 403, 404, 409, 418, 429, 500, 503];

/// `startIndex`es a page may have been asked at: the first, a later one, and the last few.
const STARTS: [&str; 4] = ["1", "1001", "2147483000", "2147483647"];

/// A read-write config acting by email and a read-only one acting by id: the wording of errors
/// depends on both.
fn configs() -> &'static [Config] {
    static CONFIGS: OnceLock<Vec<Config>> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let sets: [&[(&str, &str)]; 2] = [
            &[
                ("ic-client-id", "0f8fad5b-d9cb-469f-a165-70867728950e"),
                ("ic-client-secret", "s3cr3t-value"),
                ("as-user-email", "admin@acme.com"),
            ],
            &[
                ("ic-client-id", "0f8fad5b-d9cb-469f-a165-70867728950e"),
                ("ic-client-secret", "s3cr3t-value"),
                ("as-user-id", "5f3b1c2d9e8a7b6c5d4e3f2a"),
                ("read-only", "true"),
            ],
        ];
        sets.iter()
            .filter_map(|set| {
                Config::from_lookup(|key| {
                    Ok(set
                        .iter()
                        .find(|(k, _)| *k == key)
                        .map(|(_, v)| (*v).to_owned()))
                })
                .ok()
            })
            .collect()
    })
}

/// Feeds `body` to every parser of an Ironclad answer. Never panics (that is the property the
/// fuzzer checks).
pub fn parse_responses(body: &[u8]) {
    list_pages(body);
    single_resources(body);
    error_bodies(body);
    token_response(body);
    retry_after(body);
}

/// `GET /Users` and `GET /Groups` pages: mapped as `list-resources` maps them, deduplicated
/// against an earlier page, the next page's token computed from what is left, and the groups
/// left split into included and pending.
fn list_pages(body: &[u8]) {
    if let Ok(page) = serde_json::from_slice::<ListResponse<User>>(body) {
        let shape = Shape::of(&page);
        let users: Vec<(String, Resource)> = page
            .items()
            .iter()
            .filter_map(mapping::user_resource)
            .map(|r| (r.id.resource.clone(), r))
            .collect();
        deduplicated(shape, USER, &users, |_| {});
    }
    if let Ok(page) = serde_json::from_slice::<ListResponse<Group>>(body) {
        let shape = Shape::of(&page);
        let groups = page.items();
        for g in &groups {
            group_grants(g);
        }
        let groups: Vec<(String, ListedGroup)> = groups
            .into_iter()
            .filter_map(ListedGroup::from_scim)
            .map(|g| (g.resource.id.resource.clone(), g))
            .collect();
        deduplicated(shape, GROUP, &groups, |kept| {
            // The whole budget, and one that leaves almost every group pending.
            for budget in [MAX_INCLUDED_GRANTS, 1] {
                included_page(kept.clone(), budget);
            }
        });
    }
}

/// What paging reads of a page: its length and its total.
#[derive(Clone, Copy)]
struct Shape {
    len: usize,
    total_results: Option<u64>,
}

impl Shape {
    fn of<T: crate::scim::HasId>(page: &ListResponse<T>) -> Shape {
        Shape {
            len: page.page_len(),
            total_results: page.total_results,
        }
    }
}

/// Each page deduplicated as a first page and as the same page met again after an earlier one
/// listed it all; `then` gets what is kept.
fn deduplicated<T: Clone>(page: Shape, kind: &str, entries: &[(String, T)], then: impl Fn(Vec<T>)) {
    for start in STARTS {
        let Ok(paging::Position { start, .. }) = paging::position(Some(start)) else {
            continue;
        };
        let mut state = State::default();
        let (kept, repeated) = state.dedupe(kind, true, start, entries.to_vec());
        then(kept);
        next_page(page, start, repeated);
        let (kept, repeated) = state.dedupe(kind, false, start.saturating_add(1), entries.to_vec());
        then(kept);
        next_page(page, start, repeated);
    }
}

/// A page of groups with its `included`: every group returned is either included (its one
/// entitlement is there) or pending, and the grants stay within the budget.
fn included_page(groups: Vec<ListedGroup>, budget: usize) {
    let n = groups.len();
    let page = included::group_page(groups, budget);
    let inc = &page.included;
    assert!(
        page.items.len() == n && inc.entitlements.len() + inc.pending.len() == n,
        "{n} groups gave {} items, {} entitlements and {} pending",
        page.items.len(),
        inc.entitlements.len(),
        inc.pending.len()
    );
    assert!(
        inc.grants.len() <= budget,
        "{} grants included, budget {budget}",
        inc.grants.len()
    );
}

/// The next token, on a page that is its listing's first and on one far into a listing that
/// announced little at first (the runaway bound may stop it: an error, never a panic).
fn next_page(page: Shape, start: u64, repeated: usize) {
    for first_total in [page.total_results, Some(0)] {
        let next = paging::next_token(&Page {
            noun: "users",
            start,
            len: page.len,
            repeated,
            total_results: page.total_results,
            first_total,
        });
        if let Ok(Some(token)) = next {
            // The token handed to the host must come back as the page after this one.
            let back = paging::position(Some(&token)).ok();
            let expected = start.checked_add(page.len as u64);
            assert!(
                back.is_some_and(|b| Some(b.start) == expected && b.first_total == first_total),
                "next-page token {token:?} after startIndex {start} and {} entries is not accepted back as the next page",
                page.len
            );
        }
    }
}

/// A group's entitlement and grants, as `list-entitlements` and `list-grants` answer them.
fn group_grants(g: &Group) {
    let Some(id) = g.id.as_deref().filter(|id| !id.is_empty()) else {
        return;
    };
    let name = mapping::group_name(g, id);
    let _ = mapping::member_entitlement(id, &name);
    let _ = included::member_grants(id, g.member_user_ids().unwrap_or_default());
}

/// `GET /Groups/{id}`, a created user (`POST /Users`) and `GET /oauth/userinfo`.
fn single_resources(body: &[u8]) {
    if let Ok(u) = serde_json::from_slice::<User>(body) {
        let _ = mapping::user_resource(&u);
    }
    if let Ok(g) = serde_json::from_slice::<Group>(body) {
        let _ = mapping::group_resource(&g);
        group_grants(&g);
    }
    if let Ok(info) = serde_json::from_slice::<UserInfo>(body) {
        let _ = mapping::acting_as(&info);
    }
}

/// SCIM `{scimType, detail}`, OAuth `{error, error_description}` and `{code, message}` bodies,
/// worded and scrubbed as they leave the connector. One status and config per input, picked by
/// its length (which the fuzzer varies freely): reading every body 40 times over would mostly
/// measure the same parse.
fn error_bodies(body: &[u8]) {
    let words = ironclad_words(body);
    let limit = [0, 1, crate::errors::QUOTE_LIMIT, 1000][body.len() % 4];
    let _ = ironclad_words_within(body, limit);
    let status = STATUSES[body.len() % STATUSES.len()];
    let configs = configs();
    let Some(config) = configs.get(body.len() / STATUSES.len() % configs.len().max(1)) else {
        return;
    };
    let header = String::from_utf8_lossy(body);
    let _ = oauth::token_error(status, body, config);
    let err = api_error(
        "GET /scim/v2/Users",
        status,
        body,
        Some(&header),
        &config.as_user,
    );
    let _ = scrub(err, &[config.client_secret.expose(), &words, ""]);
}

/// A `POST /oauth/token` 2xx body, and whether the token it gives is still usable.
fn token_response(body: &[u8]) {
    let minted_at = Instant::now();
    match Token::from_response(body, "key".to_owned(), minted_at) {
        Ok(token) => {
            let _ = oauth::refresh_margin(token.lifetime);
            for later in [Duration::ZERO, Duration::from_secs(3600), Duration::MAX] {
                let now = minted_at.checked_add(later).unwrap_or(minted_at);
                let _ = token.usable("key", now);
            }
            let err = ConnectorError::Other(format!("quoting {}", token.value));
            let _ = scrub(err, &[token.value.as_str()]);
        }
        Err(e) => {
            let _ = scrub(e, &["s3cr3t-value"]);
        }
    }
}

/// The `Retry-After` header: the whole input as the header value, and each line of it.
fn retry_after(body: &[u8]) {
    let text = String::from_utf8_lossy(body);
    let _ = retry_after_ms(Some(&text));
    for line in text.lines().take(8) {
        let _ = retry_after_ms(Some(line));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn both_configs_load() {
        assert_eq!(configs().len(), 2);
    }

    #[test]
    fn the_seed_corpus_runs_clean() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/parse_responses");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let mut body = std::fs::read(entry.unwrap().path()).unwrap();
            // Trailing blanks leave the JSON as it was and walk every status and config.
            for _ in 0..STATUSES.len() * configs().len() {
                parse_responses(&body);
                body.push(b' ');
            }
            n += 1;
        }
        assert!(n >= 5, "only {n} seeds in {dir}");
    }

    #[test]
    fn odd_inputs_run_clean() {
        for body in [
            &b""[..],
            b"null",
            b"{}",
            b"[]",
            b"\xff\xfe",
            b"{\"Resources\":[{}],\"totalResults\":-1}",
            b"{\"Resources\":\"x\",\"totalResults\":\"1e400\"}",
            b"{\"access_token\":\"t\",\"expires_in\":18446744073709551615}",
            b"{\"access_token\":\"t\",\"expires_in\":1e300}",
            b"1e309",
            b"-0.0",
            b"NaN",
        ] {
            parse_responses(body);
        }
    }
}
