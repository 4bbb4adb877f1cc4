//! Rate budgets: the application's limits, declared by the connector
//! (contract 0.3.0), lowered by the operator, and enforced here, in the
//! outbound layer, for every request of a tenant.
//!
//! A budget is "at most `limit` requests in any `window`", enforced as a
//! sliding log: each request reserves a send time, the earliest at which
//! the `limit` requests before it still fit in one window. A burst of up to
//! `limit` goes out at once; after that each request waits for the one
//! `limit` places ahead of it to leave the window. No window of that length
//! ever holds more than `limit` sends, and a request after an idle window
//! never waits.
//!
//! The log lives in a [`RateLedger`], which the operator keeps per tenant
//! and hands to every connector it opens for that tenant: several
//! instances, and several requests in flight from one, draw on one budget
//! rather than each on its own.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::types::{ConfigField, DeclaredBudget};

/// The most requests one window may hold: the log keeps one instant per
/// request of the window, so this bounds its memory (1.6 MB).
pub const MAX_LIMIT: u32 = 100_000;
/// The longest window a budget may have.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Budgets one connector may declare.
const MAX_BUDGETS: usize = 32;
/// Request patterns one budget may list.
const MAX_PATTERNS: usize = 64;

/// Why a connector's budgets, or the operator's lowering of them, are
/// unusable. Each names what to change.
#[derive(Debug, thiserror::Error)]
pub enum RateError {
    /// The component declared a budget the host cannot enforce.
    #[error("the component declared an unusable rate budget {name:?}: {reason}")]
    Declared {
        /// The budget's name, as declared (cut short).
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting meant to lower a budget is not a number of requests, or
    /// raises it.
    #[error("setting {setting} = {value:?}: {reason}")]
    Setting {
        /// The setting.
        setting: String,
        /// Its value.
        value: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The operator lowered a budget the connector does not declare.
    #[error("--rate-budget {name}: the connector declares no budget of that name; it declares {declared}")]
    Unknown {
        /// The name the operator gave.
        name: String,
        /// The names the connector declares.
        declared: String,
    },
    /// The operator's budget is looser than the connector's.
    #[error("--rate-budget {given}: that allows more than the connector's budget of {declared}; a budget may only be lowered")]
    Raised {
        /// What the operator gave.
        given: String,
        /// The connector's budget.
        declared: String,
    },
}

/// An operator's lowering of one budget: `NAME=LIMIT/WINDOW`
/// (`users=300/60s`), or `NAME=LIMIT` to keep the connector's window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lowering {
    /// The budget's name.
    pub name: String,
    /// Requests allowed in any window.
    pub limit: u32,
    /// The window; `None` keeps the connector's.
    pub window: Option<Duration>,
}

impl std::str::FromStr for Lowering {
    type Err = String;

    fn from_str(s: &str) -> Result<Lowering, String> {
        let usage = "give NAME=LIMIT or NAME=LIMIT/WINDOW, e.g. users=300/60s";
        let (name, rest) = s.split_once('=').ok_or_else(|| format!("{s:?}: {usage}"))?;
        let name = name.trim();
        if !valid_name(name) {
            return Err(format!(
                "{s:?}: a budget's name is lower-case letters, digits and '-'; {usage}"
            ));
        }
        let (limit, window) = match rest.split_once('/') {
            Some((l, w)) => (l, Some(w)),
            None => (rest, None),
        };
        let limit = parse_limit(limit.trim()).map_err(|why| format!("{s:?}: {why}"))?;
        let window = match window {
            Some(w) => Some(parse_window(w.trim()).map_err(|why| format!("{s:?}: {why}"))?),
            None => None,
        };
        Ok(Lowering {
            name: name.to_string(),
            limit,
            window,
        })
    }
}

fn parse_limit(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(format!(
            "the limit {s:?} is not a whole number of requests from 1 to {MAX_LIMIT}"
        )),
    }
}

fn parse_window(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("the window {s:?} is not a duration such as 60s or 1m: {e}"))?;
    if d < Duration::from_millis(1) || d > MAX_WINDOW {
        return Err(format!("the window {s:?} is not between 1ms and 24h"));
    }
    Ok(d)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A tenant's record of what its budgets have let through: shared by every
/// connector opened with it (cloning shares it). A fresh one starts with
/// every budget whole.
#[derive(Clone, Debug, Default)]
pub struct RateLedger {
    logs: Arc<Mutex<HashMap<String, Arc<Mutex<Log>>>>>,
}

impl RateLedger {
    /// An empty ledger.
    pub fn new() -> RateLedger {
        RateLedger::default()
    }

