//! The `hotels` queries of `model.rs` on diesel-async, for the async Rocket face
//! (`HOTEL_FACE=rocket-async`): the handler awaits them on the request's own task.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel_tenancy::diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::future::{BoxFuture, FutureExt};

use crate::model::{hotels, Changes, Hotel, NewHotel};

/// The hotels in id order, as the first query of a checkout (`checkout_with`): sent with
/// the checkout message, in its round trip.
pub fn list_first(conn: &AsyncPgConnection) -> BoxFuture<'_, QueryResult<Vec<Hotel>>> {
    async move {
        let mut conn = conn;
        hotels::table
            .order(hotels::id)
            .select(Hotel::as_select())
            .load(&mut conn)
            .await
    }
    .boxed()
}

/// Hotel `id`, if there is one, as the first query of a checkout.
pub fn get_first(conn: &AsyncPgConnection, id: i64) -> BoxFuture<'_, QueryResult<Option<Hotel>>> {
    async move {
        let mut conn = conn;
        hotels::table
            .find(id)
            .select(Hotel::as_select())
            .first(&mut conn)
            .await
            .optional()
    }
    .boxed()
}

/// Writes a new hotel, as the first query of a checkout (it owns its row: a checkout may
/// call it again on another connection).
pub fn insert_first(conn: &AsyncPgConnection, new: NewHotel) -> BoxFuture<'_, QueryResult<Hotel>> {
    async move {
        let mut conn = conn;
        diesel::insert_into(hotels::table)
            .values(&new)
            .returning(Hotel::as_returning())
            .get_result(&mut conn)
            .await
    }
    .boxed()
}

/// A row of [`update`]: the hotel after the change, and its picture before.
#[derive(QueryableByName)]
struct Updated {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    location: String,
    #[diesel(sql_type = Text)]
    description: String,
    #[diesel(sql_type = Nullable<Text>)]
    picture: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    old_picture: Option<String>,
}

/// Applies `changes` in one statement (the row locked, the old picture read in the same
/// statement, so no transaction is opened on the scoped connection); returns the old
/// picture and the row after, or `None` if there is no such hotel.
pub async fn update(
    conn: &mut AsyncPgConnection,
    id: i64,
    changes: &Changes,
) -> QueryResult<Option<(Option<String>, Hotel)>> {
    let row: Option<Updated> = diesel::sql_query(
        "UPDATE hotels AS h SET \
           name = coalesce($2, h.name), \
           location = coalesce($3, h.location), \
           description = coalesce($4, h.description), \
           picture = CASE WHEN $5 THEN $6 ELSE h.picture END \
         FROM (SELECT id, picture FROM hotels WHERE id = $1 FOR UPDATE) AS old \
         WHERE h.id = old.id \
         RETURNING h.id, h.name, h.location, h.description, h.picture, \
           old.picture AS old_picture",
    )
    .bind::<BigInt, _>(id)
    .bind::<Nullable<Text>, _>(changes.name.as_deref())
    .bind::<Nullable<Text>, _>(changes.location.as_deref())
    .bind::<Nullable<Text>, _>(changes.description.as_deref())
    .bind::<Bool, _>(changes.picture.is_some())
    .bind::<Nullable<Text>, _>(changes.picture.clone().flatten())
    .get_result(conn)
    .await
    .optional()?;
    Ok(row.map(|r| {
        let after = Hotel {
            id: r.id,
            name: r.name,
            location: r.location,
            description: r.description,
            picture: r.picture,
        };
        (r.old_picture, after)
    }))
}

pub async fn delete(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<Hotel>> {
    diesel::delete(hotels::table.find(id))
        .returning(Hotel::as_returning())
        .get_result(conn)
        .await
        .optional()
}
