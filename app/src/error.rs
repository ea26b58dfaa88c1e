//! The one error type of Keyward.
//!
//! Which result type to use where:
//! - domain code and server functions return `Result<T, AppError>`;
//! - build errors with the small constructors (`AppError::invalid(..)`, `forbidden(..)`,
//!   `not_found(..)`), never by hand-writing a code string;
//! - anything unexpected (database, I/O, a bug) goes through [`AppError::internal`], which logs
//!   the cause with an error id and returns an opaque message carrying only that id.
//!
//! On the wire the error is always `{"error":{"code","message"}}` with a stable `code`: server
//! functions encode it as JSON through [`FromServerFnError`], and the REST API renders the same
//! shape through `IntoResponse` (in `ssr`).

use leptos::server_fn;
use serde::{Deserialize, Serialize};
use server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};

/// A stable, machine-readable error code. Clients match on these strings; never rename one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed or a field is invalid.
    InvalidInput,
    /// The request body is larger than allowed.
    PayloadTooLarge,
    /// No valid session or credentials.
    Unauthenticated,
    /// Sign-in failed: unknown email, wrong password, disabled or throttled account alike.
    InvalidCredentials,
    /// Authenticated, but lacking the permission or the organization membership.
    Forbidden,
    /// An organization the user belongs to requires two-factor authentication, and this
    /// session has not set it up yet: only enrolment (at `/two-factor`) and sign-out work.
    TwoFactorRequired,
    /// A state-changing request came from a foreign origin.
    CsrfRejected,
    /// The resource does not exist (or is not visible to the caller).
    NotFound,
    /// The request conflicts with existing state (e.g. an email already registered).
    Conflict,
    /// The operator switched this feature off (e.g. sign-up).
    Disabled,
    /// No `Authorization: Bearer <key>` header.
    KeyMissing,
    /// Not shaped like a Keyward key (rejected before any lookup).
    KeyMalformed,
    /// Shaped like a key, but the checksum does not match (rejected before any lookup).
    KeyBadChecksum,
    /// No such key.
    KeyUnknown,
    KeyDisabled,
    KeyRevoked,
    KeyExpired,
    /// The key waits for approval (its organization requires approval of new keys).
    KeyPendingApproval,
    /// The caller's address is not in the key's IP allow-list.
    IpNotAllowed,
    /// The key is restricted to other endpoints.
    EndpointNotAllowed,
    /// The key's stored restrictions cannot be read; it is refused rather than unrestricted.
    KeyRestrictionsInvalid,
    /// The key requires a `Signature` header and none was sent.
    SignatureMissing,
    /// The `Signature` header is malformed or does not match the request.
    SignatureInvalid,
    /// The signature's timestamp is more than 300 s from the server clock.
    SignatureStale,
    /// This exact signature was already accepted once.
    SignatureReplayed,
    /// Too many requests from this client (or for this key): wait `Retry-After` seconds.
    RateLimited,
    /// The key is valid but lacks permissions a verifying service required.
    InsufficientPermissions,
    /// A dependency (the database) is not answering, or the request collided with another
    /// change to the same data: transient, retry after `Retry-After`.
    Unavailable,
    /// Something went wrong on our side; details are in the server log under the error id.
    Internal,
}

impl ErrorCode {
    /// The HTTP status that goes with the code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidInput => 400,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::Unauthenticated
            | ErrorCode::InvalidCredentials
            | ErrorCode::KeyMissing
            | ErrorCode::KeyMalformed
            | ErrorCode::KeyBadChecksum
            | ErrorCode::KeyUnknown
            | ErrorCode::KeyDisabled
            | ErrorCode::KeyRevoked
            | ErrorCode::KeyExpired
            | ErrorCode::KeyPendingApproval
            | ErrorCode::SignatureMissing
            | ErrorCode::SignatureInvalid
            | ErrorCode::SignatureStale
            | ErrorCode::SignatureReplayed => 401,
            ErrorCode::IpNotAllowed
            | ErrorCode::EndpointNotAllowed
            | ErrorCode::KeyRestrictionsInvalid
            | ErrorCode::InsufficientPermissions => 403,
            ErrorCode::Forbidden
            | ErrorCode::CsrfRejected
            | ErrorCode::Disabled
            | ErrorCode::TwoFactorRequired => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
        }
    }
}

/// Keyward's error: a stable code, a message safe to show a user, and optionally the field the
/// message is about (for forms).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(from = "Envelope", into = "Envelope")]
#[error("{message}")]
pub struct AppError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
    /// For `rate_limited` (and a limiter's `unavailable`): seconds until a retry can succeed,
    /// sent as `Retry-After` (a header, not part of the body).
    pub retry_after: Option<u64>,
}

/// The wire shape: `{"error":{"code","message","field"?}}`.
#[derive(Clone, Serialize, Deserialize)]
struct Envelope {
    error: Body,
}

