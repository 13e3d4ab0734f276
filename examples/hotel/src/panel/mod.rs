//! The admin panel at `/admin`: server-rendered pages for tenants, domains and hotels
//! (the seed's Django-admin workflow), on the same crate API and the same hotel code as
//! the JSON routes.
//!
//! Mounted only when `HOTEL_ADMIN_TOKEN` is set, like the admin API: without it every
//! `/admin` URL is a 404. Logging in with the token opens a server-side session
//! (`session.rs`); every form carries that session's CSRF token. Pages are askama
//! templates (`templates/` of the hotel package), so every value is HTML-escaped.

/// The URL of a panel route, `uri!` under the panel's mount point ([`BASE`]).
macro_rules! panel_uri {
    ($($route:tt)*) => {
        rocket::uri!("/admin", $($route)*).to_string()
    };
}

mod domains;
mod hotels;
mod pages;
mod session;
mod tenants;

use askama::Template;
use rocket::fairing::AdHoc;
use rocket::http::{ContentType, Header, Status};
use rocket::response::content::RawCss;
use rocket::response::{self, Redirect, Responder};
use rocket::{catch, catchers, get, routes, Request};

use crate::problem::Problem;

pub use session::Sessions;

/// Where the panel lives.
pub const BASE: &str = "/admin";

pub fn stage(token: Option<String>) -> AdHoc {
    AdHoc::on_ignite("Admin panel", |rocket| async move {
        let Some(token) = token else {
            log::info!("admin panel off: set HOTEL_ADMIN_TOKEN to turn it on");
            return rocket;
        };
        rocket
            .manage(Sessions::new(token))
            .mount(BASE, routes![stylesheet])
            .mount(BASE, session::routes())
            .mount(BASE, tenants::routes())
            .mount(BASE, domains::routes())
            .mount(BASE, hotels::routes())
            .register(BASE, catchers![error_page, unparsed_segment])
    })
}

#[get("/admin.css")]
fn stylesheet() -> RawCss<&'static str> {
    RawCss(include_str!("admin.css"))
}

/// Any error status under `/admin` as a page rather than JSON.
#[catch(default)]
fn error_page(status: Status, _req: &Request<'_>) -> Html {
    PanelError::Status(status, default_message(status).into()).page()
}

/// A path segment that is not what its route takes (a hotel id that is not a number, a
/// picture path with `..`) makes the route forward, and Rocket then answers 422: there
/// is no such page.
#[catch(422)]
fn unparsed_segment() -> Html {
    PanelError::NotFound.page()
}

fn default_message(status: Status) -> &'static str {
    match status.code {
        403 => "This form was not accepted: its security token is missing or out of date. Go back, reload the page and try again.",
        404 => "There is nothing here.",
        413 => "That upload is too large (pictures are limited to 5 MiB).",
        503 => "The database cannot be reached right now. Try again in a moment.",
        400..=499 => "The request was not understood.",
        _ => "Something went wrong on the server; it has been logged.",
    }
}

/// An HTML page with its status and the panel's security headers.
pub struct Html {
    status: Status,
    body: String,
}

impl Html {
    fn render(template: &impl Template, status: Status) -> Result<Html, PanelError> {
        match template.render() {
            Ok(body) => Ok(Html { status, body }),
            Err(e) => Err(PanelError::from(Problem::internal("rendering a page", &e))),
        }
    }
}

impl<'r> Responder<'r, 'static> for Html {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        let mut response = (ContentType::HTML, self.body).respond_to(request)?;
        response.set_status(self.status);
        for (name, value) in [
            (
                "Content-Security-Policy",
                "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                 frame-ancestors 'none'; base-uri 'none'",
            ),
            ("X-Frame-Options", "DENY"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "same-origin"),
            ("Cache-Control", "no-store"),
        ] {
            response.set_header(Header::new(name, value));
        }
        Ok(response)
    }
}

/// What a panel handler answers: a page, or a redirect after a successful form.
pub enum Reply {
    Page(Html),
    /// 303 See Other to a path under `/admin`.
    SeeOther(String),
}

impl<'r> Responder<'r, 'static> for Reply {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        match self {
            Reply::Page(html) => html.respond_to(request),
            Reply::SeeOther(path) => Redirect::to(path).respond_to(request),
        }
    }
}

impl From<Html> for Reply {
    fn from(html: Html) -> Self {
        Reply::Page(html)
    }
}

/// A panel request that cannot be served.
#[derive(Debug)]
pub enum PanelError {
    /// A page asked for without a session: back to the login page.
    LoginNeeded,
    /// A form without a session or a valid CSRF token.
    Forbidden,
    NotFound,
    /// Any other status, with a message for the page.
    Status(Status, String),
}

impl PanelError {
    /// The status its page is sent with.
    pub fn status(&self) -> Status {
        self.parts().0
    }

    fn parts(&self) -> (Status, &str) {
        match self {
            PanelError::LoginNeeded => (Status::Unauthorized, "Log in first."),
            PanelError::Forbidden => (Status::Forbidden, default_message(Status::Forbidden)),
            PanelError::NotFound => (Status::NotFound, default_message(Status::NotFound)),
            PanelError::Status(status, message) => (*status, message.as_str()),
        }
    }

    fn page(&self) -> Html {
        let (status, message) = self.parts();
        let page = pages::ErrorPage {
            code: status.code,
            reason: status.reason_lossy(),
            message,
        };
        // The error page has no data that could fail to render; keep a plain fallback.
        let body = page
            .render()
            .unwrap_or_else(|_| format!("{} {}", status.code, status.reason_lossy()));
        Html { status, body }
    }
}

impl From<Problem> for PanelError {
    fn from(problem: Problem) -> Self {
        match problem {
            Problem::Detail(Status::NotFound, _) => PanelError::NotFound,
            Problem::Detail(status, detail) if status.code >= 500 => {
                let message = match status.code {
                    503 => default_message(status).to_owned(),
                    _ => detail,
                };
                PanelError::Status(status, message)
            }
            Problem::Detail(status, detail) => PanelError::Status(status, detail),
            Problem::Fields(errors) => {
                let text = errors
                    .iter()
                    .map(|(field, messages)| format!("{field}: {}", messages.join(" ")))
                    .collect::<Vec<_>>()
                    .join("; ");
                PanelError::Status(Status::BadRequest, text)
            }
            Problem::Unauthorized(detail) => {
                PanelError::Status(Status::Unauthorized, detail.into())
            }
        }
    }
}

impl From<diesel_tenancy::Error> for PanelError {
    fn from(e: diesel_tenancy::Error) -> Self {
        PanelError::from(Problem::from(e))
    }
}

impl<'r> Responder<'r, 'static> for PanelError {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        match self {
            PanelError::LoginNeeded => Redirect::to(BASE).respond_to(request),
            other => other.page().respond_to(request),
        }
    }
}
