//! The [`Instrumentation`] the pool installs on every connection: it records what the
//! server *reported* (errors that make a connection unusable), notices when Diesel fills
//! its per-connection type cache by `search_path`, and marks the connection as the pool's
//! own, so a swapped-in connection is recognised at check-in.
//!
//! It reads none of the application's SQL and infers no session state from it: that is
//! proven by the checkout itself (see `proof.rs`). It forwards every event to the
//! application's own instrumentation, if the pool was given one.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// The connection must not be reused (lost connection, stale cached plan, ...).
pub(crate) const POISON: u8 = 1;
/// A prepared statement met a schema whose result type differs ("cached plan must not
/// change result type"): tenants are at different versions.
pub(crate) const STALE_PLAN: u8 = 2;
/// Diesel looked up a custom SQL type by name without a schema while binding a value.
/// It resolves such names through `search_path` and caches the OID for the connection's
/// life, so the cache is only right for the scope it was filled in.
pub(crate) const TYPE_LOOKUP: u8 = 4;
/// A query failed because a relation or schema did not exist: in a tenant scope, the
/// tenant may have been deleted since its route was made (a hint to decide the request
/// again against a reloaded registry, never a decision by itself).
pub(crate) const MISSING_RELATION: u8 = 8;

/// State shared between a connection's [`Watch`] and its owner.
#[derive(Debug, Default, Clone)]
pub(crate) struct Flags(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    bits: AtomicU8,
    /// Queries started and not yet finished: Diesel runs its type lookups inside the
    /// query whose binds need them.
    depth: AtomicU32,
}

impl Flags {
    pub(crate) fn get(&self) -> u8 {
        self.0.bits.load(Ordering::Acquire)
    }

    pub(crate) fn raise(&self, bits: u8) {
        self.0.bits.fetch_or(bits, Ordering::AcqRel);
    }

    /// Forgets the flags and the query depth; called when a checkout starts.
    pub(crate) fn clear(&self) {
        self.0.bits.store(0, Ordering::Release);
        self.0.depth.store(0, Ordering::Release);
    }

    /// Counts a started query; returns how many were already running.
    fn start_query(&self) -> u32 {
        self.0.depth.fetch_add(1, Ordering::AcqRel)
    }

    /// Queries started and not yet finished (a dropped query future never finishes).
    #[cfg(feature = "async")]
    pub(crate) fn running(&self) -> u32 {
        self.0.depth.load(Ordering::Acquire)
    }

    fn finish_query(&self) {
        let _ = self
            .0
            .depth
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1));
    }
}

/// Makes the application's own [`Instrumentation`] for each new connection.
#[derive(Clone)]
pub(crate) struct InstrumentationFactory(Arc<dyn Fn() -> Box<dyn Instrumentation> + Send + Sync>);

impl InstrumentationFactory {
    pub(crate) fn new<F>(make: F) -> Self
    where
        F: Fn() -> Box<dyn Instrumentation> + Send + Sync + 'static,
    {
        InstrumentationFactory(Arc::new(make))
    }

    /// A new instrumentation, for a new connection.
    pub(crate) fn make(&self) -> Box<dyn Instrumentation> {
        (self.0)()
    }
}

impl std::fmt::Debug for InstrumentationFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InstrumentationFactory")
    }
}

/// A process-wide unique number for each connection the pool opens.
pub(crate) fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The [`Instrumentation`] installed on every pooled connection.
pub(crate) struct Watch {
    /// The id of the pooled connection this watch was installed on.
    id: u64,
    flags: Flags,
    /// The application's instrumentation, which sees every event after the watch.
    inner: Option<Box<dyn Instrumentation>>,
    /// Queries may overlap (diesel-async pipelines them): a query started inside another
    /// is then no sign of a type lookup.
    concurrent: bool,
}

impl Watch {
    pub(crate) fn new(id: u64, flags: Flags, inner: Option<Box<dyn Instrumentation>>) -> Self {
        Watch {
            id,
            flags,
            inner,
            concurrent: false,
        }
    }

    /// The same watch for a connection whose queries may overlap.
    pub(crate) fn concurrent(mut self, concurrent: bool) -> Self {
        self.concurrent = concurrent;
        self
    }

    /// Whether `instrumentation` is the watch installed on connection `id`.
    pub(crate) fn is_installed_on(instrumentation: &mut dyn Instrumentation, id: u64) -> bool {
        instrumentation
            .downcast_ref::<Watch>()
            .is_some_and(|watch| watch.id == id)
    }
}

