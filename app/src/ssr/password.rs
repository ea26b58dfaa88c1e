//! Password hashing: argon2id (19 MiB, t=2, p=1, the OWASP minimum), always off the async
//! runtime in `spawn_blocking`.

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
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(AppError::internal)
    })
    .await
    .map_err(AppError::internal)?
}

/// Verifies `password` against `phc`. With `phc = None`, verifies against a fixed dummy hash
/// so that an unknown account costs the same time as a known one.
pub async fn verify(password: String, phc: Option<String>) -> Result<bool, AppError> {
    let phc = match phc {
        Some(phc) => phc,
        None => dummy_hash().await?,
    };
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&phc).map_err(AppError::internal)?;
        Ok(argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(AppError::internal)?
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
