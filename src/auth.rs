//! Who is asking: `REMOTE_USER`, `Authorization: Basic`, `Authorization: cpanel USER:TOKEN`,
//! checked against htpasswd-style files of bcrypt entries.
//!
//! Why it is shaped like this:
//! - Response time must not tell which accounts exist, so every attempt against a file costs
//!   the same bcrypt work: that of the file's heaviest user (the sum of 2^cost over his usable
//!   entries). A known user pays his own entries and dummy hashes for the rest; an unknown user
//!   pays it all in dummy hashes; a right secret costs what a wrong one does.
//! - Entries that are not bcrypt or whose cost is over 14 are unusable (an untrusted file could
//!   otherwise make one request cost minutes); they are reported once per load, without the hash.
//! - In the htpasswd file the first line for a user counts, as in Apache; later lines for him are
//!   reported and ignored. The tokens file may hold several lines (tokens) per user.
//! - The listener caches a successful check for a short time, so a client polling every second
//!   does not pay a bcrypt verify per poll. The cache keeps a keyed 64-bit digest of the secret,
//!   never the secret, with the generation of the file load it was checked against: a success
//!   is cached, and a cached one accepted, only while that load is the current one, so a
//!   password revoked while another request was inside bcrypt is not remembered.
//! - Secrets never reach an error message or a log line: errors name the user at most.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::hash::{BuildHasher, RandomState};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    StoreUnreadable(StoreError),
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

/// Which credential file, and so how duplicate lines for one user are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// htpasswd: the first line for a user counts and later ones are ignored, as in Apache's
    /// `mod_authn_file`, so the program and Apache accept the same password.
    Passwords,
    /// API tokens: a user may have several lines, each a token that works.
    Tokens,
}

/// A credential file that cannot be read (missing, permissions, I/O). The message names the
/// file and never holds its content.
#[derive(Debug)]
pub struct StoreError {
    path: PathBuf,
    error: std::io::Error,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.error)
    }
}

impl std::error::Error for StoreError {}

impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.error.kind() == other.error.kind()
    }
}

impl Eq for StoreError {}

/// The listener's start-up still reports its errors as text.
impl From<StoreError> for String {
    fn from(e: StoreError) -> String {
        e.to_string()
    }
}

/// Identity of a file's content as `stat` sees it: device, inode, size, mtime ns, ctime ns.
type Stamp = (u64, u64, u64, i64, i64);

/// Linux stamps a file with a clock that ticks every few milliseconds, so a file rewritten in
/// place with the same size (a changed bcrypt hash is still 60 bytes) within one tick keeps
/// its stamp. While a file's times are this recent, its bytes are compared on every refresh.
const RACY_WINDOW: Duration = Duration::from_secs(2);

/// One credential file (`user:$2y$…` per line), reloaded when it changes.
struct Store {
    path: PathBuf,
    kind: Kind,
    /// Bumped on every load: a check made against an older load is never cached.
    generation: u64,
    loaded: Option<Loaded>,
}

struct Loaded {
    stamp: Stamp,
    /// The bytes as read, kept while `settled` is false to compare with the file again.
    text: Vec<u8>,
    /// The file's times were older than [`RACY_WINDOW`] at some refresh: the stamp is enough.
    settled: bool,
    entries: HashMap<String, Vec<Entry>>,
    /// The work every attempt against this file pays, known user or not, right or wrong.
    work: u64,
}

#[derive(Clone)]
struct Entry {
    hash: String,
    cost: u32,
}

fn stamp_of(meta: &fs::Metadata) -> Stamp {
    (
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
    )
}

/// True when neither time in `stamp` is within [`RACY_WINDOW`] of now (or in the future).
fn settled(stamp: &Stamp) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let window = i64::try_from(RACY_WINDOW.as_nanos()).unwrap_or(i64::MAX);
    stamp.3.max(stamp.4) < now.saturating_sub(window)
}

impl Store {
    fn new(path: PathBuf, kind: Kind) -> Store {
        Store {
            path,
            kind,
            generation: 0,
            loaded: None,
        }
    }

