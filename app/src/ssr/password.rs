//! Password hashing: argon2id (19 MiB, t=2, p=1, the OWASP minimum), always off the async
//! runtime in `spawn_blocking`, and never more than [`concurrency`] at once: each computation
//! holds 19 MiB, so an unbounded flood of sign-ins would otherwise take the server's memory
//! (and every core) with it. Callers beyond that wait their turn.

use crate::error::AppError;
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::OnceLock;

pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 128;

/// A handful of the most common passwords; refused outright.
const COMMON: &[&str] = &[
    "password",
    "password1",
    "password123",
    "12345678",
    "123456789",
    "1234567890",
    "qwertyuiop",
    "qwerty123",
    "iloveyou",
    "11111111",
    "00000000",
    "abc12345",
    "letmein1",
    "welcome1",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "superman",
    "trustno1",
    "passw0rd",
    "admin123",
    "changeme",
    "keyward1",
];

/// How many argon2 computations may run at once: all cores but one (at least one), so that
/// pages and the API keep a core while sign-ins queue.
pub fn concurrency() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
}

fn permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| tokio::sync::Semaphore::new(concurrency()))
}

/// Runs one argon2 computation under the concurrency bound.
async fn bounded<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    let _permit = permits().acquire().await.map_err(AppError::internal)?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(AppError::internal)?
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 params");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Checks the password policy: length only (no composition rules) and not a common password.
pub fn validate(password: &str) -> Result<(), AppError> {
    let len = password.chars().count();
    if len < MIN_LEN {
        return Err(AppError::invalid(
            "password",
            format!("password must have at least {MIN_LEN} characters"),
        ));
    }
    if len > MAX_LEN {
        return Err(AppError::invalid(
            "password",
            format!("password must have at most {MAX_LEN} characters"),
        ));
    }
    if COMMON.contains(&password.to_lowercase().as_str()) {
        return Err(AppError::invalid(
            "password",
            "this password is too common; choose another",
        ));
    }
    Ok(())
}

/// Hashes a password into PHC format.
pub async fn hash(password: String) -> Result<String, AppError> {
    bounded(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(AppError::internal)
    })
    .await
}

/// Verifies `password` against `phc`. With `phc = None`, verifies against a fixed dummy hash
/// so that an unknown account costs the same time as a known one.
pub async fn verify(password: String, phc: Option<String>) -> Result<bool, AppError> {
    let phc = match phc {
        Some(phc) => phc,
        None => dummy_hash().await?,
    };
    bounded(move || {
        let parsed = PasswordHash::new(&phc).map_err(AppError::internal)?;
        Ok(argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
}

async fn dummy_hash() -> Result<String, AppError> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(h) = DUMMY.get() {
        return Ok(h.clone());
    }
    let h = hash("not a real password, only for timing".into()).await?;
    Ok(DUMMY.get_or_init(|| h).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let h = hash("correct horse battery".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse battery".into(), Some(h.clone()))
            .await
            .unwrap());
        assert!(!verify("wrong horse battery".into(), Some(h)).await.unwrap());
        assert!(!verify("anything".into(), None).await.unwrap());
    }

    #[test]
    fn policy() {
        assert!(validate("short").is_err());
        assert!(validate("Password123").is_err());
        assert!(validate(&"x".repeat(129)).is_err());
        assert!(validate("a long passphrase").is_ok());
        assert!(validate(&"é".repeat(8)).is_ok());
    }
}
