//! Request bodies on the axum face: the checks of `body.rs` (kind, size, JSON shape),
//! read from an axum body. Forms (multipart, urlencoded) are the Rocket face's alone: here
//! they are 415.

use axum::body::Body;
use axum::http::{header, HeaderMap, Method};
use rocket::data::{ByteUnit, ToByteUnit};
use rocket::http::ContentType;
use serde_json::Value;

use crate::body::{self, HotelInput};
use crate::problem::Problem;
use crate::validate::{self, Mode};

/// The JSON limit (`limits.json` of the Rocket face's configuration).
fn json_limit() -> ByteUnit {
    1.mebibytes()
}

/// Reads a JSON document (an empty body is `{}`), after the content-type check; over the
/// limit is 413.
async fn read_json(headers: &HeaderMap, body: Body) -> Result<Value, Problem> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(ContentType::parse_flexible);
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok());
    // Without forms, every kind accepted is JSON.
    body::kind_of(content_type.as_ref(), length, false)?;
    let limit = json_limit();
    let max = usize::try_from(limit.as_u64()).unwrap_or(usize::MAX);
    let bytes = axum::body::to_bytes(body, max)
        .await
        .map_err(|_| body::too_large(limit))?;
    if bytes.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| Problem::bad_request(format!("JSON parse error - {e}")))
}

/// A validated hotel body: every field for POST and PUT, any of them for PATCH.
pub async fn hotel(
    method: &Method,
    headers: &HeaderMap,
    body: Body,
) -> Result<HotelInput, Problem> {
    let mode = if method == Method::PATCH {
        Mode::Partial
    } else {
        Mode::Full
    };
    body::hotel_from_json(&read_json(headers, body).await?, mode)
}

/// A JSON object body (the admin API).
pub async fn object(
    headers: &HeaderMap,
    body: Body,
) -> Result<serde_json::Map<String, Value>, Problem> {
    match read_json(headers, body).await? {
        Value::Object(map) => Ok(map),
        other => Err(Problem::Fields(validate::not_an_object(&other))),
    }
}
