//! The one handler behind all front ends: routing, limits, authentication, parameters, answer.
//!
//! Refusals come in the order SPEC §1 fixes: 404, 405, 414, 413 (or 400 for a body that could
//! not be read), 415, then 401/403, then the function. Everything here is decided from a
//! [`Request`] alone, so the front ends cannot drift apart, and the tests below drive
//! [`Service::handle`] with plain `Request` values: the refusal order, the routes, `last_id`.

use std::fmt;

use crate::account::{Account, AccountError, Homes};
use crate::auth::{Authenticator, Refusal, Verified};
use crate::config::Settings;
use crate::disinfection::{self, Answer};
use crate::envelope::{Form, JsonBody};
use crate::request::{self, Body, Method, Request, MAX_BODY, MAX_QUERY};
use crate::response::Response;

pub const CHALLENGE: &str = r#"Basic realm="cPanel", charset="UTF-8""#;
pub const ALLOW: &str = "GET, HEAD, POST";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontEnd {
    Cgi,
    Listener,
    FastCgi,
}

/// Who a request was answered for: what an access log records (the listener's), and what the
/// answer itself never carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The account answered for.
    pub user: String,
    pub how: Verified,
}

impl Identity {
    /// How the user was authenticated, as the access log spells it.
    pub fn auth(&self) -> &'static str {
        match self.how {
            Verified::WebServer => "remote-user",
            Verified::Bcrypt => "bcrypt",
            Verified::Cache => "cache",
        }
    }
}

enum Route {
    Function,
    Page,
}

pub struct Service {
    pub settings: Settings,
    pub front_end: FrontEnd,
    auth: Authenticator,
}

impl Service {
    pub fn new(settings: Settings, front_end: FrontEnd) -> Service {
        let auth = Authenticator::new(
            settings.htpasswd.clone(),
            settings.tokens.clone(),
            // A long-lived process: remembering a check saves a bcrypt verify per poll.
            front_end != FrontEnd::Cgi,
        );
        Service {
            settings,
            front_end,
            auth,
        }
    }

    pub fn authenticator(&self) -> &Authenticator {
        &self.auth
    }

    /// The answer to `req`, for the front ends that keep no access log.
    pub fn handle(&self, req: &Request) -> Response {
        self.handle_with_identity(req).0
    }

    /// The answer to `req` and, when it was authenticated, who it was answered for (for the
    /// front ends that keep an access log; the answer itself does not carry it).
    pub fn handle_with_identity(&self, req: &Request) -> (Response, Option<Identity>) {
        let route = match self.admit(req) {
            Ok(route) => route,
            Err(refused) => return (refused, None),
        };
        let (user, how) = match self.auth.authenticate(&req.credentials) {
            Ok(who) => who,
            Err(refusal) => return (self.refuse(refusal), None),
        };
        let response = match route {
            Route::Page => Response::html(PAGE).with_header("Content-Security-Policy", PAGE_POLICY),
            Route::Function => self.function(req, &user),
        };
        (response, Some(Identity { user, how }))
    }

    /// Where `req` goes, or its refusal, decided before anyone is authenticated: 404, 405, 414,
    /// then the body's 413, 400 or 415 (SPEC §1).
    fn admit(&self, req: &Request) -> Result<Route, Response> {
        let form = self.settings.envelope;
        let Some(route) = self.route(&req.path) else {
            return Err(Response::error(
                404,
                form,
                "Not found: the function is at /execute/ClamScanner/check_disinfection_status.",
            ));
        };
        if let Method::Other(_) = req.method {
            return Err(
                Response::error(405, form, "Only GET, HEAD and POST are allowed.")
                    .with_header("Allow", ALLOW),
            );
        }
        if req.query.len() > MAX_QUERY {
            return Err(Response::error(
                414,
                form,
                format!("The query string is longer than {} KiB.", MAX_QUERY / 1024),
            ));
        }
        match &req.body {
            Body::TooLarge => Err(Response::error(
                413,
                form,
                format!("The request body is larger than {} KiB.", MAX_BODY / 1024),
            )),
            Body::Unreadable(why) => Err(Response::error(
                400,
                form,
                format!("The request body was refused: {why}."),
            )),
            Body::Bytes(_)
                if req
                    .content_type
                    .as_deref()
                    .is_some_and(|kind| !request::is_form_type(kind)) =>
            {
                Err(Response::error(
                    415,
                    form,
                    "The body must be application/x-www-form-urlencoded.",
                ))
            }
            Body::Bytes(_) | Body::None => Ok(route),
        }
    }

