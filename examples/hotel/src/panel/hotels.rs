//! Hotel pages of one tenant: create, edit (with picture upload) and delete, through
//! the same validation and storage code as the `/hotels` API, plus the pictures and
//! their thumbnails for logged-in admins.

use std::path::PathBuf;

use diesel_tenancy::rocket::Tenancy;
use diesel_tenancy::Tenant;
use rocket::form::{self, FromForm};
use rocket::fs::{NamedFile, TempFile};
use rocket::http::{ContentType, Header, Status};
use rocket::response::{self, Responder};
use rocket::{get, post, Request, Route, State};

use super::pages::{Errors, HotelInput, HotelPage, Layout, PictureLinks};
use super::session::{AdminSession, CsrfForm, CsrfOnly, Flash, Posted, Sessions};
use super::tenants::{find_tenant, pool, tenant_url};
use super::{Html, PanelError, Reply};
use crate::body::{self, HotelForm, PictureInput};
use crate::config::MediaRoot;
use crate::hotels::{self, Rows};
use crate::model::Hotel;
use crate::picture;
use crate::problem::Problem;
use crate::validate::Mode;

/// Thumbnails fit in this box (twice the size they are shown at, for sharp screens).
const THUMB_WIDTH: u32 = 160;
const THUMB_HEIGHT: u32 = 120;

pub fn routes() -> Vec<Route> {
    rocket::routes![new, create, edit, update, delete, full_picture, thumbnail]
}

/// Where the panel shows a stored picture (`relative` as stored in the row).
pub fn picture_url(schema: &str, relative: &str) -> String {
    panel_uri!(full_picture(schema, PathBuf::from(relative)))
}

/// Where the panel shows a stored picture's thumbnail.
pub fn thumb_url(schema: &str, relative: &str) -> String {
    panel_uri!(thumbnail(schema, PathBuf::from(relative)))
}

/// The edit page of a hotel.
fn hotel_url(schema: &str, id: i64) -> String {
    panel_uri!(edit(schema, id))
}

fn rows(tenancy: &Tenancy, tenant: &Tenant) -> Result<Rows, PanelError> {
    Ok(Rows::Chosen(pool(tenancy)?, tenant.schema_name.clone()))
}

async fn load(rows: &Rows, id: i64) -> Result<Hotel, PanelError> {
    rows.get(id).await?.ok_or(PanelError::NotFound)
}

/// The hotel form page: `hotel` is the stored row when editing.
fn form_page(
    layout: Layout,
    tenant: &Tenant,
    hotel: Option<&Hotel>,
    input: HotelInput,
    errors: Errors,
    status: Status,
) -> Result<Html, PanelError> {
    let schema = tenant.schema_name.as_str();
    let page = HotelPage {
        layout,
        tenant_name: tenant.name.clone(),
        schema: schema.to_owned(),
        id: hotel.map(|h| h.id),
        action: match hotel {
            Some(h) => hotel_url(schema, h.id),
            None => panel_uri!(create(schema)),
        },
        picture: hotel
            .and_then(|h| h.picture.as_deref())
            .map(|p| PictureLinks {
                full: picture_url(schema, p),
                thumb: thumb_url(schema, p),
            }),
        input,
        errors,
    };
    Html::render(&page, status)
}

#[get("/tenants/<schema>/hotels/new", rank = 1)]
async fn new(
    schema: &str,
    session: Result<AdminSession, PanelError>,
    sessions: &State<Sessions>,
    tenancy: &State<Tenancy>,
) -> Result<Html, PanelError> {
    let session = session?;
    let tenant = find_tenant(tenancy, schema).await?;
    let layout = sessions.layout(&session);
    form_page(
        layout,
        &tenant,
        None,
        HotelInput::default(),
        Errors::default(),
        Status::Ok,
    )
}

