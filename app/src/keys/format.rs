//! The API key format, GitHub/Stripe style:
//!
//! ```text
//! kw_live_4eC39HqLyjWDarjtT1zdp7dc8a2N1W3xY5j7Q0aZ
//! └prefix┘└──────── 32 base62 random ─────┘└crc32┘
//! ```
//!
//! - `kw_live_` or `kw_test_`: the product and the environment, readable by humans and secret
//!   scanners; `_` separators let a double-click select the whole key;
//! - 32 base62 characters of randomness (≈190 bits, well over the 128 required);
//! - a 6-character base62 CRC32 of everything before it, so a mistyped or truncated key is
//!   rejected from the checksum alone, before any lookup.
//!
//! Only a keyed hash of the key is stored ([`hash`]) plus a short display prefix
//! ([`display_prefix`]); the key itself is shown once.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
pub const RANDOM_LEN: usize = 32;
pub const CHECKSUM_LEN: usize = 6;

/// Live keys act on real data; test keys are for integration work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    Live,
    Test,
}

impl Environment {
    pub fn prefix(self) -> &'static str {
        match self {
            Environment::Live => "kw_live_",
            Environment::Test => "kw_test_",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Live => "live",
            Environment::Test => "test",
        }
    }

    /// The environment a key's text starts with (`kw_live_…`, `kw_test_…`), if any.
    pub fn of_key(key: &str) -> Option<Environment> {
        [Environment::Live, Environment::Test]
            .into_iter()
            .find(|e| key.starts_with(e.prefix()))
    }

    /// Whether a stored environment name is `test` (anything else counts as live: the
    /// stronger reading).
    pub fn is_test_name(s: &str) -> bool {
        Environment::parse(s) == Some(Environment::Test)
    }

    pub fn parse(s: &str) -> Option<Environment> {
        match s {
            "live" => Some(Environment::Live),
            "test" => Some(Environment::Test),
            _ => None,
        }
    }
}

/// Why a presented string is not a well-formed Keyward key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// Not `kw_live_` / `kw_test_`, wrong length or characters outside base62.
    Malformed,
    /// Well-formed, but the checksum does not match: a typo or a truncated copy.
    BadChecksum,
}

fn base62_fixed(mut n: u64, width: usize) -> String {
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out).expect("ascii")
}

fn checksum(body: &str) -> String {
    base62_fixed(crc32fast::hash(body.as_bytes()) as u64, CHECKSUM_LEN)
}

/// Draws a new key for `env`.
pub fn generate(env: Environment) -> String {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    let random: String = (0..RANDOM_LEN)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    let body = format!("{}{random}", env.prefix());
    let sum = checksum(&body);
    format!("{body}{sum}")
}

/// Checks the shape and checksum of a presented key, without any lookup.
pub fn parse(key: &str) -> Result<Environment, FormatError> {
    let env = Environment::of_key(key).ok_or(FormatError::Malformed)?;
    let rest = &key[env.prefix().len()..];
    if rest.len() != RANDOM_LEN + CHECKSUM_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(FormatError::Malformed);
    }
    let (body, sum) = key.split_at(key.len() - CHECKSUM_LEN);
    if checksum(body) != sum {
        return Err(FormatError::BadChecksum);
    }
    Ok(env)
}

/// Whether a presented string that is not a `kw_` key may be an imported key of another
/// system: 16 to 256 visible ASCII characters. Anything else is malformed, refused before any
/// lookup.
pub fn foreign_ok(key: &str) -> bool {
    (16..=256).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// The stored lookup hash: HMAC-SHA-256 under the server pepper, hex. A database copy alone
/// cannot be used to test guesses offline.
pub fn hash(pepper: &[u8; 32], key: &str) -> String {
    hex::encode(hash_bytes(pepper, key))
}

/// [`hash`] before its hex encoding: what the verifier's cache is keyed by (no allocation).
pub fn hash_bytes(pepper: &[u8; 32], key: &str) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(pepper).expect("any key length");
    mac.update(key.as_bytes());
    mac.finalize().into_bytes().into()
}

