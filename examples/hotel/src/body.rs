//! Request bodies: JSON, multipart or urlencoded forms, anything else 415; too big 413.

use rocket::data::{FromData, Outcome, ToByteUnit};
use rocket::form::{self, Form, FromForm};
use rocket::fs::TempFile;
use rocket::http::{ContentType, Method, Status};
use rocket::serde::json::Value;
use rocket::tokio::io::AsyncReadExt;
use rocket::{Data, Request};

use crate::oversize;
use crate::picture::{self, Picture};
use crate::problem::Problem;
use crate::validate::{self, FieldErrors, Mode, Raw, Text};

/// What to do with a hotel's picture.
#[derive(Debug)]
pub enum PictureInput {
    Keep,
    Clear,
    Set(Picture),
}

/// A validated hotel body: the data guard of a POST, PUT or PATCH on hotels (all fields
/// for POST and PUT, any of them for PATCH). Take it as `Result<HotelInput, Problem>`
/// to answer its exact error.
#[derive(Debug)]
pub struct HotelInput {
    pub text: Text,
    pub picture: PictureInput,
}

/// A JSON object body (the admin API); take it as `Result<JsonObject, Problem>`.
pub struct JsonObject(pub serde_json::Map<String, Value>);

/// A data guard's outcome for `result`: the value, or the problem with its status.
fn outcome<'r, T>(result: Result<T, Problem>) -> Outcome<'r, T, Problem> {
    match result {
        Ok(value) => Outcome::Success(value),
        Err(problem) => Outcome::Error((problem.status(), problem)),
    }
}

fn mode(req: &Request<'_>) -> Mode {
    if req.method() == Method::Patch {
        Mode::Partial
    } else {
        Mode::Full
    }
}

pub enum Kind {
    Json,
    Form,
}

/// The body's kind, or 415 (DRF's wording).
fn kind(req: &Request<'_>, forms: bool) -> Result<Kind, Problem> {
    kind_of(
        req.content_type(),
        req.headers().get_one("Content-Length"),
        forms,
    )
}

/// The kind of a body of `content_type` and `content_length` (headers), or 415 (DRF's
/// wording); forms only where `forms`. Shared by every face.
pub fn kind_of(
    content_type: Option<&ContentType>,
    content_length: Option<&str>,
    forms: bool,
) -> Result<Kind, Problem> {
    match content_type {
        Some(ct) if ct.is_json() => Ok(Kind::Json),
        Some(ct) if forms && (ct.is_form_data() || ct.is_form()) => Ok(Kind::Form),
        // No body and no type: an empty JSON object, so the fields are reported missing.
        None if content_length.is_none_or(|l| l.trim() == "0") => Ok(Kind::Json),
        other => Err(Problem::new(
            Status::UnsupportedMediaType,
            format!(
                "Unsupported media type \"{}\" in request.",
                other.map(ContentType::to_string).unwrap_or_default()
            ),
        )),
    }
}

/// The kind of a body, or its refusal (415) once the body was read and dropped.
async fn kind_or_discard<'r>(
    req: &Request<'_>,
    data: Data<'r>,
    forms: bool,
) -> Result<(Kind, Data<'r>), Problem> {
    match kind(req, forms) {
        Ok(kind) => Ok((kind, data)),
        Err(problem) => {
            oversize::discard(req, data).await;
            Err(problem)
        }
    }
}

/// Reads a JSON document within the `json` limit; a longer body is read to its end
/// (up to the drain cap) before its 413.
async fn read_json(req: &Request<'_>, data: Data<'_>) -> Result<Value, Problem> {
    let limit = req.limits().get("json").unwrap_or(1.mebibytes());
    if oversize::declared_over(req, limit) {
        oversize::discard(req, data).await;
        return Err(too_large(limit));
    }
    let mut stream = oversize::open(data, limit);
    let bytes = oversize::read_up_to(&mut stream, limit)
        .await
        .map_err(|e| Problem::bad_request(format!("Could not read the request body: {e}")))?;
    if bytes.len() as u64 > limit.as_u64() {
        oversize::discard_rest(req, stream, bytes.len()).await;
        return Err(too_large(limit));
    }
    if bytes.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| Problem::bad_request(format!("JSON parse error - {e}")))
}