    fn log(&self, name: &str) -> Arc<Mutex<Log>> {
        let mut logs = self.logs.lock().unwrap_or_else(PoisonError::into_inner);
        logs.entry(name.to_string()).or_default().clone()
    }
}

/// The send times of the latest requests under one budget, oldest first;
/// some may lie ahead (reserved by requests still waiting).
#[derive(Debug, Default)]
struct Log {
    sent: VecDeque<Instant>,
}

impl Log {
    /// Reserves the earliest send time at or after `now` that keeps every
    /// window of `window` at `limit` requests or fewer.
    fn reserve(&mut self, now: Instant, limit: u32, window: Duration) -> Instant {
        let limit = limit.max(1) as usize;
        if let Some(cutoff) = now.checked_sub(window) {
            while self.sent.front().is_some_and(|&t| t <= cutoff) {
                self.sent.pop_front();
            }
        }
        let latest = self.sent.back().copied().unwrap_or(now);
        let slot = if self.sent.len() < limit {
            now.max(latest)
        } else {
            // The request `limit` places back must have left the window
            // (half-open: (slot - window, slot]) before this one goes.
            let ahead = self.sent[self.sent.len() - limit];
            (ahead + window).max(now).max(latest)
        };
        self.sent.push_back(slot);
        // Only the last `limit` sends decide the next slot.
        while self.sent.len() > limit {
            self.sent.pop_front();
        }
        slot
    }
}

/// `METHOD /path`: which requests a budget covers.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern {
    /// `None`: any method.
    method: Option<http::Method>,
    path: String,
}

impl Pattern {
    fn parse(s: &str) -> Result<Pattern, String> {
        let (method, path) = s
            .trim()
            .split_once(' ')
            .ok_or_else(|| format!("{s:?} is not `METHOD /path`"))?;
        let method = match method {
            "*" => None,
            m => Some(
                http::Method::from_bytes(m.as_bytes())
                    .map_err(|_| format!("{m:?} is not an HTTP method"))?,
            ),
        };
        let path = path.trim();
        if !path.starts_with('/') || path.contains(['?', '#', ' ']) || path.len() > 512 {
            return Err(format!("{path:?} is not a path starting with '/'"));
        }
        Ok(Pattern {
            method,
            path: path.to_string(),
        })
    }

    fn covers(&self, method: &http::Method, path: &str) -> bool {
        if self.method.as_ref().is_some_and(|m| m != method) {
            return false;
        }
        under(path, &self.path)
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.method {
            Some(m) => write!(f, "{m} {}", self.path),
            None => write!(f, "* {}", self.path),
        }
    }
}

/// `path` is `prefix` or below it (`prefix/…`, `prefix?…`), ignoring ASCII
/// case; a prefix ending in '/' (such as `/`) covers all that starts with it.
fn under(path: &str, prefix: &str) -> bool {
    let Some(head) = path.get(..prefix.len()) else {
        return false;
    };
    if !head.eq_ignore_ascii_case(prefix) {
        return false;
    }
    prefix.ends_with('/') || matches!(path.as_bytes().get(prefix.len()), None | Some(b'/' | b'?'))
}

/// One budget in force.
#[derive(Debug)]
struct Enforced {
    name: String,
    patterns: Vec<Pattern>,
    limit: u32,
    window: Duration,
    log: Arc<Mutex<Log>>,
}

impl Enforced {
    /// Lowers the budget to `limit` per `window` (its own when `None`);
    /// refused, with the budget in force ("600 per 1m"), when that would
    /// let more through.
    fn lower(&mut self, limit: u32, window: Option<Duration>) -> Result<(), String> {
        let window = window.unwrap_or(self.window);
        if !no_looser(limit, window, self.limit, self.window) {
            return Err(format!("{} per {}", self.limit, window_text(self.window)));
        }
        self.limit = limit;
        self.window = window;
        Ok(())
    }
}

/// The budgets one connector's requests are held to.
#[derive(Debug, Default)]
pub struct Budgets {
    enforced: Vec<Enforced>,
}

impl Budgets {
    /// No budget: every request goes out at once.
    pub fn none() -> Budgets {
        Budgets::default()
    }

