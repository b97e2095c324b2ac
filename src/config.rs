//! Settings from the environment (all front ends; `SetEnv` under Apache) and from flags, which
//! win over the environment (SPEC §5).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::PathBuf;

use crate::account::Homes;
use crate::envelope::Form;

/// Settings shared by all front ends (SPEC §5): built here from the environment, then
/// overridden by a front end's flags, and handed to `handler::Service`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub htpasswd: Option<PathBuf>,
    pub tokens: Option<PathBuf>,
    pub homes: Homes,
    pub envelope: Form,
}

/// A `CLAMSCANNER_*` variable with a value the program does not accept. `Display` is the
/// message the front end reports (stderr, or the web server's error log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// `CLAMSCANNER_ENVELOPE` is neither `wrapped` nor `flat`.
    Envelope(OsString),
    /// `CLAMSCANNER_TRUST_REMOTE_USER` is neither `0` nor `1`.
    TrustRemoteUser(OsString),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Envelope(value) => write!(
                f,
                "CLAMSCANNER_ENVELOPE must be “wrapped” or “flat”, not {value:?}"
            ),
            ConfigError::TrustRemoteUser(value) => write!(
                f,
                "CLAMSCANNER_TRUST_REMOTE_USER must be 0 or 1, not {value:?}"
            ),
        }
    }
}

/// Reads the `CLAMSCANNER_*` variables through `env`, so it can be tested with a plain map.
/// An empty value counts as unset.
pub fn from_env(env: &dyn Fn(&str) -> Option<OsString>) -> Result<Settings, ConfigError> {
    let get = |name: &str| env(name).filter(|v| !v.is_empty());
    let envelope = match get("CLAMSCANNER_ENVELOPE") {
        None => Form::Wrapped,
        Some(value) => parse_form(&value).ok_or(ConfigError::Envelope(value))?,
    };
    Ok(Settings {
        htpasswd: get("CLAMSCANNER_HTPASSWD").map(PathBuf::from),
        tokens: get("CLAMSCANNER_TOKENS").map(PathBuf::from),
        homes: match get("CLAMSCANNER_HOME_ROOT") {
            Some(root) => Homes::Root(PathBuf::from(root)),
            None => Homes::System,
        },
        envelope,
    })
}

/// `CLAMSCANNER_TRUST_REMOTE_USER`: `0` never believes `REMOTE_USER`, `1` believes it where the
/// front end would not by default (a FastCGI `--listen` socket); unset or empty: the default.
pub fn trust_remote_user(
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Option<bool>, ConfigError> {
    match env("CLAMSCANNER_TRUST_REMOTE_USER").filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) if v == "0" => Ok(Some(false)),
        Some(v) if v == "1" => Ok(Some(true)),
        Some(v) => Err(ConfigError::TrustRemoteUser(v)),
    }
}

pub fn parse_form(value: &OsStr) -> Option<Form> {
    value.to_str().and_then(Form::parse)
}

/// The process environment, for [`from_env`].
pub fn process_env(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

/// A tiny flag reader: `--name VALUE`, `--name=VALUE` and bare `--switch`.
pub struct Flags {
    args: std::vec::IntoIter<OsString>,
    /// Arguments that are not flags, in order.
    pub positional: Vec<OsString>,
}

impl Flags {
    pub fn new(args: Vec<OsString>) -> Flags {
        Flags {
            args: args.into_iter(),
            positional: Vec::new(),
        }
    }

    /// The next flag's name (without dashes) and, for `--name=value`, its inline value;
    /// positional arguments are collected on the way. None at the end.
    pub fn next_flag(&mut self) -> Option<(String, Option<OsString>)> {
        for arg in self.args.by_ref() {
            let Some(text) = arg.to_str() else {
                self.positional.push(arg);
                continue;
            };
            if let Some(name) = text.strip_prefix("--") {
                return Some(match name.split_once('=') {
                    Some((name, value)) => (name.to_string(), Some(value.into())),
                    None => (name.to_string(), None),
                });
            }
            if text.starts_with('-') && text.len() > 1 {
                return Some((text.trim_start_matches('-').to_string(), None));
            }
            self.positional.push(arg);
        }
        None
    }

    /// The value of the flag just read: inline, or the next argument.
    pub fn value(&mut self, name: &str, inline: Option<OsString>) -> Result<OsString, String> {
        inline
            .or_else(|| self.args.next())
            .ok_or_else(|| format!("--{name} needs a value"))
    }
}

/// `CLAMSCANNER_HOME_ROOT` alone, for the commands that read nothing else from the environment
/// (`uapi`, `simulate`, `watch`): homes are `DIR/USER`, or the account database when it is unset
/// or empty.
pub fn homes_from_env(env: &dyn Fn(&str) -> Option<OsString>) -> Homes {
    match env("CLAMSCANNER_HOME_ROOT").filter(|v| !v.is_empty()) {
        Some(root) => Homes::Root(PathBuf::from(root)),
        None => Homes::System,
    }
}

/// The flags `serve` and `fastcgi` share: each sets a [`Settings`] field and wins over the
/// environment (SPEC §5).
pub const SETTINGS_FLAGS: [&str; 4] = ["htpasswd", "tokens", "home-root", "envelope"];

/// Applies one of [`SETTINGS_FLAGS`] (`name` without dashes); the error is the usage message.
pub fn apply_settings_flag(
    settings: &mut Settings,
    name: &str,
    value: OsString,
) -> Result<(), String> {
    match name {
        "htpasswd" => settings.htpasswd = Some(value.into()),
        "tokens" => settings.tokens = Some(value.into()),
        "home-root" => settings.homes = Homes::Root(value.into()),
        "envelope" => {
            settings.envelope = parse_form(&value)
                .ok_or_else(|| format!("--envelope must be wrapped or flat, not {value:?}"))?
        }
        other => return Err(format!("unknown option --{other} (see --help)")),
    }
    Ok(())
}

/// An argument that must be text (a user name, an address, a number) and is not UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotText {
    /// What the value was given as: `--listen`, `MODULE`, `argument`.
    pub what: String,
    pub value: OsString,
}