/// What makes a key value unique across the ways it can be stored: an HMAC under the pepper
/// of the key's plain SHA-256. A plaintext import and a hash import of the same value get the
/// same fingerprint (we can compute it from either), so a unique index refuses the second,
/// whichever arrives first and whichever organization brings it.
pub fn fingerprint(pepper: &[u8; 32], sha256_hex: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(pepper).expect("any key length");
    mac.update(b"keyward-fingerprint-v1\0");
    mac.update(sha256_hex.to_ascii_lowercase().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Plain SHA-256, hex: how most other systems store keys, accepted for imported keys.
pub fn sha256_hex(key: &str) -> String {
    hex::encode(sha256_bytes(key))
}

/// [`sha256_hex`] before its hex encoding.
pub fn sha256_bytes(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The non-secret part shown in lists: `kw_live_4eC3`. An imported key of another system may
/// be as short as 16 characters: of those, at most a quarter is shown, so that whoever may
/// list keys never sees most of a secret (12 of 16 would leave 4 characters to guess).
pub fn display_prefix(key: &str) -> String {
    let shown = Environment::Live.prefix().len() + 4;
    let shown = if parse(key).is_ok() {
        shown
    } else {
        shown.min(key.chars().count() / 4)
    };
    key.chars().take(shown).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_show_a_short_part_of_a_key_and_at_most_a_quarter_of_a_foreign_one() {
        let key = generate(Environment::Live);
        assert_eq!(display_prefix(&key), key[..12]);
        assert_eq!(display_prefix("sk_live_AbCdEfGh"), "sk_l");
        assert_eq!(display_prefix(&"x".repeat(40)), "x".repeat(10));
        assert_eq!(display_prefix(&"y".repeat(200)), "y".repeat(12));
    }

    #[test]
    fn generated_keys_parse() {
        for env in [Environment::Live, Environment::Test] {
            let key = generate(env);
            assert!(key.starts_with(env.prefix()));
            assert_eq!(key.len(), 8 + RANDOM_LEN + CHECKSUM_LEN);
            assert_eq!(parse(&key), Ok(env));
        }
        assert_ne!(generate(Environment::Live), generate(Environment::Live));
    }

    #[test]
    fn a_typo_fails_the_checksum() {
        let key = generate(Environment::Live);
        let mut chars: Vec<char> = key.chars().collect();
        let i = 12;
        chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert_eq!(parse(&typo), Err(FormatError::BadChecksum));
    }

    #[test]
    fn malformed_keys() {
        let key = generate(Environment::Live);
        assert_eq!(parse(""), Err(FormatError::Malformed));
        assert_eq!(parse("sk_live_abc"), Err(FormatError::Malformed));
        assert_eq!(parse(&key[..key.len() - 1]), Err(FormatError::Malformed));
        assert_eq!(parse(&format!("{key}x")), Err(FormatError::Malformed));
        assert_eq!(
            parse(&key.replace("kw_live_", "kw_prod_")),
            Err(FormatError::Malformed)
        );
        let mut bad = key.clone();
        bad.replace_range(10..11, "-");
        assert_eq!(parse(&bad), Err(FormatError::Malformed));
    }

    #[test]
    fn checksum_is_fixed_width_base62() {
        assert_eq!(base62_fixed(0, 6), "000000");
        assert_eq!(base62_fixed(61, 6), "00000z");
        assert_eq!(base62_fixed(62, 6), "000010");
        assert_eq!(base62_fixed(u32::MAX as u64, 6).len(), 6);
        assert_eq!(checksum("kw_live_x"), checksum("kw_live_x"));
    }

    #[test]
    fn hashes() {
        let key = "kw_test_example";
        assert_eq!(hash(&[1; 32], key), hash(&[1; 32], key));
        assert_ne!(hash(&[1; 32], key), hash(&[2; 32], key));
        assert_eq!(hash(&[1; 32], key).len(), 64);
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
