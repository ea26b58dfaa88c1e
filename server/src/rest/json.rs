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
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(AppError::new(
                ErrorCode::InvalidInput,
                "send the body as JSON with Content-Type: application/json",
            )),
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
