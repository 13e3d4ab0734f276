//! TEMPORARY stand-in for the async pool (feature `async`) being built on main, so the
//! Rocket async face compiles and its tests run before it lands. It follows the agreed
//! API, serves `public`, tenant and pinned scopes (not row tenants), and proves nothing
//! but the pin. Removed when main's "async pool:" commit is merged.

use std::ops::{Deref, DerefMut};

use diesel::QueryResult;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::future::BoxFuture;

use crate::error::{Error, Result};
use crate::pool::{PoolMode, Scope, TenantPool, TenantPoolBuilder};
use crate::schema_name::SchemaName;

/// Stand-in: an async pool whose every checkout names its scope.
#[derive(Clone)]
pub struct AsyncTenantPool {
    inner: Pool<AsyncPgConnection>,
    sync: TenantPool,
}

impl std::fmt::Debug for AsyncTenantPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncTenantPool").finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Unavailable {
        what: "the async tenant pool",
        reason: e.to_string(),
    }
}

impl TenantPoolBuilder {
    /// Stand-in: builds the async pool.
    pub async fn build_async(self, database_url: &str) -> Result<AsyncTenantPool> {
        let url = database_url.to_owned();
        let builder = self.min_idle(Some(0));
        let sync = tokio::task::spawn_blocking(move || builder.build(&url))
            .await
            .map_err(unavailable)??;
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(database_url);
        let inner = Pool::builder(manager)
            .max_size(sync.max_size() as usize)
            .build()
            .map_err(unavailable)?;
        Ok(AsyncTenantPool { inner, sync })
    }
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

impl AsyncTenantPool {
    /// Stand-in: a connection scoped to `scope`.
    pub async fn checkout(&self, scope: Scope) -> Result<AsyncTenantConnection> {
        let mut conn = self.inner.get().await.map_err(unavailable)?;
        let local = self.mode() == PoolMode::TransactionLocal;
        if local {
            conn.batch_execute("BEGIN").await?;
        }
        if let Scope::Pinned { schema, oid } = &scope {
            let found: Count = diesel::sql_query(
                "SELECT count(*) AS n FROM pg_namespace WHERE nspname = $1 AND oid = $2",
            )
            .bind::<diesel::sql_types::Text, _>(schema.as_str())
            .bind::<diesel::sql_types::Oid, _>(*oid)
            .get_result(&mut *conn)
            .await?;
            if found.n == 0 {
                if local {
                    conn.batch_execute("ROLLBACK").await?;
                }
                return Err(Error::StaleRoute {
                    schema: schema.as_str().to_owned(),
                });
            }
        }
        if scope.is_rows() {
            return Err(Error::Config("stand-in: no row tenants".into()));
        }
        diesel::sql_query("SELECT set_config('search_path', $1, $2)")
            .bind::<diesel::sql_types::Text, _>(self.sync.search_path(&scope))
            .bind::<diesel::sql_types::Bool, _>(local)
            .execute(&mut *conn)
            .await?;
        Ok(AsyncTenantConnection {
            conn: Some(conn),
            scope,
            local,
        })
    }

    /// Stand-in: a tenant schema.
    pub async fn tenant(&self, schema: &SchemaName) -> Result<AsyncTenantConnection> {
        self.checkout(Scope::Tenant(schema.clone())).await
    }

    /// Stand-in: `public`.
    pub async fn public(&self) -> Result<AsyncTenantConnection> {
        self.checkout(Scope::Public).await
    }

    /// Stand-in: a row tenant.
    pub async fn row_tenant(&self, tenant: i64) -> Result<AsyncTenantConnection> {
        self.checkout(Scope::Rows { tenant }).await
    }

    /// Stand-in: checkout, then the first query (not pipelined here).
    pub async fn checkout_with<T, F>(
        &self,
        scope: Scope,
        mut first: F,
    ) -> Result<(AsyncTenantConnection, QueryResult<T>)>
    where
        F: for<'c> FnMut(&'c AsyncPgConnection) -> BoxFuture<'c, QueryResult<T>>,
        T: Send,
    {
        let conn = self.checkout(scope).await?;
        let result = first(&conn).await;
        Ok((conn, result))
    }

    /// Stand-in: the mode.
    pub fn mode(&self) -> PoolMode {
        self.sync.mode()
    }
}

/// Stand-in: a scoped async connection.
pub struct AsyncTenantConnection {
    conn: Option<Object<AsyncPgConnection>>,
    scope: Scope,
    local: bool,
}

impl std::fmt::Debug for AsyncTenantConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncTenantConnection")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl AsyncTenantConnection {
    /// Stand-in: the scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Stand-in: commits in TransactionLocal mode.
    pub async fn commit(mut self) -> Result<()> {
        self.finish("COMMIT").await
    }

    /// Stand-in: rolls back in TransactionLocal mode.
    pub async fn rollback(mut self) -> Result<()> {
        self.finish("ROLLBACK").await
    }

    async fn finish(&mut self, sql: &str) -> Result<()> {
        if let (true, Some(conn)) = (self.local, self.conn.as_mut()) {
            conn.batch_execute(sql).await?;
        }
        self.local = false;
        Ok(())
    }
}

impl Drop for AsyncTenantConnection {
    fn drop(&mut self) {
        if let (true, Some(mut conn)) = (self.local, self.conn.take()) {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = conn.batch_execute("ROLLBACK").await;
                });
            } else {
                let _ = Object::take(conn);
            }
        }
    }
}

impl Deref for AsyncTenantConnection {
    type Target = AsyncPgConnection;
    fn deref(&self) -> &AsyncPgConnection {
        self.conn.as_deref().expect("stand-in: present until drop")
    }
}

impl DerefMut for AsyncTenantConnection {
    fn deref_mut(&mut self) -> &mut AsyncPgConnection {
        self.conn
            .as_deref_mut()
            .expect("stand-in: present until drop")
    }
}
