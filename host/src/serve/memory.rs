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
