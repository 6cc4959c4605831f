//! Whether the page cache holds part of a file, asked without reading it.
//!
//! A reader that could take a file's bytes from memory should not read the
//! device, and one that cannot should read it directly. The obvious probe, a
//! buffered read with `RWF_NOWAIT`, answers EAGAIN for a miss but first
//! starts readahead of twice the request (measured: a 4 MiB probe of an
//! evicted file left 8 MiB cached), so each miss would read the device twice
//! and fill the cache with what direct I/O meant to keep out of it.
//! `cachestat(2)` (Linux 6.5) only counts cached pages.

use std::fs::File;
use std::os::fd::AsRawFd;

/// `cachestat`'s number on the architectures that share the unified
/// syscall table (the libc crate names it only for some targets); alpha
/// and MIPS number it differently, and there the call is not made.
const SYS_CACHESTAT: Option<libc::c_long> = if cfg!(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "riscv64",
    target_arch = "loongarch64",
    target_arch = "powerpc64",
    target_arch = "s390x"
)) {
    Some(451)
} else {
    None
};

/// `struct cachestat_range` of the kernel's uapi.
#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

/// `struct cachestat` of the kernel's uapi.
#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Whether every page of `file[off..off + len)` is in the page cache;
/// `None` when the kernel cannot say (before Linux 6.5, a filesystem
/// without a page cache, a seccomp filter answering an error), which
/// callers treat as "not cached". A filter that kills on unknown calls
/// (systemd's `SystemCallFilter=` without `SystemCallErrorNumber=`) must
/// allow `cachestat`.
pub fn fully_cached(file: &File, off: u64, len: u64) -> Option<bool> {
    if len == 0 {
        return Some(true);
    }
    let (cached, page) = cached_pages(file, off, len)?;
    let first = off / page;
    let end = off.checked_add(len)?.div_ceil(page);
    Some(cached >= end - first)
}

/// Pages of `file[off..off + len)` in the page cache, and the page size.
#[allow(unsafe_code)]
fn cached_pages(file: &File, off: u64, len: u64) -> Option<(u64, u64)> {
    let number = SYS_CACHESTAT?;
    let range = CachestatRange { off, len };
    let mut stat = Cachestat::default();
    // SAFETY: cachestat(2) reads one `cachestat_range` and writes one
    // `cachestat`, both repr(C) structs of the uapi layout (five and two
    // u64s) that live across the call; the descriptor is open (borrowed
    // from `file`); flags must be 0. sysconf has no memory effects.
    let (rc, page) = unsafe {
        let rc = libc::syscall(
            number,
            file.as_raw_fd(),
            &range as *const CachestatRange,
            &mut stat as *mut Cachestat,
            0 as libc::c_uint,
        );
        (rc, libc::sysconf(libc::_SC_PAGESIZE))
    };
    let page = u64::try_from(page).ok().filter(|&p| p > 0)?;
    (rc == 0).then_some((stat.nr_cache, page))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_written_file_is_cached_and_an_evicted_page_is_not() {
        use rustix::fs::{fadvise, Advice};
        // /var/tmp is on a disk where /tmp may be tmpfs.
        let dir = tempfile::tempdir_in("/var/tmp")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let path = dir.path().join("f");
        let mut f = File::create(&path).unwrap();
        f.write_all(&vec![7u8; 8 << 20]).unwrap();
        f.sync_all().unwrap(); // only clean pages can be evicted
        let f = File::open(&path).unwrap();
        let Some(cached) = fully_cached(&f, 0, 8 << 20) else {
            eprintln!("cachestat unsupported here: nothing to check");
            return;
        };
        assert!(cached, "a file just written is in the page cache");
        assert_eq!(fully_cached(&f, 5, 0), Some(true), "an empty range");
        // Evict the second half (4 MiB aligned: the cache may hold the file
        // in folios of up to 2 MiB, which are evicted whole or not at all).
        let half = 4u64 << 20;
        fadvise(&f, half, None, Advice::DontNeed).unwrap();
        if fully_cached(&f, half, half) == Some(true) {
            eprintln!("the page cache cannot be dropped here (tmpfs?): nothing to check");
            return;
        }
        assert_eq!(
            fully_cached(&f, 0, half),
            Some(true),
            "the first half stays"
        );
        assert_eq!(
            fully_cached(&f, half - 1, 2),
            Some(false),
            "a range over both halves"
        );
        assert_eq!(
            fully_cached(&f, half - 4096, 4096),
            Some(true),
            "the last page before"
        );
        assert_eq!(fully_cached(&f, 0, 8 << 20), Some(false), "the whole file");
    }
}
