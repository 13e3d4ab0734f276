//! Logging in and out, sessions and CSRF tokens.
//!
//! A login with the admin token opens a server-side session: a random 256-bit id in the
//! cookie `hotel_admin_session` (HttpOnly, SameSite=Strict, path `/admin`, Secure when
//! Rocket serves TLS), and a second random value, the session's CSRF token, that every
//! form carries in its `csrf` field. Sessions live in this process's memory, so a restart
//! logs everyone out and no signing key needs configuring. The login form itself is
//! protected the same way with a token held in the short-lived `hotel_admin_login` cookie.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rocket::data::{FromData, Outcome as DataOutcome};
use rocket::form::FromForm;
use rocket::http::{Cookie, CookieJar, SameSite, Status};
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest};
use rocket::{post, Data, Request, Route, State};

use super::pages::{Layout, Login};
use super::{Html, PanelError, Reply, BASE};
use crate::body::FormRefusal;
use crate::validate;

pub const SESSION_COOKIE: &str = "hotel_admin_session";
pub const LOGIN_COOKIE: &str = "hotel_admin_login";

/// How long a session lasts after logging in.
const LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);
/// At most this many open sessions; logging in beyond it ends the oldest.
const MAX_SESSIONS: usize = 256;

pub fn routes() -> Vec<Route> {
    rocket::routes![login, logout]
}

/// The admin token and the open sessions.
pub struct Sessions {
    token: String,
    open: Mutex<HashMap<String, Session>>,
}

struct Session {
    csrf: String,
    expires: Instant,
    flash: Option<Flash>,
}

/// A one-time message shown on the next page (after a redirect).
#[derive(Debug, Clone)]
pub struct Flash {
    /// `ok` or `error`: the CSS class.
    pub kind: &'static str,
    pub text: String,
}

impl Flash {
    pub fn ok(text: impl Into<String>) -> Flash {
        Flash {
            kind: "ok",
            text: text.into(),
        }
    }
}

/// A request from a logged-in admin.
#[derive(Debug, Clone)]
pub struct AdminSession {
    id: String,
    pub csrf: String,
}

