//! User name -> home directory, and safe opening of the account's two disinfection files.
//!
//! The program often runs with more permissions than the account it answers for (root, or the
//! web server's user). So a name is checked before any path is built from it, the home directory
//! is opened once, and the files are opened *relative to that descriptor* with `O_NOFOLLOW`,
//! then checked with `fstat` on the open descriptor: what is checked is what is read.
//!
//! The home is opened with `O_PATH`: a descriptor that serves only as the base of `openat` and
//! for `fstat`, for which search permission is enough. cPanel homes are 0711, so the web server's
//! user may traverse them but not list them; opening them for reading would refuse every account.

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
    /// The home exists but this program's user may not search it (no `x` permission for it).
    NotSearchable {
        name: String,
        uid: u32,
    },
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
            AccountError::NotSearchable { name, uid } => write!(
                f,
                "The home directory of the account “{name}” cannot be opened: this program runs as uid {uid}, which may not search it (it needs the x permission, as mode 0711 gives)."
            ),
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
                // An empty home would become `.` below: the current directory, never a home.
                if entry.home.is_empty() {
                    return Err(AccountError::NoSuchAccount(name.to_string()));
                }
                let home = PathBuf::from(std::ffi::OsStr::from_bytes(&entry.home));
                (home, Some(entry.uid))
            }
        };
        // Opening `HOME/.` rather than `HOME` is what proves the search permission: with
        // `O_PATH` the home itself needs none, but resolving `.` inside it does, and every
        // `openat` below needs it too. `HOME` may be a symlink (the administrator's choice).
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(home.join("."))
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => AccountError::NoSuchAccount(name.to_string()),
                _ if e.raw_os_error() == Some(libc::ENOTDIR) => {
                    AccountError::NoSuchAccount(name.to_string())
                }
                io::ErrorKind::PermissionDenied if home_is_directory(&home) => {
                    AccountError::NotSearchable {
                        name: name.to_string(),
                        uid: sys::effective_uid(),
                    }
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

/// Whether `home` itself is a directory this program can reach (its parent searchable), which
/// tells "the home may not be searched" from "a directory above it may not be".
fn home_is_directory(home: &Path) -> bool {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(home)
        .is_ok()
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

    /// A scratch home root, removed when dropped.
    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn homes_under_a_root() {
        let root = Scratch(std::env::temp_dir().join(format!(
            "clamscanner-account-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        )));
        std::fs::create_dir_all(root.0.join("alice")).unwrap();
        std::fs::write(root.0.join("alice").join(LOG_NAME), "{}\n").unwrap();
        std::fs::write(root.0.join("plainfile"), "x").unwrap();
        let homes = Homes::Root(root.0.clone());

        let account = Account::open(&homes, "alice").unwrap();
        // The `.` that proves search permission is not part of the home's name.
        assert_eq!(account.home, root.0.join("alice"));
        assert_eq!(
            account.path_of(LOG_NAME),
            root.0.join("alice").join(LOG_NAME)
        );
        assert!(account.open_owned(LOG_NAME).unwrap().is_some());
        assert!(account.open_owned(STATE_NAME).unwrap().is_none());
        for missing in ["bob", "plainfile"] {
            assert!(
                matches!(
                    Account::open(&homes, missing),
                    Err(AccountError::NoSuchAccount(_))
                ),
                "{missing}"
            );
        }
        assert!(matches!(
            Account::open(&homes, "../alice"),
            Err(AccountError::InvalidName)
        ));
    }
}
