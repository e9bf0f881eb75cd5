//! The one place registry and request errors become HTTP statuses and JSON bodies:
//! `{"error": kind, "field"?: path, "message": text}`. Internal errors are logged with their
//! cause and answered with a generic message.

use http::StatusCode;
use serde_json::json;

use crate::model::Invalid;
use crate::store::StoreError;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    /// The status.
    pub status: StatusCode,
    /// The JSON body.
    pub body: serde_json::Value,
}

impl ApiError {
    /// An error without a field.
    pub fn new(status: StatusCode, kind: &str, message: impl std::fmt::Display) -> Self {
        ApiError {
            status,
            body: json!({"error": kind, "message": message.to_string()}),
        }
    }

    /// 400 naming the field.
    pub fn invalid(e: &Invalid) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({"error": "invalid", "field": e.field, "message": e.message}),
        }
    }

    /// 400 for a body that is not the expected JSON; serde names the field in its message
    /// (`missing field `name``, `unknown field `x``), which is lifted into `field`.
    pub fn bad_json(collection: &str, e: &serde_json::Error) -> Self {
        let message = e.to_string();
        let field = message
            .split_once("field `")
            .and_then(|(_, rest)| rest.split_once('`'))
            .map_or_else(
                || collection.to_owned(),
                |(f, _)| format!("{collection}.{f}"),
            );
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({"error": "invalid", "field": field, "message": message}),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::Invalid(i) => ApiError::invalid(i),
            StoreError::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, "not_found", &e),
            StoreError::Exists { .. } => ApiError::new(StatusCode::CONFLICT, "exists", &e),
            StoreError::InUse { .. } => ApiError::new(StatusCode::CONFLICT, "in_use", &e),
            _ => {
                tracing::error!(error = %e, "registry failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the registry failed; see the control log",
                )
            }
        }
    }
}