#[derive(Clone, Serialize, Deserialize)]
struct Body {
    code: ErrorCode,
    message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

impl From<Envelope> for AppError {
    fn from(e: Envelope) -> Self {
        AppError {
            code: e.error.code,
            message: e.error.message,
            field: e.error.field,
            retry_after: None,
        }
    }
}

impl From<AppError> for Envelope {
    fn from(e: AppError) -> Self {
        Envelope {
            error: Body {
                code: e.code,
                message: e.message,
                field: e.field,
            },
        }
    }
}

impl ErrorCode {
    /// Every code, for documentation (a test keeps the list complete).
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::InvalidInput,
        ErrorCode::PayloadTooLarge,
        ErrorCode::Unauthenticated,
        ErrorCode::InvalidCredentials,
        ErrorCode::Forbidden,
        ErrorCode::TwoFactorRequired,
        ErrorCode::CsrfRejected,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::Disabled,
        ErrorCode::KeyMissing,
        ErrorCode::KeyMalformed,
        ErrorCode::KeyBadChecksum,
        ErrorCode::KeyUnknown,
        ErrorCode::KeyDisabled,
        ErrorCode::KeyRevoked,
        ErrorCode::KeyExpired,
        ErrorCode::KeyPendingApproval,
        ErrorCode::IpNotAllowed,
        ErrorCode::EndpointNotAllowed,
        ErrorCode::KeyRestrictionsInvalid,
        ErrorCode::SignatureMissing,
        ErrorCode::SignatureInvalid,
        ErrorCode::SignatureStale,
        ErrorCode::SignatureReplayed,
        ErrorCode::RateLimited,
        ErrorCode::InsufficientPermissions,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    /// The stable string form (`key_revoked`…), as in JSON.
    pub fn as_str(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError {
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// A bad value in one field of a form or body.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        AppError {
            code: ErrorCode::InvalidInput,
            message: message.into(),
            field: Some(field.into()),
            retry_after: None,
        }
    }

    pub fn unauthenticated() -> Self {
        Self::new(ErrorCode::Unauthenticated, "sign in to continue")
    }

    /// The one answer for every failed sign-in, whatever the reason.
    pub fn invalid_credentials() -> Self {
        Self::new(ErrorCode::InvalidCredentials, "invalid email or password")
    }

    /// Names the permission the caller lacks, like Stripe: `missing permission: users:read`.
    pub fn forbidden(permission: &str) -> Self {
        Self::new(
            ErrorCode::Forbidden,
            format!("missing permission: {permission}"),
        )
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn conflict(field: &str, message: impl Into<String>) -> Self {
        AppError {
            code: ErrorCode::Conflict,
            message: message.into(),
            field: Some(field.into()),
            retry_after: None,
        }
    }

    /// Too many attempts: `Retry-After: retry_after_secs`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        AppError {
            retry_after: Some(retry_after_secs.max(1)),
            ..Self::new(
                ErrorCode::RateLimited,
                format!(
                    "too many attempts; try again in {} s",
                    retry_after_secs.max(1)
                ),
            )
        }
    }

    pub fn csrf() -> Self {
        Self::new(ErrorCode::CsrfRejected, "cross-site request refused")
    }

    /// Ours, not the caller's: an internal error, or a transient one (`unavailable`, retry).
    /// A caller folding refusals into an answer (bulk outcomes excepted) passes these on.
    pub fn is_server_fault(&self) -> bool {
        matches!(self.code, ErrorCode::Internal | ErrorCode::Unavailable)
    }

    /// Logs `cause` with a fresh error id and returns an opaque error naming only that id.
    #[cfg(feature = "ssr")]
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let error_id = crate::ssr::request_id::current();
        tracing::error!(%error_id, %cause, "internal error");
        Self::new(
            ErrorCode::Internal,
            format!("internal error (id {error_id})"),
        )
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    /// Failures of the server-function machinery itself: bad arguments are the caller's fault
    /// (400), the rest are ours and stay opaque.
    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        let err = match value {
            ServerFnErrorErr::Args(m)
            | ServerFnErrorErr::MissingArg(m)
            | ServerFnErrorErr::Deserialization(m) => {
                AppError::new(ErrorCode::InvalidInput, format!("malformed request: {m}"))
            }
            ServerFnErrorErr::Request(m) => AppError::new(
                ErrorCode::Internal,
                format!("could not reach the server: {m}"),
            ),
            #[cfg(feature = "ssr")]
            other => AppError::internal(other),
            #[cfg(not(feature = "ssr"))]
            other => AppError::new(ErrorCode::Internal, other.to_string()),
        };
        #[cfg(feature = "ssr")]
        crate::ssr::set_error_status(&err);
        err
    }
}

/// PostgreSQL's code for a lock wait cut short by `lock_timeout`.
#[cfg(feature = "ssr")]
pub const LOCK_NOT_AVAILABLE: &str = "55P03";

