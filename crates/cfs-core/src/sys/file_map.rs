//! Read-only memory maps of files, guarded against `SIGBUS`.
//!
//! Hashing a large file through a mapping avoids copying it out of the page
//! cache (a `read` costs about a quarter of the hashing time on a 2-core VM).
//! The danger of mapping files we do not own: if another process truncates a
//! mapped file, touching a page past the new end raises `SIGBUS`, which would
//! kill the process. A process-wide `SIGBUS` handler therefore checks whether
//! the faulting address lies in one of our registered mappings; if so it maps a
//! zero page over the faulting page, marks the mapping as truncated and
//! returns, so the access completes (reading zeros). The owner checks
//! [`FileMap::truncated`] after use and reports the file as changed. Faults
//! anywhere else restore the previous disposition, so a genuine fault still
//! terminates the process as before.

use std::cell::UnsafeCell;
use std::ffi::c_void;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Mappings that may be live at once (more fall back to `read`).
const SLOTS: usize = 256;

/// One registered mapping: `[start, end)`, 0/0 when free.
struct Slot {
    start: AtomicUsize,
    end: AtomicUsize,
    /// Set by the handler when it patched a page of this mapping.
    truncated: AtomicBool,
    /// Claimed by a live [`FileMap`].
    used: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE_SLOT: Slot = Slot {
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    truncated: AtomicBool::new(false),
    used: AtomicBool::new(false),
};

static TABLE: [Slot; SLOTS] = [FREE_SLOT; SLOTS];
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(4096);
static INSTALL: Once = Once::new();
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The disposition that was in place before ours, restored for foreign faults.
struct Previous(UnsafeCell<Option<libc::sigaction>>);
// SAFETY: written once inside `INSTALL.call_once` before our handler is
// installed (so before any reader can run), only read afterwards.
unsafe impl Sync for Previous {}
static PREVIOUS: Previous = Previous(UnsafeCell::new(None));

extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    for slot in &TABLE {
        let start = slot.start.load(Ordering::Acquire);
        if start != 0 && start <= addr && addr < slot.end.load(Ordering::Acquire) {
            let page = addr & !(PAGE_SIZE.load(Ordering::Relaxed) - 1);
            // SAFETY: `page` lies inside a mapping we created and still own
            // (the slot is registered until after munmap); replacing that
            // page with anonymous zeros is what MAP_FIXED is for. mmap is a
            // plain system call, safe to issue from a signal handler.
            let r = unsafe {
                libc::mmap(
                    page as *mut c_void,
                    PAGE_SIZE.load(Ordering::Relaxed),
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if r != libc::MAP_FAILED {
                slot.truncated.store(true, Ordering::Release);
                return;
            }
            break;
        }
    }
    // Not one of ours (or we could not patch it): put the old disposition
    // back; returning re-executes the access, which faults again under it.
    // SAFETY: PREVIOUS was initialised before this handler was installed.
    unsafe {
        match &*PREVIOUS.0.get() {
            Some(prev) => libc::sigaction(libc::SIGBUS, prev, std::ptr::null_mut()),
            None => libc::signal(libc::SIGBUS, libc::SIG_DFL) as libc::c_int,
        };
    }
}

fn install() -> bool {
    INSTALL.call_once(|| {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page > 0 {
            PAGE_SIZE.store(page as usize, Ordering::Relaxed);
        }
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value;
        // sigaction(2) only reads `act` and writes `old`, both valid here.
        // PREVIOUS is written before our handler can run.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_sigbus as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut act.sa_mask);
            if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) != 0 {
                return;
            }
            *PREVIOUS.0.get() = Some(old);
            if libc::sigaction(libc::SIGBUS, &act, std::ptr::null_mut()) == 0 {
                INSTALLED.store(true, Ordering::Release);
            }
        }
    });
    INSTALLED.load(Ordering::Acquire)
}

/// A read-only shared mapping of part of a file.
#[derive(Debug)]
pub(crate) struct FileMap {
    addr: *mut c_void,
    len: usize,
    slot: usize,
}

// SAFETY: the mapping is read-only memory owned by this value; sharing or
// sending the pointer between threads is as safe as for a `Box<[u8]>`.
unsafe impl Send for FileMap {}
// SAFETY: as above; no interior mutability is exposed.
unsafe impl Sync for FileMap {}

