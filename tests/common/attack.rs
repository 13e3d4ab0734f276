//! What a hostile but realistic borrower does to the session it was handed: the classes of
//! issue 11 (server-side path changes, SQL the old text scan missed, hidden transactions,
//! temporary objects, other session state, a swapped connection), each as one [`Attack`].
//! The next innocent checkout must see only its own tenant, commit its writes and run as
//! the session user; [`innocent`] checks exactly that.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};
use diesel_tenancy::{Error, Scope, TenantPool};

use super::sentinel::{self, name_of};

diesel::table! {
    writes (token) {
        token -> Text,
    }
}

diesel::table! {
    audited (target) {
        target -> Text,
    }
}

diesel::define_sql_function! {
    /// `set_config('search_path', p, false)` inside PL/pgSQL.
    fn dt_switch_path(p: Text) -> Text;
}

diesel::define_sql_function! {
    /// The same inside a function that has its own `SET search_path` clause.
    fn dt_sneaky_switch(p: Text) -> Text;
}

/// Functions, the trigger and the per-tenant tables the attacks use; run once through a
/// public checkout after `sentinel::setup`.
pub fn setup(pool: &TenantPool, scopes: &[Scope]) {
    pool.with_public(|c| {
        Ok::<_, Error>(c.batch_execute(
            "CREATE FUNCTION public.dt_switch_path(p text) RETURNS text LANGUAGE plpgsql \
               AS $$ BEGIN RETURN pg_catalog.set_config('search_path', p, false); END $$; \
             CREATE FUNCTION public.dt_sneaky_switch(p text) RETURNS text LANGUAGE plpgsql \
               SET search_path = pg_catalog \
               AS $$ BEGIN PERFORM pg_catalog.set_config('search_path', p, false); RETURN p; END $$; \
             CREATE PROCEDURE public.dt_commit_switch(p text) LANGUAGE plpgsql \
               AS $$ BEGIN COMMIT; PERFORM pg_catalog.set_config('search_path', p, false); END $$; \
             CREATE FUNCTION public.dt_trigger_switch() RETURNS trigger LANGUAGE plpgsql \
               AS $$ BEGIN PERFORM pg_catalog.set_config('search_path', NEW.target, false); \
               RETURN NEW; END $$;",
        )?)
    })
    .expect("attack functions");
    for scope in scopes {
        pool.with_scope(scope.clone(), |c| {
            Ok::<_, Error>(c.batch_execute(
                "CREATE TABLE writes (token text PRIMARY KEY); \
                 CREATE TABLE audited (target text NOT NULL); \
                 CREATE TRIGGER audited_switch AFTER INSERT ON audited \
                   FOR EACH ROW EXECUTE FUNCTION public.dt_trigger_switch();",
            )?)
        })
        .expect("attack tables");
    }
}

/// One thing a hostile borrower does in its own checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attack {
    // 1. Server-side code changes the path.
    FunctionSetsPath,
    FunctionWithSetClauseSetsPath,
    TriggerSetsPath,
    DoBlockSetsPath,
    ProcedureCommitsThenSetsPath,
    // 2. SQL a text scanner misses.
    CommentBeforeSet,
    UnicodeEscapedSet,
    SetInsideQueryToXml,
    BindsMarkerInBatch,
    PrepareSwitch,
    ExecutePreparedSwitch,
    BeginTransactionSqlWithSet,
    // 3. Hidden transactions.
    HiddenTransaction,
    HiddenTransactionWithSet,
    AbortedHiddenTransaction,
    // 4. Temporary objects shadowing tenant tables.
    TempViewShadowsSentinel,
    TempTableShadowsWrites,
    // 5. Other session state.
    SetRole,
    SetSessionAuthorization,
    DiscardAll,
    DeallocateAll,
    CustomSetting,
    ReadOnlyDefault,
    ListenAndNotify,
    ListenNotifyUnlisten,
    HoldCursor,
    NextvalForLastval,
    AdvisoryLock,
    StatementTimeout,
    ClientEncoding,
    TimeZone,
    // 6. The connection is swapped.
    SwapInFreshConnection,
}