impl Instrumentation for Watch {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match &event {
            InstrumentationEvent::StartQuery { query, .. } => {
                let nested = self.flags.start_query() > 0 && !self.concurrent;
                // Only Diesel's own type lookups run inside another query; their text is
                // Diesel's, rendered here and nowhere else.
                let mut text = String::new();
                if nested && (write!(text, "{query}").is_err() || !is_qualified_type_lookup(&text))
                {
                    self.flags.raise(TYPE_LOOKUP);
                }
            }
            InstrumentationEvent::FinishQuery { error, .. } => {
                self.flags.finish_query();
                if let Some(error) = error {
                    self.flags.raise(poisons(error) | missing(error));
                }
            }
            _ => {}
        }
        if let Some(inner) = &mut self.inner {
            inner.on_connection_event(event);
        }
    }
}

/// Whether a query Diesel ran inside another is its lookup of a type *with* a schema
/// (`pg_type` joined to `pg_namespace` by name), which does not depend on the path.
/// Anything else nested (the lookup by `search_path`, or a form this crate does not
/// know) counts as path-dependent.
fn is_qualified_type_lookup(sql: &str) -> bool {
    sql.contains("FROM (\"pg_type\" INNER JOIN \"pg_namespace\"")
        && sql.contains("\"pg_namespace\".\"nspname\" = $")
}

/// [`MISSING_RELATION`] for PostgreSQL's "relation … does not exist" and "schema … does
/// not exist" (Diesel reports no SQLSTATE; with `lc_messages` in another language this
/// sees nothing, and the request simply keeps its error).
fn missing(error: &DieselError) -> u8 {
    match error {
        DieselError::DatabaseError(_, info)
            if (info.message().starts_with("relation \"")
                || info.message().starts_with("schema \""))
                && info.message().ends_with("\" does not exist") =>
        {
            MISSING_RELATION
        }
        _ => 0,
    }
}

/// The flags an error raises: [`POISON`] when the connection must not be reused, plus
/// [`STALE_PLAN`] when the reason is a prepared statement planned in another schema.
pub(crate) fn poisons(error: &DieselError) -> u8 {
    match error {
        DieselError::DatabaseError(_, info)
            if info
                .message()
                .contains("cached plan must not change result type") =>
        {
            POISON | STALE_PLAN
        }
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        )
        | DieselError::BrokenTransactionManager => POISON,
        // One of Diesel's cached statements is gone on the server (deallocated by name):
        // every later use of it on this connection would fail the same way.
        DieselError::DatabaseError(_, info)
            if info
                .message()
                .starts_with("prepared statement \"__diesel_stmt_") =>
        {
            POISON
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique() {
        assert_ne!(next_id(), next_id());
    }

    #[test]
    fn the_watch_recognises_only_its_own_connection() {
        let mut watch = Watch::new(7, Flags::default(), None);
        assert!(Watch::is_installed_on(&mut watch, 7));
        assert!(!Watch::is_installed_on(&mut watch, 8));
        let mut other = Box::new(|_: InstrumentationEvent<'_>| {}) as Box<dyn Instrumentation>;
        assert!(!Watch::is_installed_on(&mut *other, 7));
    }

    #[test]
    fn only_lookups_of_a_type_with_its_schema_are_path_independent() {
        let qualified = "SELECT \"pg_type\".\"oid\", \"pg_type\".\"typarray\" FROM (\"pg_type\" \
            INNER JOIN \"pg_namespace\" ON (\"pg_type\".\"typnamespace\" = \"pg_namespace\".\"oid\")) \
            WHERE ((\"pg_type\".\"typname\" = $1) AND (\"pg_namespace\".\"nspname\" = $2)) LIMIT $3";
        assert!(is_qualified_type_lookup(qualified));
        let by_path = "SELECT \"pg_type\".\"oid\", \"pg_type\".\"typarray\" FROM \"pg_type\" \
            WHERE (\"pg_type\".\"oid\" = quote_ident($1)::regtype::oid) LIMIT $2";
        assert!(!is_qualified_type_lookup(by_path));
    }

    #[test]
    fn query_depth_counts_nested_queries() {
        let flags = Flags::default();
        assert_eq!(flags.start_query(), 0);
        assert_eq!(flags.start_query(), 1);
        flags.finish_query();
        flags.finish_query();
        flags.finish_query();
        assert_eq!(flags.start_query(), 0, "never below zero");
        flags.clear();
        assert_eq!(flags.start_query(), 0);
    }

    #[test]
    fn lost_connections_poison() {
        assert_eq!(poisons(&DieselError::BrokenTransactionManager), POISON);
        assert_eq!(poisons(&DieselError::NotFound), 0);
    }
}
