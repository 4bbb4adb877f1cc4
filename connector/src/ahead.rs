//! Listing pages asked for ahead of the page being read. Ironclad's offset paging says where every
//! later page starts once the first page has given the total, so while the host parses, lifts and
//! writes one page, the next few are already on their way: `wasi:http` requests stay outstanding
//! between calls (the host sends each in its own task), and the call that needs a page waits only
//! for what is left of its request.
//!
//! Only a 2xx or a 429 answer is used (a 429 is worded as usual, and the host waits as it says
//! before it asks again). Anything else (a refused token, a failure) is dropped and the page asked
//! for again the usual way, which words the error, refreshes the token and lets the host retry:
//! sending ahead changes when a page is asked for, never what is done with its answer (a body that
//! breaks off while it streams is worded and retried like any other).

use std::cell::{Cell, RefCell};
use std::time::Duration;

use waki::bindings::wasi::http::outgoing_handler::{self, FutureIncomingResponse};
use waki::bindings::wasi::http::types::{
    Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};

use crate::http::{self, Answer};

/// Requests an instance keeps outstanding ahead of the page being read when the host does not say
/// (a host older than contract 0.3.0).
pub const AHEAD: usize = 4;

/// The most it keeps outstanding, whatever the host says: each unread answer holds a connection.
const MOST: usize = 16;

/// A page asked for ahead: its listing, where it starts, and the answer on its way.
struct Sent {
    listing: &'static str,
    start: u64,
    answer: FutureIncomingResponse,
}

thread_local! {
    static SENT: RefCell<Vec<Sent>> = const { RefCell::new(Vec::new()) };
    /// How many may be outstanding: what the host says (read once), until one fails to come back
    /// (the host's cap on requests in flight, `--max-concurrent-requests`, counts answers not read
    /// yet), then less.
    static LIMIT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Requests that may be outstanding now.
pub fn limit() -> usize {
    LIMIT.with(|l| {
        l.get().unwrap_or_else(|| {
            let n = from_host(host_says());
            l.set(Some(n));
            n
        })
    })
}

/// What the host's value allows: a whole number from 1 to `MOST`, else `AHEAD`.
fn from_host(value: Option<String>) -> usize {
    value
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n >= 1)
        .map_or(AHEAD, |n| n.min(MOST))
}

/// What the host says through `wasi:config`: how many pages a listing may keep in flight (the
/// operator's `--max-in-flight`).
#[cfg(target_arch = "wasm32")]
fn host_says() -> Option<String> {
    crate::wasi::config::store::get("host:max-in-flight")
        .ok()
        .flatten()
}

#[cfg(not(target_arch = "wasm32"))]
fn host_says() -> Option<String> {
    None
}

/// The starts of the (at most `n`) pages after the one at `start` that fall within `total`.
pub fn following(n: usize, start: u64, page_size: u64, total: u64) -> Vec<u64> {
    (1..=n as u64)
        .filter_map(|k| start.checked_add(k.checked_mul(page_size)?))
        .take_while(|s| *s <= total)
        .collect()
}

/// Whether a request for this page is already on its way.
pub fn is_sent(listing: &str, start: u64) -> bool {
    SENT.with(|s| {
        s.borrow()
            .iter()
            .any(|a| a.listing == listing && a.start == start)
    })
}

/// Requests outstanding.
pub fn outstanding() -> usize {
    SENT.with(|s| s.borrow().len())
}