/// 32 random bytes as hex.
fn random_token() -> Result<String, PanelError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| PanelError::from(crate::problem::Problem::internal("random token", &e)))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn looks_like_token(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Sessions {
    pub fn new(token: String) -> Sessions {
        Sessions {
            token,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a session; returns its id.
    fn open(&self) -> Result<String, PanelError> {
        let (id, csrf) = (random_token()?, random_token()?);
        let now = Instant::now();
        let mut open = self.lock();
        open.retain(|_, s| s.expires > now);
        while open.len() >= MAX_SESSIONS {
            let oldest = open
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(oldest) => open.remove(&oldest),
                None => break,
            };
        }
        let session = Session {
            csrf,
            expires: now + LIFETIME,
            flash: None,
        };
        open.insert(id.clone(), session);
        Ok(id)
    }

    fn find(&self, id: &str) -> Option<AdminSession> {
        let mut open = self.lock();
        match open.get(id) {
            Some(s) if s.expires > Instant::now() => Some(AdminSession {
                id: id.to_owned(),
                csrf: s.csrf.clone(),
            }),
            Some(_) => {
                open.remove(id);
                None
            }
            None => None,
        }
    }

    fn close(&self, session: &AdminSession) {
        self.lock().remove(&session.id);
    }

    /// Keeps `flash` for the session's next page.
    pub fn flash(&self, session: &AdminSession, flash: Flash) {
        if let Some(s) = self.lock().get_mut(&session.id) {
            s.flash = Some(flash);
        }
    }

    /// What every page of a logged-in admin shows: the CSRF token for its forms and the
    /// pending message, now taken.
    pub fn layout(&self, session: &AdminSession) -> Layout {
        let flash = self
            .lock()
            .get_mut(&session.id)
            .and_then(|s| s.flash.take());
        Layout {
            csrf: session.csrf.clone(),
            flash,
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AdminSession {
    type Error = PanelError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, PanelError> {
        let Some(sessions) = req.rocket().state::<Sessions>() else {
            return Outcome::Error((Status::NotFound, PanelError::NotFound));
        };
        let found = req
            .cookies()
            .get(SESSION_COOKIE)
            .and_then(|c| sessions.find(c.value()));
        match found {
            Some(session) => Outcome::Success(session),
            None => Outcome::Error((Status::Unauthorized, PanelError::LoginNeeded)),
        }
    }
}

/// A form that carries a CSRF token.
pub trait CsrfForm {
    fn csrf(&self) -> Option<&str>;
}

/// A form body, parsed: never fails as a guard, so the handler answers the error.
/// Anything that is not a readable form has no valid CSRF token, so it is a 403;
/// a body over its limit is a 413.
async fn parse_form<'r, T: FromForm<'r>>(
    req: &'r Request<'_>,
    data: Data<'r>,
) -> Result<T, PanelError> {
    crate::body::parse_form(req, data)
        .await
        .map_err(|refusal| match refusal {
            FormRefusal::TooLarge(p) => PanelError::from(p),
            FormRefusal::Invalid(_) => PanelError::Forbidden,
        })
}

/// A form posted by a logged-in admin with the session's CSRF token: the session is
/// checked before the body is read, then the token (in constant time). Take it as
/// `Result<Posted<T>, PanelError>` to answer the refusal as a page.
pub struct Posted<T> {
    pub session: AdminSession,
    pub form: T,
}

/// A data guard's outcome for `result`: the value, or the refusal with its status.
fn outcome<'r, T>(result: Result<T, PanelError>) -> DataOutcome<'r, T, PanelError> {
    match result {
        Ok(value) => Outcome::Success(value),
        Err(refusal) => Outcome::Error((refusal.status(), refusal)),
    }
}

#[rocket::async_trait]
impl<'r, T: FromForm<'r> + CsrfForm> FromData<'r> for Posted<T> {
    type Error = PanelError;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> DataOutcome<'r, Self> {
        let session = match AdminSession::from_request(req).await {
            Outcome::Success(session) => session,
            _ => {
                // Refused unread, but read to its end first (see `oversize`).
                crate::oversize::discard(req, data).await;
                return outcome(Err(PanelError::Forbidden));
            }
        };
        let result = parse_form::<T>(req, data).await.and_then(|form| {
            let presented = form.csrf().unwrap_or_default().as_bytes();
            if validate::same_secret(presented, session.csrf.as_bytes()) {
                Ok(Posted { session, form })
            } else {
                Err(PanelError::Forbidden)
            }
        });
        outcome(result)
    }
}

/// A form whose only field is the CSRF token (logout, delete buttons).
#[derive(FromForm)]
pub struct CsrfOnly {
    csrf: Option<String>,
}

impl CsrfForm for CsrfOnly {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

fn strict_cookie(name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path(BASE)
        .build()
}

/// The login page, with a login CSRF token kept in its cookie (reused while it lasts,
/// so two open login tabs both work).
pub fn login_page(
    cookies: &CookieJar<'_>,
    error: Option<&str>,
    status: Status,
) -> Result<Html, PanelError> {
    let csrf = match cookies.get(LOGIN_COOKIE).map(|c| c.value().to_owned()) {
        Some(token) if looks_like_token(&token) => token,
        _ => {
            let token = random_token()?;
            cookies.add(strict_cookie(LOGIN_COOKIE, token.clone()));
            token
        }
    };
    Html::render(&Login { csrf, error }, status)
}

/// The login form: its data guard reads it as every panel form is read (a body over its
/// limit is read to its end, then refused), without a session to check.
#[derive(FromForm)]
struct LoginForm {
    csrf: Option<String>,
    token: Option<String>,
}

#[rocket::async_trait]
impl<'r> FromData<'r> for LoginForm {
    type Error = PanelError;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> DataOutcome<'r, Self> {
        outcome(parse_form(req, data).await)
    }
}

#[post("/login", data = "<form>")]
fn login(
    form: Result<LoginForm, PanelError>,
    cookies: &CookieJar<'_>,
    sessions: &State<Sessions>,
) -> Result<Reply, PanelError> {
    let form = form?;
    let expected = cookies
        .get(LOGIN_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| looks_like_token(v))
        .ok_or(PanelError::Forbidden)?;
    let presented = form.csrf.as_deref().unwrap_or_default();
    if !validate::same_secret(presented.as_bytes(), expected.as_bytes()) {
        return Err(PanelError::Forbidden);
    }
    let token = form.token.as_deref().unwrap_or_default().trim();
    if !validate::same_secret(token.as_bytes(), sessions.token.as_bytes()) {
        let page = login_page(
            cookies,
            Some("That token is not right."),
            Status::Unauthorized,
        )?;
        return Ok(Reply::Page(page));
    }
    // A fresh id at each login; a session this browser already had ends here.
    if let Some(old) = cookies
        .get(SESSION_COOKIE)
        .and_then(|c| sessions.find(c.value()))
    {
        sessions.close(&old);
    }
    let id = sessions.open()?;
    cookies.remove(Cookie::build(LOGIN_COOKIE).path(BASE));
    cookies.add(strict_cookie(SESSION_COOKIE, id));
    Ok(Reply::SeeOther(BASE.into()))
}

#[post("/logout", data = "<form>")]
fn logout(
    form: Result<Posted<CsrfOnly>, PanelError>,
    cookies: &CookieJar<'_>,
    sessions: &State<Sessions>,
) -> Result<Reply, PanelError> {
    let Posted { session, .. } = form?;
    sessions.close(&session);
    cookies.remove(Cookie::build(SESSION_COOKIE).path(BASE));
    Ok(Reply::SeeOther(BASE.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert!(looks_like_token(&a) && looks_like_token(&b));
        assert_ne!(a, b);
        assert!(!looks_like_token("abc"));
        assert!(!looks_like_token(&"g".repeat(64)));
    }

    #[test]
    fn sessions_open_find_close_and_stay_bounded() {
        let sessions = Sessions::new("t".into());
        let id = sessions.open().unwrap();
        let found = sessions.find(&id).unwrap();
        assert!(looks_like_token(&found.csrf));
        assert_ne!(found.csrf, id);
        assert!(sessions.find("nope").is_none());

        sessions.flash(&found, Flash::ok("hi"));
        assert_eq!(sessions.layout(&found).flash.unwrap().text, "hi");
        assert!(sessions.layout(&found).flash.is_none());

        for _ in 0..MAX_SESSIONS + 5 {
            sessions.open().unwrap();
        }
        assert_eq!(sessions.lock().len(), MAX_SESSIONS);
        sessions.close(&found);
        assert!(sessions.find(&id).is_none());
    }
}
