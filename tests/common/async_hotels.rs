//! The hotel tenant set on the async face (`AsyncTenantPool`), as its tests use it.

use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use diesel_tenancy::diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::future::{BoxFuture, FutureExt};

use super::hotels::hotels;

/// Where a session is (see [`here`]).
#[derive(QueryableByName, Debug)]
pub struct Here {
    #[diesel(sql_type = Text)]
    pub schema: String,
    #[diesel(sql_type = Text)]
    pub role: String,
    /// The row tenant setting, empty outside a row scope.
    #[diesel(sql_type = Text)]
    pub tenant: String,
    #[diesel(sql_type = Integer)]
    pub pid: i32,
    /// `now()` of this statement; see [`in_block`].
    #[diesel(sql_type = Text)]
    pub now: String,
}

/// The session's schema, role, row tenant and backend.
pub async fn here(conn: &mut AsyncPgConnection) -> Here {
    diesel::sql_query(
        "SELECT coalesce(current_schema(), '')::text AS schema, current_user::text AS role, \
         coalesce(current_setting('diesel_tenancy.tenant', true), '')::text AS tenant, \
         pg_backend_pid() AS pid, now()::text AS now",
    )
    .get_result(conn)
    .await
    .expect("here")
}

/// Whether the session runs inside a transaction block: `now()` (the transaction's
/// start) stays the same across two statements only inside one.
pub async fn in_block(conn: &mut AsyncPgConnection) -> bool {
    let first = here(conn).await.now;
    let second = here(conn).await.now;
    first == second
}

/// Inserts a hotel named `name`; its id.
pub async fn add(conn: &mut AsyncPgConnection, name: &str) -> QueryResult<i64> {
    diesel::insert_into(hotels::table)
        .values((
            hotels::name.eq(name),
            hotels::location.eq("somewhere"),
            hotels::description.eq("nice"),
        ))
        .returning(hotels::id)
        .get_result(conn)
        .await
}

/// The hotels' ids and names, in id order.
pub async fn names(conn: &mut AsyncPgConnection) -> Vec<(i64, String)> {
    hotels::table
        .order(hotels::id)
        .select((hotels::id, hotels::name))
        .load(conn)
        .await
        .expect("list hotels")
}

/// [`names`] as the first query of a checkout (`checkout_with`).
pub fn list(conn: &AsyncPgConnection) -> BoxFuture<'_, QueryResult<Vec<(i64, String)>>> {
    async move {
        let mut conn = conn;
        hotels::table
            .order(hotels::id)
            .select((hotels::id, hotels::name))
            .load(&mut conn)
            .await
    }
    .boxed()
}

/// [`add`] as the first query of a checkout.
pub fn insert<'c>(
    conn: &'c AsyncPgConnection,
    name: &'static str,
) -> BoxFuture<'c, QueryResult<i64>> {
    async move {
        let mut conn = conn;
        diesel::insert_into(hotels::table)
            .values((
                hotels::name.eq(name),
                hotels::location.eq("somewhere"),
                hotels::description.eq("nice"),
            ))
            .returning(hotels::id)
            .get_result(&mut conn)
            .await
    }
    .boxed()
}
