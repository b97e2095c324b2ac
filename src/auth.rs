//! Who is asking: `REMOTE_USER`, `Authorization: Basic`, `Authorization: cpanel USER:TOKEN`,
//! checked against htpasswd-style files of bcrypt entries.
//!
//! Why it is shaped like this:
//! - Unknown users cost a bcrypt computation like known ones, so response time does not tell
//!   which accounts exist.
//! - Entries that are not bcrypt or whose cost is over 14 are unusable (an untrusted file could
//!   otherwise make one request cost minutes); they are reported once per load, without the hash.
//! - The listener caches a successful check for a short time, so a client polling every second
//!   does not pay a bcrypt verify per poll. The cache keeps a keyed 64-bit digest of the secret,
//!   never the secret, and is emptied whenever either file changes.
//! - Secrets never reach an error message or a log line: errors name the user at most.

use std::collections::HashMap;
use std::fs;
use std::hash::{BuildHasher, RandomState};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::account::is_valid_user_name;
use crate::request::Credentials;

/// Highest bcrypt cost accepted from a file (cost 14 is about 1 s per verify).
pub const MAX_COST: u32 = 14;
/// Longer Authorization headers are refused before any decoding.
const MAX_HEADER: usize = 8 * 1024;
/// How long a successful check is remembered by the listener.
pub const CACHE_TTL: Duration = Duration::from_secs(60);
const CACHE_MAX_ENTRIES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Basic,
    Token,
}

/// What the client claimed.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Already authenticated by the web server.
    RemoteUser(Vec<u8>),
    Secret {
        scheme: Scheme,
        user: String,
        secret: String,
    },
}

/// Why a request is not authenticated.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No credentials at all.
    Missing,
    /// An Authorization header we cannot read, with a reason safe to show.
    Malformed(&'static str),
    /// A user name that is not an account name (401 from Authorization).
    BadName,
    /// `REMOTE_USER` is not an account name (403).
    BadRemoteUser,
    /// Wrong password or token, or an unknown user.
    Wrong,
    /// No htpasswd or tokens file for this kind of credential.
    NotConfigured(Scheme),
    /// The credential file could not be read; the detail is for stderr only.
    StoreUnreadable(String),
}

/// Reads the credentials of a request. `REMOTE_USER` wins (the web server checked it).
pub fn claim(credentials: &Credentials) -> Result<Claim, Refusal> {
    if let Some(user) = &credentials.remote_user {
        if !user.is_empty() {
            return Ok(Claim::RemoteUser(user.clone()));
        }
    }
    match &credentials.authorization {
        None => Err(Refusal::Missing),
        Some(value) => parse_authorization(value),
    }
}

/// `Basic <base64 user:pass>` or `cpanel user:token`, schemes in any case (RFC 7617, 7235).
pub fn parse_authorization(value: &[u8]) -> Result<Claim, Refusal> {
    if value.len() > MAX_HEADER {
        return Err(Refusal::Malformed("the Authorization header is too long"));
    }
    let value = value.trim_ascii();
    let split = value
        .iter()
        .position(|&b| b == b' ')
        .ok_or(Refusal::Malformed(
            "the Authorization header has no credentials",
        ))?;
    let (scheme, rest) = (&value[..split], value[split..].trim_ascii_start());
    let (scheme, pair) = if scheme.eq_ignore_ascii_case(b"basic") {
        let decoded = base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT
            .decode(rest)
            .map_err(|_| Refusal::Malformed("the Basic credentials are not valid base64"))?;
        (Scheme::Basic, decoded)
    } else if scheme.eq_ignore_ascii_case(b"cpanel") {
        (Scheme::Token, rest.to_vec())
    } else {
        return Err(Refusal::Malformed(
            "only the Basic and cpanel authorization schemes are accepted",
        ));
    };
    let pair =
        String::from_utf8(pair).map_err(|_| Refusal::Malformed("the credentials are not UTF-8"))?;
    let (user, secret) = pair
        .split_once(':')
        .ok_or(Refusal::Malformed("the credentials have no “:”"))?;
    if user.is_empty() {
        return Err(Refusal::Malformed("the user name is empty"));
    }
    if user.chars().chain(secret.chars()).any(char::is_control) {
        return Err(Refusal::Malformed(
            "the credentials contain control characters",
        ));
    }
    if !is_valid_user_name(user.as_bytes()) {
        return Err(Refusal::BadName);
    }
    Ok(Claim::Secret {
        scheme,
        user: user.to_string(),
        secret: secret.to_string(),
    })
}

/// One credential file (htpasswd format: `user:$2y$…` per line), reloaded when it changes.
struct Store {
    path: PathBuf,
    loaded: Option<Loaded>,
}

struct Loaded {
    /// (device, inode, size, mtime ns, ctime ns): any change means a reload.
    stamp: (u64, u64, u64, i64, i64),
    /// Usable bcrypt hashes per user, in file order.
    entries: HashMap<String, Vec<String>>,
    /// Cost for the dummy computation that unknown users pay.
    dummy_cost: u32,
}