    /// Loads the file if it changed since the last load; true when it did.
    fn refresh(&mut self) -> Result<bool, StoreError> {
        let fail = |error| StoreError {
            path: self.path.clone(),
            error,
        };
        let meta = fs::metadata(&self.path).map_err(fail)?;
        let stamp = stamp_of(&meta);
        let mut text = None;
        if let Some(loaded) = &mut self.loaded {
            if loaded.stamp == stamp {
                if loaded.settled {
                    return Ok(false);
                }
                let now = fs::read(&self.path).map_err(fail)?;
                if now == loaded.text {
                    if settled(&stamp) {
                        loaded.settled = true;
                        loaded.text = Vec::new();
                    }
                    return Ok(false);
                }
                text = Some(now);
            }
        }
        let text = match text {
            Some(text) => text,
            None => fs::read(&self.path).map_err(fail)?,
        };
        self.generation += 1;
        self.loaded = Some(parse_store(&self.path, self.kind, text, stamp));
        Ok(true)
    }
}

/// Highest total bcrypt work one attempt may cost (4 verifies at cost 14, about 4 s; or 64
/// tokens at cost 10). Every attempt pays the work of the heaviest user, so one user's many
/// expensive tokens would otherwise slow every request; entries past it are unusable.
const MAX_ATTEMPT_WORK: u64 = 4 << MAX_COST;

/// What an attempt pays when the file has no usable entry at all, so that even then a wrong
/// guess is not answered at once. The one place the dummy cost is chosen.
const EMPTY_STORE_COST: u32 = 10;

/// Lowest bcrypt cost (the crate refuses less); the unit in which padding work is paid.
const MIN_COST: u32 = 4;

/// Work of one bcrypt computation: its key schedule runs 2^cost rounds.
fn work_of(cost: u32) -> u64 {
    1 << cost
}

