//! The HTTP error of every route (the workflow API, the prediction endpoints, the admin routes):
//! the one place where errors become status codes. Client faults are 4xx with a message that
//! names the field; anything else is logged once here and answered with a bare 500.

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error as the client sees it.
#[derive(Debug)]
pub enum HttpError {
    /// 400: the request is wrong; the message names the field.
    BadRequest(String),
    /// 401: no token, or an unknown one.
    Unauthorized(String),
    /// 403: a token without the scope.
    Forbidden(String),
    /// 404.
    NotFound(String),
    /// 409: the current state forbids it.
    Conflict(String),
    /// A body axum refused to read (too large): its own status.
    Rejected { status: StatusCode, message: String },
    /// 503: try again later (after `retry_after` seconds when given).
    Unavailable {
        message: String,
        retry_after: Option<u32>,
    },
    /// 500: logged where it was made; the client learns nothing of it.
    Internal,
}

impl HttpError {
    /// An internal failure: logged once, here.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "request failed");
        Self::Internal
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Rejected { status, .. } => *status,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl HttpError {
    /// What the client is told.
    pub fn message(&self) -> String {
        match self {
            Self::BadRequest(m)
            | Self::Unauthorized(m)
            | Self::Forbidden(m)
            | Self::NotFound(m)
            | Self::Conflict(m)
            | Self::Rejected { message: m, .. }
            | Self::Unavailable { message: m, .. } => m.clone(),
            Self::Internal => "internal error".to_owned(),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (message, retry_after) = match self {
            Self::BadRequest(m)
            | Self::Unauthorized(m)
            | Self::Forbidden(m)
            | Self::NotFound(m)
            | Self::Conflict(m)
            | Self::Rejected { message: m, .. } => (m, None),
            Self::Unavailable {
                message,
                retry_after,
            } => (message, retry_after),
            Self::Internal => ("internal error".to_owned(), None),
        };
        let mut response = (status, Json(json!({"error": message}))).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<ops::Error> for HttpError {
    fn from(err: ops::Error) -> Self {
        use ops::Error as E;
        match err {
            E::InvalidInput { .. } => Self::BadRequest(err.to_string()),
            E::NotFound { .. } => Self::NotFound(err.to_string()),
            E::Conflict(_) => Self::Conflict(err.to_string()),
            E::Unavailable(_) => {
                tracing::warn!(error = %err, "request failed: a dependency is unavailable");
                Self::Unavailable {
                    message: "a dependency is unavailable; retry shortly".into(),
                    retry_after: Some(1),
                }
            }
            E::Reconciliation(_) | E::TrainingFailed(_) | E::Failed(_) => Self::internal(err),
        }
    }
}

impl From<crate::orchestrator::Error> for HttpError {
    /// Through the operations' error: the workflow operations' one mapping.
    fn from(err: crate::orchestrator::Error) -> Self {
        ops::Error::from(err).into()
    }
}

impl From<crate::serving::Error> for HttpError {
    fn from(err: crate::serving::Error) -> Self {
        use crate::serving::Error as E;
        match err {
            E::Invalid(message) => Self::BadRequest(message),
            E::NotFound(message) => Self::NotFound(message),
            E::Registry(err) => ops::Error::from(err).into(),
            E::Catalog(err) => ops::Error::from(err).into(),
            E::Database(_) => Self::internal(err),
        }
    }
}

impl From<JsonRejection> for HttpError {
    /// A JSON body that cannot be read (not JSON, a missing or mistyped field) is a 400.
    fn from(rejection: JsonRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}

impl From<QueryRejection> for HttpError {
    /// A query string that cannot be read (`?limit=many`) is a 400, in JSON like every error.
    fn from(rejection: QueryRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}

impl From<PathRejection> for HttpError {
    /// A path segment of the wrong type (`/deliveries/abc/retry`) is a 400.
    fn from(rejection: PathRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}

impl From<BytesRejection> for HttpError {
    fn from(rejection: BytesRejection) -> Self {
        Self::Rejected {
            status: rejection.status(),
            message: rejection.body_text(),
        }
    }
}