    fn route(&self, path: &[u8]) -> Option<Route> {
        match path {
            b"/execute/ClamScanner/check_disinfection_status"
            | b"/ClamScanner/check_disinfection_status" => Some(Route::Function),
            // Dropped into cgi-bin under any name, the program itself is the function.
            b"" if self.front_end != FrontEnd::Listener => Some(Route::Function),
            b"/" if self.front_end == FrontEnd::Listener => Some(Route::Page),
            _ => None,
        }
    }

    fn refuse(&self, refusal: Refusal) -> Response {
        let form = self.settings.envelope;
        let unauthorized = |message: &str| {
            Response::error(401, form, message.to_string())
                .with_header("WWW-Authenticate", CHALLENGE)
        };
        match refusal {
            Refusal::Missing if !self.auth.has_store() => {
                eprintln!(
                    "clamscanner: refusing a request with no REMOTE_USER: configure authentication in the web server, or set CLAMSCANNER_HTPASSWD (or CLAMSCANNER_TOKENS) to a file of bcrypt entries"
                );
                unauthorized("Authentication is required, and none is configured on this server.")
            }
            Refusal::Missing => unauthorized("Authentication is required."),
            Refusal::Malformed(why) => {
                unauthorized(&format!("The credentials were refused: {why}."))
            }
            Refusal::BadName | Refusal::Wrong => {
                unauthorized("The user name or password is not correct.")
            }
            Refusal::NotConfigured(scheme) => unauthorized(match scheme {
                crate::auth::Scheme::Basic => "Passwords are not accepted on this server.",
                crate::auth::Scheme::Token => "API tokens are not accepted on this server.",
            }),
            Refusal::BadRemoteUser => Response::error(
                403,
                form,
                "The web server named a user that is not a valid account name.",
            ),
            Refusal::StoreUnreadable(detail) => {
                eprintln!("clamscanner: cannot read a credential file: {detail}");
                server_error(form)
            }
        }
    }

    fn function(&self, req: &Request, user: &str) -> Response {
        let settings = &self.settings;
        answer(&settings.homes, settings.envelope, user, last_id(req))
    }
}

/// A 500 whose detail went to stderr (the web server's error log), not to the client.
pub fn server_error(form: Form) -> Response {
    Response::error(
        500,
        form,
        "The server is not configured correctly; the details are in its error log.",
    )
}

/// A 500 for a bug (a panic caught by a front end); the panic's message went to stderr.
pub fn internal_error(form: Form) -> Response {
    Response::error(
        500,
        form,
        "The server failed while answering; the details are in its error log.",
    )
}

const PAGE: &str = include_str!("page.html");
/// The page needs nothing but itself and its own API.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `last_id` from the query string and a form body: absent, empty or 0 mean the whole log.
/// Values beyond u64 saturate just above it, so they are larger than any id.
pub fn last_id(req: &Request) -> Result<u128, String> {
    let body: &[u8] = match &req.body {
        Body::Bytes(bytes) => bytes,
        _ => b"",
    };
    let mut found: Option<&[u8]> = None;
    for pair in request::pairs(&req.query).chain(request::pairs(body)) {
        if request::form_decode(pair.name).as_deref() != Some(b"last_id") {
            continue;
        }
        if found.is_some() {
            return Err(
                "The parameter “last_id” was given more than once; give it once.".to_string(),
            );
        }
        found = Some(pair.value);
    }
    let Some(raw) = found else { return Ok(0) };
    let invalid = || {
        let shown = String::from_utf8_lossy(raw);
        let shown: String = shown.chars().take(40).collect();
        format!(
            "The parameter “last_id” must be a whole number written with the digits 0-9 (the id of the last record received); “{shown}” is not."
        )
    };
    let value = request::form_decode(raw).ok_or_else(invalid)?;
    if !value.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    let beyond = u128::from(u64::MAX) + 1;
    Ok(value.iter().fold(0u128, |acc, d| {
        (acc * 10 + u128::from(d - b'0')).min(beyond)
    }))
}

// ---- the function for an account a front end has named -----------------------------------------

/// Why the function answers `result.status` 0 for an account (with HTTP 200: the call itself
/// was made); the message is the one the client sees.
#[derive(Debug)]
pub enum CallError {
    /// The account cannot be opened: an invalid name, no such account, a refused home.
    Account(AccountError),
    /// Its log or state file was refused or could not be read.
    Log(disinfection::CheckError),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Account(e) => write!(f, "{e}"),
            CallError::Log(e) => write!(f, "{e}"),
        }
    }
}

/// The function for `user`, a name the front end has settled (authenticated, or allowed on the
/// command line): opens the account and reads its log. Every front end gets here: the web ones
/// through [`Service`], `uapi` through [`command_line`], `watch` directly (it wants the records,
/// not an envelope).
pub fn check(homes: &Homes, user: &str, last_id: u128) -> Result<Answer, CallError> {
    let account = Account::open(homes, user).map_err(CallError::Account)?;
    disinfection::check(&account, last_id).map_err(CallError::Log)
}

