//! POSIX shared-memory segments: name rules, exclusive creation, opening, mapping and unlinking.
//!
//! A segment named `NAME` of kind `K` lives at `/dev/shm/shmline.K.NAME` (`shm_open("/shmline.K.NAME")`).
//! Creation is exclusive and owner-only (0600) unless the caller gives a mode; the memory is
//! reserved up front with `posix_fallocate` so a full `/dev/shm` is a clear error at creation,
//! never a SIGBUS later. A segment that fails half-way through creation is unlinked.

use crate::error::{Error, Result};
use memmap2::{MmapOptions, MmapRaw};
use std::ffi::CString;
use std::fs::File;
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

/// Longest name accepted for a stream, event or pipeline.
pub const MAX_NAME_LEN: usize = 200;

/// Directory where Linux exposes POSIX shared memory.
pub const SHM_DIR: &str = "/dev/shm";

/// The kinds of segment shmline makes; each has its own name prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// A stream (ring of frames).
    Stream,
    /// An event.
    Event,
    /// A pipeline registry.
    Pipeline,
}

impl SegmentKind {
    /// File-name prefix of this kind under `/dev/shm`.
    pub fn prefix(self) -> &'static str {
        match self {
            SegmentKind::Stream => "shmline.stream.",
            SegmentKind::Event => "shmline.event.",
            SegmentKind::Pipeline => "shmline.pipeline.",
        }
    }

    /// Lower-case noun used in messages.
    pub fn noun(self) -> &'static str {
        match self {
            SegmentKind::Stream => "stream",
            SegmentKind::Event => "event",
            SegmentKind::Pipeline => "pipeline",
        }
    }

    /// The magic number a finished segment of this kind holds at offset 0 (every header starts
    /// with it; its creator stores it last).
    pub fn magic(self) -> u64 {
        match self {
            SegmentKind::Stream => crate::layout::STREAM_MAGIC,
            SegmentKind::Event => crate::layout::EVENT_MAGIC,
            SegmentKind::Pipeline => crate::layout::PIPELINE_MAGIC,
        }
    }

    /// The smallest size a finished segment of this kind can have: its header.
    pub fn min_size(self) -> u64 {
        match self {
            SegmentKind::Stream => crate::layout::READERS_OFFSET,
            SegmentKind::Event => crate::layout::EVENT_SEGMENT_SIZE,
            SegmentKind::Pipeline => crate::layout::PIPELINE_HEADER_SIZE,
        }
    }
}

/// Checks a user-visible name: 1 to 200 characters of `A-Z a-z 0-9 _ . -`, not starting with
/// `.` or `-`.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |why: String| Err(Error::InvalidName(format!("invalid name {name:?}: {why}")));
    if name.is_empty() {
        return bad("a name must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return bad(format!(
            "{} characters, the limit is {MAX_NAME_LEN}",
            name.chars().count()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return bad(format!(
            "character {c:?} is not allowed; use letters, digits, '_', '.' and '-'"
        ));
    }
    if name.starts_with('.') || name.starts_with('-') {
        return bad("a name must not start with '.' or '-'".into());
    }
    Ok(())
}

/// The `/dev/shm` file name of a segment (without the directory).
pub fn file_name(kind: SegmentKind, name: &str) -> String {
    format!("{}{}", kind.prefix(), name)
}

fn shm_path(kind: SegmentKind, name: &str) -> CString {
    // validate_name has ruled out NUL bytes.
    CString::new(format!("/{}", file_name(kind, name))).expect("validated names hold no NUL")
}

/// A mapped shared-memory segment. Unmapped on drop; unlinked on drop if asked.
pub struct Segment {
    kind: SegmentKind,
    name: String,
    map: MmapRaw,
    unlink_on_drop: bool,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("len", &self.map.len())
            .finish()
    }
}

