//! The one error shape of the admin API: `{"error": "<code>", "message": "..."}`.

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use umbra_core::runtime::ControlError;
use umbra_store::StoreError;

/// An error answer: HTTP status, a stable machine code and a message for people.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 422 for a payload or parameter that is wrong; the message names the field.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong `Authorization: Bearer <token>` header",
        )
    }

    pub fn store_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "no comparison store is configured",
        )
    }

    pub fn store(err: &StoreError) -> Self {
        tracing::warn!(error = %err, "admin API: store request failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_error",
            format!("the comparison store failed: {err}"),
        )
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let message = e.to_string();
        match e {
            ControlError::NotFound(_) | ControlError::NoService(_) => {
                Self::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            ControlError::ReadOnly { .. } => Self::new(StatusCode::CONFLICT, "read_only", message),
            ControlError::Invalid(_) => Self::invalid(message),
            ControlError::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", message),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::store(&e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.code, "message": self.message })),
        )
            .into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