/// The function's answer in `form`: the records of [`check`], or its refusal.
fn answer(homes: &Homes, form: Form, user: &str, last_id: Result<u128, String>) -> Response {
    let last_id = match last_id {
        Ok(id) => id,
        Err(message) => return Response::error(200, form, message),
    };
    match check(homes, user, last_id) {
        Ok(answer) => Response::json(200, JsonBody::answer(form, answer)),
        Err(e) => Response::error(200, form, e.to_string()),
    }
}

/// The command line's way in (`clamscanner uapi`): `arguments` are its `name=value` pairs, and
/// `last_id` is read from them by the rules of a query string, as cPanel's `uapi` decodes them.
/// Nothing of HTTP applies (no route, no method, no 8 KiB query limit) and nobody authenticates:
/// the caller's own file permissions decide what can be read, and `cli` decided whom it may name.
pub fn command_line(homes: &Homes, form: Form, user: &str, arguments: &[String]) -> Response {
    let parameters = Request::get("", &arguments.join("&"));
    answer(homes, form, user, last_id(&parameters))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::Homes;
    use crate::request::Credentials;
    use crate::response::HTML_TYPE;

    /// A service whose credential file and homes do not exist: nothing here reaches them
    /// except the last step of the refusal order, which names a missing account.
    fn service(front_end: FrontEnd) -> Service {
        let missing = std::env::temp_dir().join("clamscanner-handler-test-nonexistent");
        let settings = Settings {
            htpasswd: Some(missing.join("htpasswd")),
            tokens: None,
            homes: Homes::Root(missing),
            envelope: Form::Flat,
        };
        Service::new(settings, front_end)
    }

    /// Status, the first error of the (flat) envelope, and the extra headers.
    fn outcome(response: Response) -> (u16, String, Vec<(&'static str, &'static str)>) {
        let (status, headers) = (response.status, response.extra_headers.clone());
        let mut body = Vec::new();
        let mut response = response;
        response.write_body(&mut body).ok();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let error = json["errors"][0].as_str().unwrap_or_default().to_string();
        (status, error, headers)
    }

    /// SPEC §1: each refusal is checked in this order, so a request that breaks every rule gets
    /// the first, and mending one rule at a time walks down the list.
    #[test]
    fn refusals_come_in_spec_order() {
        let service = service(FrontEnd::Cgi);
        let mut req = Request {
            method: Method::Other("PUT".into()),
            path: b"/elsewhere".to_vec(),
            query: vec![b'x'; MAX_QUERY + 1],
            content_type: Some(b"application/json".to_vec()),
            body: Body::TooLarge,
            credentials: Credentials::default(),
        };
        let step = |req: &Request, status: u16, error: &str| {
            let (response, who) = service.handle_with_identity(req);
            let (got, message, headers) = outcome(response);
            assert_eq!((got, message.as_str()), (status, error));
            assert_eq!(who, None, "{status}: nobody was answered for");
            headers
        };
        step(
            &req,
            404,
            "Not found: the function is at /execute/ClamScanner/check_disinfection_status.",
        );
        req.path = b"/execute/ClamScanner/check_disinfection_status".to_vec();
        let headers = step(&req, 405, "Only GET, HEAD and POST are allowed.");
        assert_eq!(headers, [("Allow", ALLOW)]);
        req.method = Method::Post;
        step(&req, 414, "The query string is longer than 8 KiB.");
        req.query = b"last_id=1".to_vec();
        step(&req, 413, "The request body is larger than 64 KiB.");
        req.body = Body::Unreadable("CONTENT_LENGTH is not a number".into());
        step(
            &req,
            400,
            "The request body was refused: CONTENT_LENGTH is not a number.",
        );
        req.body = Body::Bytes(b"x=1".to_vec());
        step(
            &req,
            415,
            "The body must be application/x-www-form-urlencoded.",
        );
        req.content_type = Some(b"application/x-www-form-urlencoded; charset=UTF-8".to_vec());
        let headers = step(&req, 401, "Authentication is required.");
        assert_eq!(headers, [("WWW-Authenticate", CHALLENGE)]);
        req.credentials.remote_user = Some(b"../root".to_vec());
        step(
            &req,
            403,
            "The web server named a user that is not a valid account name.",
        );
        req.credentials.remote_user = Some(b"alice".to_vec());
        let (response, who) = service.handle_with_identity(&req);
        let (status, message, _) = outcome(response);
        assert_eq!(status, 200, "past every refusal, the function answers");
        assert!(message.contains("alice"), "{message}");
        assert_eq!(
            who,
            Some(Identity {
                user: "alice".into(),
                how: Verified::WebServer
            })
        );
        assert_eq!(who.map(|w| w.auth()), Some("remote-user"));
    }

    #[test]
    fn a_body_without_a_content_type_is_taken_as_a_form() {
        let service = service(FrontEnd::Cgi);
        let mut req = Request::get("", "");
        req.method = Method::Post;
        req.body = Body::Bytes(b"last_id=1".to_vec());
        assert_eq!(outcome(service.handle(&req)).0, 401);
    }

    #[test]
    fn routes_depend_on_the_front_end() {
        let status = |front_end, path: &str| {
            let mut req = Request::get(path, "");
            req.credentials.remote_user = Some(b"alice".to_vec());
            service(front_end).handle(&req).status
        };
        let function = "/execute/ClamScanner/check_disinfection_status";
        for front_end in [FrontEnd::Cgi, FrontEnd::FastCgi, FrontEnd::Listener] {
            assert_eq!(status(front_end, function), 200, "{front_end:?}");
            assert_eq!(
                status(front_end, "/ClamScanner/check_disinfection_status"),
                200
            );
            assert_eq!(status(front_end, "/other"), 404, "{front_end:?}");
        }
        // The bare program under a cgi-bin is the function; the listener's root is the page.
        assert_eq!(status(FrontEnd::Cgi, ""), 200);
        assert_eq!(status(FrontEnd::FastCgi, ""), 200);
        assert_eq!(status(FrontEnd::Listener, ""), 404);
        assert_eq!(status(FrontEnd::Cgi, "/"), 404);
        let mut page = Request::get("/", "");
        page.credentials.remote_user = Some(b"alice".to_vec());
        let response = service(FrontEnd::Listener).handle(&page);
        assert_eq!((response.status, response.content_type), (200, HTML_TYPE));
    }

    fn with_query(query: &str) -> Result<u128, String> {
        last_id(&Request::get("/", query))
    }

    #[test]
    fn last_id_values() {
        assert_eq!(with_query(""), Ok(0));
        assert_eq!(with_query("last_id="), Ok(0));
        assert_eq!(with_query("last_id=0"), Ok(0));
        assert_eq!(with_query("x=1&last_id=42&y"), Ok(42));
        assert_eq!(with_query("last%5Fid=7"), Ok(7));
        assert_eq!(with_query("last_id=%31%32"), Ok(12));
        assert_eq!(with_query("last_id=0007"), Ok(7));
        let beyond = u128::from(u64::MAX) + 1;
        assert_eq!(
            with_query("last_id=18446744073709551615"),
            Ok(u128::from(u64::MAX))
        );
        assert_eq!(with_query("last_id=18446744073709551616"), Ok(beyond));
        assert_eq!(
            with_query(&format!("last_id={}", "9".repeat(10_000))),
            Ok(beyond)
        );
        for bad in [
            "last_id=abc",
            "last_id=-1",
            "last_id=1.5",
            "last_id=1e3",
            "last_id=+7",
            "last_id=%207",
            "last_id=%zz",
            "last_id=1&last_id=1",
            "last_id=7%00",
        ] {
            assert!(with_query(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn last_id_in_query_and_body_counts_twice() {
        let mut req = Request::get("/", "last_id=1");
        req.body = Body::Bytes(b"last_id=2".to_vec());
        assert!(last_id(&req).is_err());
        req.query.clear();
        assert_eq!(last_id(&req), Ok(2));
    }

    #[test]
    fn the_command_line_has_no_http_limits_and_the_same_function() {
        let root = std::env::temp_dir().join(format!("clamscanner-handler-{}", std::process::id()));
        std::fs::create_dir_all(root.join("alice")).expect("a home");
        let homes = Homes::Root(root.clone());
        let long = format!("pad={}", "x".repeat(MAX_QUERY));
        let answered = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            let response = command_line(&homes, Form::Wrapped, "alice", &args);
            (response.status, response.succeeded())
        };
        assert_eq!(answered(&["last_id=3"]), (200, true));
        assert_eq!(answered(&["last_id=3", &long]), (200, true), "no 414");
        assert_eq!(answered(&["last_id=x"]), (200, false));
        assert_eq!(answered(&["last_id=1", "last_id=1"]), (200, false));
        let nobody = command_line(&homes, Form::Wrapped, "../alice", &[]);
        assert_eq!((nobody.status, nobody.succeeded()), (200, false));
        // The same query through the web front ends' entry is refused by its limit.
        let settings = crate::config::from_env(&|name| {
            (name == "CLAMSCANNER_HOME_ROOT").then(|| root.clone().into_os_string())
        })
        .expect("settings with a home root");
        let mut req = Request::get("", &format!("last_id=3&{long}"));
        req.credentials.remote_user = Some(b"alice".to_vec());
        assert_eq!(
            Service::new(settings, FrontEnd::Cgi).handle(&req).status,
            414
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}
