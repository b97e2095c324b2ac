//! User name -> home directory, and safe opening of the account's two disinfection files.
//!
//! The program often runs with more permissions than the account it answers for (root, or the
//! web server's user). So a name is checked before any path is built from it, the home directory
//! is opened once, and the files are opened *relative to that descriptor* with `O_NOFOLLOW`,
//! then checked with `fstat` on the open descriptor: what is checked is what is read.

use std::ffi::CString;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::sys;

pub const LOG_NAME: &str = ".clamavconnector.disinfection.log";
pub const STATE_NAME: &str = ".clamavconnector.disinfection.state";

/// Where home directories come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Homes {
    /// `ROOT/USER`, owned by anyone (the administrator's choice), possibly a symlink.
    Root(PathBuf),
    /// The system account database; uid 0 is never served.
    System,
}

/// 1-32 characters of `A-Z a-z 0-9 . _ -`, not starting with `.` or `-` (SPEC §2).
pub fn is_valid_user_name(name: &[u8]) -> bool {
    (1..=32).contains(&name.len())
        && !matches!(name[0], b'.' | b'-')
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[derive(Debug)]
pub enum AccountError {
    InvalidName,
    NoSuchAccount(String),
    Superuser(String),
    Unavailable(String, io::Error),
}

impl fmt::Display for AccountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountError::InvalidName => write!(f, "The user name is not a valid account name."),
            AccountError::NoSuchAccount(name) => {
                write!(f, "The account “{name}” does not exist on this server.")
            }
            AccountError::Superuser(name) => {
                write!(f, "The account “{name}” has uid 0; it is never served.")
            }
            AccountError::Unavailable(name, e) => {
                write!(
                    f,
                    "The home directory of the account “{name}” cannot be opened: {e}."
                )
            }
        }
    }
}

/// An account whose home directory is open.
pub struct Account {
    pub name: String,
    /// Absolute path of the home directory, for `data.log`.
    pub home: PathBuf,
    dir: File,
    /// Who must own the account's files.
    owner: u32,
}

/// Why one of the account's files was not read.
#[derive(Debug)]
pub enum FileRefusal {
    Symlink,
    NotRegular(&'static str),
    WrongOwner { owner: u32, expected: u32 },
    Io(io::Error),
}

impl fmt::Display for FileRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileRefusal::Symlink => write!(f, "it is a symbolic link"),
            FileRefusal::NotRegular(kind) => write!(f, "it is a {kind}, not a regular file"),
            FileRefusal::WrongOwner { owner, expected } => {
                write!(
                    f,
                    "it is owned by uid {owner}, not by the account (uid {expected})"
                )
            }
            FileRefusal::Io(e) => write!(f, "{e}"),
        }
    }
}

impl Account {
    pub fn open(homes: &Homes, name: &str) -> Result<Account, AccountError> {
        if !is_valid_user_name(name.as_bytes()) {
            return Err(AccountError::InvalidName);
        }
        let (home, required_owner) = match homes {
            Homes::Root(root) => (root.join(name), None),
            Homes::System => {
                let cname = CString::new(name).map_err(|_| AccountError::InvalidName)?;
                let entry = sys::user_by_name(&cname)
                    .map_err(|e| AccountError::Unavailable(name.to_string(), e))?
                    .ok_or_else(|| AccountError::NoSuchAccount(name.to_string()))?;
                if entry.uid == 0 {
                    return Err(AccountError::Superuser(name.to_string()));
                }
                let home = PathBuf::from(std::ffi::OsStr::from_bytes(&entry.home));
                (home, Some(entry.uid))
            }
        };
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&home)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => AccountError::NoSuchAccount(name.to_string()),
                _ if e.raw_os_error() == Some(libc::ENOTDIR) => {
                    AccountError::NoSuchAccount(name.to_string())
                }
                _ => AccountError::Unavailable(name.to_string(), e),
            })?;
        let owner = match required_owner {
            Some(uid) => uid,
            None => dir
                .metadata()
                .map_err(|e| AccountError::Unavailable(name.to_string(), e))?
                .uid(),
        };
        Ok(Account {
            name: name.to_string(),
            home: std::path::absolute(&home).unwrap_or(home),
            dir,
            owner,
        })
    }

    pub fn path_of(&self, file_name: &str) -> PathBuf {
        self.home.join(file_name)
    }

    /// Opens one of the account's files: `Ok(None)` when it does not exist; refused unless it is
    /// a regular file owned by the account. Nothing is read from a refused file.
    pub fn open_owned(&self, file_name: &str) -> Result<Option<File>, FileRefusal> {
        let cname = CString::new(Path::new(file_name).as_os_str().as_bytes())
            .map_err(|_| FileRefusal::Io(io::ErrorKind::InvalidInput.into()))?;
        let file = match sys::open_in_dir(&self.dir, &cname) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(FileRefusal::Symlink),
            Err(e) => return Err(FileRefusal::Io(e)),
        };
        let meta = file.metadata().map_err(FileRefusal::Io)?;
        let kind = meta.file_type();
        if !kind.is_file() {
            return Err(FileRefusal::NotRegular(describe_type(&kind)));
        }
        if meta.uid() != self.owner {
            return Err(FileRefusal::WrongOwner {
                owner: meta.uid(),
                expected: self.owner,
            });
        }
        Ok(Some(file))
    }
}

fn describe_type(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "directory"
    } else if kind.is_fifo() {
        "FIFO"
    } else if kind.is_char_device() || kind.is_block_device() {
        "device"
    } else if kind.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        for good in [
            "demo",
            "a",
            "Bob_1",
            "x.y-z",
            "a234567890123456789012345678901b",
        ] {
            assert!(is_valid_user_name(good.as_bytes()), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "-x",
            ".hidden",
            "%2e%2e",
            "a b",
            "a\0b",
            "a\nb",
            "é",
            "a2345678901234567890123456789012c",
        ] {
            assert!(!is_valid_user_name(bad.as_bytes()), "{bad:?}");
        }
    }
}
