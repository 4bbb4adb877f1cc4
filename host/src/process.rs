//! The process itself, set up before anything is read: what it creates is
//! private to its user, and it never dumps core, since its memory holds
//! credentials and tenant data from the first flag parsed.

/// Applies the process-wide settings; a refusal is logged, not fatal (a
/// sandboxed runner may forbid `prctl`), and the host goes on.
pub fn harden() {
    // SAFETY: umask only sets the process's file-creation mask.
    unsafe { libc::umask(0o077) };
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit for RLIMIT_CORE; lowering a limit never fails
    // for lack of privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) } != 0 {
        tracing::warn!(
            "cannot turn core dumps off: {}",
            std::io::Error::last_os_error()
        );
    }
    // Not dumpable: no core even where a core pattern pipes to a handler,
    // and other processes of the same user cannot attach to read memory.
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_DUMPABLE takes a plain integer argument.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        tracing::warn!(
            "cannot mark the process undumpable: {}",
            std::io::Error::last_os_error()
        );
    }
}
