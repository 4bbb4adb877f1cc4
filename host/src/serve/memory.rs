//! Giving a finished job's memory back to the operating system.
//!
//! A sync's peak (the component's linear memory, the c1z writer's SQLite
//! cache, the previous syncs it copies) is freed when the job ends, but
//! glibc's allocator keeps freed pages of its per-thread arenas mapped, so a
//! long-running process that has run a few hundred syncs on short-lived job
//! threads holds its highest water mark in every arena it ever used. Trimming
//! after each job makes the process's resident size between syncs what is
//! actually live: the numbers an operator sizes a pod's memory request from,
//! and the baseline a leak would show against.

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

/// How many malloc arenas `serve` lets glibc keep. glibc gives each thread
/// that allocates while others do an arena of its own, up to 8 per core,
/// and every sync runs on a thread of its own: the process ended up holding
/// pages in every arena, pinned by a few long-lived allocations each (a
/// tenant's report, its secrets, the scrubber) made on whichever job thread
/// happened to run. Measured with `make bench-serve` (200 tenants, 2 cores):
/// quiet RSS 98 MiB with glibc's default, 43 MiB with 2 arenas, at the same
/// syncs per minute.
const ARENAS: i32 = 2;

/// Caps glibc's arenas at [`ARENAS`], unless the operator set
/// `MALLOC_ARENA_MAX` (glibc has read it already). Call before any thread
/// starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn limit_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    // SAFETY: mallopt only sets a tunable of the allocator; it is called
    // before the process starts any thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Other allocators have no arenas to cap.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas() {}
