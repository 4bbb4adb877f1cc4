//! A client-side rate limit that keeps the connector inside Ironclad's per-company budgets
//! (requests per minute, per bucket): a GCRA per bucket, so a short burst goes out at once and
//! anything longer is spaced at the budget's pace. The state is the instance's (see `state.rs`);
//! the clock and the sleep are a trait so the arithmetic is tested without waiting.

use std::time::{Duration, Instant};

use waki::Method;

/// Ironclad's documented budgets, requests per minute.
pub const DEFAULT_USERS_PER_MINUTE: u32 = 600;
pub const DEFAULT_USER_WRITES_PER_MINUTE: u32 = 50;
pub const DEFAULT_GROUPS_PER_MINUTE: u32 = 600;
pub const DEFAULT_OTHER_PER_MINUTE: u32 = 800;

/// Ironclad's rate-limit buckets (API.md, "Rate limits").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    /// GET / POST / PUT `/scim/v2/Users*`.
    UsersRead,
    /// PATCH / DELETE `/scim/v2/Users*`.
    UsersWrite,
    /// Everything under `/scim/v2/Groups*`.
    Groups,
    /// Every other API (OAuth token and userinfo included).
    Other,
}

impl Bucket {
    fn index(self) -> usize {
        match self {
            Bucket::UsersRead => 0,
            Bucket::UsersWrite => 1,
            Bucket::Groups => 2,
            Bucket::Other => 3,
        }
    }
}

/// The bucket a request counts against. `path` is the request's path (query allowed); Ironclad's
/// table writes `scim/v2/users*` in lower case, so the match ignores case.
pub fn bucket(method: &Method, path: &str) -> Bucket {
    if under(path, "/scim/v2/users") {
        match method {
            Method::Patch | Method::Delete => Bucket::UsersWrite,
            _ => Bucket::UsersRead,
        }
    } else if under(path, "/scim/v2/groups") {
        Bucket::Groups
    } else {
        Bucket::Other
    }
}

/// `path` is `prefix` itself or below it (`/…`, `?…`), ignoring ASCII case.
fn under(path: &str, prefix: &str) -> bool {
    let Some(head) = path.get(..prefix.len()) else {
        return false;
    };
    head.eq_ignore_ascii_case(prefix)
        && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/' | b'?'))
}

/// Requests per minute allowed in each bucket; every value is at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    pub users_read: u32,
    pub users_write: u32,
    pub groups: u32,
    pub other: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            users_read: DEFAULT_USERS_PER_MINUTE,
            users_write: DEFAULT_USER_WRITES_PER_MINUTE,
            groups: DEFAULT_GROUPS_PER_MINUTE,
            other: DEFAULT_OTHER_PER_MINUTE,
        }
    }
}

impl RateLimits {
    pub fn per_minute(&self, bucket: Bucket) -> u32 {
        match bucket {
            Bucket::UsersRead => self.users_read,
            Bucket::UsersWrite => self.users_write,
            Bucket::Groups => self.groups,
            Bucket::Other => self.other,
        }
    }
}

/// How many requests may go out back to back after a quiet spell: one second's worth of the
/// budget, at least one. Kept small because a burst comes on top of the steady pace: over any
/// minute the limiter lets through at most `per_minute + burst - 1` requests (609 of 600), where
/// a 10% burst would allow 10% over Ironclad's budget.
pub fn burst(per_minute: u32) -> u32 {
    (per_minute / 60).max(1)
}

/// The steady-state spacing between requests: 60 s / `per_minute`.
pub fn interval(per_minute: u32) -> Duration {
    Duration::from_secs(60) / per_minute.max(1)
}

pub trait Clock {
    fn now(&self) -> Instant;
    fn sleep(&mut self, duration: Duration);
}

/// The real clock. On wasm32-wasip2 `Instant` reads `wasi:clocks/monotonic-clock` and the sleep
/// is a `wasi:io` poll on it, which the host waits on asynchronously: waiting burns no CPU.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// One GCRA per bucket: `tat` is the theoretical arrival time of the bucket's next request.
#[derive(Debug, Default)]
pub struct Limiter {
    tat: [Option<Instant>; 4],
}