fn stamp_of(meta: &fs::Metadata) -> (u64, u64, u64, i64, i64) {
    (
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
    )
}

impl Store {
    /// Loads the file if it changed since the last load; true when it did.
    fn refresh(&mut self) -> Result<bool, String> {
        let describe = |e: std::io::Error| format!("{}: {e}", self.path.display());
        let meta = fs::metadata(&self.path).map_err(describe)?;
        let stamp = stamp_of(&meta);
        if self.loaded.as_ref().is_some_and(|l| l.stamp == stamp) {
            return Ok(false);
        }
        let text = fs::read(&self.path).map_err(describe)?;
        self.loaded = Some(parse_store(&self.path, &text, stamp));
        Ok(true)
    }
}

fn parse_store(path: &Path, text: &[u8], stamp: (u64, u64, u64, i64, i64)) -> Loaded {
    let mut entries: HashMap<String, Vec<String>> = HashMap::new();
    let mut dummy_cost = None;
    for (number, line) in text.split(|&b| b == b'\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let Some((user, hash)) = std::str::from_utf8(line)
            .ok()
            .and_then(|l| l.split_once(':'))
        else {
            eprintln!(
                "clamscanner: {} line {}: not “user:hash”; ignored",
                path.display(),
                number + 1
            );
            continue;
        };
        match bcrypt_cost(hash) {
            Some(cost) if cost <= MAX_COST => {
                dummy_cost.get_or_insert(cost);
                entries
                    .entry(user.to_string())
                    .or_default()
                    .push(hash.to_string());
            }
            Some(cost) => eprintln!(
                "clamscanner: {} line {} (user {user}): bcrypt cost {cost} is over {MAX_COST}; this entry is unusable",
                path.display(),
                number + 1
            ),
            None => eprintln!(
                "clamscanner: {} line {} (user {user}): not a bcrypt hash (use `htpasswd -B`); this entry is unusable",
                path.display(),
                number + 1
            ),
        }
    }
    Loaded {
        stamp,
        entries,
        dummy_cost: dummy_cost.unwrap_or(10),
    }
}

/// The cost of a `$2a$`/`$2b$`/`$2x$`/`$2y$` hash of the right length, else None.
fn bcrypt_cost(hash: &str) -> Option<u32> {
    let b = hash.as_bytes();
    if b.len() != 60
        || !matches!(b.get(..4)?, b"$2a$" | b"$2b$" | b"$2x$" | b"$2y$")
        || b[6] != b'$'
    {
        return None;
    }
    let cost = std::str::from_utf8(&b[4..6]).ok()?.parse().ok()?;
    (4..=31).contains(&cost).then_some(cost)
}

/// Checks secrets against the configured files; shared by all listener workers.
pub struct Authenticator {
    basic: Option<Mutex<Store>>,
    tokens: Option<Mutex<Store>>,
    cache: Option<Mutex<Cache>>,
}

struct Cache {
    keyer: RandomState,
    entries: HashMap<(Scheme, String), (u64, Instant)>,
}

impl Cache {
    /// True when `secret` passed for `key` less than [`CACHE_TTL`] ago.
    fn remembers(&self, key: &(Scheme, String), secret: &str) -> bool {
        let digest = self.keyer.hash_one((&key.1, secret));
        self.entries
            .get(key)
            .is_some_and(|(known, until)| *known == digest && Instant::now() < *until)
    }

    fn remember(&mut self, key: (Scheme, String), secret: &str) {
        if self.entries.len() >= CACHE_MAX_ENTRIES {
            self.entries.clear();
        }
        let digest = self.keyer.hash_one((&key.1, secret));
        self.entries
            .insert(key, (digest, Instant::now() + CACHE_TTL));
    }
}

/// How a successful check was made (for the access log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    WebServer,
    Bcrypt,
    Cache,
}

impl Authenticator {
    /// `cache`: remember successes for [`CACHE_TTL`] (the listener; useless in one-shot CGI).
    pub fn new(htpasswd: Option<PathBuf>, tokens: Option<PathBuf>, cache: bool) -> Self {
        let store = |path: PathBuf| Mutex::new(Store { path, loaded: None });
        Authenticator {
            basic: htpasswd.map(store),
            tokens: tokens.map(store),
            cache: cache.then(|| {
                Mutex::new(Cache {
                    keyer: RandomState::new(),
                    entries: HashMap::new(),
                })
            }),
        }
    }

    pub fn has_store(&self) -> bool {
        self.basic.is_some() || self.tokens.is_some()
    }

    /// Loads every configured file now, so that a listener fails at start, not at first use.
    pub fn preload(&self) -> Result<(), String> {
        for store in [&self.basic, &self.tokens].into_iter().flatten() {
            lock(store).refresh()?;
        }
        Ok(())
    }

