//! A shared mapping without a name (a memfd) that the bench's child inherits across `exec`: the
//! memory of the baselines (the ideal ring, the cache-line and futex ping-pongs), which need no
//! stream and so leave nothing in `/dev/shm`.

use std::sync::atomic::{AtomicU32, AtomicU64};

/// A `len`-byte shared mapping of a memfd, unmapped and closed on drop.
pub struct SharedMap {
    fd: i32,
    base: *mut u8,
    len: usize,
}

impl SharedMap {
    /// Creates a zero-filled memfd of `len` bytes (inherited by children: no close-on-exec) and
    /// maps it.
    pub fn create(len: usize) -> Result<SharedMap, String> {
        // SAFETY: the name is a valid NUL-terminated string. No MFD_CLOEXEC: the child inherits
        // the descriptor.
        let fd = unsafe { libc::memfd_create(c"shmline-bench".as_ptr(), 0) };
        if fd < 0 {
            return Err(format!("memfd_create: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` is the memfd just created.
        if unsafe { libc::ftruncate(fd, len as libc::off_t) } != 0 {
            let e = std::io::Error::last_os_error();
            // SAFETY: `fd` is ours and not used after this.
            unsafe { libc::close(fd) };
            return Err(format!(
                "ftruncate of the bench's shared memory to {len} bytes: {e}"
            ));
        }
        SharedMap::map(fd, len)
    }

    /// Maps `len` bytes of the inherited descriptor `fd` (the child's side).
    pub fn map(fd: i32, len: usize) -> Result<SharedMap, String> {
        // SAFETY: fstat only writes the out-parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is a valid out-pointer.
        if unsafe { libc::fstat(fd, &mut st) } != 0 || (st.st_size as usize) < len {
            return Err(format!(
                "descriptor {fd} is not the bench's shared memory of {len} bytes (start the \
                 child through `shmline bench`)"
            ));
        }
        // SAFETY: mapping `len` bytes of a descriptor that is at least that long (checked
        // above); the kernel picks the address.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(format!(
                "mmap of the bench's shared memory: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(SharedMap {
            fd,
            base: base as *mut u8,
            len,
        })
    }

    /// The descriptor to hand to the child.
    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// The 32-bit word at `offset`.
    pub fn u32(&self, offset: usize) -> &AtomicU32 {
        assert!(offset + 4 <= self.len && offset.is_multiple_of(4));
        // SAFETY: the offset is inside the live, page-aligned mapping and 4-aligned; AtomicU32
        // has no invalid bit patterns and may be shared between processes.
        unsafe { &*(self.base.add(offset) as *const AtomicU32) }
    }

    /// The 64-bit word at `offset`.
    pub fn u64(&self, offset: usize) -> &AtomicU64 {
        assert!(offset + 8 <= self.len && offset.is_multiple_of(8));
        // SAFETY: as in `u32`, 8-aligned.
        unsafe { &*(self.base.add(offset) as *const AtomicU64) }
    }

    /// Raw pointer to `len` bytes at `offset` (bounds checked here; the caller synchronises).
    pub fn bytes(&self, offset: usize, len: usize) -> *mut u8 {
        assert!(offset.checked_add(len).is_some_and(|end| end <= self.len));
        // SAFETY: in bounds of the mapping (checked above).
        unsafe { self.base.add(offset) }
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: `base` is our mapping of `len` bytes and `fd` our descriptor; neither is used
        // after this.
        unsafe {
            libc::munmap(self.base as *mut libc::c_void, self.len);
            libc::close(self.fd);
        }
    }
}
