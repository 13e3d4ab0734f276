//! The [`Instrumentation`] the pool installs on every connection: it records what the
//! server *reported* (errors that make a connection unusable) and marks the connection
//! as the pool's own, so a swapped-in connection is recognised at check-in.
//!
//! It reads no SQL text and infers nothing from it: the session state is proven by the
//! checkout itself (see `proof.rs`). It forwards every event to the application's own
//! instrumentation, if the pool was given one.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// The connection must not be reused (lost connection, stale cached plan, ...).
pub(crate) const POISON: u8 = 1;
/// A prepared statement met a schema whose result type differs ("cached plan must not
/// change result type"): tenants are at different versions.
pub(crate) const STALE_PLAN: u8 = 2;

/// Flags shared between a connection's [`Watch`] and its owner.
#[derive(Debug, Default, Clone)]
pub(crate) struct Flags(Arc<AtomicU8>);

impl Flags {
    pub(crate) fn get(&self) -> u8 {
        self.0.load(Ordering::Acquire)
    }

    pub(crate) fn raise(&self, bits: u8) {
        self.0.fetch_or(bits, Ordering::AcqRel);
    }

    pub(crate) fn clear(&self) {
        self.0.store(0, Ordering::Release);
    }
}

/// Makes the application's own [`Instrumentation`] for each new connection.
#[derive(Clone)]
pub(crate) struct InstrumentationFactory(
    pub(crate) Arc<dyn Fn() -> Box<dyn Instrumentation> + Send + Sync>,
);

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
}

impl Watch {
    pub(crate) fn new(id: u64, flags: Flags, inner: Option<Box<dyn Instrumentation>>) -> Self {
        Watch { id, flags, inner }
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
        if let InstrumentationEvent::FinishQuery {
            error: Some(error), ..
        } = &event
        {
            self.flags.raise(poisons(error));
        }
        if let Some(inner) = &mut self.inner {
            inner.on_connection_event(event);
        }
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
    fn lost_connections_poison() {
        assert_eq!(poisons(&DieselError::BrokenTransactionManager), POISON);
        assert_eq!(poisons(&DieselError::NotFound), 0);
    }
}