impl Segment {
    /// Creates a new segment of `size` zeroed bytes, exclusively, with permission bits `mode`.
    ///
    /// The returned segment unlinks itself on drop until [`Segment::set_unlink_on_drop`] says
    /// otherwise, so a creator that fails while initialising leaves nothing behind.
    pub fn create(kind: SegmentKind, name: &str, size: u64, mode: u32) -> Result<Segment> {
        validate_name(name)?;
        if mode & !0o777 != 0 || mode & 0o600 != 0o600 {
            return Err(Error::InvalidArgument(format!(
                "mode {mode:#o} must be permission bits (at most 0o777) that include owner \
                 read and write (0o600)"
            )));
        }
        let path = shm_path(kind, name);
        let what = format!("{} {name:?}", kind.noun());
        // SAFETY: `path` is a valid NUL-terminated string; the flags and mode are plain integers.
        let fd = unsafe {
            libc::shm_open(
                path.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
                mode as libc::mode_t,
            )
        };
        if fd < 0 {
            let err = std::io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::EEXIST) => Error::AlreadyExists(format!(
                    "{what} (/dev/shm/{}); open it instead, or remove it if its owner is gone",
                    file_name(kind, name)
                )),
                _ => Error::os(format!("creating {what}"), err),
            });
        }
        // SAFETY: `fd` was just returned by shm_open and is owned by nobody else.
        let file = unsafe { File::from_raw_fd(fd) };
        // From here on, any failure must remove the half-made object.
        let unlink_guard = UnlinkGuard(Some(path));
        // shm_open applies the umask; set the exact bits the caller asked for.
        // SAFETY: `fd` is a valid open descriptor owned by `file`.
        if unsafe { libc::fchmod(fd, mode as libc::mode_t) } != 0 {
            return Err(Error::os(
                format!("setting the mode of {what}"),
                std::io::Error::last_os_error(),
            ));
        }
        if size == 0 || size > i64::MAX as u64 {
            return Err(Error::InvalidArgument(format!(
                "segment size {size} is out of range"
            )));
        }
        // Reserve the memory now: on tmpfs an over-committed page would otherwise SIGBUS on first
        // touch.
        // SAFETY: `fd` is valid; offset and length are in range (checked above).
        let rc = unsafe { libc::posix_fallocate(fd, 0, size as libc::off_t) };
        if rc != 0 {
            return Err(Error::os(
                format!("reserving {size} bytes of shared memory for {what}"),
                std::io::Error::from_raw_os_error(rc),
            ));
        }
        let map = map_file(&file, size, &what)?;
        let mut guard = unlink_guard;
        guard.0 = None;
        Ok(Segment {
            kind,
            name: name.to_owned(),
            map,
            unlink_on_drop: true,
        })
    }

    /// Opens an existing segment and maps all of it.
    ///
    /// Only a regular file is opened: a symbolic link, FIFO or device under the name is refused
    /// with [`Error::NotShmline`] at once. `min_size` is the smallest size a segment of this kind
    /// can have; a smaller object is waited for up to `init_wait` (its creator may be between
    /// `shm_open` and `posix_fallocate`) and then refused as not a shmline segment.
    pub fn open(
        kind: SegmentKind,
        name: &str,
        min_size: u64,
        init_wait: Duration,
    ) -> Result<Segment> {
        let what = format!("{} {name:?}", kind.noun());
        let file = open_regular(kind, name, &what)?;
        let started = Instant::now();
        let size = loop {
            let size = file
                .metadata()
                .map_err(|e| Error::os(format!("reading the size of {what}"), e))?
                .len();
            if size >= min_size {
                break size;
            }
            if started.elapsed() >= init_wait {
                return Err(Error::NotShmline(format!(
                    "{what}: /dev/shm/{} is {size} bytes, too small to be a shmline {}",
                    file_name(kind, name),
                    kind.noun()
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let map = map_file(&file, size, &what)?;
        Ok(Segment {
            kind,
            name: name.to_owned(),
            map,
            unlink_on_drop: false,
        })
    }

    /// Removes the segment's name (mappings stay valid until closed).
    pub fn unlink(kind: SegmentKind, name: &str) -> Result<()> {
        validate_name(name)?;
        let path = shm_path(kind, name);
        // SAFETY: `path` is a valid NUL-terminated string.
        if unsafe { libc::shm_unlink(path.as_ptr()) } != 0 {
            return Err(Error::os(
                format!("removing {} {name:?}", kind.noun()),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Whether dropping this mapping also unlinks the segment's name.
    pub fn set_unlink_on_drop(&mut self, unlink: bool) {
        self.unlink_on_drop = unlink;
    }

    /// The user-visible name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kind of segment.
    pub fn kind(&self) -> SegmentKind {
        self.kind
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Always false: segments are never empty.
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// Base address of the mapping (page-aligned).
    pub fn base(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// A reference to the `T` at byte `offset`, or `None` if it would not lie inside the mapping
    /// or would be misaligned.
    ///
    /// `T` must be a layout struct made only of atomics (any bit pattern is valid, and concurrent
    /// access by other processes is not a data race).
    pub fn at<T: crate::layout::SharedStruct>(&self, offset: usize) -> Option<&T> {
        let end = offset.checked_add(std::mem::size_of::<T>())?;
        if end > self.map.len() || !offset.is_multiple_of(std::mem::align_of::<T>()) {
            return None;
        }
        // SAFETY: `offset < end <= len`: the result points inside the live mapping.
        let at = unsafe { self.base().add(offset) };
        // SAFETY: the range [offset, end) lies inside the live mapping (checked above), the
        // address is aligned for T (mapping is page-aligned, offset checked), T is made only of
        // atomics so every bit pattern is valid and shared mutation is allowed, and the reference
        // cannot outlive `self`, which keeps the mapping alive.
        Some(unsafe { &*(at as *const T) })
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if self.unlink_on_drop {
            let _ = Segment::unlink(self.kind, &self.name);
        }
    }
}

/// Opens segment `name` of `kind` read-write, refusing anything but a regular file.
///
/// `/dev/shm` is writable by every user, so the name may hold a symbolic link, a FIFO or a device
/// planted by someone else: the open neither follows a link (`O_NOFOLLOW`) nor blocks on a FIFO
/// without a writer (`O_NONBLOCK`, which means nothing for a regular file), and `fstat` then
/// refuses every other file type with [`Error::NotShmline`].
fn open_regular(kind: SegmentKind, name: &str, what: &str) -> Result<File> {
    validate_name(name)?;
    let path = shm_path(kind, name);
    let file_name = file_name(kind, name);
    // SAFETY: `path` is a valid NUL-terminated string; the flags are plain integers.
    let fd = unsafe {
        libc::shm_open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::ENOENT) => Error::NotFound(format!(
                "{what} does not exist (no /dev/shm/{file_name}); is it created yet? `shmline ls` \
                 lists what exists"
            )),
            Some(libc::ELOOP) => Error::NotShmline(format!(
                "{what}: /dev/shm/{file_name} is a symbolic link, not a shmline segment"
            )),
            _ => Error::os(format!("opening {what}"), err),
        });
    }
    // SAFETY: `fd` was just returned by shm_open and is owned by nobody else.
    let file = unsafe { File::from_raw_fd(fd) };
    let file_type = file
        .metadata()
        .map_err(|e| Error::os(format!("reading the type of {what}"), e))?
        .file_type();
    if !file_type.is_file() {
        return Err(Error::NotShmline(format!(
            "{what}: /dev/shm/{file_name} is a {}, not a shmline segment",
            type_noun(file_type)
        )));
    }
    Ok(file)
}

/// Whether segment `name` of `kind` is a regular file (not a link, FIFO or device) owned by the
/// calling process's effective user, whatever it holds.
pub(crate) fn is_own_regular_file(kind: SegmentKind, name: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    open_regular(kind, name, kind.noun())
        .and_then(|file| file.metadata().map_err(|e| Error::os("fstat", e)))
        .is_ok_and(|m| m.uid() == me)
}

/// What a file that is not a regular file is, for messages.
fn type_noun(file_type: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_fifo() {
        "FIFO"
    } else if file_type.is_dir() {
        "directory"
    } else if file_type.is_symlink() {
        "symbolic link"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_char_device() || file_type.is_block_device() {
        "device"
    } else {
        "special file"
    }
}

/// Checks, without waiting, that segment `name` of `kind` is a finished shmline segment: a
/// regular file at least [`SegmentKind::min_size`] bytes long that starts with
/// [`SegmentKind::magic`].
///
/// The opens wait for a creator still initialising a segment (up to a second or two); the
/// monitors (`shmline ls`, `top`, `info`, `clean`) and the stale checks call this first, so an
/// empty or foreign file that anyone can plant in `/dev/shm` costs them a few system calls and is
/// reported as unreadable. A segment replaced between this check and the open costs that open's
/// wait once, never more.
///
/// Errors: [`Error::NotFound`] if it does not exist, [`Error::NotShmline`] saying what it is
/// instead (not a regular file, too small, no magic yet, another magic), or the OS error that
/// prevented reading it (for example another user's segment without read permission).
pub fn inspect(kind: SegmentKind, name: &str) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let what = format!("{} {name:?}", kind.noun());
    let file = open_regular(kind, name, &what)?;
    let file_name = file_name(kind, name);
    let size = file
        .metadata()
        .map_err(|e| Error::os(format!("reading the size of {what}"), e))?
        .len();
    if size < kind.min_size() {
        return Err(Error::NotShmline(format!(
            "{what}: /dev/shm/{file_name} is {size} bytes, too small to be a shmline {} (its \
             creator may still be making it, or died doing so)",
            kind.noun()
        )));
    }
    let mut magic = [0u8; 8];
    file.read_exact_at(&mut magic, 0)
        .map_err(|e| Error::os(format!("reading the magic of {what}"), e))?;
    match u64::from_le_bytes(magic) {
        0 => Err(Error::NotShmline(format!(
            "{what}: /dev/shm/{file_name} has no magic yet (its creator may still be making it, \
             or died doing so)"
        ))),
        m if m == kind.magic() => Ok(()),
        _ => Err(Error::NotShmline(format!(
            "{what}: /dev/shm/{file_name} starts with {:?}, not the {} magic {:?}",
            String::from_utf8_lossy(&magic),
            kind.noun(),
            String::from_utf8_lossy(&kind.magic().to_le_bytes())
        ))),
    }
}

/// Unlinks a shared-memory name on drop unless disarmed (`.0 = None`).
struct UnlinkGuard(Option<CString>);

impl Drop for UnlinkGuard {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            // SAFETY: `path` is a valid NUL-terminated string.
            unsafe { libc::shm_unlink(path.as_ptr()) };
        }
    }
}

fn map_file(file: &File, size: u64, what: &str) -> Result<MmapRaw> {
    let len = usize::try_from(size)
        .map_err(|_| Error::InvalidArgument(format!("{what}: size {size} does not fit memory")))?;
    MmapOptions::new()
        .len(len)
        .map_raw(file)
        .map_err(|e| Error::os(format!("mapping {what} ({size} bytes)"), e))
}

/// Names (without prefix) of the segments of `kind` that exist on this machine, sorted.
pub fn list(kind: SegmentKind) -> Result<Vec<String>> {
    let dir = std::fs::read_dir(SHM_DIR).map_err(|e| Error::os(format!("listing {SHM_DIR}"), e))?;
    let mut names: Vec<String> = dir
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter_map(|f| f.strip_prefix(kind.prefix()).map(str::to_owned))
        .filter(|n| validate_name(n).is_ok())
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_forbidden_characters_are_refused_with_the_character() {
        let e = validate_name("a/b").unwrap_err();
        assert!(e.to_string().contains("'/'"), "{e}");
        assert!(validate_name("").is_err());
        assert!(validate_name(".hidden").is_err());
        assert!(validate_name(&"x".repeat(201))
            .unwrap_err()
            .to_string()
            .contains("200"));
        validate_name("cam-0.frames_v2").unwrap();
    }

    #[test]
    fn create_is_exclusive_and_owner_only_by_default() {
        let name = format!("t-shm-excl-{}", std::process::id());
        let seg = Segment::create(SegmentKind::Stream, &name, 4096, 0o600).unwrap();
        let meta = std::fs::metadata(format!(
            "{SHM_DIR}/{}",
            file_name(SegmentKind::Stream, &name)
        ))
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let e = Segment::create(SegmentKind::Stream, &name, 4096, 0o600).unwrap_err();
        assert_eq!(e.status(), crate::Status::AlreadyExists);
        drop(seg);
        assert!(Segment::open(SegmentKind::Stream, &name, 1, Duration::ZERO).is_err());
    }

    #[test]
    fn a_requested_wider_mode_is_applied_exactly() {
        let name = format!("t-shm-mode-{}", std::process::id());
        let _seg = Segment::create(SegmentKind::Event, &name, 4096, 0o644).unwrap();
        let meta = std::fs::metadata(format!(
            "{SHM_DIR}/{}",
            file_name(SegmentKind::Event, &name)
        ))
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    }

    #[test]
    fn at_refuses_out_of_bounds_and_misaligned_offsets() {
        let name = format!("t-shm-at-{}", std::process::id());
        let seg = Segment::create(SegmentKind::Stream, &name, 4096, 0o600).unwrap();
        assert!(seg.at::<crate::layout::ReaderEntry>(0).is_some());
        assert!(seg.at::<crate::layout::ReaderEntry>(4096 - 64).is_none());
        assert!(seg.at::<crate::layout::ReaderEntry>(8).is_none());
        assert!(seg
            .at::<crate::layout::ReaderEntry>(usize::MAX - 4)
            .is_none());
    }
}
