//! [`Problem`]: every error the service answers, as a JSON body with a status.

use rocket::http::{Header, Status};
use rocket::response::{self, Responder};
use rocket::serde::json::{json, Json};
use rocket::Request;

use crate::validate::FieldErrors;

/// An error response: `{"detail": …}` or DRF's `{"<field>": ["…"]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Any status with `{"detail": …}`.
    Detail(Status, String),
    /// 400 with per-field messages.
    Fields(FieldErrors),
    /// 401 with `{"detail": …}` and `WWW-Authenticate: Bearer`.
    Unauthorized(&'static str),
}

impl Problem {
    pub fn new(status: Status, detail: impl Into<String>) -> Self {
        Problem::Detail(status, detail.into())
    }

    /// DRF's 404 body.
    pub fn not_found() -> Self {
        Problem::new(Status::NotFound, "Not found.")
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Problem::new(Status::BadRequest, detail)
    }

    pub fn field(field: &str, message: &str) -> Self {
        let mut errors = FieldErrors::new();
        errors.insert(field.to_owned(), vec![message.to_owned()]);
        Problem::Fields(errors)
    }

    /// A server-side failure: logged in full, answered with a generic 500 (or the
    /// crate's status for a database that cannot be reached).
    pub fn internal(context: &str, error: &dyn std::fmt::Display) -> Self {
        log::error!("{context}: {error}");
        Problem::new(Status::InternalServerError, "Internal server error.")
    }

    pub fn status(&self) -> Status {
        match self {
            Problem::Detail(status, _) => *status,
            Problem::Fields(_) => Status::BadRequest,
            Problem::Unauthorized(_) => Status::Unauthorized,
        }
    }
}

impl From<diesel_tenancy::Error> for Problem {
    fn from(e: diesel_tenancy::Error) -> Self {
        Problem::from(diesel_tenancy::rocket::ApiError::from(e))
    }
}

impl From<diesel_tenancy::rocket::ApiError> for Problem {
    fn from(api: diesel_tenancy::rocket::ApiError) -> Self {
        Problem::Detail(api.status(), api.detail().to_owned())
    }
}

impl From<diesel_tenancy::diesel::result::Error> for Problem {
    fn from(e: diesel_tenancy::diesel::result::Error) -> Self {
        Problem::from(diesel_tenancy::Error::from(e))
    }
}

impl<'r> Responder<'r, 'static> for Problem {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        let status = self.status();
        let body = match &self {
            Problem::Detail(_, detail) => json!({ "detail": detail }),
            Problem::Fields(errors) => json!(errors),
            Problem::Unauthorized(detail) => json!({ "detail": detail }),
        };
        let mut response = Json(body).respond_to(request)?;
        response.set_status(status);
        if matches!(self, Problem::Unauthorized(_)) {
            response.set_header(Header::new("WWW-Authenticate", "Bearer"));
        }
        Ok(response)
    }
}

/// JSON error bodies for every status: the crate's catchers (which keep a tenancy
/// guard's own detail, e.g. 400 `{"detail":"Tenant not found"}`), and DRF's 404 body.
pub fn stage() -> rocket::fairing::AdHoc {
    rocket::fairing::AdHoc::on_ignite("JSON errors", |rocket| async {
        rocket
            .register("/", diesel_tenancy::rocket::catchers())
            .register("/", rocket::catchers![not_found, unparsed_segment])
    })
}

#[rocket::catch(404)]
fn not_found() -> Problem {
    Problem::not_found()
}

/// A path segment that is not what its route takes (`/hotels/abc/`: not an id) makes the
/// route forward, and Rocket then answers 422; as in DRF, there is no such resource: 404.
#[rocket::catch(422)]
fn unparsed_segment() -> Problem {
    Problem::not_found()
}