/// Sends `GET origin+path` with `headers` and keeps its answer for [`take`]. False when the
/// request could not be made (it is then simply asked for later, the usual way).
pub fn send(
    listing: &'static str,
    start: u64,
    origin: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> bool {
    let Some(answer) = request(origin, path, headers) else {
        return false;
    };
    SENT.with(|s| {
        s.borrow_mut().push(Sent {
            listing,
            start,
            answer,
        })
    });
    true
}

fn request(origin: &str, path: &str, headers: &[(&str, &str)]) -> Option<FutureIncomingResponse> {
    let (scheme, authority) = origin.split_once("://")?;
    let scheme = match scheme {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        _ => return None,
    };
    let fields: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect();
    let req = OutgoingRequest::new(Fields::from_list(&fields).ok()?);
    req.set_method(&Method::Get).ok()?;
    req.set_scheme(Some(&scheme)).ok()?;
    req.set_authority(Some(authority)).ok()?;
    req.set_path_with_query(Some(path)).ok()?;
    let body = req.body().ok()?;
    let options = RequestOptions::new();
    options
        .set_connect_timeout(Some(duration_ns(http::CONNECT_TIMEOUT)))
        .ok()?;
    let answer = outgoing_handler::handle(req, Some(options)).ok()?;
    OutgoingBody::finish(body, None).ok()?;
    Some(answer)
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The answer to the page of `listing` at `start`, if it was asked for ahead and came back 2xx or
/// 429 (its body still to read). Pages sent ahead for another listing, or for a start before this one, will not be
/// read: they are dropped, which cancels them.
///
/// When there is none to use, every other page sent ahead is dropped too, before the caller asks
/// for this one: unread answers hold the host's request slots, and the request about to be made
/// must not find them all taken.
pub fn take(listing: &str, start: u64, origin: &str) -> Option<Answer> {
    let found = SENT.with(|s| {
        let mut sent = s.borrow_mut();
        sent.retain(|a| a.listing == listing && a.start >= start);
        let at = sent.iter().position(|a| a.start == start)?;
        Some(sent.remove(at))
    });
    let reply = match found {
        Some(sent) => read(sent.answer, origin),
        None => Err(Missed::NotSent),
    };
    match reply {
        Ok(reply) => Some(reply),
        Err(missed) => {
            if missed == Missed::Failed {
                // Most likely the host's cap on requests in flight: keep fewer outstanding.
                LIMIT.with(|l| l.set(Some(outstanding() / 2)));
            }
            forget();
            None
        }
    }
}

/// Drops every page sent ahead (a listing that starts over, or an instance told to stop).
pub fn forget() {
    SENT.with(|s| s.borrow_mut().clear());
}

/// Why a page sent ahead cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Missed {
    /// None was sent for it.
    NotSent,
    /// It got no whole answer (refused by the host, or the connection failed).
    Failed,
    /// Ironclad answered, but not with a 2xx or a 429: asked again, it is worded as usual.
    Refused,
}

/// The answer, its body left to stream, when it came and is a 2xx.
fn read(answer: FutureIncomingResponse, origin: &str) -> Result<Answer, Missed> {
    answer.subscribe().block();
    let response = match answer.get() {
        Some(Ok(Ok(response))) => response,
        _ => return Err(Missed::Failed),
    };
    let response = waki::Response::try_from(response).map_err(|_| Missed::Failed)?;
    let answer = Answer::new(response, origin);
    // A 429 is used as it is: worded with its `Retry-After`, it has the host wait before the page
    // is asked for again, where asking again at once would only add to the load Ironclad refused.
    if !answer.is_success() && answer.status != 429 {
        return Err(Missed::Refused);
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_ahead_stop_at_the_total() {
        assert_eq!(following(AHEAD, 1, 1000, 100_000), [1001, 2001, 3001, 4001]);
        assert_eq!(following(2, 1, 1000, 100_000), [1001, 2001]);
        assert_eq!(following(AHEAD, 98_001, 1000, 100_000), [99_001]);
        assert!(following(AHEAD, 99_001, 1000, 100_000).is_empty());
        assert!(following(AHEAD, u64::MAX - 5, 1000, u64::MAX).is_empty());
    }

    #[test]
    fn the_hosts_value_is_taken_within_bounds() {
        assert_eq!(from_host(Some("8".into())), 8);
        assert_eq!(from_host(Some(" 1 ".into())), 1);
        assert_eq!(from_host(Some("1000".into())), MOST);
        for unusable in ["0", "-1", "four", ""] {
            assert_eq!(from_host(Some(unusable.into())), AHEAD, "{unusable}");
        }
        assert_eq!(from_host(None), AHEAD);
    }
}