/// PostgreSQL's codes for a transaction that collided with another and was rolled back:
/// deadlock detected, serialization failure, lock not available (a `lock_timeout`).
#[cfg(feature = "ssr")]
const COLLIDED: [&str; 3] = ["40P01", "40001", LOCK_NOT_AVAILABLE];

/// Whether `e` is a database error with one of the SQLSTATE `codes`.
#[cfg(feature = "ssr")]
pub fn has_sqlstate(e: &sqlx::Error, codes: &[&str]) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| codes.contains(&code.as_ref()))
}

#[cfg(feature = "ssr")]
impl From<sqlx::Error> for AppError {
    /// A collision with another transaction is transient: the client is told to retry in a
    /// second (503, `unavailable`, `Retry-After`), and the operator's log has the cause. So is
    /// a pool with no connection free within its wait (the server is busy: 503, retry in a few
    /// seconds), not a fault of ours to hide behind an opaque 500. Anything else is an opaque
    /// internal error.
    fn from(e: sqlx::Error) -> Self {
        if matches!(e, sqlx::Error::PoolTimedOut) {
            let error_id = crate::ssr::request_id::current();
            tracing::warn!(%error_id, "no database connection free in time; client told to retry");
            return AppError {
                retry_after: Some(5),
                ..AppError::new(
                    ErrorCode::Unavailable,
                    "the server is busy; try again in a few seconds",
                )
            };
        }
        if !has_sqlstate(&e, &COLLIDED) {
            return AppError::internal(e);
        }
        let error_id = crate::ssr::request_id::current();
        tracing::warn!(%error_id, cause = %e, "transaction collided with another; client told to retry");
        AppError {
            retry_after: Some(1),
            ..AppError::new(
                ErrorCode::Unavailable,
                "the request collided with another change to the same data; try again in a second",
            )
        }
    }
}

/// The message an error answered with, as the client saw it (internal errors are opaque by
/// then), carried on the response for the request log.
#[cfg(feature = "ssr")]
#[derive(Clone, Debug)]
pub struct LoggedMessage(pub String);

#[cfg(feature = "ssr")]
impl LoggedMessage {
    /// Characters kept.
    pub const MAX: usize = 200;
}

#[cfg(feature = "ssr")]
impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        let status = http::StatusCode::from_u16(self.code.status())
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.retry_after;
        let code = self.code;
        let message = LoggedMessage(self.message.chars().take(LoggedMessage::MAX).collect());
        let mut response = (status, axum::Json(self)).into_response();
        // For the request log, which reads the code and message from the response.
        response.extensions_mut().insert(code);
        response.extensions_mut().insert(message);
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    /// A database error with a SQLSTATE, as sqlx hands one over.
    #[cfg(feature = "ssr")]
    #[derive(Debug)]
    struct Failed(&'static str);

    #[cfg(feature = "ssr")]
    impl std::fmt::Display for Failed {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "failed with {}", self.0)
        }
    }

    #[cfg(feature = "ssr")]
    impl std::error::Error for Failed {}

    #[cfg(feature = "ssr")]
    impl sqlx::error::DatabaseError for Failed {
        fn message(&self) -> &str {
            "failed"
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    #[cfg(feature = "ssr")]
    #[test]
    fn a_collision_is_retryable_and_anything_else_stays_opaque() {
        use super::{AppError, ErrorCode};
        for code in ["40P01", "40001", "55P03"] {
            let e = AppError::from(sqlx::Error::Database(Box::new(Failed(code))));
            assert_eq!(
                (e.code, e.retry_after),
                (ErrorCode::Unavailable, Some(1)),
                "{code}"
            );
            assert!(
                !e.message.contains(code),
                "no database detail: {}",
                e.message
            );
        }
        for code in ["23505", "42P01"] {
            let e = AppError::from(sqlx::Error::Database(Box::new(Failed(code))));
            assert_eq!(
                (e.code, e.retry_after),
                (ErrorCode::Internal, None),
                "{code}"
            );
        }
        let e = AppError::from(sqlx::Error::RowNotFound);
        assert_eq!(e.code, ErrorCode::Internal);
    }

    #[test]
    fn all_lists_every_code_once_in_declaration_order() {
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(*code as usize, i, "{code:?} out of place in ErrorCode::ALL");
        }
        assert_eq!(
            ErrorCode::ALL.last(),
            Some(&ErrorCode::Internal),
            "declare new codes before Internal, and list them in ALL"
        );
    }

    use super::*;

    #[test]
    fn wire_shape_is_the_error_envelope() {
        let e = AppError::forbidden("users:read");
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": {"code": "forbidden", "message": "missing permission: users:read"}})
        );
        let back: AppError = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn malformed_arguments_are_client_errors() {
        let e = AppError::from_server_fn_error(ServerFnErrorErr::Args("x".into()));
        assert_eq!(e.code, ErrorCode::InvalidInput);
        assert_eq!(e.code.status(), 400);
    }
}
