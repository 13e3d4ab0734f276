//! `/hotels/`: DRF ModelViewSet semantics in the request's tenant schema. Rocket ignores
//! a trailing slash when matching, so `/hotels` and `/hotels/`, `/hotels/1` and
//! `/hotels/1/` reach the same handlers.

use std::path::{Path, PathBuf};

use diesel_tenancy::rocket::ApiError;
use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::response::status::Created;
use rocket::serde::json::Json;
use rocket::{delete, get, patch, post, put, routes, uri, State};

use crate::body::{HotelInput, PictureInput};
use crate::config::MediaRoot;
use crate::model::{Changes, Hotel, NewHotel};
use crate::picture;
use crate::problem::Problem;
pub use crate::rows::Rows;

pub fn stage() -> AdHoc {
    AdHoc::on_ignite("Hotels", |rocket| async {
        rocket.mount(
            "/",
            routes![list, create, retrieve, replace, partial_update, destroy],
        )
    })
}

#[get("/hotels")]
async fn list(rows: Rows) -> Result<Json<Vec<Hotel>>, Problem> {
    rows.list().await.map(Json)
}

/// A segment that is not an id forwards, and the service answers 404 (`problem.rs`).
#[get("/hotels/<id>")]
async fn retrieve(rows: Rows, id: i64) -> Result<Json<Hotel>, Problem> {
    rows.get(id).await?.map(Json).ok_or_else(Problem::not_found)
}

/// The tenant of a route that takes a body: its error is answered only after the body
/// guard ran, which reads (or drains) the body, so that a client still sending gets the
/// 400 instead of a reset.
type TenantOf = Result<Rows, ApiError>;

#[post("/hotels", data = "<body>")]
async fn create(
    rows: TenantOf,
    body: Result<HotelInput, Problem>,
    media: &State<MediaRoot>,
) -> Result<Created<Json<Hotel>>, Problem> {
    let rows = rows?;
    let hotel = insert(&rows, body?, &media.0).await?;
    // DRF's URLs end with a slash (the routes match with or without it).
    let location = uri!(retrieve(hotel.id));
    let location = location.map_path(|p| format!("{p}/")).unwrap_or(location);
    let location = location.to_string();
    Ok(Created::new(location).body(Json(hotel)))
}

#[put("/hotels/<id>", data = "<body>")]
async fn replace(
    rows: TenantOf,
    id: i64,
    body: Result<HotelInput, Problem>,
    media: &State<MediaRoot>,
) -> Result<Json<Hotel>, Problem> {
    update(rows, id, body, &media.0).await
}

#[patch("/hotels/<id>", data = "<body>")]
async fn partial_update(
    rows: TenantOf,
    id: i64,
    body: Result<HotelInput, Problem>,
    media: &State<MediaRoot>,
) -> Result<Json<Hotel>, Problem> {
    update(rows, id, body, &media.0).await
}

/// PUT and PATCH: the body guard already applied the mode (all fields or any subset).
async fn update(
    rows: TenantOf,
    id: i64,
    body: Result<HotelInput, Problem>,
    media: &Path,
) -> Result<Json<Hotel>, Problem> {
    let rows = rows?;
    change(&rows, id, body?, media).await.map(Json)
}

#[delete("/hotels/<id>")]
async fn destroy(rows: Rows, id: i64, media: &State<MediaRoot>) -> Result<Status, Problem> {
    remove(&rows, id, &media.0).await?;
    Ok(Status::NoContent)
}

/// Creates a hotel from a validated body, storing its picture first (and removing it
/// again if the row cannot be written).
pub async fn insert(rows: &Rows, input: HotelInput, media: &Path) -> Result<Hotel, Problem> {
    let HotelInput { text, picture } = input;
    let schema = rows.schema().to_owned();
    let stored = store_picture(media, &schema, picture).await?;
    let new = NewHotel {
        name: text.name.unwrap_or_default(),
        location: text.location.unwrap_or_default(),
        description: text.description.unwrap_or_default(),
        picture: stored.clone().flatten(),
    };
    let result = rows.insert(new).await;
    if result.is_err() {
        discard(media, &schema, stored.flatten()).await;
    }
    result
}

/// Applies a validated body to hotel `id` (404 if there is none); a replaced or cleared
/// picture's file is removed.
pub async fn change(
    rows: &Rows,
    id: i64,
    input: HotelInput,
    media: &Path,
) -> Result<Hotel, Problem> {
    let HotelInput { text, picture } = input;
    let schema = rows.schema().to_owned();
    let stored = store_picture(media, &schema, picture).await?;
    let changes = Changes {
        name: text.name,
        location: text.location,
        description: text.description,
        picture: stored.clone(),
    };
    let result = rows.update(id, changes).await;
    match result {
        Ok(Some((before, after))) => {
            if before.is_some() && before != after.picture {
                discard(media, &schema, before).await;
            }
            Ok(after)
        }
        Ok(None) => {
            discard(media, &schema, stored.flatten()).await;
            Err(Problem::not_found())
        }
        Err(e) => {
            discard(media, &schema, stored.flatten()).await;
            Err(e)
        }
    }
}

/// Deletes hotel `id` (404 if there is none) and its picture's file.
pub async fn remove(rows: &Rows, id: i64, media: &Path) -> Result<Hotel, Problem> {
    let deleted = rows.delete(id).await?.ok_or_else(Problem::not_found)?;
    discard(media, rows.schema(), deleted.picture.clone()).await;
    Ok(deleted)
}

/// Writes a new picture: `None` keeps the current one, `Some(None)` clears it,
/// `Some(Some(path))` is the stored file.
async fn store_picture(
    media: &Path,
    schema: &str,
    input: PictureInput,
) -> Result<Option<Option<String>>, Problem> {
    match input {
        PictureInput::Keep => Ok(None),
        PictureInput::Clear => Ok(Some(None)),
        PictureInput::Set(pic) => {
            let (root, schema) = (media.to_path_buf(), schema.to_owned());
            rocket::tokio::task::spawn_blocking(move || picture::store(&root, &schema, &pic))
                .await
                .map_err(|e| Problem::internal("storing a picture", &e))?
                .map(|rel| Some(Some(rel)))
                .map_err(|e| Problem::internal("storing a picture", &e))
        }
    }
}

async fn discard(media: &Path, schema: &str, relative: Option<String>) {
    if let Some(rel) = relative {
        let (root, schema): (PathBuf, String) = (media.to_path_buf(), schema.to_owned());
        let _ = rocket::tokio::task::spawn_blocking(move || picture::remove(&root, &schema, &rel))
            .await;
    }
}
