//! TEMPORARY stand-in for the async pool being built on `main` (commit "async pool:"),
//! with its announced API, only so the axum face compiles and can be tried before it
//! lands. A connection per checkout, the path set by `set_config`, a pinned route checked
//! against `pg_namespace`; no row tenants, no session proof. Removed at the merge.

use std::ops::{Deref, DerefMut};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::future::BoxFuture;

use crate::error::{Error, Result};
use crate::pool::{PoolMode, Scope, TenantPool, TenantPoolBuilder};
use crate::schema_name::SchemaName;

/// Stand-in for the async pool.
#[derive(Clone, Debug)]
pub struct AsyncTenantPool {
    url: String,
    sync: TenantPool,
}

/// Stand-in for the async pool's connection.
pub struct AsyncTenantConnection {
    conn: AsyncPgConnection,
    scope: Scope,
}

impl std::fmt::Debug for AsyncTenantConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncTenantConnection")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl TenantPoolBuilder {
    /// Stand-in.
    pub async fn build_async(self, database_url: &str) -> Result<AsyncTenantPool> {
        let url = database_url.to_owned();
        let sync = tokio::task::spawn_blocking(move || self.max_size(1).build(&url))
            .await
            .map_err(|e| Error::Config(e.to_string()))??;
        Ok(AsyncTenantPool {
            url: database_url.to_owned(),
            sync,
        })
    }
}

#[derive(diesel::QueryableByName)]
struct Oid {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    oid: Option<i64>,
}

impl AsyncTenantPool {
    /// Stand-in.
    pub async fn checkout(&self, scope: Scope) -> Result<AsyncTenantConnection> {
        if scope.is_rows() {
            return Err(Error::Config(
                "the async stand-in has no row tenants".into(),
            ));
        }
        let mut conn = AsyncPgConnection::establish(&self.url).await?;
        if let Scope::Pinned { schema, oid } = &scope {
            let found: Oid = diesel::sql_query(
                "SELECT (SELECT oid::int8 FROM pg_namespace WHERE nspname = $1) AS oid",
            )
            .bind::<diesel::sql_types::Text, _>(schema.as_str())
            .get_result(&mut conn)
            .await?;
            if found.oid != Some(i64::from(*oid)) {
                return Err(Error::StaleRoute {
                    schema: schema.to_string(),
                });
            }
        }
        diesel::sql_query("SELECT set_config('search_path', $1, false)")
            .bind::<diesel::sql_types::Text, _>(self.sync.search_path(&scope))
            .execute(&mut conn)
            .await?;
        Ok(AsyncTenantConnection { conn, scope })
    }

    /// Stand-in.
    pub async fn tenant(&self, schema: &SchemaName) -> Result<AsyncTenantConnection> {
        self.checkout(Scope::Tenant(schema.clone())).await
    }

    /// Stand-in.
    pub async fn public(&self) -> Result<AsyncTenantConnection> {
        self.checkout(Scope::Public).await
    }

    /// Stand-in.
    pub async fn row_tenant(&self, tenant: i64) -> Result<AsyncTenantConnection> {
        self.checkout(Scope::Rows { tenant }).await
    }

    /// Stand-in (not pipelined).
    pub async fn checkout_with<T, F>(
        &self,
        scope: Scope,
        mut first: F,
    ) -> Result<(AsyncTenantConnection, diesel::QueryResult<T>)>
    where
        F: for<'c> FnMut(&'c AsyncPgConnection) -> BoxFuture<'c, diesel::QueryResult<T>>,
        T: Send,
    {
        let conn = self.checkout(scope).await?;
        let result = first(&conn.conn).await;
        Ok((conn, result))
    }

    /// Stand-in.
    pub fn mode(&self) -> PoolMode {
        self.sync.mode()
    }

    /// Stand-in.
    pub fn has_row_tenants(&self) -> bool {
        self.sync.has_row_tenants()
    }
}

impl AsyncTenantConnection {
    /// Stand-in.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Stand-in.
    pub async fn commit(self) -> Result<()> {
        Ok(())
    }

    /// Stand-in.
    pub async fn rollback(self) -> Result<()> {
        Ok(())
    }
}

impl Deref for AsyncTenantConnection {
    type Target = AsyncPgConnection;
    fn deref(&self) -> &AsyncPgConnection {
        &self.conn
    }
}

impl DerefMut for AsyncTenantConnection {
    fn deref_mut(&mut self) -> &mut AsyncPgConnection {
        &mut self.conn
    }
}