/// Every attack, for the property test's fault mix.
pub const ALL: [Attack; 32] = [
    Attack::FunctionSetsPath,
    Attack::FunctionWithSetClauseSetsPath,
    Attack::TriggerSetsPath,
    Attack::DoBlockSetsPath,
    Attack::ProcedureCommitsThenSetsPath,
    Attack::CommentBeforeSet,
    Attack::UnicodeEscapedSet,
    Attack::SetInsideQueryToXml,
    Attack::BindsMarkerInBatch,
    Attack::PrepareSwitch,
    Attack::ExecutePreparedSwitch,
    Attack::BeginTransactionSqlWithSet,
    Attack::HiddenTransaction,
    Attack::HiddenTransactionWithSet,
    Attack::AbortedHiddenTransaction,
    Attack::TempViewShadowsSentinel,
    Attack::TempTableShadowsWrites,
    Attack::SetRole,
    Attack::SetSessionAuthorization,
    Attack::DiscardAll,
    Attack::DeallocateAll,
    Attack::CustomSetting,
    Attack::ReadOnlyDefault,
    Attack::ListenAndNotify,
    Attack::ListenNotifyUnlisten,
    Attack::HoldCursor,
    Attack::NextvalForLastval,
    Attack::AdvisoryLock,
    Attack::StatementTimeout,
    Attack::ClientEncoding,
    Attack::TimeZone,
    Attack::SwapInFreshConnection,
];

/// The `search_path` value that puts a session into `scope`.
fn path_of(scope: &Scope) -> String {
    format!("\"{}\"", name_of(scope))
}

/// `name` as a `U&"…"` identifier with every character escaped.
fn unicode_escaped(name: &str) -> String {
    let escaped: String = name
        .chars()
        .map(|c| format!("\\{:04X}", c as u32))
        .collect();
    format!("U&\"{escaped}\"")
}

