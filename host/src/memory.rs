//! The process's heap: how the allocator is tuned, and giving freed memory
//! back to the operating system.
//!
//! A sync's peak (the component's linear memory, the c1z writer's SQLite
//! cache, the pages it lifts from the component) is freed when the job
//! ends, but glibc's allocator keeps freed pages of its per-thread arenas
//! mapped, so a long-running process that has run a few hundred syncs on
//! short-lived job threads holds its highest water mark in every arena it
//! ever used. Trimming after each job makes the process's resident size
//! between syncs what is actually live: the numbers an operator sizes a
//! pod's memory request from, and the baseline a leak would show against.

/// Returns free heap pages of every arena to the system. Costs a walk over
/// the arenas (milliseconds), once per job.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free() {
    // SAFETY: malloc_trim only touches the allocator's own free lists and is
    // safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators (musl's, the BSDs') return freed pages themselves.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free() {}

/// What the allocator holds, in bytes: `(in_use, free)`. Live allocations
/// against freed memory it keeps mapped (some of it given back with
/// `madvise`, so not all of it resident). A leak shows as `in_use` growing
/// over syncs; a resident size that grows while `in_use` does not is memory
/// the allocator keeps, not memory the process lost.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn heap_bytes() -> Option<(u64, u64)> {
    // SAFETY: mallinfo2 only reads the allocator's statistics (under its
    // locks) and returns them by value.
    let m = unsafe { libc::mallinfo2() };
    let in_use = (m.uordblks as u64).saturating_add(m.hblkhd as u64);
    Some((in_use, m.fordblks as u64))
}

/// Other allocators have no such statistics here.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn heap_bytes() -> Option<(u64, u64)> {
    None
}

/// How many malloc arenas `serve` lets glibc keep. glibc gives each thread
/// that allocates while others do an arena of its own, up to 8 per core,
/// and every sync runs on a thread of its own: the process ended up holding
/// pages in every arena, pinned by a few long-lived allocations each (a
/// tenant's report, its secrets, the scrubber) made on whichever job thread
/// happened to run. Measured with `make bench-serve` (200 tenants, 2 cores):
/// quiet RSS 98 MiB with glibc's default, 43 MiB with 2 arenas, at the same
/// syncs per minute.
const ARENAS: i32 = 2;

/// Allocations from this size up get pages of their own, unmapped when
/// freed (glibc's initial threshold, kept fixed). glibc otherwise raises it
/// to the size of each large block freed (up to 32 MiB) and its trim
/// threshold to twice that, so freed buffers of a few MiB (a page lifted
/// from the component, a batch of rows for the writer) stay in the heap,
/// resident, and a thread arena's free top is only given back past the
/// raised trim threshold (`malloc_trim` does not trim it). Measured:
/// - the one-shot sync's peak RSS, thresholds left to move against fixed:
///   100,000 users 69.7 against 61.2 MiB, 400,000 users 88.1 against
///   76.1 MiB;
/// - `make bench-serve`: the thread arena's resident size went from 6.9 to
///   11.8 MiB over 1,097 syncs while the heap's live bytes went from 7.6 to
///   7.8 MiB; fixed, the quiet RSS after the first round fell from about
///   45 to 38 MiB.
const MMAP_THRESHOLD: i32 = 128 << 10;

/// Free memory at the top of an arena past this is given back at once.
const TRIM_THRESHOLD: i32 = 128 << 10;

/// Fixes glibc's mmap and trim thresholds and, for `serve` (a thread per
/// job, for days), caps its arenas at [`ARENAS`]; each unless the operator
/// set its variable (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`,
/// `MALLOC_ARENA_MAX`; glibc has read them already). A one-shot command
/// keeps glibc's arenas: capped, its peak was 3 MiB higher. Call before any
/// thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune_allocator(serve: bool) {
    let arenas = serve.then_some(("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, ARENAS));
    for (var, param, value) in [
        (
            "MALLOC_MMAP_THRESHOLD_",
            libc::M_MMAP_THRESHOLD,
            MMAP_THRESHOLD,
        ),
        (
            "MALLOC_TRIM_THRESHOLD_",
            libc::M_TRIM_THRESHOLD,
            TRIM_THRESHOLD,
        ),
    ]
    .into_iter()
    .chain(arenas)
    {
        if std::env::var_os(var).is_none() {
            // SAFETY: mallopt only sets a tunable of the allocator; it is
            // called before the process starts any thread.
            unsafe {
                libc::mallopt(param, value);
            }
        }
    }
}

/// Other allocators have no such tunables.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune_allocator(_serve: bool) {}
