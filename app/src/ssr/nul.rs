//! NUL characters are refused (400 `invalid_input`): PostgreSQL cannot store one in text, so
//! it would surface as an internal error there (and SQLite would store what the other backend
//! refuses); no field of ours has a use for one. Checked in the URI of every console request
//! (`access::guard::rpc_middleware`) and of every keyed REST call (after the key, inside the
//! request log), in the JSON bodies of the REST API and the bodies of server functions; a key
//! import checks the file it was given.

use crate::error::{AppError, ErrorCode};

/// The refusal.
pub fn refused() -> AppError {
    AppError::new(
        ErrorCode::InvalidInput,
        "the request holds a NUL character (U+0000), which no field accepts",
    )
}

/// Whether URL-encoded text (a path, a query string, a form body) holds a NUL: raw or `%00`.
pub fn in_url(text: &[u8]) -> bool {
    text.contains(&0) || text.windows(3).any(|w| w == b"%00")
}

/// Whether a request's path or query string holds a NUL.
pub fn in_uri(uri: &http::Uri) -> bool {
    in_url(uri.path().as_bytes()) || uri.query().is_some_and(|q| in_url(q.as_bytes()))
}

/// Whether a JSON document holds a NUL: raw, or a `\u0000` escape that is not itself an
/// escaped backslash followed by `u0000` text.
pub fn in_json(text: &[u8]) -> bool {
    if text.contains(&0) {
        return true;
    }
    text.windows(5)
        .enumerate()
        .filter(|(_, w)| *w == b"u0000")
        .any(|(at, _)| {
            let backslashes = text[..at].iter().rev().take_while(|&&b| b == b'\\').count();
            backslashes % 2 == 1
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_is_found_however_it_is_written() {
        assert!(in_url(b"q=%00"));
        assert!(in_url(b"a\0b"));
        assert!(!in_url(b"q=100%25&r=%0A"));
        assert!(in_json(br#"{"a":"x\u0000"}"#));
        assert!(
            in_json(br#"{"a":"x\\\u0000"}"#),
            "an escaped backslash, then a NUL"
        );
        assert!(!in_json(br#"{"a":"x\\u0000"}"#), "a backslash, then text");
        assert!(!in_json(br#"{"a":"u0000 %00"}"#));
    }
}
