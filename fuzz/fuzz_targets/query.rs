#![no_main]
//! The query/form parser: `request::pairs`, `request::form_decode` and `handler::last_id` never
//! panic, and agree with the plain reference decoder below (SPEC §1: split on `&`, split at the
//! first `=`, `+` is a space, then `%XX`; last_id given once, digits only, saturating past u64).
use clamscanner::internals::handler::last_id;
use clamscanner::internals::request::{form_decode, pairs, Body, Credentials, Method, Request};
use libfuzzer_sys::fuzz_target;

fn reference_decode(raw: &[u8]) -> Option<Vec<u8>> {
    let hex = |b: Option<&u8>| b.and_then(|&b| char::from(b).to_digit(16));
    let mut out = Vec::new();
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        out.push(match b {
            b'+' => b' ',
            b'%' => (hex(bytes.next())? * 16 + hex(bytes.next())?) as u8,
            b => b,
        });
    }
    Some(out)
}

fn reference_last_id(query: &[u8], body: &[u8]) -> Option<u128> {
    let mut found = Vec::new();
    for segment in query
        .split(|&b| b == b'&')
        .chain(body.split(|&b| b == b'&'))
    {
        let (name, value) = match segment.iter().position(|&b| b == b'=') {
            Some(eq) => (&segment[..eq], &segment[eq + 1..]),
            None => (segment, &b""[..]),
        };
        if !segment.is_empty() && reference_decode(name).as_deref() == Some(b"last_id") {
            found.push(value);
        }
    }
    let raw = match found.as_slice() {
        [] => return Some(0),
        [one] => *one,
        _ => return None,
    };
    let value = reference_decode(raw)?;
    if !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let first = value.iter().position(|&d| d != b'0').unwrap_or(value.len());
    let digits = &value[first..];
    let max = b"18446744073709551615";
    if digits.len() > max.len() || digits.len() == max.len() && digits > &max[..] {
        return Some(u128::from(u64::MAX) + 1);
    }
    Some(std::str::from_utf8(digits).unwrap().parse().unwrap_or(0))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    // The first byte says where the query ends and the body starts.
    let cut = usize::from(selector) * rest.len() / 255;
    let (query, body) = rest.split_at(cut);

    let segments = query
        .split(|&b| b == b'&')
        .filter(|s| !s.is_empty())
        .count();
    let mut count = 0;
    for pair in pairs(query) {
        count += 1;
        assert!(!pair.name.contains(&b'&') && !pair.name.contains(&b'='));
        assert!(!pair.value.contains(&b'&'));
        assert_eq!(form_decode(pair.name), reference_decode(pair.name));
        assert_eq!(form_decode(pair.value), reference_decode(pair.value));
    }
    assert_eq!(count, segments);
    assert_eq!(form_decode(rest), reference_decode(rest));

    let req = Request {
        method: Method::Post,
        path: b"/execute/ClamScanner/check_disinfection_status".to_vec(),
        query: query.to_vec(),
        content_type: None,
        body: if body.is_empty() {
            Body::None
        } else {
            Body::Bytes(body.to_vec())
        },
        credentials: Credentials::default(),
    };
    let got = last_id(&req);
    if let Err(message) = &got {
        assert!(message.contains("last_id"), "{message}");
    }
    assert_eq!(got.ok(), reference_last_id(query, body));
});
