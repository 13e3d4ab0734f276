//! Watches the SQL a borrower sends, so the pool knows when a connection's
//! `search_path` or transaction state can no longer be trusted.
//!
//! Diesel reports every statement to the connection's [`Instrumentation`]. Statements
//! that Diesel's own transaction manager sends are recognised by the event that
//! precedes them; any other statement is scanned for the words that can change the
//! path (`SET`, `RESET`, `DISCARD`, `search_path`, `set_config`, ...) or open a
//! transaction the pool would not know about (`BEGIN`, `START TRANSACTION`). The scan
//! is deliberately coarse: a false alarm costs one `SET` or one reconnect, a miss
//! could cost a cross-tenant read.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// The session `search_path` may differ from what the pool last set.
pub(crate) const PATH_UNSURE: u8 = 1;
/// A transaction may have been opened outside Diesel's transaction manager.
pub(crate) const RAW_TRANSACTION: u8 = 2;
/// The connection must not be reused (lost connection, stale cached plan).
pub(crate) const POISON: u8 = 4;
/// A prepared statement met a schema whose result type differs ("cached plan must not
/// change result type"): tenants are at different versions.
pub(crate) const STALE_PLAN: u8 = 8;

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

/// The [`Instrumentation`] installed on every pooled connection.
pub(crate) struct Watch {
    flags: Flags,
    /// Set by a transaction event: the next statement is Diesel's own `BEGIN`/`COMMIT`/...
    transaction_sql_next: bool,
    buf: String,
    /// The application's instrumentation, which sees every event after the watch.
    inner: Option<Box<dyn Instrumentation>>,
}

impl Watch {
    pub(crate) fn new(flags: Flags, inner: Option<Box<dyn Instrumentation>>) -> Self {
        Watch {
            flags,
            transaction_sql_next: false,
            buf: String::new(),
            inner,
        }
    }
}

impl Instrumentation for Watch {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        self.observe(&event);
        if let Some(inner) = &mut self.inner {
            inner.on_connection_event(event);
        }
    }
}

impl Watch {
    fn observe(&mut self, event: &InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::BeginTransaction { .. }
            | InstrumentationEvent::CommitTransaction { .. }
            | InstrumentationEvent::RollbackTransaction { .. } => {
                self.transaction_sql_next = true;
            }
            InstrumentationEvent::StartQuery { query, .. } => {
                if std::mem::take(&mut self.transaction_sql_next) {
                    return;
                }
                self.buf.clear();
                if write!(self.buf, "{query}").is_err() {
                    self.flags.raise(PATH_UNSURE | RAW_TRANSACTION);
                    return;
                }
                self.flags.raise(classify(sql_text(&self.buf)));
            }
            InstrumentationEvent::FinishQuery {
                error: Some(error), ..
            } => self.flags.raise(poisons(error)),
            _ => {}
        }
    }
}

/// Diesel displays a query as `SQL -- binds: [...]`; only the SQL part is scanned.
fn sql_text(displayed: &str) -> &str {
    displayed
        .rfind(" -- binds: ")
        .map_or(displayed, |at| &displayed[..at])
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
        _ => 0,
    }
}

/// Which flags a statement the pool did not send raises.
pub(crate) fn classify(sql: &str) -> u8 {
    let mut flags = 0;
    let mut statement_start = true;
    let mut previous = "";
    for token in tokens(sql) {
        if token == ";" {
            statement_start = true;
            continue;
        }
        let word = |w: &str| token.eq_ignore_ascii_case(w);
        if word("begin") || (word("transaction") && previous.eq_ignore_ascii_case("start")) {
            flags |= RAW_TRANSACTION | PATH_UNSURE;
        }
        let path_words = [
            "search_path",
            "set_config",
            "reset",
            "discard",
            "rollback",
            "abort",
            "commit",
            "end",
            "do",
            "call",
        ];
        if (statement_start && word("set")) || path_words.iter().any(|w| word(w)) {
            flags |= PATH_UNSURE;
        }
        statement_start = false;
        previous = token;
    }
    flags
}

/// Splits SQL into words (`[A-Za-z0-9_]+`) and `;`; everything else separates.
fn tokens(sql: &str) -> impl Iterator<Item = &str> {
    let mut rest = sql;
    std::iter::from_fn(move || {
        let start = rest.find(|c: char| c == ';' || c.is_ascii_alphanumeric() || c == '_')?;
        rest = &rest[start..];
        let len = if rest.starts_with(';') {
            1
        } else {
            rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len())
        };
        let (token, tail) = rest.split_at(len);
        rest = tail;
        Some(token)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_queries_raise_nothing() {
        for sql in [
            "SELECT \"hotels\".\"id\" FROM \"hotels\" WHERE \"hotels\".\"id\" = $1",
            "UPDATE \"hotels\" SET \"name\" = $1 WHERE \"id\" = $2",
            "INSERT INTO \"hotels\" (\"name\") VALUES ($1) RETURNING \"id\"",
            "SELECT 1",
            "DELETE FROM hotels WHERE start_date < now()",
        ] {
            assert_eq!(classify(sql), 0, "{sql}");
        }
    }

    #[test]
    fn path_changes_are_noticed() {
        for sql in [
            "SET search_path TO public",
            "set schema 'public'",
            "select 1; SET ROLE other",
            "SELECT set_config('search_path', 'public', false)",
            "RESET ALL",
            "DISCARD ALL",
            "ROLLBACK TO SAVEPOINT a",
            "COMMIT",
            "DO $$ BEGIN PERFORM 1; END $$",
        ] {
            assert_ne!(classify(sql) & PATH_UNSURE, 0, "{sql}");
        }
    }

    #[test]
    fn raw_transactions_are_noticed() {
        for sql in [
            "BEGIN",
            "begin isolation level serializable",
            "START TRANSACTION",
        ] {
            assert_ne!(classify(sql) & RAW_TRANSACTION, 0, "{sql}");
        }
        assert_eq!(classify("SELECT start FROM events") & RAW_TRANSACTION, 0);
    }

    #[test]
    fn binds_are_not_scanned() {
        assert_eq!(sql_text("SELECT $1 -- binds: [\"begin\"]"), "SELECT $1");
        assert_eq!(sql_text("SELECT 1"), "SELECT 1");
    }

    #[test]
    fn tokenizer_splits_words_and_semicolons() {
        let t: Vec<_> = tokens("SET a=1;select \"x\"").collect();
        assert_eq!(t, ["SET", "a", "1", ";", "select", "x"]);
    }
}