pub fn too_large(limit: rocket::data::ByteUnit) -> Problem {
    Problem::new(
        Status::PayloadTooLarge,
        format!("Request body is too large (the limit is {limit})."),
    )
}

#[rocket::async_trait]
impl<'r> FromData<'r> for JsonObject {
    type Error = Problem;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> Outcome<'r, Self> {
        let result = match kind_or_discard(req, data, false).await {
            Ok((_, data)) => match read_json(req, data).await {
                Ok(Value::Object(map)) => Ok(map),
                Ok(other) => Err(Problem::Fields(validate::not_an_object(&other))),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        outcome(result.map(JsonObject))
    }
}

#[rocket::async_trait]
impl<'r> FromData<'r> for HotelInput {
    type Error = Problem;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> Outcome<'r, Self> {
        let result = match kind_or_discard(req, data, true).await {
            Ok((Kind::Json, data)) => from_json(req, data).await,
            Ok((Kind::Form, data)) => from_form(req, data).await,
            Err(e) => Err(e),
        };
        outcome(result)
    }
}

async fn from_json(req: &Request<'_>, data: Data<'_>) -> Result<HotelInput, Problem> {
    let value = read_json(req, data).await?;
    hotel_from_json(&value, mode(req))
}

/// Validates a JSON hotel body (every face).
pub fn hotel_from_json(value: &Value, mode: Mode) -> Result<HotelInput, Problem> {
    let Value::Object(object) = value else {
        return Err(Problem::Fields(validate::not_an_object(value)));
    };
    let mut errors = FieldErrors::new();
    let text = validate::text_fields(mode, &mut errors, |f| validate::raw_json(object.get(f)));
    let picture = match object.get("picture") {
        None => PictureInput::Keep,
        Some(Value::Null) => PictureInput::Clear,
        Some(_) => {
            errors.insert("picture".into(), vec![validate::NOT_A_FILE.into()]);
            PictureInput::Keep
        }
    };
    if errors.is_empty() {
        Ok(HotelInput { text, picture })
    } else {
        Err(Problem::Fields(errors))
    }
}

/// A hotel's form fields, as multipart (the API) or the admin panel's form sends them.
#[derive(FromForm)]
pub struct HotelForm<'r> {
    pub name: form::Result<'r, String>,
    pub location: form::Result<'r, String>,
    pub description: form::Result<'r, String>,
    pub picture: form::Result<'r, TempFile<'r>>,
}

fn is_missing(errors: &form::Errors<'_>) -> bool {
    errors
        .iter()
        .all(|e| matches!(e.kind, form::error::ErrorKind::Missing))
}

/// Rocket also reports a truncated (malformed) multipart stream as 413; only a length
/// over a known limit is the client's oversized body.
fn over_limit(error: &form::Error<'_>) -> bool {
    use form::error::ErrorKind::InvalidLength;
    error.status() == Status::PayloadTooLarge
        && !matches!(error.kind, InvalidLength { max: None, .. })
}

fn form_too_large() -> Problem {
    Problem::new(
        Status::PayloadTooLarge,
        "Request body is too large (forms are limited to 6 MiB, pictures to 5 MiB).",
    )
}

/// A form body declared over its limit: multipart (6 MiB) or urlencoded (32 KiB).
fn declared_too_large(req: &Request<'_>) -> Problem {
    if req.content_type().is_some_and(|ct| ct.is_form_data()) {
        form_too_large()
    } else {
        too_large(oversize::form_limit(req))
    }
}

pub fn form_problem(errors: &form::Errors<'_>) -> Problem {
    if errors.iter().any(over_limit) {
        form_too_large()
    } else {
        let first = errors.iter().next().map(ToString::to_string);
        Problem::bad_request(format!(
            "Multipart form parse error - {}",
            first.unwrap_or_else(|| "invalid form".into())
        ))
    }
}

