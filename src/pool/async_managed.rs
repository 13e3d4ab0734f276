//! [`AsyncManagedConnection`]: the async face's pooled connection, a diesel-async
//! `AsyncPgConnection` entered into a scope on every checkout. Every decision is the
//! [`Session`]'s (`session.rs`), shared with the sync face; this file only does the I/O.
//!
//! # Cancel safety
//!
//! A future may be dropped at any await point. The connection never serves another
//! checkout in a state nobody proved:
//!
//! - the pool's own operations (checkout, commit, rollback) set `busy` before their first
//!   await and clear it after the last; a connection checked in with `busy` set is
//!   discarded;
//! - the pool's [`Watch`](super::watch) counts queries started and not finished: a
//!   borrower's query future dropped before it finished (or created and never polled)
//!   leaves the count above zero, and the connection is discarded;
//! - diesel-async marks its transaction manager broken while a `BEGIN`, `COMMIT` or
//!   `ROLLBACK` is in flight, and a transaction left open shows in its depth: both
//!   discard;
//! - and whatever got past the client side meets the server's proof on the next
//!   checkout, which fails on an open or aborted transaction block (`proof.rs`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use diesel::connection::{CacheSize, Instrumentation, TransactionManagerStatus};
use diesel::result::QueryResult;
use diesel_async::{
    AnsiTransactionManager, AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection,
    TransactionManager,
};
use futures_util::future::{BoxFuture, FutureExt};
use futures_util::StreamExt;

use super::citus;
use super::mode::PoolMode;
use super::row_security::{self, Login};
use super::scope::Scope;
use super::session::{Backend, Plan, Session, BACKEND_SQL};
use super::settings::ConnectionSettings;
use super::watch::Watch;
use crate::error::{Error, Result};

/// A pooled `AsyncPgConnection` that is always entered into a [`Scope`] before use.
pub(crate) struct AsyncManagedConnection {
    conn: AsyncPgConnection,
    session: Session,
    /// One of the pool's own operations on it is under way (see the module docs).
    busy: bool,
    /// `TransactionLocal`: the first query sent with the checkout failed, so the pool's
    /// transaction is aborted on the server; committing it rolls back.
    doomed: bool,
}

impl AsyncManagedConnection {
    /// Opens a connection to `url` with the same checks as the sync face's: the Citus
    /// refusal of `NOLOGIN` roles, the row-security refusal of unbound logins, the proof
    /// prepared (unless `behind_pooler`), the pool's instrumentation installed.
    pub(super) async fn open(
        url: &str,
        settings: Arc<ConnectionSettings>,
        schemas_diverge: Arc<AtomicBool>,
        behind_pooler: bool,
    ) -> Result<AsyncManagedConnection> {
        let mut conn = AsyncPgConnection::establish(url).await?;
        if !settings.statement_cache() {
            conn.set_prepared_statement_cache_size(CacheSize::Disabled);
        }
        let backend = diesel::sql_query(BACKEND_SQL)
            .get_result::<Backend>(&mut conn)
            .await?;
        if let Some(what) = settings.nologin_roles() {
            let answer = diesel::sql_query(citus::INSTALLED_SQL)
                .get_result::<citus::Answer>(&mut conn)
                .await?;
            citus::refuse_nologin_roles_if(answer.citus, what)?;
        }
        if settings.row_tenants() {
            let login = diesel::sql_query(row_security::LOGIN_SQL)
                .get_result::<Login>(&mut conn)
                .await?;
            row_security::refuse_unbound(&login)?;
        }
        let session = Session::new(&backend, settings, schemas_diverge, behind_pooler)?;
        if let Some(prepare) = session.prepare_sql() {
            conn.batch_execute(&prepare).await?;
        }
        conn.set_instrumentation(session.watch(true));
        Ok(AsyncManagedConnection {
            conn,
            session,
            busy: false,
            doomed: false,
        })
    }

    pub(super) fn pg(&mut self) -> &mut AsyncPgConnection {
        &mut self.conn
    }

    pub(super) fn pg_ref(&self) -> &AsyncPgConnection {
        &self.conn
    }

    pub(super) fn session(&self) -> &Session {
        &self.session
    }

    /// The client's transaction depth and whether its transaction manager is broken, or
    /// `None` when a query future still shares the connection's state (diesel-async
    /// refuses to lend it then).
    fn client_state(&mut self) -> Option<(Option<u32>, bool)> {
        let conn = &mut self.conn;
        catch_unwind(AssertUnwindSafe(|| {
            let broken = AnsiTransactionManager::is_broken_transaction_manager(conn);
            let depth = match AnsiTransactionManager::transaction_manager_status_mut(conn)
                .transaction_depth()
            {
                Ok(depth) => depth.map(|d| d.get()),
                Err(_) => Some(u32::MAX),
            };
            (depth, broken)
        }))
        .ok()
    }

