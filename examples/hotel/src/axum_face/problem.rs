//! [`Problem`] as an axum response: the same status, body and headers as the Rocket
//! face's responder.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::problem::Problem;

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status().code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = match &self {
            Problem::Detail(_, detail) => json!({ "detail": detail }),
            Problem::Fields(errors) => json!(errors),
            Problem::Unauthorized(detail) => json!({ "detail": detail }),
        };
        let mut response = (status, Json(body)).into_response();
        if matches!(self, Problem::Unauthorized(_)) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<diesel_tenancy::axum::ApiError> for Problem {
    fn from(api: diesel_tenancy::axum::ApiError) -> Self {
        let status = rocket::http::Status::new(api.status().as_u16());
        Problem::Detail(status, api.detail().to_owned())
    }
}

/// DRF's 404 body, for every path and method the service does not serve.
pub async fn not_found() -> Problem {
    Problem::not_found()
}
