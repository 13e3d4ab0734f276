//! The hotel tenant set as the tests use it: its table, rows in and out, and small
//! catalog questions.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use diesel_tenancy::{Error, SchemaName, TenantPool};

diesel::table! {
    hotels (id) {
        id -> BigInt,
        name -> Varchar,
        location -> Varchar,
        description -> Varchar,
        picture -> Nullable<Varchar>,
    }
}

pub fn add_hotel(conn: &mut PgConnection, name: &str) -> i64 {
    diesel::insert_into(hotels::table)
        .values((
            hotels::name.eq(name),
            hotels::location.eq("somewhere"),
            hotels::description.eq("nice"),
        ))
        .returning(hotels::id)
        .get_result(conn)
        .expect("insert hotel")
}

pub fn hotel_names(conn: &mut PgConnection) -> Result<Vec<(i64, String)>, Error> {
    Ok(hotels::table
        .order(hotels::id)
        .select((hotels::id, hotels::name))
        .load(conn)?)
}

/// Runs raw SQL inside a scope.
pub fn exec(conn: &mut PgConnection, sql: &str) -> Result<(), Error> {
    Ok(conn.batch_execute(sql)?)
}

#[derive(QueryableByName, Debug, PartialEq)]
pub struct Where {
    #[diesel(sql_type = Text)]
    pub schema: String,
    #[diesel(sql_type = Integer)]
    pub pid: i32,
}

pub fn whereami(conn: &mut PgConnection) -> Where {
    diesel::sql_query(
        "SELECT coalesce(current_schema(), '')::text AS schema, pg_backend_pid() AS pid",
    )
    .get_result(conn)
    .expect("whereami")
}

pub fn schema(name: &str) -> SchemaName {
    SchemaName::new(name).unwrap()
}

pub fn schema_exists(pool: &TenantPool, name: &str) -> bool {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    pool.with_public(|c| {
        let row: N = diesel::sql_query("SELECT count(*) AS n FROM pg_namespace WHERE nspname = $1")
            .bind::<Text, _>(name)
            .get_result(c)?;
        Ok::<_, Error>(row.n == 1)
    })
    .unwrap()
}