impl fmt::Display for NotText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?} is not valid text", self.what, self.value)
    }
}

/// `value` as text; the error names it as `what`.
pub fn text(value: OsString, what: &str) -> Result<String, NotText> {
    value.into_string().map_err(|value| NotText {
        what: what.to_string(),
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        from_env(&|name| map.get(name).cloned())
    }

    #[test]
    fn flags() {
        let args = [
            "--user=demo",
            "ClamScanner",
            "--home-root",
            "/h",
            "-V",
            "last_id=3",
        ];
        let mut flags = Flags::new(args.iter().map(OsString::from).collect());
        let mut seen = Vec::new();
        while let Some((name, inline)) = flags.next_flag() {
            let value = if name == "home-root" {
                flags.value(&name, inline).ok()
            } else {
                inline
            };
            seen.push((name, value));
        }
        assert_eq!(
            seen,
            vec![
                ("user".into(), Some("demo".into())),
                ("home-root".into(), Some("/h".into())),
                ("V".into(), None),
            ]
        );
        assert_eq!(
            flags.positional,
            vec![OsString::from("ClamScanner"), "last_id=3".into()]
        );
        let mut last = Flags::new(vec!["--listen".into()]);
        let (name, inline) = last.next_flag().unwrap_or_default();
        assert!(
            last.value(&name, inline).is_err(),
            "a flag at the end has no value"
        );
    }

    #[test]
    fn environment() {
        let s = settings(&[]).ok();
        assert_eq!(s.as_ref().map(|s| s.envelope), Some(Form::Wrapped));
        assert_eq!(s.as_ref().map(|s| s.homes.clone()), Some(Homes::System));
        let s = settings(&[
            ("CLAMSCANNER_ENVELOPE", "flat"),
            ("CLAMSCANNER_HOME_ROOT", "/srv/homes"),
            ("CLAMSCANNER_HTPASSWD", ""),
        ])
        .ok();
        assert_eq!(s.as_ref().map(|s| s.envelope), Some(Form::Flat));
        assert_eq!(
            s.as_ref().map(|s| s.homes.clone()),
            Some(Homes::Root("/srv/homes".into()))
        );
        assert_eq!(s.and_then(|s| s.htpasswd), None);
        let refused = settings(&[("CLAMSCANNER_ENVELOPE", "yaml")]).map(drop);
        assert_eq!(refused, Err(ConfigError::Envelope("yaml".into())));
        assert_eq!(
            refused.map_err(|e| e.to_string()),
            Err("CLAMSCANNER_ENVELOPE must be “wrapped” or “flat”, not \"yaml\"".to_string())
        );
    }

    #[test]
    fn trust_variable() {
        let trust = |value: &str| {
            let value = OsString::from(value);
            trust_remote_user(&|name| {
                (name == "CLAMSCANNER_TRUST_REMOTE_USER").then(|| value.clone())
            })
        };
        assert_eq!(trust(""), Ok(None));
        assert_eq!(trust("0"), Ok(Some(false)));
        assert_eq!(trust("1"), Ok(Some(true)));
        assert_eq!(
            trust("yes").map_err(|e| e.to_string()),
            Err("CLAMSCANNER_TRUST_REMOTE_USER must be 0 or 1, not \"yes\"".to_string())
        );
    }

    #[test]
    fn text_and_home_root() {
        use std::os::unix::ffi::OsStringExt;
        assert_eq!(text("alice".into(), "--user"), Ok("alice".to_string()));
        let bad = text(OsString::from_vec(b"a\xffb".to_vec()), "--listen");
        assert_eq!(
            bad.map_err(|e| e.to_string()),
            Err(r#"--listen: "a\xFFb" is not valid text"#.to_string())
        );
        let root = |value: &'static str| {
            homes_from_env(&|name| (name == "CLAMSCANNER_HOME_ROOT").then(|| value.into()))
        };
        assert_eq!(root("/srv/homes"), Homes::Root("/srv/homes".into()));
        assert_eq!(root(""), Homes::System, "empty counts as unset");
    }

    #[test]
    fn the_shared_settings_flags() {
        let mut settings = from_env(&|_: &str| None).expect("no variables is valid");
        for (name, value) in [
            ("htpasswd", "/etc/h"),
            ("tokens", "/etc/t"),
            ("home-root", "/srv"),
            ("envelope", "flat"),
        ] {
            assert!(SETTINGS_FLAGS.contains(&name));
            assert_eq!(
                apply_settings_flag(&mut settings, name, value.into()),
                Ok(())
            );
        }
        assert_eq!(settings.htpasswd, Some("/etc/h".into()));
        assert_eq!(settings.tokens, Some("/etc/t".into()));
        assert_eq!(settings.homes, Homes::Root("/srv".into()));
        assert_eq!(settings.envelope, Form::Flat);
        assert_eq!(
            apply_settings_flag(&mut settings, "envelope", "yaml".into()),
            Err("--envelope must be wrapped or flat, not \"yaml\"".to_string())
        );
        assert!(apply_settings_flag(&mut settings, "listen", "x".into()).is_err());
    }
}
