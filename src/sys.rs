//! The only module that calls libc directly: the account database, `openat`, `memchr`, `lseek`
//! (the holes of a sparse log) and `getrlimit` (the listener's descriptor budget); for
//! `simulate` and `watch`, `renameat`, `unlinkat`, `fchown`, a SIGINT flag and the terminal
//! width; the socket checks of the FastCGI front end.
//!
//! The standard library has neither `getpwnam_r` nor `openat`, and opening the account's files
//! relative to an already opened home directory is what makes the ownership check race-free.
//! `memchr` is here because the C library's vectorised version finds line ends several times
//! faster than portable code, and every byte of a full read goes through it.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// One entry of the system account database.
pub struct PasswdEntry {
    pub name: Vec<u8>,
    pub uid: u32,
    pub home: Vec<u8>,
}

enum Lookup<'a> {
    Name(&'a CStr),
    Uid(u32),
}

pub fn user_by_name(name: &CStr) -> io::Result<Option<PasswdEntry>> {
    lookup(Lookup::Name(name))
}

pub fn user_by_uid(uid: u32) -> io::Result<Option<PasswdEntry>> {
    lookup(Lookup::Uid(uid))
}

fn lookup(key: Lookup<'_>) -> io::Result<Option<PasswdEntry>> {
    let mut buf_len = 1024usize;
    loop {
        let mut buf = vec![0 as libc::c_char; buf_len];
        // SAFETY: `passwd` is plain old data; all-zero is a valid (empty) value.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = match key {
            // SAFETY: every pointer is valid for the call: a NUL-terminated name, our `pwd`,
            // and `buf` with its true length; the results point into `buf` or `pwd`.
            Lookup::Name(name) => unsafe {
                libc::getpwnam_r(
                    name.as_ptr(),
                    &mut pwd,
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut result,
                )
            },
            // SAFETY: as above.
            Lookup::Uid(uid) => unsafe {
                libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result)
            },
        };
        if rc == libc::ERANGE && buf_len < (1 << 20) {
            buf_len *= 4;
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Ok(None);
        }
        // SAFETY: on success `pw_name` and `pw_dir` are NUL-terminated strings inside `buf`,
        // which is alive here; we copy them out before `buf` is dropped.
        let (name, home) = unsafe {
            (
                CStr::from_ptr(pwd.pw_name).to_bytes().to_vec(),
                CStr::from_ptr(pwd.pw_dir).to_bytes().to_vec(),
            )
        };
        return Ok(Some(PasswdEntry {
            name,
            uid: pwd.pw_uid,
            home,
        }));
    }
}

pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Opens `name` inside the directory `dir` read-only, never following a final symlink and never
/// blocking on a FIFO or device (the caller checks the file type with `fstat` afterwards).
/// `dir` may be an `O_PATH` descriptor: `openat` needs only search permission on it.
pub fn open_in_dir(dir: &File, name: &CStr) -> io::Result<File> {
    let flags =
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    // SAFETY: `dir` is an open descriptor for the duration of the call and `name` is a
    // NUL-terminated string; openat does not keep either pointer.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat, is valid, and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Position of the first `needle` in `hay`, through the C library's vectorised `memchr`
/// (several times faster than any portable loop; every log byte passes through it).
pub fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    if hay.is_empty() {
        return None;
    }
    // SAFETY: the pointer and length describe one live, initialised slice; memchr reads
    // only within it and returns null or a pointer into it.
    let found = unsafe { libc::memchr(hay.as_ptr().cast(), i32::from(needle), hay.len()) };
    if found.is_null() {
        None
    } else {
        Some(found as usize - hay.as_ptr() as usize)
    }
}

// ---- `simulate` and `watch` (the workbench for client authors) ---------------------------------