    /// The account name of an authenticated request.
    pub fn authenticate(&self, credentials: &Credentials) -> Result<(String, Verified), Refusal> {
        match claim(credentials)? {
            Claim::RemoteUser(name) => {
                if !is_valid_user_name(&name) {
                    return Err(Refusal::BadRemoteUser);
                }
                Ok((
                    String::from_utf8_lossy(&name).into_owned(),
                    Verified::WebServer,
                ))
            }
            Claim::Secret {
                scheme,
                user,
                secret,
            } => {
                let store = match scheme {
                    Scheme::Basic => &self.basic,
                    Scheme::Token => &self.tokens,
                };
                let store = store.as_ref().ok_or(Refusal::NotConfigured(scheme))?;
                let how = self.verify(store, scheme, &user, &secret)?;
                Ok((user, how))
            }
        }
    }

    fn verify(
        &self,
        store: &Mutex<Store>,
        scheme: Scheme,
        user: &str,
        secret: &str,
    ) -> Result<Verified, Refusal> {
        let key = (scheme, user.to_string());
        // Take what we need from the file under the lock; bcrypt runs without it.
        let (hashes, dummy_cost) = {
            let mut store = lock(store);
            let changed = store.refresh().map_err(Refusal::StoreUnreadable)?;
            if let Some(cache) = &self.cache {
                let mut cache = lock(cache);
                if changed {
                    cache.entries.clear();
                }
                if cache.remembers(&key, secret) {
                    return Ok(Verified::Cache);
                }
            }
            match &store.loaded {
                Some(loaded) => (
                    loaded.entries.get(user).cloned().unwrap_or_default(),
                    loaded.dummy_cost,
                ),
                None => (Vec::new(), 10),
            }
        };
        if hashes.is_empty() {
            // Same work as a real verify, so unknown users are not told apart by timing.
            let _ = std::hint::black_box(bcrypt::hash_with_salt(secret, dummy_cost, [0u8; 16]));
            return Err(Refusal::Wrong);
        }
        // Apache's `htpasswd -B` also truncates passwords at 72 bytes, so `verify` (which
        // truncates) accepts exactly the passwords Apache would.
        if !hashes
            .iter()
            .any(|hash| bcrypt::verify(secret, hash).unwrap_or(false))
        {
            return Err(Refusal::Wrong);
        }
        if let Some(cache) = &self.cache {
            lock(cache).remember(key, secret);
        }
        Ok(Verified::Bcrypt)
    }
}

/// A poisoned lock only means another worker panicked; the data is still consistent
/// (every critical section above leaves it whole), so carry on.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(raw: &str) -> Result<Claim, Refusal> {
        let token = base64::engine::general_purpose::STANDARD.encode(raw);
        parse_authorization(format!("Basic {token}").as_bytes())
    }

    #[test]
    fn authorization_headers() {
        let ok = |user: &str, secret: &str, scheme| {
            Ok(Claim::Secret {
                scheme,
                user: user.into(),
                secret: secret.into(),
            })
        };
        assert_eq!(basic("demo:pa:ss"), ok("demo", "pa:ss", Scheme::Basic));
        assert_eq!(
            parse_authorization(b"bAsIc   ZGVtbzpkZW1v"),
            ok("demo", "demo", Scheme::Basic)
        );
        // Unpadded base64 is accepted too.
        assert_eq!(
            parse_authorization(b"Basic ZGVtbzpk"),
            ok("demo", "d", Scheme::Basic)
        );
        assert_eq!(
            parse_authorization(b"cpanel demo:TOKEN123"),
            ok("demo", "TOKEN123", Scheme::Token)
        );
        assert_eq!(basic("../x:pw"), Err(Refusal::BadName));
        assert!(matches!(basic(":pw"), Err(Refusal::Malformed(_))));
        assert!(matches!(basic("nocolon"), Err(Refusal::Malformed(_))));
        assert!(matches!(basic("demo:a\x01b"), Err(Refusal::Malformed(_))));
        assert!(matches!(
            parse_authorization(b"Basic"),
            Err(Refusal::Malformed(_))
        ));
        assert!(matches!(
            parse_authorization(b"Basic !!!"),
            Err(Refusal::Malformed(_))
        ));
        assert!(matches!(
            parse_authorization(b"Bearer abc"),
            Err(Refusal::Malformed(_))
        ));
        assert!(matches!(
            parse_authorization(b"Basic /w=="),
            Err(Refusal::Malformed(_))
        ));
        assert!(matches!(
            parse_authorization(&vec![b'a'; 100 * 1024]),
            Err(Refusal::Malformed(_))
        ));
    }

    #[test]
    fn bcrypt_entries() {
        let hash = "$2y$05$abcdefghijklmnopqrstuuOmzG3nIHt9pcnbT39RwFxsjJB8S7yW2";
        assert_eq!(hash.len(), 60);
        assert_eq!(bcrypt_cost(hash), Some(5));
        assert_eq!(bcrypt_cost(&hash.replace("$05$", "$15$")), Some(15));
        assert_eq!(bcrypt_cost("$apr1$abc$def"), None);
        assert_eq!(bcrypt_cost("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="), None);
        assert_eq!(bcrypt_cost("abJnggxhB/yWI"), None);
    }
}