    /// The budgets `declared` by a connector whose settings are `settings`
    /// (described by `schema`), with the operator's `lowered` applied, each
    /// drawing on `ledger`. Fails on a declaration the host cannot enforce
    /// and on any attempt to raise a budget.
    pub fn plan(
        declared: &[DeclaredBudget],
        settings: &BTreeMap<String, String>,
        schema: &[ConfigField],
        lowered: &[Lowering],
        ledger: &RateLedger,
    ) -> Result<Budgets, RateError> {
        if declared.len() > MAX_BUDGETS {
            return Err(RateError::Declared {
                name: String::new(),
                reason: format!("more than {MAX_BUDGETS} budgets"),
            });
        }
        let mut enforced: Vec<Enforced> = Vec::new();
        for d in declared {
            let bad = |reason: String| RateError::Declared {
                name: d.name.chars().take(64).collect(),
                reason,
            };
            if !valid_name(&d.name) {
                return Err(bad(
                    "a name is 1 to 64 lower-case letters, digits and '-'".into()
                ));
            }
            if enforced.iter().any(|e| e.name == d.name) {
                return Err(bad("declared twice".into()));
            }
            if d.requests.is_empty() || d.requests.len() > MAX_PATTERNS {
                return Err(bad(format!("it must cover 1 to {MAX_PATTERNS} requests")));
            }
            let patterns = d
                .requests
                .iter()
                .map(|p| Pattern::parse(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad)?;
            if !(1..=MAX_LIMIT).contains(&d.limit) {
                return Err(bad(format!("its limit is not from 1 to {MAX_LIMIT}")));
            }
            if d.window < Duration::from_millis(1) || d.window > MAX_WINDOW {
                return Err(bad("its window is not between 1 ms and 24 h".into()));
            }
            let mut e = Enforced {
                name: d.name.clone(),
                patterns,
                limit: d.limit,
                window: d.window,
                log: ledger.log(&d.name),
            };
            if let Some(setting) = &d.limit_setting {
                match schema.iter().find(|f| &f.name == setting) {
                    Some(f) if !f.secret => {}
                    _ => {
                        return Err(bad(format!(
                            "it names {setting:?}, which is not one of its plain settings"
                        )))
                    }
                }
                if let Some(value) = settings.get(setting) {
                    let refused = |reason: String| RateError::Setting {
                        setting: setting.clone(),
                        value: value.clone(),
                        reason,
                    };
                    let asked = parse_limit(value.trim()).map_err(refused)?;
                    e.lower(asked, None).map_err(|in_force| {
                        refused(format!(
                            "the application allows at most {in_force}; the setting may only lower that"
                        ))
                    })?;
                }
            }
            enforced.push(e);
        }
        for l in lowered {
            let Some(e) = enforced.iter_mut().find(|e| e.name == l.name) else {
                return Err(RateError::Unknown {
                    name: l.name.clone(),
                    declared: if enforced.is_empty() {
                        "none".to_string()
                    } else {
                        enforced
                            .iter()
                            .map(|e| e.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                });
            };
            let given = format!(
                "{}={}/{}",
                l.name,
                l.limit,
                window_text(l.window.unwrap_or(e.window))
            );
            e.lower(l.limit, l.window)
                .map_err(|declared| RateError::Raised { given, declared })?;
        }
        Ok(Budgets { enforced })
    }

    /// One line per budget, for the log: "users: 600 per 1m (* /scim/v2/Users)".
    pub fn describe(&self) -> Vec<String> {
        self.enforced
            .iter()
            .map(|e| {
                let covers: Vec<String> = e.patterns.iter().map(|p| p.to_string()).collect();
                format!(
                    "{}: {} per {} ({})",
                    e.name,
                    e.limit,
                    window_text(e.window),
                    covers.join(", ")
                )
            })
            .collect()
    }

    /// The budget a request counts against: the first that covers it.
    fn budget_of(&self, method: &http::Method, path: &str) -> Option<&Enforced> {
        self.enforced
            .iter()
            .find(|e| e.patterns.iter().any(|p| p.covers(method, path)))
    }

    /// Waits until the request may go out under its budget, and counts it.
    /// A request no budget covers goes at once. The reservation stands even
    /// if the caller gives up waiting: the budget errs on the side of the
    /// application.
    pub async fn admit(&self, method: &http::Method, path: &str) {
        let Some(e) = self.budget_of(method, path) else {
            return;
        };
        let now = Instant::now();
        let slot = e
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .reserve(now, e.limit, e.window);
        if slot > now {
            tracing::debug!(
                budget = %e.name,
                wait_ms = (slot - now).as_millis() as u64,
                "waiting for the rate budget"
            );
            tokio::time::sleep_until(slot).await;
        }
    }
}

/// Whether `limit` per `window` never lets more through than `declared`
/// per `declared_window`: a declared window is covered by
/// ceil(declared_window / window) windows of the lowered size, each holding
/// at most `limit`.
fn no_looser(limit: u32, window: Duration, declared: u32, declared_window: Duration) -> bool {
    let w = window.as_nanos().max(1);
    let pieces = declared_window.as_nanos().div_ceil(w);
    u128::from(limit) * pieces <= u128::from(declared)
}

/// "60s", "1m 30s", "500ms".
fn window_text(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::types::FieldKind;

    fn declared(name: &str, requests: &[&str], limit: u32, window_s: u64) -> DeclaredBudget {
        DeclaredBudget {
            name: name.into(),
            requests: requests.iter().map(|s| s.to_string()).collect(),
            limit,
            window: Duration::from_secs(window_s),
            limit_setting: None,
        }
    }

    fn plan(d: &[DeclaredBudget], lowered: &[&str]) -> Result<Budgets, RateError> {
        let lowered: Vec<Lowering> = lowered.iter().map(|l| l.parse().unwrap()).collect();
        Budgets::plan(d, &BTreeMap::new(), &[], &lowered, &RateLedger::new())
    }

    #[test]
    fn a_window_never_holds_more_than_the_limit_and_a_burst_goes_at_once() {
        let t0 = Instant::now();
        let mut log = Log::default();
        let w = Duration::from_secs(60);
        let slots: Vec<Duration> = (0..25).map(|_| log.reserve(t0, 10, w) - t0).collect();
        // The first ten at once, then ten at 60 s, then five at 120 s.
        assert!(slots[..10].iter().all(|s| s.is_zero()), "{slots:?}");
        assert!(slots[10..20].iter().all(|&s| s == w), "{slots:?}");
        assert!(slots[20..].iter().all(|&s| s == 2 * w), "{slots:?}");
        for (i, a) in slots.iter().enumerate() {
            let within = slots[i..].iter().filter(|&&b| b < *a + w).count();
            assert!(within <= 10, "{within} in the window from {a:?}");
        }
    }

    #[test]
    fn after_an_idle_window_a_request_goes_at_once() {
        let t0 = Instant::now();
        let mut log = Log::default();
        let w = Duration::from_secs(60);
        for _ in 0..10 {
            log.reserve(t0, 10, w);
        }
        assert_eq!(log.reserve(t0 + Duration::from_secs(30), 10, w), t0 + w);
        let later = t0 + Duration::from_secs(200);
        assert_eq!(log.reserve(later, 10, w), later);
    }

    #[test]
    fn requests_spread_over_time_only_wait_when_the_window_is_full() {
        let t0 = Instant::now();
        let mut log = Log::default();
        let w = Duration::from_secs(10);
        // One a second under 5 per 10 s: the first five go at once, then
        // each waits for the one five back to leave the window.
        let slots: Vec<Duration> = (0..8u64)
            .map(|i| log.reserve(t0 + Duration::from_secs(i), 5, w) - t0)
            .collect();
        let secs: Vec<u64> = slots.iter().map(|d| d.as_secs()).collect();
        assert_eq!(secs, [0, 1, 2, 3, 4, 10, 11, 12]);
    }

    #[test]
    fn the_first_budget_that_covers_a_request_counts_it() {
        let b = plan(
            &[
                declared(
                    "users-write",
                    &["PATCH /scim/v2/Users", "DELETE /scim/v2/Users"],
                    50,
                    60,
                ),
                declared("users-read", &["* /scim/v2/Users"], 600, 60),
                declared("other", &["* /"], 800, 60),
            ],
            &[],
        )
        .unwrap();
        let name = |m: http::Method, p: &str| b.budget_of(&m, p).map(|e| e.name.clone());
        assert_eq!(
            name(http::Method::PATCH, "/scim/v2/Users/1").as_deref(),
            Some("users-write")
        );
        assert_eq!(
            name(http::Method::GET, "/scim/v2/users?count=10").as_deref(),
            Some("users-read")
        );
        assert_eq!(
            name(http::Method::GET, "/scim/v2/UsersX").as_deref(),
            Some("other")
        );
        assert_eq!(
            name(http::Method::POST, "/oauth/token").as_deref(),
            Some("other")
        );
        let none = plan(&[declared("users", &["GET /scim/v2/Users"], 1, 1)], &[]).unwrap();
        assert!(none.budget_of(&http::Method::GET, "/oauth/token").is_none());
    }

    #[test]
    fn the_operator_may_lower_a_budget_never_raise_it() {
        let d = [declared("users-read", &["GET /scim/v2/Users"], 600, 60)];
        let b = plan(&d, &["users-read=300"]).unwrap();
        assert_eq!(b.enforced[0].limit, 300);
        assert_eq!(b.enforced[0].window, Duration::from_secs(60));
        // 10 a second is 600 a minute: no looser.
        let b = plan(&d, &["users-read=10/1s"]).unwrap();
        assert_eq!(
            (b.enforced[0].limit, b.enforced[0].window),
            (10, Duration::from_secs(1))
        );
        for raised in [
            "users-read=601",
            "users-read=11/1s",
            "users-read=900/90s",
            "users-read=600/59s",
        ] {
            let e = plan(&d, &[raised]).unwrap_err().to_string();
            assert!(
                e.contains("may only be lowered") && e.contains("600 per 1m"),
                "{raised}: {e}"
            );
        }
        let e = plan(&d, &["groups=1"]).unwrap_err().to_string();
        assert!(
            e.contains("no budget of that name") && e.contains("users-read"),
            "{e}"
        );
    }

    #[test]
    fn lowerings_are_parsed_or_refused_with_the_form_to_use() {
        let l: Lowering = "users-read=300/1m".parse().unwrap();
        assert_eq!(
            l,
            Lowering {
                name: "users-read".into(),
                limit: 300,
                window: Some(Duration::from_secs(60))
            }
        );
        for bad in [
            "users-read",
            "Users=1",
            "x=0",
            "x=abc",
            "x=1/soon",
            "x=1/0s",
            "x=1/2days",
            "=1",
        ] {
            let e = bad.parse::<Lowering>().unwrap_err();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn a_setting_may_lower_its_budget_and_is_refused_above_it() {
        let mut d = declared("users-read", &["GET /scim/v2/Users"], 600, 60);
        d.limit_setting = Some("users-requests-per-minute".into());
        let schema = [ConfigField {
            name: "users-requests-per-minute".into(),
            description: String::new(),
            required: false,
            secret: false,
            default: None,
            allowed_values: vec![],
            kind: FieldKind::Text,
        }];
        let with = |v: &str| {
            let settings =
                BTreeMap::from([("users-requests-per-minute".to_string(), v.to_string())]);
            Budgets::plan(
                std::slice::from_ref(&d),
                &settings,
                &schema,
                &[],
                &RateLedger::new(),
            )
        };
        assert_eq!(with("60").unwrap().enforced[0].limit, 60);
        let e = with("6000").unwrap_err().to_string();
        assert!(
            e.contains("users-requests-per-minute") && e.contains("at most 600 per 1m"),
            "{e}"
        );
        assert!(with("fast")
            .unwrap_err()
            .to_string()
            .contains("whole number"));
        let mut secret = schema.clone();
        secret[0].secret = true;
        let e = Budgets::plan(
            &[d.clone()],
            &BTreeMap::new(),
            &secret,
            &[],
            &RateLedger::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not one of its plain settings"), "{e}");
    }

    #[test]
    fn unusable_declarations_are_refused() {
        for (d, why) in [
            (declared("Users", &["GET /"], 1, 1), "lower-case"),
            (declared("u", &[], 1, 1), "cover"),
            (declared("u", &["GET"], 1, 1), "METHOD /path"),
            (declared("u", &["GET users"], 1, 1), "starting with '/'"),
            (declared("u", &["GET /"], 0, 1), "limit"),
            (declared("u", &["GET /"], 1, 0), "window"),
        ] {
            let e = plan(&[d], &[]).unwrap_err().to_string();
            assert!(
                e.contains("unusable rate budget") && e.contains(why),
                "{why}: {e}"
            );
        }
        let twice = [
            declared("u", &["GET /"], 1, 1),
            declared("u", &["GET /"], 1, 1),
        ];
        assert!(plan(&twice, &[]).unwrap_err().to_string().contains("twice"));
    }

    #[tokio::test(start_paused = true)]
    async fn instances_sharing_a_ledger_share_the_budget() {
        let d = [declared("users-read", &["GET /scim/v2/Users"], 3, 10)];
        let ledger = RateLedger::new();
        let a = Budgets::plan(&d, &BTreeMap::new(), &[], &[], &ledger).unwrap();
        let b = Budgets::plan(&d, &BTreeMap::new(), &[], &[], &ledger).unwrap();
        let t0 = Instant::now();
        for budgets in [&a, &b, &a] {
            budgets.admit(&http::Method::GET, "/scim/v2/Users").await;
        }
        assert_eq!(Instant::now(), t0, "a burst of the limit goes at once");
        b.admit(&http::Method::GET, "/scim/v2/Users").await;
        assert_eq!(Instant::now() - t0, Duration::from_secs(10));
        // Another ledger (another tenant) has its own budget.
        let other = Budgets::plan(&d, &BTreeMap::new(), &[], &[], &RateLedger::new()).unwrap();
        let t1 = Instant::now();
        other.admit(&http::Method::GET, "/scim/v2/Users").await;
        assert_eq!(Instant::now(), t1);
    }
}
