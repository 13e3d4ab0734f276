//! [`TransactionMark`]: proves that code run inside a transaction the crate opened left
//! that transaction open and healthy.
//!
//! Application code (a lifecycle hook, a closure run in every tenant, the SQL of
//! `tenant sql`) runs inside the crate's transaction and could end it: a `COMMIT` commits
//! the crate's work so far (a half-made tenant), a `COMMIT; BEGIN` even hides that from
//! Diesel, and an error the code swallowed leaves the transaction aborted, which turns
//! the crate's final `COMMIT` into a silent rollback. The server says which transaction
//! is running: `now()` is the start time of the current transaction and
//! `txid_current_if_assigned()` its id once it has written. Both are read before the
//! code runs and compared after; neither assigns an id, so this works on a read-only
//! replica too.

use chrono::{DateTime, Utc};
use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Timestamptz};

use crate::error::{connection_lost, Error, Result, SchemaRef};

#[derive(QueryableByName, PartialEq, Eq, Debug)]
struct Row {
    #[diesel(sql_type = Timestamptz)]
    started: DateTime<Utc>,
    #[diesel(sql_type = Nullable<BigInt>)]
    xid: Option<i64>,
}

const READ: &str = "SELECT now() AS started, txid_current_if_assigned() AS xid";

/// The transaction a connection is in, as the server reports it.
#[derive(Debug)]
pub(crate) struct TransactionMark {
    row: Row,
}

impl TransactionMark {
    /// Reads the current transaction's start time and id (one round trip).
    pub(crate) fn take(conn: &mut PgConnection) -> Result<TransactionMark> {
        Ok(TransactionMark {
            row: diesel::sql_query(READ).get_result(conn)?,
        })
    }

    /// Fails with [`Error::TransactionBroken`] unless `conn` is still in the marked
    /// transaction and that transaction is not aborted. `by` names the code that ran.
    pub(crate) fn check(&self, conn: &mut PgConnection, place: &SchemaRef, by: &str) -> Result<()> {
        let broken = |reason| Error::TransactionBroken {
            place: place.clone(),
            by: by.to_owned(),
            reason,
        };
        let now: Row = match diesel::sql_query(READ).get_result(conn) {
            Ok(row) => row,
            Err(e) if connection_lost(&e) => return Err(e.into()),
            Err(_) => {
                return Err(broken(
                    "it left the transaction aborted (a failed statement's error was \
                     ignored); everything in it is rolled back",
                ))
            }
        };
        let same =
            now.started == self.row.started && (self.row.xid.is_none() || now.xid == self.row.xid);
        if same {
            return Ok(());
        }
        // After a bare COMMIT Diesel knows it is outside any transaction and the caller's
        // `transaction` would fail its rollback with "not in a transaction", hiding this
        // error: open one for that rollback to end.
        let status = AnsiTransactionManager::transaction_manager_status_mut(conn);
        if matches!(status.transaction_depth(), Ok(None)) {
            let _ = AnsiTransactionManager::begin_transaction(conn);
        }
        Err(broken(
            "it ended the transaction (COMMIT or ROLLBACK); what ran before that \
             may be committed",
        ))
    }
}