impl Limiter {
    /// Books the next request of `bucket` and answers how long it must wait first. The budget is
    /// passed on every call (settings are read per call); a change applies from the next request.
    pub fn reserve(&mut self, bucket: Bucket, per_minute: u32, now: Instant) -> Duration {
        let per_minute = per_minute.max(1);
        let interval = interval(per_minute);
        let tolerance = interval * (burst(per_minute) - 1);
        let tat = self.tat[bucket.index()].map_or(now, |t| t.max(now));
        // The earliest this request may go: `burst` requests fit in `tolerance + interval`.
        let allowed_at = tat.checked_sub(tolerance).unwrap_or(now).max(now);
        self.tat[bucket.index()] = Some(tat + interval);
        allowed_at - now
    }

    /// Books the next request of `bucket` only if it may go right now (a request sent ahead
    /// never waits for the budget: it is then left for its turn).
    pub fn try_reserve(&mut self, bucket: Bucket, per_minute: u32, now: Instant) -> bool {
        let before = self.tat[bucket.index()];
        if self.reserve(bucket, per_minute, now).is_zero() {
            return true;
        }
        self.tat[bucket.index()] = before;
        false
    }

    /// Waits (on `clock`) until a request of `bucket` may go; answers the time waited.
    pub fn acquire(&mut self, bucket: Bucket, per_minute: u32, clock: &mut impl Clock) -> Duration {
        let wait = self.reserve(bucket, per_minute, clock.now());
        if !wait.is_zero() {
            clock.sleep(wait);
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// Time moves only when someone sleeps on it (or the test advances it).
    struct FakeClock {
        now: Instant,
        slept: Vec<Duration>,
    }

    impl FakeClock {
        fn new() -> Self {
            FakeClock {
                now: Instant::now(),
                slept: Vec::new(),
            }
        }

        fn advance(&mut self, d: Duration) {
            self.now += d;
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Instant {
            self.now
        }

        fn sleep(&mut self, duration: Duration) {
            self.slept.push(duration);
            self.now += duration;
        }
    }

    #[test]
    fn requests_map_to_ironclad_buckets() {
        use Bucket::*;
        for (method, path, want) in [
            (
                Method::Get,
                "/scim/v2/Users?startIndex=1&count=1000",
                UsersRead,
            ),
            (Method::Get, "/scim/v2/Users", UsersRead),
            (Method::Get, "/scim/v2/Users/abc", UsersRead),
            (Method::Post, "/scim/v2/Users", UsersRead),
            (Method::Put, "/scim/v2/Users/abc", UsersRead),
            (Method::Patch, "/scim/v2/Users/abc", UsersWrite),
            (Method::Delete, "/scim/v2/Users/abc", UsersWrite),
            (Method::Delete, "/scim/v2/users/abc", UsersWrite),
            (
                Method::Get,
                "/scim/v2/Groups?startIndex=1&count=1000",
                Groups,
            ),
            (Method::Get, "/scim/v2/Groups/g1", Groups),
            (Method::Patch, "/scim/v2/Groups/g1", Groups),
            (Method::Post, "/scim/v2/Groups", Groups),
            (Method::Delete, "/scim/v2/GROUPS/g1", Groups),
            (Method::Post, "/oauth/token", Other),
            (Method::Get, "/oauth/userinfo", Other),
            (Method::Get, "/scim/v2/ServiceProviderConfig", Other),
            (Method::Get, "/scim/v2/UsersX", Other),
            (Method::Get, "/scim/v2/Usr", Other),
            (Method::Get, "", Other),
        ] {
            assert_eq!(bucket(&method, path), want, "{method:?} {path}");
        }
    }

    #[test]
    fn defaults_are_ironclads_budgets() {
        let l = RateLimits::default();
        assert_eq!(l.per_minute(Bucket::UsersRead), 600);
        assert_eq!(l.per_minute(Bucket::UsersWrite), 50);
        assert_eq!(l.per_minute(Bucket::Groups), 600);
        assert_eq!(l.per_minute(Bucket::Other), 800);
        assert_eq!([600, 800, 50, 60, 1, 119].map(burst), [10, 13, 1, 1, 1, 1]);
    }

    #[test]
    fn a_burst_goes_out_without_waiting() {
        let mut clock = FakeClock::new();
        let mut l = Limiter::default();
        for _ in 0..burst(600) {
            assert_eq!(
                l.acquire(Bucket::UsersRead, 600, &mut clock),
                Duration::ZERO
            );
        }
        assert!(clock.slept.is_empty());
        // The next one waits one interval.
        assert_eq!(
            l.acquire(Bucket::UsersRead, 600, &mut clock),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn steady_state_spacing_is_sixty_seconds_over_the_budget() {
        for per_minute in [600, 60, 50, 7] {
            let mut clock = FakeClock::new();
            let mut l = Limiter::default();
            for _ in 0..burst(per_minute) {
                l.acquire(Bucket::Groups, per_minute, &mut clock);
            }
            let start = clock.now;
            for _ in 0..20 {
                l.acquire(Bucket::Groups, per_minute, &mut clock);
            }
            assert_eq!(clock.slept.len(), 20, "{per_minute}");
            let want = Duration::from_secs(60) / per_minute;
            assert!(clock.slept.iter().all(|d| *d == want), "{per_minute}");
            assert_eq!(clock.now - start, want * 20, "{per_minute}");
        }
    }

    #[test]
    fn a_minute_never_exceeds_budget_plus_burst() {
        let mut clock = FakeClock::new();
        let mut l = Limiter::default();
        let start = clock.now;
        let mut sent = 0;
        while clock.now - start < Duration::from_secs(60) {
            l.acquire(Bucket::UsersRead, 600, &mut clock);
            if clock.now - start < Duration::from_secs(60) {
                sent += 1;
            }
        }
        assert_eq!(sent, 600 + burst(600) - 1);
    }

    #[test]
    fn quiet_time_refills_the_burst_but_no_more() {
        let mut clock = FakeClock::new();
        let mut l = Limiter::default();
        for _ in 0..30 {
            l.acquire(Bucket::UsersRead, 600, &mut clock);
        }
        clock.slept.clear();
        clock.advance(Duration::from_secs(3600));
        for _ in 0..burst(600) {
            assert_eq!(
                l.acquire(Bucket::UsersRead, 600, &mut clock),
                Duration::ZERO
            );
        }
        assert!(l.acquire(Bucket::UsersRead, 600, &mut clock) > Duration::ZERO);

        // Half a burst's worth of quiet refills half the burst.
        let mut l = Limiter::default();
        for _ in 0..burst(600) {
            l.acquire(Bucket::Groups, 600, &mut clock);
        }
        clock.slept.clear();
        clock.advance(interval(600) * 5);
        for _ in 0..5 {
            assert_eq!(l.acquire(Bucket::Groups, 600, &mut clock), Duration::ZERO);
        }
        assert_eq!(l.acquire(Bucket::Groups, 600, &mut clock), interval(600));
    }

    #[test]
    fn buckets_do_not_block_each_other() {
        let mut clock = FakeClock::new();
        let mut l = Limiter::default();
        // Exhaust the user-writes bucket (burst 1 at 50/min).
        assert_eq!(
            l.acquire(Bucket::UsersWrite, 50, &mut clock),
            Duration::ZERO
        );
        let now = clock.now;
        assert_eq!(
            l.reserve(Bucket::UsersWrite, 50, now),
            Duration::from_millis(1200)
        );
        // The others still have their whole burst.
        for b in [Bucket::UsersRead, Bucket::Groups, Bucket::Other] {
            let per_minute = RateLimits::default().per_minute(b);
            for _ in 0..burst(per_minute) {
                assert_eq!(l.reserve(b, per_minute, now), Duration::ZERO, "{b:?}");
            }
        }
        assert!(clock.slept.is_empty());
    }

    #[test]
    fn a_changed_budget_applies_from_the_next_request() {
        let mut clock = FakeClock::new();
        let mut l = Limiter::default();
        for _ in 0..burst(600) {
            l.acquire(Bucket::UsersRead, 600, &mut clock);
        }
        // Lowered to 60/min: a second apart from here on.
        for _ in 0..3 {
            assert_eq!(
                l.acquire(Bucket::UsersRead, 60, &mut clock),
                Duration::from_secs(1)
            );
        }
    }
}