    /// `pipelined`: a first query will follow the message in the same round trip (see
    /// [`Session::plan`]'s `wrap`).
    fn plan(&mut self, scope: &Scope, pipelined: bool) -> Result<Plan> {
        let Some((depth, broken)) = self.client_state() else {
            self.session
                .discard("a query future still held its state at checkout");
            return Err(super::session::unclean(
                scope,
                "a query future still held its state",
            ));
        };
        self.session.plan(scope, depth, broken, pipelined)
    }

    /// Puts the connection into `scope` and proves its session clean (one round trip);
    /// on any failure the connection is discarded.
    pub(super) async fn enter(&mut self, scope: &Scope) -> Result<()> {
        let plan = self.plan(scope, false)?;
        self.busy = true;
        let sent = match self.session.mode() {
            PoolMode::Session => self.conn.batch_execute(&plan.sql).await,
            PoolMode::TransactionLocal => {
                AnsiTransactionManager::begin_transaction_sql(&mut self.conn, &plan.sql).await
            }
        };
        if let Err(source) = sent {
            return Err(self.session.failed(scope, &plan, source));
        }
        self.entered(scope, plan)?;
        self.busy = false;
        Ok(())
    }

    /// [`enter`](Self::enter) with the borrower's first query sent behind the checkout
    /// message in the same round trip. The message runs as one transaction block (`BEGIN;
    /// …; COMMIT` in `Session` mode, the pool's transaction in `TransactionLocal`), so
    /// when the proof fails the block is aborted and `first` fails on the server without
    /// running; its result is returned only when the checkout succeeded.
    pub(super) async fn enter_with<T, F>(
        &mut self,
        scope: &Scope,
        first: &mut F,
    ) -> Result<QueryResult<T>>
    where
        F: for<'c> FnMut(&'c AsyncPgConnection) -> BoxFuture<'c, QueryResult<T>>,
    {
        let plan = self.plan(scope, true)?;
        if plan.deallocate {
            // The message forgets every prepared statement, the first query's included:
            // it follows the checkout instead, once the client forgot them too.
            self.busy = true;
            let sent = self.send(&plan.sql).await;
            if let Err(source) = sent {
                return Err(self.session.failed(scope, &plan, source));
            }
            self.entered(scope, plan)?;
            let result = first(&self.conn).await;
            self.after_first(&result);
            self.busy = false;
            return Ok(result);
        }
        self.busy = true;
        let conn = &self.conn;
        let checkout = async {
            let mut shared = conn;
            shared.batch_execute(&plan.sql).await
        };
        let (sent, result) = futures_util::future::join(checkout, first(conn)).await;
        if let Err(source) = sent {
            return Err(self.session.failed(scope, &plan, source));
        }
        self.entered(scope, plan)?;
        self.after_first(&result);
        self.busy = false;
        Ok(result)
    }

    /// Sends the checkout message alone, opening the client's transaction in
    /// `TransactionLocal` mode.
    async fn send(&mut self, sql: &str) -> QueryResult<()> {
        match self.session.mode() {
            PoolMode::Session => self.conn.batch_execute(sql).await,
            PoolMode::TransactionLocal => {
                AnsiTransactionManager::begin_transaction_sql(&mut self.conn, sql).await
            }
        }
    }

    /// After a first query sent with the checkout: in `TransactionLocal` mode the message
    /// opened the pool's transaction behind diesel-async's back, so its depth is set to
    /// match; a failed first query dooms that transaction.
    fn after_first<T>(&mut self, result: &QueryResult<T>) {
        if self.session.mode() != PoolMode::TransactionLocal {
            return;
        }
        if result.is_err() {
            self.doomed = true;
        }
    }

    /// Records an accepted checkout: the session's bookkeeping, the client's statement
    /// cache, the notifications an earlier borrower left queued.
    fn entered(&mut self, scope: &Scope, plan: Plan) -> Result<()> {
        let pipelined_local = self.session.mode() == PoolMode::TransactionLocal
            && self
                .client_state()
                .is_some_and(|(depth, _)| depth.is_none());
        if self.session.entered(scope, plan) {
            // The server forgot every prepared statement: make diesel-async forget them.
            self.conn
                .set_prepared_statement_cache_size(CacheSize::Disabled);
            self.conn
                .set_prepared_statement_cache_size(CacheSize::Unbounded);
        }
        if pipelined_local {
            // The message's `BEGIN` was sent next to the first query, not through
            // diesel-async's transaction manager: tell it the pool's transaction is open.
            let status = AnsiTransactionManager::transaction_manager_status_mut(&mut self.conn);
            let opened = match status {
                TransactionManagerStatus::Valid(valid) => valid
                    .change_transaction_depth(
                        diesel::connection::TransactionDepthChange::IncreaseDepth,
                    )
                    .is_ok(),
                TransactionManagerStatus::InError => false,
            };
            if !opened {
                self.session
                    .discard("its transaction manager could not record the pool's transaction");
                return Err(super::session::unclean(
                    scope,
                    "its transaction manager is broken",
                ));
            }
        }
        self.drop_queued_notifications(scope)
    }

    /// Notifications queued before the checkout belong to an earlier borrower's `LISTEN`.
    fn drop_queued_notifications(&mut self, scope: &Scope) -> Result<()> {
        let mut dropped = 0usize;
        let mut queued = std::pin::pin!(self.conn.notifications_stream());
        let failed = loop {
            match queued.next().now_or_never() {
                Some(Some(Ok(_))) => dropped += 1,
                Some(Some(Err(source))) => break Some(source),
                Some(None) | None => break None,
            }
        };
        if let Some(source) = failed {
            self.session
                .discard("reading its queued notifications failed");
            return Err(Error::SetScope {
                place: scope.schema_ref(),
                source,
            });
        }
        if dropped > 0 {
            log::debug!(
                "diesel-tenancy: dropped {dropped} notifications queued for an earlier borrower"
            );
        }
        Ok(())
    }

    /// Ends the pool's transaction (`TransactionLocal`): commits, or rolls back when
    /// `commit` is false or the first query doomed it. A no-op in `Session` mode.
    pub(super) async fn finish(&mut self, commit: bool) -> Result<()> {
        if self.session.mode() != PoolMode::TransactionLocal {
            return Ok(());
        }
        let Some((depth, _)) = self.client_state() else {
            self.session
                .discard("a query future still held it when its transaction was to end");
            return Err(Error::Query(diesel::result::Error::NotInTransaction));
        };
        self.busy = true;
        let ended = match depth {
            Some(1) if commit && !self.doomed => {
                AnsiTransactionManager::commit_transaction(&mut self.conn).await
            }
            Some(1) => AnsiTransactionManager::rollback_transaction(&mut self.conn).await,
            // The pool's transaction is over: a statement the pool did not send ended it.
            None => Err(diesel::result::Error::NotInTransaction),
            Some(_) => Ok(()),
        };
        self.busy = false;
        let doomed = std::mem::take(&mut self.doomed);
        match ended {
            Err(e) => {
                self.session
                    .discard("its transaction could not be ended as asked");
                Err(Error::Query(e))
            }
            Ok(()) if doomed && commit => {
                Err(Error::Query(diesel::result::Error::RollbackTransaction))
            }
            Ok(()) => Ok(()),
        }
    }

    /// Check-in, with no I/O: whether the connection may serve another checkout.
    /// `finished`: the borrower ended the pool's transaction (`TransactionLocal`).
    pub(super) fn check_in(&mut self, finished: bool) -> bool {
        if self.busy {
            self.session
                .discard("one of the pool's operations on it was cancelled");
        }
        if self.session.flags().running() > 0 {
            self.session
                .discard("a query on it was started and never finished (its future was dropped)");
        }
        if std::thread::panicking() {
            self.session
                .discard("the borrower panicked while holding it");
        }
        if self.session.mode() == PoolMode::TransactionLocal && !finished {
            // Closing the connection rolls the transaction back on the server.
            self.session
                .discard("its transaction was neither committed nor rolled back");
        }
        if self.session.is_poisoned(false) {
            return false;
        }
        let Some((depth, broken)) = self.client_state() else {
            self.session
                .discard("a query future still held it at check-in");
            return false;
        };
        if broken {
            self.session
                .discard("its transaction manager was left broken");
            return false;
        }
        let id = self.session.id();
        let ours = catch_unwind(AssertUnwindSafe(|| {
            Watch::is_installed_on(self.conn.instrumentation() as &mut dyn Instrumentation, id)
        }))
        .unwrap_or(false);
        if !ours {
            self.session.discard(
                "its AsyncPgConnection or its instrumentation was replaced while checked out",
            );
            return false;
        }
        if !self.session.left(depth) {
            return false;
        }
        // A borrower may have changed the statement cache; restore the pool's.
        self.conn
            .set_prepared_statement_cache_size(if self.session.settings().statement_cache() {
                CacheSize::Unbounded
            } else {
                CacheSize::Disabled
            });
        true
    }

    /// Whether the connection must not be reused (the deadpool manager's recycle check).
    pub(super) fn is_poisoned(&mut self) -> bool {
        let broken = self.client_state().is_none_or(|(_, broken)| broken);
        self.busy || self.session.is_poisoned(broken)
    }
}
