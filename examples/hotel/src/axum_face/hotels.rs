//! `/hotels/` on the axum face: the Rocket face's API (DRF ModelViewSet semantics), each
//! query awaited on the async pool in the request's tenant scope.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use diesel_tenancy::axum::{ApiError, TenantDb};

use super::body;
use super::problem::not_found;
use crate::body::{HotelInput, PictureInput};
use crate::model::{Changes, Hotel, NewHotel};
use crate::model_async;
use crate::picture;
use crate::problem::Problem;

/// The hotel routes; Rocket ignores a trailing slash, so both spellings are served.
pub fn routes(media: PathBuf) -> Router {
    let collection = || get(list).post(create).fallback(not_found);
    let member = || {
        get(retrieve)
            .put(update)
            .patch(update)
            .delete(destroy)
            .fallback(not_found)
    };
    Router::new()
        .route("/hotels", collection())
        .route("/hotels/", collection())
        .route("/hotels/{id}", member())
        .route("/hotels/{id}/", member())
        .with_state(media)
}

/// An id segment; anything else is no such resource (404), as on the Rocket face.
fn id(segment: &str) -> Result<i64, Problem> {
    segment.parse().map_err(|_| Problem::not_found())
}

/// The list, its query pipelined with the checkout.
async fn list(db: TenantDb) -> Result<Json<Vec<Hotel>>, Problem> {
    // The query leaves with the checkout, in one round trip.
    let (conn, hotels) = db.checkout_with(model_async::list_first).await?;
    let hotels = hotels?;
    conn.commit().await?;
    Ok(Json(hotels))
}

async fn retrieve(db: TenantDb, Path(segment): Path<String>) -> Result<Json<Hotel>, Problem> {
    let id = id(&segment)?;
    let (conn, hotel) = db.checkout_with(|c| model_async::get_first(c, id)).await?;
    let hotel = hotel?;
    conn.commit().await?;
    hotel.map(Json).ok_or_else(Problem::not_found)
}

/// The body is read before the tenant's error is answered, as on the Rocket face.
async fn create(
    db: Result<TenantDb, ApiError>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let input = body::hotel(&method, &headers, body).await;
    let db = db?;
    // A JSON body keeps or clears the picture: a new hotel has none either way.
    let HotelInput { text, .. } = input?;
    let new = NewHotel {
        name: text.name.unwrap_or_default(),
        location: text.location.unwrap_or_default(),
        description: text.description.unwrap_or_default(),
        picture: None,
    };
    let (conn, hotel) = db
        .checkout_with(|c| model_async::insert_first(c, new.clone()))
        .await?;
    let hotel = hotel?;
    conn.commit().await?;
    // DRF's URLs end with a slash.
    let location = format!("/hotels/{}/", hotel.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(hotel),
    )
        .into_response())
}

/// PUT and PATCH: the body's mode follows the method (all fields, or any subset).
async fn update(
    State(media): State<PathBuf>,
    db: Result<TenantDb, ApiError>,
    Path(segment): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Hotel>, Problem> {
    let input = body::hotel(&method, &headers, body).await;
    let db = db?;
    let id = id(&segment)?;
    let HotelInput { text, picture } = input?;
    let changes = Changes {
        name: text.name,
        location: text.location,
        description: text.description,
        picture: match picture {
            PictureInput::Clear => Some(None),
            PictureInput::Keep | PictureInput::Set(_) => None,
        },
    };
    let mut conn = db.checkout().await?;
    let (old_picture, after) = model_async::update(&mut conn, id, &changes)
        .await?
        .ok_or_else(Problem::not_found)?;
    conn.commit().await?;
    if old_picture.is_some() && old_picture != after.picture {
        discard(media, db.tenant().schema(), old_picture).await;
    }
    Ok(Json(after))
}

async fn destroy(
    State(media): State<PathBuf>,
    db: TenantDb,
    Path(segment): Path<String>,
) -> Result<StatusCode, Problem> {
    let id = id(&segment)?;
    let mut conn = db.checkout().await?;
    let deleted = model_async::delete(&mut conn, id)
        .await?
        .ok_or_else(Problem::not_found)?;
    conn.commit().await?;
    discard(media, db.tenant().schema(), deleted.picture).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a picture's file that no row names any more.
async fn discard(media: PathBuf, schema: &str, relative: Option<String>) {
    if let Some(rel) = relative {
        let schema = schema.to_owned();
        let _ = tokio::task::spawn_blocking(move || picture::remove(&media, &schema, &rel)).await;
    }
}
