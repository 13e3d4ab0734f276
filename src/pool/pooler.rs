//! Detecting a transaction pooler in front of the database.
//!
//! PostgreSQL before 18 does not report `search_path` to clients, so a pooler in
//! transaction mode cannot carry a session `SET search_path` from one transaction to the
//! next: with `PoolMode::Session` one client's path would be seen by another. This probe
//! finds such a pooler from its one observable trait: two client sessions served by the
//! same server backend, or one client session served by two.

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::Integer;

use crate::error::Result;

#[derive(QueryableByName)]
struct Pid {
    #[diesel(sql_type = Integer)]
    pid: i32,
}

fn backend_pid(conn: &mut PgConnection) -> Result<i32> {
    // `sql_query` is sent unnamed, which transaction poolers without prepared-statement
    // tracking accept.
    Ok(diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<Pid>(conn)?
        .pid)
}

/// True if `url` leads to a pooler that hands server backends out per transaction.
///
/// At most three round trips on two fresh connections. Client A asks for its backend and
/// releases it; client B opens a transaction and asks for its own; if that was not A's,
/// A asks again while B holds its backend. A direct connection (or a session pooler)
/// gives A the same backend twice and B another one. A transaction pooler that reuses the
/// most recently released server (PgBouncer's default, `server_round_robin = 0`) gives B
/// A's backend; one that does not is caught when A's second answer differs from its
/// first. A's second question is only asked when B got another backend, so a pooler with
/// a single server connection is never asked for two at once.
pub(crate) fn detect_transaction_pooler(url: &str) -> Result<bool> {
    let mut a = PgConnection::establish(url)?;
    let first = backend_pid(&mut a)?;
    let mut b = PgConnection::establish(url)?;
    b.batch_execute("BEGIN")?;
    let other = backend_pid(&mut b)?;
    let pooled = first == other || first != backend_pid(&mut a)?;
    b.batch_execute("ROLLBACK")?;
    Ok(pooled)
}