#[get("/tenants/<schema>/hotels/<id>", rank = 2)]
async fn edit(
    schema: &str,
    id: i64,
    session: Result<AdminSession, PanelError>,
    sessions: &State<Sessions>,
    tenancy: &State<Tenancy>,
) -> Result<Html, PanelError> {
    let session = session?;
    let tenant = find_tenant(tenancy, schema).await?;
    let hotel = load(&rows(tenancy, &tenant)?, id).await?;
    let input = HotelInput {
        name: hotel.name.clone(),
        location: hotel.location.clone(),
        description: hotel.description.clone(),
    };
    let layout = sessions.layout(&session);
    form_page(
        layout,
        &tenant,
        Some(&hotel),
        input,
        Errors::default(),
        Status::Ok,
    )
}

/// The hotel form as the panel posts it: the API's fields, the CSRF token, and a
/// checkbox to remove the current picture.
#[derive(FromForm)]
struct PanelHotelForm<'r> {
    csrf: Option<String>,
    name: form::Result<'r, String>,
    location: form::Result<'r, String>,
    description: form::Result<'r, String>,
    picture: form::Result<'r, TempFile<'r>>,
    /// A checkbox, off unless ticked: remove the current picture.
    clear_picture: bool,
}

impl CsrfForm for PanelHotelForm<'_> {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

/// The values to show again if the form has mistakes.
fn sent(form: &PanelHotelForm<'_>) -> HotelInput {
    let text = |f: &form::Result<'_, String>| f.as_deref().unwrap_or_default().to_owned();
    HotelInput {
        name: text(&form.name),
        location: text(&form.location),
        description: text(&form.description),
    }
}

/// Validates the form with the API's rules; `Err(Ok(errors))` are field messages for
/// the page, `Err(Err(_))` anything else (e.g. 413).
async fn check(form: PanelHotelForm<'_>) -> Result<body::HotelInput, Result<Errors, PanelError>> {
    let clear = form.clear_picture;
    let fields = HotelForm {
        name: form.name,
        location: form.location,
        description: form.description,
        picture: form.picture,
    };
    match body::check_form(Mode::Full, fields).await {
        Ok(mut input) => {
            if clear && matches!(input.picture, PictureInput::Keep) {
                input.picture = PictureInput::Clear;
            }
            Ok(input)
        }
        Err(Problem::Fields(errors)) => Err(Ok(Errors(errors))),
        Err(other) => Err(Err(other.into())),
    }
}

/// Saving the form failed: field messages go back on the page with 400.
fn with_errors(
    failure: Result<Errors, PanelError>,
    layout: Layout,
    tenant: &Tenant,
    hotel: Option<&Hotel>,
    input: HotelInput,
) -> Result<Reply, PanelError> {
    let errors = failure?;
    Ok(form_page(layout, tenant, hotel, input, errors, Status::BadRequest)?.into())
}

#[post("/tenants/<schema>/hotels", data = "<form>")]
async fn create(
    schema: &str,
    form: Result<Posted<PanelHotelForm<'_>>, PanelError>,
    sessions: &State<Sessions>,
    tenancy: &State<Tenancy>,
    media: &State<MediaRoot>,
) -> Result<Reply, PanelError> {
    let Posted { session, form } = form?;
    let tenant = find_tenant(tenancy, schema).await?;
    let input = sent(&form);
    let failure = match check(form).await {
        Ok(checked) => match hotels::insert(&rows(tenancy, &tenant)?, checked, &media.0).await {
            Ok(hotel) => {
                let text = format!("Hotel “{}” added to “{}”.", hotel.name, tenant.name);
                sessions.flash(&session, Flash::ok(text));
                return Ok(Reply::SeeOther(tenant_url(schema)));
            }
            Err(Problem::Fields(errors)) => Ok(Errors(errors)),
            Err(other) => Err(other.into()),
        },
        Err(failure) => failure,
    };
    with_errors(failure, sessions.layout(&session), &tenant, None, input)
}

