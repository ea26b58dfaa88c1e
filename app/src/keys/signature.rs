//! Request signatures (server only), Stripe-webhook style but for inbound API calls:
//!
//! ```text
//! Signature: t=1764067200,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
//! v1 = hex(HMAC-SHA256(signing_secret, "{t}.{METHOD}.{path_and_query}.{hex(SHA256(body))}"))
//! ```
//!
//! - the timestamp is signed, so a captured header cannot be moved to another moment, and a
//!   header more than [`TOLERANCE_SECS`] away from the server clock is refused as stale;
//! - method, path (with its query string, exactly as sent) and a digest of the body are
//!   signed, so nothing in the request can be changed in flight;
//! - each accepted signature is remembered for the tolerance window, so replaying the same
//!   request is refused (`signature_replayed`), on every instance sharing the database;
//! - several `v1=` entries may be sent (while moving to a new secret); one must match.
//!
//! The per-key signing secret is never stored: it is derived from the server pepper, the key
//! id and a random per-key salt ([`signing_secret`]), shown once at creation and roll, and
//! re-derived on the server to check a signature.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// How far the signed timestamp may be from the server clock, either way.
pub const TOLERANCE_SECS: i64 = 300;

/// A signing secret, kept out of logs and debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(String);

impl SigningSecret {
    /// The secret as the client uses it (the HMAC key is its UTF-8 bytes).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

/// A fresh random salt for a key's signing secret (hex, 128 bits).
pub fn new_salt() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The signing secret of a key: `kwsig_` + hex HMAC-SHA-256 under the pepper of the key id and
/// its salt. Recoverable by the server only; a new salt gives a new secret.
pub fn signing_secret(pepper: &[u8; 32], key_id: &str, salt: &str) -> SigningSecret {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(pepper).expect("any key length");
    mac.update(b"keyward-signing-secret-v1\0");
    mac.update(key_id.as_bytes());
    mac.update(b"\0");
    mac.update(salt.as_bytes());
    SigningSecret(format!(
        "kwsig_{}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// The exact string that is signed.
pub fn payload(t: i64, method: &str, path_and_query: &str, body: &[u8]) -> String {
    payload_for_digest(t, method, path_and_query, &body_digest(body))
}

/// Hex SHA-256 of a body.
pub fn body_digest(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The signed string from a body's hex SHA-256 (what `/api/v1/keys/verify` is given).
pub fn payload_for_digest(t: i64, method: &str, path_and_query: &str, body_sha256: &str) -> String {
    format!(
        "{t}.{}.{path_and_query}.{}",
        method.to_ascii_uppercase(),
        body_sha256.to_ascii_lowercase()
    )
}

/// `v1` for a payload: hex HMAC-SHA-256 under the signing secret.
pub fn sign(secret: &SigningSecret, payload: &str) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret.0.as_bytes()).expect("any key length");
    mac.update(payload.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A parsed `Signature` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub t: i64,
    pub v1: Vec<String>,
}

/// Parses `t=<unix seconds>,v1=<64 hex>[,v1=…]`; unknown schemes (`v0=`…) are ignored.
pub fn parse_header(value: &str) -> Option<Header> {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in value.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k.trim() {
            "t" => t = Some(v.trim().parse::<i64>().ok()?),
            "v1" => {
                let v = v.trim().to_ascii_lowercase();
                if v.len() != 64 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                v1.push(v);
            }
            _ => {}
        }
    }
    if v1.is_empty() || v1.len() > 4 {
        return None;
    }
    Some(Header { t: t?, v1 })
}

/// Why a signature was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Unparseable header, or no `v1` matches.
    Invalid,
    /// Valid, but signed too far from now.
    Stale,
}

/// Checks a header against the request; on success returns the matching `v1` (what the replay
/// table remembers). Constant-time comparison; the signature is checked before the clock so
/// a forged header learns nothing about the tolerance.
pub fn check(
    secret: &SigningSecret,
    header: &str,
    method: &str,
    path_and_query: &str,
    body_sha256: &str,
    now_secs: i64,
) -> Result<String, Refusal> {
    use subtle::ConstantTimeEq;
    let h = parse_header(header).ok_or(Refusal::Invalid)?;
    let expected = sign(
        secret,
        &payload_for_digest(h.t, method, path_and_query, body_sha256),
    );
    let matched =
        h.v1.iter()
            .find(|v| bool::from(v.as_bytes().ct_eq(expected.as_bytes())))
            .ok_or(Refusal::Invalid)?;
    // `abs_diff` cannot overflow, whatever timestamp the client sent.
    if now_secs.abs_diff(h.t) > TOLERANCE_SECS as u64 {
        return Err(Refusal::Stale);
    }
    Ok(matched.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SigningSecret {
        signing_secret(&[7; 32], "key_1", "salt")
    }

    #[test]
    fn canonical_payload() {
        // SHA-256 of the empty body is well known.
        assert_eq!(
            payload(1700000000, "post", "/api/v1/keys?x=1", b""),
            "1700000000.POST./api/v1/keys?x=1.e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn known_answer() {
        // HMAC-SHA256(key="key", "The quick brown fox jumps over the lazy dog") (RFC 4231 style
        // vector widely published), to pin the primitive and the hex encoding.
        let s = SigningSecret("key".into());
        assert_eq!(
            sign(&s, "The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn secrets_depend_on_pepper_key_and_salt() {
        let a = secret();
        assert!(a.expose().starts_with("kwsig_"));
        assert_eq!(a.expose().len(), 6 + 64);
        assert_eq!(a, signing_secret(&[7; 32], "key_1", "salt"));
        assert_ne!(a, signing_secret(&[8; 32], "key_1", "salt"));
        assert_ne!(a, signing_secret(&[7; 32], "key_2", "salt"));
        assert_ne!(a, signing_secret(&[7; 32], "key_1", "other"));
        assert_eq!(format!("{a:?}"), "SigningSecret(<redacted>)");
    }

    #[test]
    fn extreme_timestamps_are_stale_not_a_panic() {
        let s = secret();
        for t in [i64::MIN, i64::MAX, -1] {
            let v1 = sign(&s, &payload(t, "GET", "/x", b""));
            let header = format!("t={t},v1={v1}");
            let r = check(&s, &header, "GET", "/x", &body_digest(b""), 1_700_000_000);
            assert_eq!(r, Err(Refusal::Stale), "t={t}");
        }
    }

    #[test]
    fn accepts_a_fresh_signature() {
        let s = secret();
        let v1 = sign(&s, &payload(1000, "POST", "/api/v1/keys", b"{}"));
        let header = format!("t=1000,v1={v1}");
        assert_eq!(
            check(
                &s,
                &header,
                "POST",
                "/api/v1/keys",
                &body_digest(b"{}"),
                1000
            ),
            Ok(v1.clone())
        );
        // Within tolerance either way; another v1 alongside (rotation) is fine.
        assert!(check(
            &s,
            &header,
            "POST",
            "/api/v1/keys",
            &body_digest(b"{}"),
            1300
        )
        .is_ok());
        assert!(check(
            &s,
            &header,
            "POST",
            "/api/v1/keys",
            &body_digest(b"{}"),
            700
        )
        .is_ok());
        let two = format!("t=1000, v1={}, v1={v1}", "0".repeat(64));
        assert!(check(&s, &two, "POST", "/api/v1/keys", &body_digest(b"{}"), 1000).is_ok());
    }

    #[test]
    fn refuses_anything_changed() {
        let s = secret();
        let v1 = sign(&s, &payload(1000, "POST", "/api/v1/keys", b"{}"));
        let header = format!("t=1000,v1={v1}");
        let bad = Err(Refusal::Invalid);
        assert_eq!(
            check(
                &s,
                &header,
                "GET",
                "/api/v1/keys",
                &body_digest(b"{}"),
                1000
            ),
            bad
        );
        assert_eq!(
            check(
                &s,
                &header,
                "POST",
                "/api/v1/keys?a",
                &body_digest(b"{}"),
                1000
            ),
            bad
        );
        assert_eq!(
            check(
                &s,
                &header,
                "POST",
                "/api/v1/keys",
                &body_digest(b"{ }"),
                1000
            ),
            bad
        );
        let other = signing_secret(&[7; 32], "key_2", "salt");
        assert_eq!(
            check(
                &other,
                &header,
                "POST",
                "/api/v1/keys",
                &body_digest(b"{}"),
                1000
            ),
            bad
        );
        let moved = format!("t=1001,v1={v1}");
        assert_eq!(
            check(
                &s,
                &moved,
                "POST",
                "/api/v1/keys",
                &body_digest(b"{}"),
                1000
            ),
            bad
        );
    }

    #[test]
    fn refuses_stale_and_malformed_headers() {
        let s = secret();
        let v1 = sign(&s, &payload(1000, "GET", "/", b""));
        let header = format!("t=1000,v1={v1}");
        assert_eq!(
            check(&s, &header, "GET", "/", &body_digest(b""), 1301),
            Err(Refusal::Stale)
        );
        assert_eq!(
            check(&s, &header, "GET", "/", &body_digest(b""), 699),
            Err(Refusal::Stale)
        );
        for h in [
            "",
            "t=1000",
            &format!("v1={v1}"),
            "t=x,v1=00",
            "garbage",
            &format!("t=1000;v1={v1}"),
        ] {
            assert_eq!(
                check(&s, h, "GET", "/", &body_digest(b""), 1000),
                Err(Refusal::Invalid),
                "{h}"
            );
        }
    }
}
