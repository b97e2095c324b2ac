#![no_main]
//! The FastCGI record layer (`fastcgi::record`): splitting a byte stream into records, reading
//! BEGIN_REQUEST bodies and name-value pairs never panics, never reads past its input, and what
//! it accepts re-encodes to the same bytes.
use clamscanner::internals::fastcgi_record::{self as record, RecordError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Records one after another, as the responder reads them.
    let mut rest = data;
    loop {
        match record::split(rest) {
            Ok(Some(frame)) => {
                assert!(frame.len >= record::HEADER_LEN && frame.len <= rest.len());
                assert!(frame.content.end <= frame.len);
                let content = &rest[frame.content.clone()];
                assert_eq!(content.len(), usize::from(frame.header.content_length));
                if frame.header.kind == record::BEGIN_REQUEST {
                    match record::parse_begin(content) {
                        Ok(_) => assert_eq!(content.len(), 8),
                        Err(e) => assert_eq!(e, RecordError::BadBeginBody(content.len())),
                    }
                }
                rest = &rest[frame.len..];
            }
            Ok(None) => break,
            Err(e) => {
                assert!(matches!(e, RecordError::BadVersion(v) if v != record::VERSION_1));
                break;
            }
        }
    }
    // The whole input as a PARAMS stream: accepted pairs re-encode (lengths in their shortest
    // form) to no more bytes than the input, and parse back to themselves.
    if let Ok(pairs) = record::parse_pairs(data) {
        let mut again = Vec::new();
        for (name, value) in &pairs {
            record::encode_pair(&mut again, name, value);
        }
        assert_eq!(record::parse_pairs(&again).ok().as_ref(), Some(&pairs));
        assert!(again.len() <= data.len());
    }
    // Encoding any content gives one record that splits back to it.
    let content = &data[..data.len().min(record::MAX_CONTENT)];
    let mut one = Vec::new();
    record::encode_record(&mut one, record::STDOUT, 1, content);
    let frame = record::split(&one).ok().flatten();
    assert_eq!(frame.as_ref().map(|f| (f.len, &one[f.content.clone()])), Some((one.len(), content)));
});