/// Creates `name` inside `dir` for writing; fails if anything (a symlink included) is already
/// there, so nothing is ever written through a link planted in the account's home.
pub fn create_new_in_dir(dir: &File, name: &CStr, mode: u32) -> io::Result<File> {
    let flags = libc::O_WRONLY
        | libc::O_CREAT
        | libc::O_EXCL
        | libc::O_NOFOLLOW
        | libc::O_CLOEXEC
        | libc::O_NOCTTY;
    // SAFETY: `dir` is open for the duration of the call and `name` is NUL-terminated; openat
    // keeps neither pointer. The mode is passed as the variadic third argument, as C expects.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, mode as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat, is valid, and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Opens an existing `name` inside `dir` for appending, never following a final symlink and
/// never blocking on a FIFO (the caller checks the type and owner with `fstat`).
pub fn open_append_in_dir(dir: &File, name: &CStr) -> io::Result<File> {
    let flags = libc::O_WRONLY
        | libc::O_APPEND
        | libc::O_NOFOLLOW
        | libc::O_NONBLOCK
        | libc::O_CLOEXEC
        | libc::O_NOCTTY;
    // SAFETY: as in `open_in_dir`.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat, is valid, and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Renames `from` to `to`, both inside `dir`; replaces whatever `to` is (a symlink is replaced,
/// never followed), atomically for readers.
pub fn rename_in_dir(dir: &File, from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: `dir` is open and both names are NUL-terminated; nothing is kept.
    let rc =
        unsafe { libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Removes the directory entry `name` inside `dir` (a symlink itself, not its target).
pub fn unlink_in_dir(dir: &File, name: &CStr) -> io::Result<()> {
    // SAFETY: `dir` is open and `name` is NUL-terminated; nothing is kept.
    let rc = unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Gives an open file to `uid:gid` (root makes the account's files owned by the account).
pub fn fchown(file: &File, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: `file` is an open descriptor for the duration of the call.
    let rc = unsafe { libc::fchown(file.as_raw_fd(), uid, gid) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn note_interrupt(_signal: libc::c_int) {
    // Only an atomic store: the one thing a signal handler may safely do here.
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// From now on SIGINT (Ctrl-C) only sets a flag that [`interrupted`] reads, so the caller can
/// restore the terminal and exit 130 itself.
pub fn catch_interrupt() -> io::Result<()> {
    // SAFETY: `sigaction` is plain old data; all-zero is a valid empty value, and the mask is
    // then emptied with sigemptyset.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = note_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t;
    action.sa_flags = libc::SA_RESTART;
    // SAFETY: `action.sa_mask` is a valid sigset_t owned by us.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: `action` is fully initialised and outlives the call; the handler is
    // async-signal-safe (one atomic store); the old action is not wanted (null).
    let rc = unsafe { libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether SIGINT arrived since [`catch_interrupt`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Columns of the terminal on standard output, if it is one.
pub fn terminal_columns() -> Option<usize> {
    // SAFETY: `winsize` is plain old data; all-zero is a valid value.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the valid pointer we pass, or fails.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    (rc == 0 && size.ws_col > 0).then_some(usize::from(size.ws_col))
}

// --- sockets handed over by a web server or systemd (FastCGI front end) -------------------

/// True when `fd` is a stream socket in the listening state. `SO_ACCEPTCONN`, not "is a
/// socket": Apache's mod_cgid gives a CGI program a *connected* socket on descriptor 0.
pub fn is_listening_stream(fd: RawFd) -> bool {
    socket_option(fd, libc::SO_ACCEPTCONN) == Some(1)
        && socket_option(fd, libc::SO_TYPE) == Some(libc::SOCK_STREAM)
}

/// The address family of socket `fd` (`libc::AF_UNIX`, `AF_INET`, `AF_INET6`).
pub fn socket_family(fd: RawFd) -> Option<i32> {
    socket_option(fd, libc::SO_DOMAIN)
}

fn socket_option(fd: RawFd, option: libc::c_int) -> Option<i32> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals of the sizes passed; getsockopt writes at most
    // `len` bytes into `value` and fails harmlessly on a descriptor that is not a socket.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(value)
}

/// Takes ownership of an inherited descriptor (after the checks above) and marks it
/// close-on-exec, so nothing the program might start inherits the listening socket.
pub fn adopt_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl on an integer descriptor has no memory effects; errors are reported.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the caller hands over an inherited descriptor that nothing else in the process
    // owns (descriptor 0 or 3 at start-up, checked to be a listening socket).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Runs `f` with the process umask set to `mask` (a new socket file gets its mode from the
/// umask; setting it before bind leaves no moment where the socket is more open than wanted).
/// Call it before other threads start: the umask is process-wide.
pub fn with_umask<T>(mask: u32, f: impl FnOnce() -> T) -> T {
    // SAFETY: umask only swaps an integer in the process and cannot fail.
    let old = unsafe { libc::umask(mask as libc::mode_t) };
    let result = f();
    // SAFETY: as above; restores the previous mask.
    unsafe { libc::umask(old) };
    result
}

/// The gid of group `name`, from the group database.
pub fn group_by_name(name: &CStr) -> io::Result<Option<u32>> {
    let mut buf_len = 1024usize;
    loop {
        let mut buf = vec![0 as libc::c_char; buf_len];
        // SAFETY: `group` is plain old data; all-zero is a valid (empty) value.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: a NUL-terminated name, our `grp`, and
        // `buf` with its true length; results point into `buf` or `grp`.
        let rc = unsafe {
            libc::getgrnam_r(
                name.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf_len < (1 << 20) {
            buf_len *= 4;
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        return Ok((!result.is_null()).then_some(grp.gr_gid));
    }
}

/// Where `lseek(SEEK_DATA)` or `lseek(SEEK_HOLE)` lands from `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    At(u64),
    /// ENXIO: `offset` is at or past the end, or (for data) only holes follow.
    Nothing,
    /// The file system cannot tell holes from data: treat everything as data.
    Unsupported,
}

/// The first data byte (`data`) or hole byte (`!data`) at or after `offset`, without reading
/// anything: how the log reader steps over the holes of a sparse file.
pub fn seek_extent(file: &File, offset: u64, data: bool) -> io::Result<Seek> {
    let Ok(at) = libc::off_t::try_from(offset) else {
        return Ok(Seek::Nothing);
    };
    let whence = if data {
        libc::SEEK_DATA
    } else {
        libc::SEEK_HOLE
    };
    // SAFETY: lseek takes no pointer; `file` is an open descriptor for the duration of the
    // call. Moving its offset is harmless: every read of the log is a pread at an offset.
    let got = unsafe { libc::lseek(file.as_raw_fd(), at, whence) };
    if got >= 0 {
        return Ok(Seek::At(got as u64));
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ENXIO) => Ok(Seek::Nothing),
        Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => Ok(Seek::Unsupported),
        _ => Err(err),
    }
}

/// The process's soft limit on open descriptors (`RLIMIT_NOFILE`); None when unlimited or
/// unknown. The listener keeps its connections below it (README "Security").
pub fn descriptor_limit() -> Option<u64> {
    // SAFETY: `rlimit` is plain old data; all-zero is a valid value.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if rc != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    Some(limit.rlim_cur)
}
