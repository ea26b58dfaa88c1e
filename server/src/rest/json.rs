//! A JSON body extractor whose refusals are Keyward errors (`{"error":{…}}`), not axum's plain
//! text.

use app::error::{AppError, ErrorCode};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(AppError::new(
                ErrorCode::InvalidInput,
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let ApiBytes(bytes) = ApiBytes::from_request(req, state).await?;
        if app::ssr::nul::in_json(&bytes) {
            return Err(app::ssr::nul::refused());
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::BytesRejection(_)) => Err(AppError::new(
                ErrorCode::PayloadTooLarge,
                "the request body is too large",
            )),
            Err(e) => Err(AppError::new(
                ErrorCode::InvalidInput,
                format!("invalid JSON body: {}", e.body_text()),
            )),
        }
    }
}

/// `application/json`, or another `application/…+json` type (what axum's `Json` accepts).
fn json_content_type(headers: &http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A query-string extractor whose refusals are Keyward errors.
pub struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|e| {
                AppError::new(
                    ErrorCode::InvalidInput,
                    format!("invalid query string: {}", e.body_text()),
                )
            })
    }
}

/// The raw body, with a Keyward 413 when it is over the route's limit.
pub struct ApiBytes(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(ApiBytes)
            .map_err(|_| AppError::new(ErrorCode::PayloadTooLarge, "the request body is too large"))
    }
}
