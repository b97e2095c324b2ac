//! The only module that calls libc directly: the account database, `openat` and `memchr`.
//!
//! The standard library has neither `getpwnam_r` nor `openat`, and opening the account's files
//! relative to an already opened home directory is what makes the ownership check race-free.
//! `memchr` is here because the C library's vectorised version finds line ends several times
//! faster than portable code, and every byte of a full read goes through it.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};

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