#[post("/tenants/<schema>/hotels/<id>", data = "<form>")]
async fn update(
    schema: &str,
    id: i64,
    form: Result<Posted<PanelHotelForm<'_>>, PanelError>,
    sessions: &State<Sessions>,
    tenancy: &State<Tenancy>,
    media: &State<MediaRoot>,
) -> Result<Reply, PanelError> {
    let Posted { session, form } = form?;
    let tenant = find_tenant(tenancy, schema).await?;
    let rows = rows(tenancy, &tenant)?;
    let input = sent(&form);
    let failure = match check(form).await {
        Ok(checked) => match hotels::change(&rows, id, checked, &media.0).await {
            Ok(hotel) => {
                let text = format!("Hotel “{}” saved.", hotel.name);
                sessions.flash(&session, Flash::ok(text));
                return Ok(Reply::SeeOther(tenant_url(schema)));
            }
            Err(Problem::Fields(errors)) => Ok(Errors(errors)),
            Err(other) => Err(other.into()),
        },
        Err(failure) => failure,
    };
    let stored = load(&rows, id).await?;
    with_errors(
        failure,
        sessions.layout(&session),
        &tenant,
        Some(&stored),
        input,
    )
}

#[post("/tenants/<schema>/hotels/<id>/delete", data = "<form>")]
async fn delete(
    schema: &str,
    id: i64,
    form: Result<Posted<CsrfOnly>, PanelError>,
    sessions: &State<Sessions>,
    tenancy: &State<Tenancy>,
    media: &State<MediaRoot>,
) -> Result<Reply, PanelError> {
    let Posted { session, .. } = form?;
    let tenant = find_tenant(tenancy, schema).await?;
    let deleted = hotels::remove(&rows(tenancy, &tenant)?, id, &media.0).await?;
    let text = format!("Hotel “{}” deleted.", deleted.name);
    sessions.flash(&session, Flash::ok(text));
    Ok(Reply::SeeOther(tenant_url(schema)))
}

/// The file of a stored picture of a registered tenant, for a logged-in admin.
async fn stored_file(
    schema: &str,
    path: PathBuf,
    session: Result<AdminSession, PanelError>,
    tenancy: &Tenancy,
    media: &MediaRoot,
) -> Result<PathBuf, PanelError> {
    session?;
    let tenant = find_tenant(tenancy, schema).await?;
    let relative = path.to_string_lossy();
    picture::resolve(&media.0, tenant.schema_name.as_str(), &relative).ok_or(PanelError::NotFound)
}

/// A picture at full size (the panel links to it from the thumbnail).
#[get("/tenants/<schema>/media/<path..>")]
async fn full_picture(
    schema: &str,
    path: PathBuf,
    session: Result<AdminSession, PanelError>,
    tenancy: &State<Tenancy>,
    media: &State<MediaRoot>,
) -> Result<NamedFile, PanelError> {
    let file = stored_file(schema, path, session, tenancy, media).await?;
    NamedFile::open(file)
        .await
        .map_err(|_| PanelError::NotFound)
}

/// A PNG thumbnail; stored names are never reused, so browsers may keep it.
pub struct Thumbnail(Vec<u8>);

impl<'r> Responder<'r, 'static> for Thumbnail {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        let mut response = (ContentType::PNG, self.0).respond_to(request)?;
        response.set_header(Header::new("Cache-Control", "private, max-age=86400"));
        Ok(response)
    }
}

#[get("/tenants/<schema>/thumbs/<path..>")]
async fn thumbnail(
    schema: &str,
    path: PathBuf,
    session: Result<AdminSession, PanelError>,
    tenancy: &State<Tenancy>,
    media: &State<MediaRoot>,
) -> Result<Thumbnail, PanelError> {
    let file = stored_file(schema, path, session, tenancy, media).await?;
    let bytes = rocket::tokio::fs::read(file)
        .await
        .map_err(|_| PanelError::NotFound)?;
    let small = rocket::tokio::task::spawn_blocking(move || {
        picture::thumbnail(&bytes, THUMB_WIDTH, THUMB_HEIGHT)
    })
    .await
    .map_err(|e| PanelError::from(Problem::internal("making a thumbnail", &e)))?;
    small.map(Thumbnail).ok_or(PanelError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            thumb_url("demo1", "hotels/a_1.png"),
            "/admin/tenants/demo1/thumbs/hotels/a_1.png"
        );
        assert_eq!(
            picture_url("demo1", "hotels/a_1.png"),
            "/admin/tenants/demo1/media/hotels/a_1.png"
        );
        assert_eq!(hotel_url("demo1", 3), "/admin/tenants/demo1/hotels/3");
    }
}
