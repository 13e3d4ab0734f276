//! `/hotels/`: DRF ModelViewSet semantics in the request's tenant schema. Rocket ignores
//! a trailing slash when matching, so `/hotels` and `/hotels/`, `/hotels/1` and
//! `/hotels/1/` reach the same handlers.

use std::path::PathBuf;

use diesel_tenancy::rocket::TenantDb;
use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::response::status::Created;
use rocket::serde::json::Json;
use rocket::{delete, get, patch, post, put, routes, State};

use crate::body::{HotelBody, HotelInput, PictureInput};
use crate::config::MediaRoot;
use crate::model::{self, Changes, Hotel, NewHotel};
use crate::picture;
use crate::problem::Problem;

pub fn stage() -> AdHoc {
    AdHoc::on_ignite("Hotels", |rocket| async {
        rocket.mount(
            "/",
            routes![list, create, retrieve, replace, partial_update, destroy],
        )
    })
}

/// A hotel id from the path; anything else is a 404, as in DRF.
fn parse_id(raw: &str) -> Result<i64, Problem> {
    raw.parse::<i64>().map_err(|_| Problem::not_found())
}

#[get("/hotels")]
async fn list(db: TenantDb) -> Result<Json<Vec<Hotel>>, Problem> {
    db.run(|conn| model::list(conn).map_err(Problem::from))
        .await
        .map(Json)
}

#[get("/hotels/<id>")]
async fn retrieve(db: TenantDb, id: &str) -> Result<Json<Hotel>, Problem> {
    let id = parse_id(id)?;
    db.run(move |conn| model::get(conn, id).map_err(Problem::from))
        .await?
        .map(Json)
        .ok_or_else(Problem::not_found)
}

#[post("/hotels", data = "<body>")]
async fn create(
    db: TenantDb,
    body: HotelBody,
    media: &State<MediaRoot>,
) -> Result<Created<Json<Hotel>>, Problem> {
    let HotelInput { text, picture } = body.0?;
    let schema = db.tenant().schema().to_owned();
    let stored = store_picture(&media.0, &schema, picture).await?;
    let new = NewHotel {
        name: text.name.unwrap_or_default(),
        location: text.location.unwrap_or_default(),
        description: text.description.unwrap_or_default(),
        picture: stored.clone().flatten(),
    };
    match db
        .run(move |conn| model::insert(conn, &new).map_err(Problem::from))
        .await
    {
        Ok(hotel) => {
            let location = format!("/hotels/{}/", hotel.id);
            Ok(Created::new(location).body(Json(hotel)))
        }
        Err(e) => {
            discard(&media.0, &schema, stored.flatten()).await;
            Err(e)
        }
    }
}

#[put("/hotels/<id>", data = "<body>")]
async fn replace(
    db: TenantDb,
    id: &str,
    body: HotelBody,
    media: &State<MediaRoot>,
) -> Result<Json<Hotel>, Problem> {
    update(db, id, body, &media.0).await
}

#[patch("/hotels/<id>", data = "<body>")]
async fn partial_update(
    db: TenantDb,
    id: &str,
    body: HotelBody,
    media: &State<MediaRoot>,
) -> Result<Json<Hotel>, Problem> {
    update(db, id, body, &media.0).await
}

/// PUT and PATCH: the body guard already applied the mode (all fields or any subset).
async fn update(
    db: TenantDb,
    id: &str,
    body: HotelBody,
    media: &std::path::Path,
) -> Result<Json<Hotel>, Problem> {
    let id = parse_id(id)?;
    let HotelInput { text, picture } = body.0?;
    let schema = db.tenant().schema().to_owned();
    let stored = store_picture(media, &schema, picture).await?;
    let changes = Changes {
        name: text.name,
        location: text.location,
        description: text.description,
        picture: stored.clone(),
    };
    let result = db
        .run(move |conn| model::update(conn, id, &changes).map_err(Problem::from))
        .await;
    match result {
        Ok(Some((before, after))) => {
            if before.picture.is_some() && before.picture != after.picture {
                discard(media, &schema, before.picture).await;
            }
            Ok(Json(after))
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

#[delete("/hotels/<id>")]
async fn destroy(db: TenantDb, id: &str, media: &State<MediaRoot>) -> Result<Status, Problem> {
    let id = parse_id(id)?;
    let schema = db.tenant().schema().to_owned();
    let deleted = db
        .run(move |conn| model::delete(conn, id).map_err(Problem::from))
        .await?
        .ok_or_else(Problem::not_found)?;
    discard(&media.0, &schema, deleted.picture).await;
    Ok(Status::NoContent)
}

/// Writes a new picture: `None` keeps the current one, `Some(None)` clears it,
/// `Some(Some(path))` is the stored file.
async fn store_picture(
    media: &std::path::Path,
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

async fn discard(media: &std::path::Path, schema: &str, relative: Option<String>) {
    if let Some(rel) = relative {
        let (root, schema): (PathBuf, String) = (media.to_path_buf(), schema.to_owned());
        let _ = rocket::tokio::task::spawn_blocking(move || picture::remove(&root, &schema, &rel))
            .await;
    }
}