impl FileMap {
    /// Maps `len` bytes (> 0) of `file` from `offset` (a multiple of the page
    /// size). Fails with `WouldBlock` when the guard is unavailable or every
    /// slot is in use: callers then read instead.
    pub(crate) fn new(file: &File, offset: u64, len: usize) -> io::Result<FileMap> {
        if len == 0 || !install() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let offset = libc::off_t::try_from(offset)
            .ok()
            .filter(|o| (*o as usize).is_multiple_of(PAGE_SIZE.load(Ordering::Relaxed)))
            .ok_or(io::ErrorKind::InvalidInput)?;
        let slot = TABLE
            .iter()
            .position(|s| {
                s.used
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })
            .ok_or(io::ErrorKind::WouldBlock)?;
        // SAFETY: a fresh shared read-only mapping of an open file descriptor;
        // the kernel chooses the address. Nothing aliases it mutably.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                offset,
            )
        };
        if addr == libc::MAP_FAILED {
            let err = io::Error::last_os_error();
            TABLE[slot].used.store(false, Ordering::Release);
            return Err(err);
        }
        let s = &TABLE[slot];
        s.truncated.store(false, Ordering::Relaxed);
        s.end.store(addr as usize + len, Ordering::Release);
        s.start.store(addr as usize, Ordering::Release);
        // Prefault the whole file in one call (Linux ≥ 5.14); failure (an
        // older kernel, or a concurrent truncation) is harmless.
        // SAFETY: advice on our own mapping.
        unsafe {
            libc::madvise(addr, len, libc::MADV_SEQUENTIAL);
        }
        Ok(FileMap { addr, len, slot })
    }

    /// The mapped bytes. Pages past a concurrent truncation read as zeros.
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `addr..addr+len` is a live read-only mapping owned by self.
        // Another process may change the file's bytes while we read them; we
        // only hash them and treat them as arbitrary data (the same as bytes
        // from read(2)), and truncation is detected through `truncated`.
        unsafe { std::slice::from_raw_parts(self.addr as *const u8, self.len) }
    }

    /// True if the file was truncated while mapped (some page read as zeros).
    pub(crate) fn truncated(&self) -> bool {
        TABLE[self.slot].truncated.load(Ordering::Acquire)
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping; no references into it outlive
        // `self` because `bytes` borrows `self`.
        unsafe {
            libc::munmap(self.addr, self.len);
        }
        let s = &TABLE[self.slot];
        s.start.store(0, Ordering::Release);
        s.end.store(0, Ordering::Release);
        s.used.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Mutex;

    /// The slot-exhaustion test must not starve the other two.
    static SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn maps_and_reads() {
        let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        let m = FileMap::new(&f, 0, data.len()).unwrap();
        let w = FileMap::new(&f, 8192, 4096).unwrap();
        assert_eq!(w.bytes(), &data[8192..12288]);
        assert!(FileMap::new(&f, 100, 4096).is_err());
        assert_eq!(m.bytes(), &data[..]);
        assert!(!m.truncated());
        assert!(FileMap::new(&f, 0, 0).is_err());
    }

    #[test]
    fn truncation_reads_zeros_instead_of_killing_the_process() {
        let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&vec![0xaa_u8; 64 * 4096]).unwrap();
        let m = FileMap::new(&f, 0, 64 * 4096).unwrap();
        f.set_len(4096).unwrap();
        let bytes = m.bytes();
        // The first page is still there; the rest faults and reads zeros.
        assert_eq!(bytes[0], 0xaa);
        let tail_sum: u64 = bytes[8192..].iter().map(|&b| u64::from(b)).sum();
        assert_eq!(tail_sum, 0);
        assert!(m.truncated());
    }

    #[test]
    fn many_concurrent_maps() {
        let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[1u8; 8192]).unwrap();
        let maps: Vec<_> = (0..SLOTS + 4).map(|_| FileMap::new(&f, 0, 8192)).collect();
        // Other tests may hold a few slots meanwhile; the surplus must fail
        // cleanly with WouldBlock.
        let ok = maps.iter().filter(|m| m.is_ok()).count();
        assert!((SLOTS - 16..=SLOTS).contains(&ok), "{ok}");
        assert!(
            maps.iter()
                .filter_map(|m| m.as_ref().err())
                .all(|e| e.kind() == io::ErrorKind::WouldBlock)
        );
        drop(maps);
        assert!(FileMap::new(&f, 0, 8192).is_ok());
    }
}
