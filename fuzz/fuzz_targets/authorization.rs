#![no_main]
//! The Authorization parser (`auth::parse_authorization`, and `auth::claim` around it) never
//! panics; whatever it accepts names a valid account, holds no control character, comes from a
//! header of at most 8 KiB, and parses back to the same claim when written out again.
use clamscanner::internals::account::is_valid_user_name;
use clamscanner::internals::auth::{claim, parse_authorization, Claim, Scheme};
use clamscanner::internals::request::Credentials;
use libfuzzer_sys::fuzz_target;

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize])
            } else {
                '='
            });
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let parsed = parse_authorization(data);
    if let Ok(Claim::Secret {
        scheme,
        user,
        secret,
    }) = &parsed
    {
        assert!(data.len() <= 8 * 1024);
        assert!(is_valid_user_name(user.as_bytes()), "{user:?}");
        assert!(!secret.chars().any(char::is_control));
        let again = match scheme {
            Scheme::Basic => format!("Basic {}", base64(format!("{user}:{secret}").as_bytes())),
            Scheme::Token => format!("cpanel {user}:{secret}"),
        };
        assert_eq!(parse_authorization(again.as_bytes()), parsed);
    }
    assert!(!matches!(parsed, Ok(Claim::RemoteUser(_))));
    let credentials = Credentials {
        remote_user: None,
        authorization: Some(data.to_vec()),
    };
    assert_eq!(claim(&credentials), parsed);
});
