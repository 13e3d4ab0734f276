//! [`TenantConnection`]: a checked-out connection bound to one scope.

use std::ops::{Deref, DerefMut};

use diesel::pg::PgConnection;

use super::managed::Outcome;
use super::manager::ConnectionManager;
use super::scope::Scope;
use crate::error::Result;

/// A pooled connection whose `search_path` is set to one [`Scope`], checked out after the
/// server proved its session clean (see the crate docs, "What a checkout proves").
///
/// It derefs to [`PgConnection`], so Diesel queries run on it directly: tenant tables
/// unqualified, shared tables declared as `public.x` in `table!`. When it is dropped the
/// connection goes back to the pool, or is discarded if the client side shows it cannot
/// be trusted (a panic, a transaction left open, a lost connection, a `PgConnection`
/// swapped in with `std::mem::replace`). Whatever the borrower did on the server side is
/// reset or refused by the next checkout's proof.
///
/// In [`PoolMode::TransactionLocal`](crate::PoolMode::TransactionLocal) the guard is a
/// transaction: call [`commit`](Self::commit) to keep the work; dropping it rolls back.
///
/// ### Warning
/// Do not call `set_instrumentation` on it: the pool's own instrumentation marks the
/// connection as the one it handed out, so replacing it discards the connection at
/// check-in. Give the pool your instrumentation with
/// [`TenantPoolBuilder::instrumentation`](crate::TenantPoolBuilder::instrumentation).
pub struct TenantConnection {
    inner: r2d2::PooledConnection<ConnectionManager>,
    scope: Scope,
    finished: bool,
}

impl std::fmt::Debug for TenantConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantConnection")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl TenantConnection {
    /// Enters `scope` on a freshly checked-out connection.
    pub(crate) fn enter(
        mut inner: r2d2::PooledConnection<ConnectionManager>,
        scope: Scope,
    ) -> Result<Self> {
        inner.enter(&scope)?;
        Ok(TenantConnection {
            inner,
            scope,
            finished: false,
        })
    }

    /// The scope this connection is bound to.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    #[cfg(feature = "rocket")]
    /// Whether a query on this checkout failed because a relation or schema did not
    /// exist (a hint that the tenant may have been deleted since its route was made).
    pub(crate) fn missed_relation(&self) -> bool {
        self.inner.missed_relation()
    }

    /// Ends the scoped work and keeps it: commits in `TransactionLocal` mode, and only
    /// returns the connection in `Session` mode.
    pub fn commit(mut self) -> Result<()> {
        self.finished = true;
        self.inner.leave(Outcome::Commit)
    }

    /// Ends the scoped work and discards it: rolls back in `TransactionLocal` mode.
    pub fn rollback(mut self) -> Result<()> {
        self.finished = true;
        self.inner.leave(Outcome::Rollback)
    }
}

impl Deref for TenantConnection {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.inner.pg_ref()
    }
}

impl DerefMut for TenantConnection {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.inner.pg()
    }
}

impl Drop for TenantConnection {
    fn drop(&mut self) {
        if !self.finished {
            // `leave` poisons the connection on any failure, so the error has been acted on.
            let _ = self.inner.leave(Outcome::Rollback);
        }
    }
}