/// Parses a form body of type `T`; a body declared over its limit is read to its end
/// (up to the drain cap) and refused without being parsed.
pub async fn parse_form<'r, T: FromForm<'r>>(
    req: &'r Request<'_>,
    data: Data<'r>,
) -> Result<T, FormRefusal<'r>> {
    if oversize::declared_over(req, oversize::form_limit(req)) {
        oversize::discard(req, data).await;
        return Err(FormRefusal::TooLarge(declared_too_large(req)));
    }
    match Form::<T>::from_data(req, data).await {
        Outcome::Success(form) => Ok(form.into_inner()),
        Outcome::Error((_, errors)) => match form_problem(&errors) {
            p if p.status() == Status::PayloadTooLarge => Err(FormRefusal::TooLarge(p)),
            _ => Err(FormRefusal::Invalid(errors)),
        },
        Outcome::Forward(_) => Err(FormRefusal::Invalid(form::Errors::new())),
    }
}

/// Why a form body was not parsed.
pub enum FormRefusal<'r> {
    /// Over its limit: a 413.
    TooLarge(Problem),
    /// Not a readable form of that type.
    Invalid(form::Errors<'r>),
}

async fn from_form<'r>(req: &'r Request<'_>, data: Data<'r>) -> Result<HotelInput, Problem> {
    let form = match parse_form::<HotelForm<'r>>(req, data).await {
        Ok(form) => form,
        Err(FormRefusal::TooLarge(p)) => return Err(p),
        Err(FormRefusal::Invalid(errors)) if errors.is_empty() => {
            return Err(Problem::bad_request("Multipart form parse error"))
        }
        Err(FormRefusal::Invalid(errors)) => return Err(form_problem(&errors)),
    };
    check_form(mode(req), form).await
}

/// Validates a parsed hotel form: 413 for a field over its size limit, else the
/// field messages (400) or the input.
pub async fn check_form(mode: Mode, form: HotelForm<'_>) -> Result<HotelInput, Problem> {
    // A field that failed for its size is the body's fault: 413 before any 400.
    for field in [&form.name, &form.location, &form.description] {
        if let Err(e) = field {
            if !is_missing(e) {
                return Err(form_problem(e));
            }
        }
    }
    let mut errors = FieldErrors::new();
    let text = validate::text_fields(mode, &mut errors, |f| {
        let value = match f {
            "name" => &form.name,
            "location" => &form.location,
            _ => &form.description,
        };
        match value {
            Ok(s) => Raw::Str(s),
            Err(_) => Raw::Missing,
        }
    });
    let picture = match form.picture {
        Err(e) if is_missing(&e) => PictureInput::Keep,
        Err(e) => return Err(form_problem(&e)),
        // A form without a chosen file sends an empty part without a name.
        Ok(file) if file.len() == 0 && file.name().is_none() => PictureInput::Keep,
        Ok(file) => match read_picture(&file).await {
            Ok(p) => PictureInput::Set(p),
            Err(message) => {
                errors.insert("picture".into(), vec![message.to_owned()]);
                PictureInput::Keep
            }
        },
    };
    if errors.is_empty() {
        Ok(HotelInput { text, picture })
    } else {
        Err(Problem::Fields(errors))
    }
}

/// Reads an uploaded file and checks it on a blocking thread.
async fn read_picture(file: &TempFile<'_>) -> Result<Picture, &'static str> {
    if file.len() > picture::MAX_BYTES {
        return Err(picture::TOO_BIG);
    }
    let mut bytes = Vec::with_capacity(file.len() as usize);
    let mut reader = file.open().await.map_err(|_| picture::INVALID)?;
    reader
        .read_to_end(&mut bytes)
        .await
        .map_err(|_| picture::INVALID)?;
    let name = file.name().map(str::to_owned);
    rocket::tokio::task::spawn_blocking(move || picture::check(bytes, name.as_deref()))
        .await
        .map_err(|_| picture::INVALID)?
}