fn parse_store(path: &Path, kind: Kind, text: Vec<u8>, stamp: Stamp) -> Loaded {
    let mut entries: HashMap<String, Vec<Entry>> = HashMap::new();
    // Line of each user's first line, usable or not (Apache stops at it either way).
    let mut first_line: HashMap<String, usize> = HashMap::new();
    let mut work_of_user: HashMap<String, u64> = HashMap::new();
    let warn = |number: usize, what: &str| {
        eprintln!("clamscanner: {} line {number}{what}", path.display());
    };
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        let number = index + 1;
        let line = line.trim_ascii();
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let Some((user, rest)) = std::str::from_utf8(line)
            .ok()
            .and_then(|l| l.split_once(':'))
        else {
            warn(number, ": not “user:hash”; ignored");
            continue;
        };
        // Apache reads the hash up to the next ':' and ignores any further fields.
        let hash = rest.split(':').next().unwrap_or(rest);
        if kind == Kind::Passwords {
            if let Some(first) = first_line.get(user) {
                warn(
                    number,
                    &format!(
                        " (user {user}): another line for this user (line {first}) comes first and counts, as in Apache; ignored"
                    ),
                );
                continue;
            }
            first_line.insert(user.to_string(), number);
        }
        let cost = match bcrypt_cost(hash) {
            Some(cost) if cost <= MAX_COST => cost,
            Some(cost) => {
                warn(
                    number,
                    &format!(" (user {user}): bcrypt cost {cost} is over {MAX_COST}; this entry is unusable"),
                );
                continue;
            }
            None => {
                warn(
                    number,
                    &format!(" (user {user}): not a bcrypt hash (use `htpasswd -B`); this entry is unusable"),
                );
                continue;
            }
        };
        let spent = work_of_user.entry(user.to_string()).or_default();
        if *spent + work_of(cost) > MAX_ATTEMPT_WORK {
            warn(
                number,
                &format!(" (user {user}): this user's entries would cost more than {MAX_ATTEMPT_WORK} bcrypt rounds per attempt; this entry is unusable"),
            );
            continue;
        }
        *spent += work_of(cost);
        entries.entry(user.to_string()).or_default().push(Entry {
            hash: hash.to_string(),
            cost,
        });
    }
    let work = work_of_user
        .into_values()
        .max()
        .filter(|&w| w > 0)
        .unwrap_or(work_of(EMPTY_STORE_COST));
    let settled = settled(&stamp);
    Loaded {
        stamp,
        text: if settled { Vec::new() } else { text },
        settled,
        entries,
        work,
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

/// Checks `secret` against every entry, then computes dummy hashes until the attempt has cost
/// `work` in all, whatever the entries and the outcome: a known user with a right or a wrong
/// secret and an unknown user cost the same rounds. Every entry is checked, even after a
/// match, so a user's right token costs what a wrong one does.
fn check_and_pad(secret: &str, entries: &[Entry], work: u64) -> bool {
    let mut matched = false;
    let mut spent = 0;
    for entry in entries {
        // Apache's `htpasswd -B` also truncates passwords at 72 bytes, so `verify` (which
        // truncates) accepts exactly the passwords Apache would.
        matched |= bcrypt::verify(secret, &entry.hash).unwrap_or(false);
        count_work(entry.cost);
        spent += work_of(entry.cost);
    }
    // All work is a multiple of 2^MIN_COST, so the rest is paid exactly, in at most one
    // computation per bit of it.
    while spent < work {
        let owed = work - spent;
        let cost = (u64::BITS - 1 - owed.leading_zeros()).clamp(MIN_COST, MAX_COST);
        let _ = std::hint::black_box(bcrypt::hash_with_salt(secret, cost, [0u8; 16]));
        count_work(cost);
        spent += work_of(cost);
    }
    matched
}

/// A test's code to run between a verify and the caching of its success.
#[cfg(test)]
type Hook = Box<dyn FnOnce(&Authenticator)>;

#[cfg(test)]
thread_local! {
    /// bcrypt rounds spent by this thread, so tests can compare the work of attempts.
    static WORK_SPENT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// Run once between a successful verify and the caching of it (tests only).
    static AFTER_VERIFY: std::cell::RefCell<Option<Hook>> =
        const { std::cell::RefCell::new(None) };
}

fn count_work(_cost: u32) {
    #[cfg(test)]
    WORK_SPENT.with(|w| w.set(w.get() + work_of(_cost)));
}

/// Checks secrets against the configured files; shared by all listener workers.
pub struct Authenticator {
    basic: Option<Mutex<Store>>,
    tokens: Option<Mutex<Store>>,
    cache: Option<Mutex<Cache>>,
}

struct Cache {
    keyer: RandomState,
    /// Per (scheme, user): digest of the secret, expiry, generation of the file it passed.
    entries: HashMap<(Scheme, String), (u64, Instant, u64)>,
}

impl Cache {
    /// True when `secret` passed for `key` less than [`CACHE_TTL`] ago, against the load of
    /// the file whose generation is `generation`.
    fn remembers(&self, key: &(Scheme, String), secret: &str, generation: u64) -> bool {
        let digest = self.keyer.hash_one((&key.1, secret));
        self.entries
            .get(key)
            .is_some_and(|(known, until, checked)| {
                *known == digest && *checked == generation && Instant::now() < *until
            })
    }

    fn remember(&mut self, key: (Scheme, String), secret: &str, generation: u64) {
        if self.entries.len() >= CACHE_MAX_ENTRIES {
            self.entries.clear();
        }
        let digest = self.keyer.hash_one((&key.1, secret));
        self.entries
            .insert(key, (digest, Instant::now() + CACHE_TTL, generation));
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
        Authenticator {
            basic: htpasswd.map(|path| Mutex::new(Store::new(path, Kind::Passwords))),
            tokens: tokens.map(|path| Mutex::new(Store::new(path, Kind::Tokens))),
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
    pub fn preload(&self) -> Result<(), StoreError> {
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
        let (entries, work, generation) = {
            let mut store = lock(store);
            let changed = store.refresh().map_err(Refusal::StoreUnreadable)?;
            let generation = store.generation;
            if let Some(cache) = &self.cache {
                let mut cache = lock(cache);
                if changed {
                    cache.entries.retain(|(s, _), _| *s != scheme);
                }
                if cache.remembers(&key, secret, generation) {
                    return Ok(Verified::Cache);
                }
            }
            match &store.loaded {
                Some(loaded) => (
                    loaded.entries.get(user).cloned().unwrap_or_default(),
                    loaded.work,
                    generation,
                ),
                // refresh() succeeded, so the file is loaded; pay as for an empty file anyway.
                None => (Vec::new(), work_of(EMPTY_STORE_COST), generation),
            }
        };
        if !check_and_pad(secret, &entries, work) {
            return Err(Refusal::Wrong);
        }
        #[cfg(test)]
        if let Some(hook) = AFTER_VERIFY.with(|h| h.borrow_mut().take()) {
            hook(self);
        }
        if let Some(cache) = &self.cache {
            // Under the store lock, which every reload takes: a success checked against a
            // load that has since been replaced is not remembered (the password may be the
            // one just revoked). A file changed but not yet reloaded is caught by the next
            // lookup, which reloads it first and so no longer matches this generation.
            let store = lock(store);
            if store.generation == generation {
                lock(cache).remember(key, secret, generation);
            }
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

    // --- the credential files and the cache -------------------------------------------------

    /// A private directory for one test's credential files, removed at the end.
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let path = std::env::temp_dir()
                .join(format!("clamscanner-auth-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            Dir(path)
        }

        fn write(&self, name: &str, lines: &[&str]) -> PathBuf {
            replace(&self.0.join(name), lines)
        }
    }

    /// Replaces the file at `path` by a new one holding `lines` (a new inode, as `htpasswd`
    /// and editors do), and returns the path.
    fn replace(path: &Path, lines: &[&str]) -> PathBuf {
        let temporary = path.with_extension("new");
        fs::write(&temporary, lines.join("\n") + "\n").unwrap();
        fs::rename(&temporary, path).unwrap();
        path.to_path_buf()
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn entry(user: &str, secret: &str, cost: u32) -> String {
        format!("{user}:{}", bcrypt::hash(secret, cost).unwrap())
    }

    fn password(user: &str, secret: &str) -> Credentials {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
        Credentials {
            remote_user: None,
            authorization: Some(format!("Basic {token}").into_bytes()),
        }
    }

    fn token(user: &str, secret: &str) -> Credentials {
        Credentials {
            remote_user: None,
            authorization: Some(format!("cpanel {user}:{secret}").into_bytes()),
        }
    }

    fn accepted(user: &str, how: Verified) -> Result<(String, Verified), Refusal> {
        Ok((user.to_string(), how))
    }

    /// Runs `hook` inside the next successful verify on this thread, after bcrypt and before
    /// the success is cached: the moment another request may reload the file.
    fn after_verify(hook: impl FnOnce(&Authenticator) + 'static) {
        AFTER_VERIFY.with(|h| *h.borrow_mut() = Some(Box::new(hook)));
    }

    #[test]
    fn a_password_changed_during_a_verify_is_not_cached() {
        let dir = Dir::new("changed");
        let alice = entry("alice", "pw-alice", 4);
        let path = dir.write("htpasswd", &[&alice, &entry("bob", "old", 4)]);
        let auth = Authenticator::new(Some(path.clone()), None, true);
        let file = path;
        // The cache does remember, so the refusals below are not for want of a cache.
        assert_eq!(
            auth.authenticate(&password("alice", "pw-alice")),
            accepted("alice", Verified::Bcrypt)
        );
        assert_eq!(
            auth.authenticate(&password("alice", "pw-alice")),
            accepted("alice", Verified::Cache)
        );
        let new_bob = entry("bob", "new", 4);
        after_verify(move |auth| {
            // Bob's password changes and another request reloads the file, while the request
            // with his old password is between its verify and the cache.
            replace(&file, &[&alice, &new_bob]);
            assert_eq!(
                auth.authenticate(&password("bob", "new")),
                accepted("bob", Verified::Bcrypt)
            );
        });
        // Checked against the file as it was when the request began: it passes, once.
        assert_eq!(
            auth.authenticate(&password("bob", "old")),
            accepted("bob", Verified::Bcrypt)
        );
        assert_eq!(
            auth.authenticate(&password("bob", "old")),
            Err(Refusal::Wrong)
        );
        assert_eq!(
            auth.authenticate(&password("bob", "new")),
            accepted("bob", Verified::Cache)
        );
    }

    #[test]
    fn a_user_removed_during_a_verify_is_not_cached() {
        let dir = Dir::new("removed");
        let alice = entry("alice", "pw-alice", 4);
        let path = dir.write("htpasswd", &[&alice, &entry("bob", "old", 4)]);
        let auth = Authenticator::new(Some(path.clone()), None, true);
        let file = path;
        after_verify(move |auth| {
            replace(&file, &[&alice]);
            auth.preload().unwrap();
        });
        assert_eq!(
            auth.authenticate(&password("bob", "old")),
            accepted("bob", Verified::Bcrypt)
        );
        assert_eq!(
            auth.authenticate(&password("bob", "old")),
            Err(Refusal::Wrong)
        );
        assert_eq!(
            auth.authenticate(&password("alice", "pw-alice")),
            accepted("alice", Verified::Bcrypt)
        );
    }

    #[test]
    fn a_token_revoked_during_a_verify_is_not_cached() {
        let dir = Dir::new("token");
        let keep = entry("dave", "TOKEN-KEEP", 4);
        let path = dir.write("tokens", &[&keep, &entry("dave", "TOKEN-OLD", 4)]);
        let auth = Authenticator::new(None, Some(path.clone()), true);
        let file = path;
        after_verify(move |auth| {
            replace(&file, &[&keep]);
            auth.preload().unwrap();
        });
        assert_eq!(
            auth.authenticate(&token("dave", "TOKEN-OLD")),
            accepted("dave", Verified::Bcrypt)
        );
        assert_eq!(
            auth.authenticate(&token("dave", "TOKEN-OLD")),
            Err(Refusal::Wrong)
        );
        assert_eq!(
            auth.authenticate(&token("dave", "TOKEN-KEEP")),
            accepted("dave", Verified::Bcrypt)
        );
    }

    #[test]
    fn a_file_rewritten_in_place_with_the_same_size_is_reloaded() {
        // Within one tick of the file clock the stamp may not change; the bytes are compared.
        let dir = Dir::new("in-place");
        let path = dir.write("htpasswd", &[&entry("bob", "old", 4)]);
        let auth = Authenticator::new(Some(path.clone()), None, true);
        assert_eq!(
            auth.authenticate(&password("bob", "old")),
            accepted("bob", Verified::Bcrypt)
        );
        let before = fs::metadata(&path).unwrap();
        let rewritten = entry("bob", "new", 4) + "\n";
        assert_eq!(rewritten.len() as u64, before.len());
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, rewritten.as_bytes()))
            .unwrap();
        assert_eq!(
            auth.authenticate(&password("bob", "old")),
            Err(Refusal::Wrong)
        );
        assert_eq!(
            auth.authenticate(&password("bob", "new")),
            accepted("bob", Verified::Bcrypt)
        );
    }

    /// bcrypt rounds that `credentials` cost this thread.
    fn work(auth: &Authenticator, credentials: &Credentials) -> u64 {
        let before = WORK_SPENT.with(|w| w.get());
        let _ = auth.authenticate(credentials);
        WORK_SPENT.with(|w| w.get()) - before
    }

    #[test]
    fn every_attempt_costs_the_same_work() {
        let dir = Dir::new("work");
        let htpasswd = dir.write(
            "htpasswd",
            &[
                &entry("alice", "pw-alice", 6),
                &entry("alice", "second-line", 4),
                &entry("bob", "pw-bob", 4),
                &entry("carol", "pw-carol", 5),
                "mallory:$apr1$abc$defghijklmnopqrstuvwxy",
            ],
        );
        let tokens = dir.write(
            "tokens",
            &[
                &entry("dave", "T1", 4),
                &entry("dave", "T2", 5),
                &entry("erin", "TE", 7),
                &entry("dave", "T3", 4),
                &entry("frank", "TF1", 4),
                &entry("frank", "TF2", 4),
            ],
        );
        for cache in [false, true] {
            let auth = Authenticator::new(Some(htpasswd.clone()), Some(tokens.clone()), cache);
            auth.preload().unwrap();
            // The heaviest htpasswd user is alice (one entry at cost 6).
            let attempts = [
                password("alice", "pw-alice"),
                password("alice", "wrong"),
                password("alice", "second-line"),
                password("bob", "pw-bob"),
                password("bob", "wrong"),
                password("carol", "pw-carol"),
                password("mallory", "any"),
                password("zoe", "pw-alice"),
            ];
            for (n, credentials) in attempts.iter().enumerate() {
                assert_eq!(work(&auth, credentials), 1 << 6, "password attempt {n}");
            }
            // The heaviest token user is erin (cost 7) over dave (4 + 5 + 4).
            let attempts = [
                token("dave", "T1"),
                token("dave", "T2"),
                token("dave", "T3"),
                token("dave", "wrong"),
                token("erin", "TE"),
                token("erin", "wrong"),
                token("frank", "TF2"),
                token("zoe", "T1"),
            ];
            for (n, credentials) in attempts.iter().enumerate() {
                assert_eq!(work(&auth, credentials), 1 << 7, "token attempt {n}");
            }
            let outcome = auth.authenticate(&token("dave", "T3"));
            let how = if cache {
                Verified::Cache
            } else {
                Verified::Bcrypt
            };
            assert_eq!(outcome, accepted("dave", how));
        }
        // A file with no usable entry still costs each attempt a computation.
        let empty = dir.write("empty", &["# nobody yet"]);
        let auth = Authenticator::new(Some(empty), None, false);
        assert_eq!(work(&auth, &password("zoe", "x")), 1 << EMPTY_STORE_COST);
    }

    /// A syntactically valid bcrypt hash of `cost` (never verified, so any salt and digest).
    fn fake_hash(cost: u32) -> String {
        format!("$2y${cost:02}${}", "a".repeat(53))
    }

    fn parse(kind: Kind, lines: &[String]) -> Loaded {
        let text = (lines.join("\n") + "\n").into_bytes();
        parse_store(Path::new("test"), kind, text, (0, 0, 0, 0, 0))
    }

    #[test]
    fn attempt_work_is_bounded() {
        let lines: Vec<String> = (0..6)
            .map(|_| format!("dave:{}", fake_hash(MAX_COST)))
            .chain([format!("erin:{}", fake_hash(5))])
            .collect();
        let loaded = parse(Kind::Tokens, &lines);
        assert_eq!(loaded.entries["dave"].len(), 4);
        assert_eq!(loaded.work, MAX_ATTEMPT_WORK);
        assert_eq!(loaded.entries["erin"].len(), 1);
    }

    #[test]
    fn the_first_htpasswd_line_of_a_user_counts() {
        let first = format!("alice:{}", fake_hash(5));
        let second = format!("alice:{}", fake_hash(6));
        let passwords = parse(Kind::Passwords, &[first.clone(), second.clone()]);
        assert_eq!(passwords.entries["alice"].len(), 1);
        assert_eq!(passwords.entries["alice"][0].cost, 5);
        assert_eq!(passwords.work, 1 << 5);
        let tokens = parse(Kind::Tokens, &[first, second]);
        assert_eq!(tokens.entries["alice"].len(), 2);
        assert_eq!(tokens.work, (1 << 5) + (1 << 6));
        // An unusable first line still counts: Apache would check that one, never the next.
        let shadowed = parse(
            Kind::Passwords,
            &["bob:$apr1$abc$def".into(), format!("bob:{}", fake_hash(5))],
        );
        assert!(!shadowed.entries.contains_key("bob"));
        // Fields after the hash are ignored, as Apache does.
        let extra = parse(Kind::Passwords, &[format!("carol:{}:Carol", fake_hash(5))]);
        assert_eq!(extra.entries["carol"].len(), 1);
    }

    #[test]
    fn a_duplicate_htpasswd_line_is_refused_and_tokens_are_not() {
        let dir = Dir::new("duplicates");
        let htpasswd = dir.write(
            "htpasswd",
            &[&entry("alice", "first", 4), &entry("alice", "second", 4)],
        );
        let tokens = dir.write(
            "tokens",
            &[&entry("alice", "TOKEN1", 4), &entry("alice", "TOKEN2", 4)],
        );
        let auth = Authenticator::new(Some(htpasswd), Some(tokens), false);
        assert_eq!(
            auth.authenticate(&password("alice", "first")),
            accepted("alice", Verified::Bcrypt)
        );
        assert_eq!(
            auth.authenticate(&password("alice", "second")),
            Err(Refusal::Wrong)
        );
        for t in ["TOKEN1", "TOKEN2"] {
            assert_eq!(
                auth.authenticate(&token("alice", t)),
                accepted("alice", Verified::Bcrypt)
            );
        }
    }
}