/// Runs `attack` on `c`, a connection checked out for `own`, aiming at `other`.
/// Errors are the attack's business (some are refused by the server on purpose).
pub fn run(
    attack: Attack,
    c: &mut PgConnection,
    own: &Scope,
    other: &Scope,
    url: &str,
) -> QueryResult<()> {
    let other_path = path_of(other);
    let own_name = name_of(own);
    match attack {
        Attack::FunctionSetsPath => {
            diesel::select(dt_switch_path(&other_path)).get_result::<String>(c)?;
        }
        Attack::FunctionWithSetClauseSetsPath => {
            diesel::select(dt_sneaky_switch(&other_path)).get_result::<String>(c)?;
        }
        Attack::TriggerSetsPath => {
            diesel::insert_into(audited::table)
                .values(audited::target.eq(&other_path))
                .execute(c)?;
        }
        Attack::DoBlockSetsPath => c.batch_execute(&format!(
            "DO $$ BEGIN PERFORM set_config('search_path', '{other_path}', false); END $$"
        ))?,
        Attack::ProcedureCommitsThenSetsPath => {
            c.batch_execute(&format!("CALL public.dt_commit_switch('{other_path}')"))?
        }
        Attack::CommentBeforeSet => {
            c.batch_execute(&format!("/* tuning */ SET search_path TO {other_path}"))?
        }
        Attack::UnicodeEscapedSet => c.batch_execute(&format!(
            "SET search_path TO {}",
            unicode_escaped(&name_of(other))
        ))?,
        Attack::SetInsideQueryToXml => c.batch_execute(&format!(
            "SELECT query_to_xml('SELECT set_config(''search_path'', ''{other_path}'', false)', \
             false, false, '')"
        ))?,
        Attack::BindsMarkerInBatch => c.batch_execute(&format!(
            "SELECT 1 -- binds: []\n; SET search_path TO {other_path}"
        ))?,
        Attack::PrepareSwitch => c.batch_execute(&format!(
            "PREPARE dt_evil AS SELECT set_config('search_path', '{other_path}', false)"
        ))?,
        Attack::ExecutePreparedSwitch => c.batch_execute("EXECUTE dt_evil")?,
        Attack::BeginTransactionSqlWithSet => {
            AnsiTransactionManager::begin_transaction_sql(
                c,
                &format!("BEGIN; SET search_path TO {other_path}"),
            )?;
            AnsiTransactionManager::commit_transaction(c)?;
        }
        Attack::HiddenTransaction => c.batch_execute("START /* hint */ TRANSACTION")?,
        Attack::HiddenTransactionWithSet => c.batch_execute(&format!(
            "START /* hint */ TRANSACTION; SET search_path TO {other_path}"
        ))?,
        Attack::AbortedHiddenTransaction => {
            c.batch_execute("START /* hint */ TRANSACTION")?;
            c.batch_execute("SELECT 1/0")?;
        }
        Attack::TempViewShadowsSentinel => c.batch_execute(&format!(
            "CREATE TEMP VIEW sentinel AS SELECT * FROM \"{own_name}\".sentinel"
        ))?,
        Attack::TempTableShadowsWrites => {
            c.batch_execute("CREATE TEMP TABLE writes (token text PRIMARY KEY)")?
        }
        Attack::SetRole => c.batch_execute("SET ROLE pg_read_all_data")?,
        Attack::SetSessionAuthorization => {
            c.batch_execute("SET SESSION AUTHORIZATION pg_read_all_data")?
        }
        Attack::DiscardAll => c.batch_execute("DISCARD ALL")?,
        Attack::DeallocateAll => c.batch_execute("DEALLOCATE ALL")?,
        Attack::CustomSetting => c.batch_execute(&format!(
            "SELECT set_config('app.tenant', '{own_name}', false)"
        ))?,
        Attack::ReadOnlyDefault => c.batch_execute("SET default_transaction_read_only = on")?,
        Attack::ListenAndNotify => {
            c.batch_execute(&format!("LISTEN dt_chan; NOTIFY dt_chan, '{own_name}'"))?
        }
        Attack::ListenNotifyUnlisten => {
            c.batch_execute("LISTEN dt_chan")?;
            c.batch_execute(&format!("NOTIFY dt_chan, '{own_name}'"))?;
            c.batch_execute("SELECT 1")?;
            c.batch_execute("UNLISTEN dt_chan")?;
        }
        Attack::HoldCursor => {
            // Outside the pool's transaction (Session mode) a cursor needs a block.
            if AnsiTransactionManager::transaction_manager_status_mut(c)
                .transaction_depth()
                .ok()
                .flatten()
                .is_none()
            {
                c.batch_execute(
                    "BEGIN; DECLARE dt_cur CURSOR WITH HOLD FOR SELECT name FROM sentinel; COMMIT",
                )?
            } else {
                c.batch_execute("DECLARE dt_cur CURSOR WITH HOLD FOR SELECT name FROM sentinel")?
            }
        }
        Attack::NextvalForLastval => {
            c.batch_execute("SELECT nextval(pg_get_serial_sequence('hotels', 'id'))")?
        }
        Attack::AdvisoryLock => c.batch_execute("SELECT pg_try_advisory_lock(4242)")?,
        Attack::StatementTimeout => c.batch_execute("SET statement_timeout = 1")?,
        Attack::ClientEncoding => c.batch_execute("SET client_encoding = 'LATIN1'")?,
        Attack::TimeZone => c.batch_execute("SET TimeZone = 'Pacific/Kiritimati'")?,
        Attack::SwapInFreshConnection => {
            let mut fresh = PgConnection::establish(url)
                .map_err(|e| diesel::result::Error::QueryBuilderError(Box::new(e)))?;
            fresh.batch_execute(&format!("SET search_path TO {other_path}"))?;
            // The pool's own connection is dropped here; `c` is now the fresh one.
            drop(std::mem::replace(c, fresh));
        }
    }
    Ok(())
}

#[derive(QueryableByName)]
struct SessionView {
    #[diesel(sql_type = Text)]
    current_user: String,
    #[diesel(sql_type = Text)]
    session_user: String,
    #[diesel(sql_type = Nullable<Text>)]
    app_tenant: Option<String>,
    #[diesel(sql_type = Text)]
    read_only: String,
    #[diesel(sql_type = Text)]
    settings: String,
}

/// What went wrong in an innocent checkout, if anything.
pub fn innocent_work(
    c: &mut PgConnection,
    scope: &Scope,
    token: &str,
) -> Result<Option<String>, Error> {
    innocent_work_as(c, scope, token, "postgres")
}

