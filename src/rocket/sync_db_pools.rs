//! `rocket_sync_db_pools` interop: [`ManagedConnection`] is `Poolable`.
//!
//! `#[database("app")] struct Db(ManagedConnection);` then hands out connections that
//! expose a `PgConnection` only inside [`ManagedConnection::with_tenant`] or
//! [`ManagedConnection::with_public`]: there is no unscoped connection to get.
//!
//! ```compile_fail
//! # use diesel_tenancy::ManagedConnection;
//! # use diesel_tenancy::diesel::pg::PgConnection;
//! // A pooled `ManagedConnection` does not deref to a `PgConnection`.
//! fn raw(conn: &mut ManagedConnection) -> &mut PgConnection {
//!     &mut *conn
//! }
//! ```

use std::time::Duration;

use ::rocket::{Build, Rocket};
use rocket_sync_db_pools::{Config, Error as PoolError, PoolResult, Poolable};
use serde::Deserialize;

use crate::error::Error;
use crate::pool::TenantPool;
use crate::pool::{ConnectionManager, ManagedConnection, PoolMode};

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Mode {
    Session,
    TransactionLocal,
}

/// Reads `databases.<name>.url`, `pool_size`, `timeout` (as `rocket_sync_db_pools`
/// does) and `mode` (`session`, the default, or `transaction_local`).
impl Poolable for ManagedConnection {
    type Manager = ConnectionManager;
    type Error = Error;

    fn pool(db_name: &str, rocket: &Rocket<Build>) -> PoolResult<Self> {
        let config = Config::from(db_name, rocket)?;
        let figment = Config::figment(db_name, rocket);
        let mode = if figment.contains("mode") {
            match figment.extract_inner::<Mode>("mode")? {
                Mode::Session => PoolMode::Session,
                Mode::TransactionLocal => PoolMode::TransactionLocal,
            }
        } else {
            PoolMode::Session
        };
        let manager = TenantPool::builder()
            .mode(mode)
            .manager(&config.url)
            .map_err(PoolError::Custom)?;
        Ok(r2d2::Pool::builder()
            .max_size(config.pool_size)
            .connection_timeout(Duration::from_secs(u64::from(config.timeout)))
            .build(manager)?)
    }
}
