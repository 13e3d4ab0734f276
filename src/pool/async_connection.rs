//! [`AsyncTenantConnection`]: a checked-out async connection bound to one scope.

use std::ops::{Deref, DerefMut};

use deadpool::managed::Object;
use diesel_async::AsyncPgConnection;

use super::async_manager::AsyncManager;
use super::scope::Scope;
use crate::error::Result;

/// An async pooled connection whose session was put into one [`Scope`] and proven clean
/// by the server (see the crate docs, "What a checkout proves"), from an
/// [`AsyncTenantPool`](crate::AsyncTenantPool).
///
/// It derefs to diesel-async's [`AsyncPgConnection`], so queries are awaited on it
/// directly. When it is dropped the connection goes back to the pool, unless the client
/// side shows it cannot be trusted, and then it is closed: a query future that was
/// dropped before it finished (a cancelled request), a pool operation cancelled half
/// way, a transaction left open, a panic, a swapped connection.
///
/// In [`PoolMode::TransactionLocal`](crate::PoolMode::TransactionLocal) the guard is a
/// transaction: [`commit`](Self::commit) keeps the work, [`rollback`](Self::rollback)
/// discards it; dropping it without either closes the connection, which rolls the
/// transaction back on the server.
pub struct AsyncTenantConnection {
    inner: Option<Object<AsyncManager>>,
    scope: Scope,
    finished: bool,
}

impl std::fmt::Debug for AsyncTenantConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncTenantConnection")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl AsyncTenantConnection {
    /// Guards a connection fresh from the pool, before its checkout is sent: dropped from
    /// here on, it is checked in (and discarded if its checkout did not complete).
    pub(super) fn new(inner: Object<AsyncManager>, scope: Scope) -> Self {
        AsyncTenantConnection {
            inner: Some(inner),
            scope,
            finished: false,
        }
    }

    pub(super) fn managed(&mut self) -> &mut super::async_managed::AsyncManagedConnection {
        // `inner` is only taken by `drop`.
        self.inner
            .as_deref_mut()
            .unwrap_or_else(|| unreachable_taken())
    }

    fn managed_ref(&self) -> &super::async_managed::AsyncManagedConnection {
        self.inner.as_deref().unwrap_or_else(|| unreachable_taken())
    }

    /// The scope this connection is bound to.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Whether a query on this checkout failed because a relation or schema did not
    /// exist (a hint that the tenant may have been deleted since its route was made).
    pub fn missed_relation(&self) -> bool {
        self.managed_ref().session().missed_relation()
    }

    /// Ends the scoped work and keeps it: commits in `TransactionLocal` mode (one round
    /// trip), and only returns the connection in `Session` mode.
    pub async fn commit(mut self) -> Result<()> {
        let ended = self.managed().finish(true).await;
        self.finished = true;
        ended
    }

    /// Ends the scoped work and discards it: rolls back in `TransactionLocal` mode.
    pub async fn rollback(mut self) -> Result<()> {
        let ended = self.managed().finish(false).await;
        self.finished = true;
        ended
    }
}

/// `inner` is `Some` from `new` until `drop`.
#[cold]
fn unreachable_taken() -> ! {
    unreachable!("an AsyncTenantConnection is used only before it is dropped")
}

impl Deref for AsyncTenantConnection {
    type Target = AsyncPgConnection;
    fn deref(&self) -> &AsyncPgConnection {
        self.managed_ref().pg_ref()
    }
}

impl DerefMut for AsyncTenantConnection {
    fn deref_mut(&mut self) -> &mut AsyncPgConnection {
        self.managed().pg()
    }
}

impl Drop for AsyncTenantConnection {
    fn drop(&mut self) {
        if let Some(mut object) = self.inner.take() {
            if !object.check_in(self.finished) {
                // Out of the pool for good; dropping it closes the connection (the server
                // rolls back whatever it left open).
                drop(Object::take(object));
            }
        }
    }
}