/// [`innocent_work`] for a checkout that must run as role `user` (with tenant roles, a
/// tenant scope runs as its tenant's role) under the session user `postgres`.
pub fn innocent_work_as(
    c: &mut PgConnection,
    scope: &Scope,
    token: &str,
    user: &str,
) -> Result<Option<String>, Error> {
    let expected = name_of(scope);
    if let Some(wrong) = sentinel::check(c, &expected)? {
        return Ok(Some(wrong));
    }
    session_is_clean_and_writes(c, token, user)
}

/// The part of [`innocent_work_as`] after the sentinel check: the session runs as `user`
/// with clean settings, nothing of an earlier borrower is readable, and `token` is
/// written to `writes`.
pub fn session_is_clean_and_writes(
    c: &mut PgConnection,
    token: &str,
    user: &str,
) -> Result<Option<String>, Error> {
    let view = diesel::sql_query(
        "SELECT current_user::text AS current_user, session_user::text AS session_user, \
         current_setting('app.tenant', true) AS app_tenant, \
         current_setting('transaction_read_only') AS read_only, \
         concat_ws(' ', current_setting('client_encoding'), current_setting('TimeZone'), \
           current_setting('statement_timeout')) AS settings",
    )
    .get_result::<SessionView>(c)?;
    if view.current_user != user || view.session_user != "postgres" {
        return Ok(Some(format!(
            "ran as {} (session user {})",
            view.current_user, view.session_user
        )));
    }
    if view.app_tenant.as_deref().is_some_and(|t| !t.is_empty()) {
        return Ok(Some(format!(
            "app.tenant = {:?} leaked in",
            view.app_tenant
        )));
    }
    if view.read_only != "off" {
        return Ok(Some("a read-only default leaked in".into()));
    }
    if view.settings != "UTF8 UTC 0" {
        return Ok(Some(format!("settings leaked in: {}", view.settings)));
    }
    // `Some(Err(_))` is a lost connection (the leak test terminates backends), not a leak.
    if let Some(Ok(n)) = c.notifications_iter().next() {
        return Ok(Some(format!(
            "an earlier borrower's notification was readable: {} {:?}",
            n.channel, n.payload
        )));
    }
    // Each probe that must fail runs in a savepoint, so its error leaves a
    // `TransactionLocal` checkout usable.
    if c.transaction(|c| diesel::sql_query("FETCH ALL FROM dt_cur").execute(c))
        .is_ok()
    {
        return Ok(Some("an earlier borrower's cursor was readable".into()));
    }
    if let Ok(value) = c.transaction(|c| {
        diesel::dsl::sql::<diesel::sql_types::BigInt>("SELECT lastval()").get_result::<i64>(c)
    }) {
        return Ok(Some(format!(
            "lastval() = {value} leaked from an earlier borrower"
        )));
    }
    diesel::insert_into(writes::table)
        .values(writes::token.eq(token))
        .execute(c)?;
    Ok(None)
}

/// A token no other innocent checkout in this process uses.
pub fn token(scope: &Scope) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        name_of(scope),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Where `token` was committed, read over a connection of its own (not the pool's).
pub fn committed_in(url: &str, scopes: &[Scope], token: &str) -> Vec<String> {
    let mut conn = PgConnection::establish(url).expect("direct connection");
    scopes
        .iter()
        .filter(|scope| {
            diesel::sql_query(format!(
                "SELECT token FROM \"{}\".writes WHERE token = $1",
                name_of(scope)
            ))
            .bind::<Text, _>(token)
            .execute(&mut conn)
            .expect("read writes")
                == 1
        })
        .map(name_of)
        .collect()
}

/// One innocent checkout of `scope` that must read only its tenant, run as the session
/// user with clean settings, and commit its write where it belongs.
pub fn innocent(pool: &TenantPool, scope: &Scope, scopes: &[Scope], url: &str) {
    innocent_as(pool, scope, scopes, url, "postgres");
}

/// [`innocent`] for a checkout that must run as role `user`.
pub fn innocent_as(pool: &TenantPool, scope: &Scope, scopes: &[Scope], url: &str, user: &str) {
    let token = token(scope);
    let wrong = pool
        .with_scope(scope.clone(), |c| innocent_work_as(c, scope, &token, user))
        .expect("the innocent checkout works");
    assert_eq!(wrong, None, "innocent checkout of {scope:?}");
    assert_eq!(
        committed_in(url, scopes, &token),
        vec![name_of(scope)],
        "the innocent write of {scope:?} is committed in its own schema only"
    );
}
