//! The `hotels` table of every tenant schema (the crate's `migrations_tenant/` set).

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::PgConnection;
use diesel_tenancy::{SchemaName, SchemaUnion};
use serde::Serialize;

diesel::table! {
    hotels (id) {
        id -> BigInt,
        name -> Varchar,
        location -> Varchar,
        description -> Varchar,
        picture -> Nullable<Varchar>,
    }
}

/// A hotel as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = hotels, check_for_backend(diesel::pg::Pg))]
pub struct Hotel {
    pub id: i64,
    pub name: String,
    pub location: String,
    pub description: String,
    /// Stored relative to the tenant's media directory; shown as a URL path.
    #[serde(serialize_with = "picture_url")]
    pub picture: Option<String>,
}

fn picture_url<S: serde::Serializer>(p: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(rel) => s.serialize_some(&crate::picture::url(rel)),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = hotels)]
pub struct NewHotel {
    pub name: String,
    pub location: String,
    pub description: String,
    pub picture: Option<String>,
}

/// A PUT or PATCH: `None` leaves a column as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = hotels)]
pub struct Changes {
    pub name: Option<String>,
    pub location: Option<String>,
    pub description: Option<String>,
    /// `Some(None)` clears the picture.
    pub picture: Option<Option<String>>,
}

impl Changes {
    fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.location.is_none()
            && self.description.is_none()
            && self.picture.is_none()
    }
}

pub fn list(conn: &mut PgConnection) -> QueryResult<Vec<Hotel>> {
    hotels::table
        .order(hotels::id)
        .select(Hotel::as_select())
        .load(conn)
}

#[derive(QueryableByName)]
struct SchemaCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    schema_name: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Hotels per schema, for many tenants in two queries (not one per tenant)
/// ([`SchemaUnion`]). Schemas without the table (dropped by hand) are absent from the
/// result. Run it on a public-scoped connection; every name is schema-qualified.
pub fn count_by_schema(
    conn: &mut PgConnection,
    schemas: &[SchemaName],
) -> diesel_tenancy::Result<HashMap<String, i64>> {
    let counts: Vec<SchemaCount> =
        SchemaUnion::new("hotels", "count(*) AS n").load(conn, schemas)?;
    Ok(counts.into_iter().map(|c| (c.schema_name, c.n)).collect())
}

pub fn get(conn: &mut PgConnection, id: i64) -> QueryResult<Option<Hotel>> {
    hotels::table
        .find(id)
        .select(Hotel::as_select())
        .first(conn)
        .optional()
}

pub fn insert(conn: &mut PgConnection, new: &NewHotel) -> QueryResult<Hotel> {
    diesel::insert_into(hotels::table)
        .values(new)
        .returning(Hotel::as_returning())
        .get_result(conn)
}

/// Applies `changes`; returns the row before and after, or `None` if there is no such hotel.
pub fn update(
    conn: &mut PgConnection,
    id: i64,
    changes: &Changes,
) -> QueryResult<Option<(Hotel, Hotel)>> {
    conn.transaction(|conn| {
        let Some(before) = hotels::table
            .find(id)
            .select(Hotel::as_select())
            .for_update()
            .first(conn)
            .optional()?
        else {
            return Ok(None);
        };
        if changes.is_empty() {
            return Ok(Some((before.clone(), before)));
        }
        let after = diesel::update(hotels::table.find(id))
            .set(changes)
            .returning(Hotel::as_returning())
            .get_result(conn)?;
        Ok(Some((before, after)))
    })
}

/// Deletes a hotel; returns it, or `None` if there was none.
pub fn delete(conn: &mut PgConnection, id: i64) -> QueryResult<Option<Hotel>> {
    diesel::delete(hotels::table.find(id))
        .returning(Hotel::as_returning())
        .get_result(conn)
        .optional()
}
