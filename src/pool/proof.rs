//! The verified checkout: one message that puts a session into its scope and proves the
//! rest of its state clean, in the round trip the checkout makes anyway.
//!
//! Nothing here trusts what the previous borrower's SQL looked like. The message resets
//! what PostgreSQL can reset cheaply (`RESET ALL`, `DISCARD SEQUENCES`, advisory locks),
//! runs the proof, a `SELECT` that *fails* unless the server itself reports a clean
//! session, and only then sets the path:
//!
//! | proven by the server                      | how                                           |
//! |-------------------------------------------|-----------------------------------------------|
//! | no transaction block left open            | `now() = statement_timestamp()`: in a simple-query message they are equal exactly when the message runs in a transaction of its own |
//! | no aborted block                          | the message fails with SQLSTATE 25P02         |
//! | runs as the login role                    | `current_user = session_user = <login>`       |
//! | the connection's own backend              | `pg_backend_pid() = <pid>` (direct connections) |
//! | no temporary objects                      | `pg_my_temp_schema() = 0`, or no `pg_depend` row references it |
//! | no open (`WITH HOLD`) cursors             | `pg_cursors` is empty                         |
//! | no `LISTEN` registrations                 | `pg_listening_channels()` is empty            |
//! | the pool's transaction has the connection's defaults (`TransactionLocal`) | `transaction_read_only`, `_isolation`, `_deferrable` equal their (reset) `default_` settings: `BEGIN` fixed them before `RESET ALL` ran |
//! | the pool's prepared statements exist      | the proof is itself a prepared statement: `DEALLOCATE ALL` / `DISCARD ALL` make `EXECUTE` fail |
//! | a pinned scope's schema is the one its route named | `to_regnamespace(<name>)` is the route's OID (both read from the `diesel_tenancy.route` setting the message sets first) |
//!
//! With tenant roles on ([`TenantRoles`](crate::TenantRoles)) the message also runs
//! `RESET ROLE` before the proof (`RESET ALL` leaves the role alone), so the proof's role
//! check shows the previous scope's role gone; after the path it sets the scope's role
//! (`SET [LOCAL] ROLE`, tenant scopes only) and runs a second parameterless statement,
//! [`ROLE_STATEMENT`], that fails unless the session now runs as exactly that role, named
//! like this database's tenant roles, under the login role, and that role is no
//! superuser. It reads session state only; the role's memberships, `CREATEROLE` and
//! `BYPASSRLS` are audited where roles are made and repaired (`role_provision.rs`).
//!
//! A failed proof raises an error whose text carries [`MARK`] and the reasons, so the
//! client learns why in the same round trip. Every name in the statement is
//! schema-qualified with `pg_catalog` (operators too): it runs under whatever
//! `search_path` the previous borrower left, so nothing it calls may resolve elsewhere.

use super::mode::PoolMode;
use super::row_security::RowProof;

/// The name of the proof's prepared statement on every direct connection.
pub(crate) const STATEMENT: &str = "diesel_tenancy_checkout";

/// The name of the tenant-role proof's prepared statement (tenant roles on).
pub(crate) const ROLE_STATEMENT: &str = "diesel_tenancy_role";

/// Starts every reason a failed proof reports.
pub(crate) const MARK: &str = "diesel-tenancy: ";

/// The session setting that carries a pinned scope's route (`<oid>:<schema>`) to the proof.
pub(crate) const ROUTE_SETTING: &str = "diesel_tenancy.route";

/// Starts the reason the proof gives for a stale route.
pub(crate) const STALE_ROUTE: &str = "stale route: no schema has the OID and name ";

/// What a connection learned about its own session when it was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The server backend's process id; `None` behind a transaction pooler, where the
    /// backend changes from one transaction to the next.
    pid: Option<i32>,
    /// The role the connection logged in as (`session_user` at connect).
    login: String,
}

impl Identity {
    pub(crate) fn new(pid: Option<i32>, login: String) -> Self {
        Identity { pid, login }
    }
}

/// How the proof reaches the server on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proof {
    identity: Identity,
    /// The pool's mode: `TransactionLocal` sets the path for the transaction only.
    mode: PoolMode,
    /// `EXECUTE` of the statement prepared at connect, or the whole `SELECT` inline
    /// (behind a transaction pooler, where a prepared statement lives on one backend).
    prepared: bool,
    /// With tenant roles on: the group role every tenant role is a member of.
    tenant_group: Option<String>,
    /// With row tenants on: how row scopes are proven.
    rows: Option<RowProof>,
}

/// What one checkout message must do besides the proof every checkout runs.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Checkout<'a> {
    /// The rendered `search_path` value (quoted, validated identifiers).
    pub(crate) path: &'a str,
    /// A pinned scope's `<oid>:<schema>`.
    pub(crate) route: Option<&'a str>,
    /// The role the scope runs as (a tenant role, or the row role), validated.
    pub(crate) role: Option<&'a str>,
    /// A row scope's tenant id.
    pub(crate) row_tenant: Option<i64>,
    /// Forget every prepared statement first (the pool's reset on a schema switch).
    pub(crate) deallocate: bool,
    /// Prepare the row statements in this message (the connection's first row scope, or
    /// after a deallocation).
    pub(crate) prepare_rows: bool,
}

impl Proof {
    pub(crate) fn new(identity: Identity, mode: PoolMode, prepared: bool) -> Self {
        Proof {
            identity,
            mode,
            prepared,
            tenant_group: None,
            rows: None,
        }
    }

    /// The same proof for a pool that serves row tenants.
    pub(crate) fn with_rows(mut self, rows: RowProof) -> Self {
        self.rows = Some(rows);
        self
    }

    /// How row scopes are proven, if the pool serves row tenants.
    pub(crate) fn rows(&self) -> Option<&RowProof> {
        self.rows.as_ref()
    }

    /// The same proof for a pool with tenant roles, whose group role is `group`.
    pub(crate) fn with_tenant_roles(mut self, group: String) -> Self {
        self.tenant_group = Some(group);
        self
    }

    fn local(&self) -> &'static str {
        if self.mode == PoolMode::TransactionLocal {
            "true"
        } else {
            "false"
        }
    }

    /// Whether the proof runs as the prepared statement [`STATEMENT`].
    pub(crate) fn is_prepared(&self) -> bool {
        self.prepared
    }

    /// `PREPARE` of the proof statement, sent once when a direct connection is opened
    /// (and again after the pool deallocates every statement).
    ///
    /// It has no parameter, so PostgreSQL plans it once (generic plan) and every
    /// checkout only executes it; the path is set by a separate one-function `SELECT`
    /// after it. Measured: with the path as a parameter PostgreSQL kept building custom
    /// plans of the whole proof, ~250 µs of backend CPU per checkout instead of ~20.
    pub(crate) fn prepare(&self) -> String {
        let mut sql = format!("PREPARE {STATEMENT} AS {}", self.select());
        if self.tenant_group.is_some() {
            sql.push_str(&format!(
                "; PREPARE {ROLE_STATEMENT} AS {}",
                self.role_select()
            ));
        }
        sql
    }

    /// The checkout message for `path` (see [`Checkout`]); a shorthand of
    /// [`message`](Self::message) for scopes without row tenants.
    #[cfg(test)]
    pub(crate) fn checkout(
        &self,
        path: &str,
        route: Option<&str>,
        role: Option<&str>,
        deallocate: bool,
    ) -> String {
        self.message(&Checkout {
            path,
            route,
            role,
            deallocate,
            ..Checkout::default()
        })
    }

    /// The checkout message. `path` is spliced as it is (quoted, validated identifiers);
    /// `route` (`<oid>:<schema>`, from `Scope::route`) makes the proof also check that the
    /// schema still has that OID; `role` is set after the path and proven; a row tenant is
    /// set before the proof and proven a registered row tenant, and its role proven bound
    /// by row security (`row_security.rs`).
    pub(crate) fn message(&self, c: &Checkout<'_>) -> String {
        let local = self.mode == PoolMode::TransactionLocal;
        let set = if local { "SET LOCAL " } else { "SET " };
        let mut sql = String::with_capacity(96);
        if local {
            sql.push_str("BEGIN; ");
        }
        if c.deallocate {
            sql.push_str("DEALLOCATE ALL; ");
            if self.prepared {
                sql.push_str(&self.prepare());
                sql.push_str("; ");
            }
        }
        let rows = self.rows.as_ref();
        if let (Some(rows), true, true) = (rows, c.prepare_rows, self.prepared) {
            sql.push_str(&rows.prepare());
            sql.push_str("; ");
        }
        // Settings a borrower changed go back to the connection's defaults (role,
        // database and URL settings); the proof then sets the crate's own again.
        sql.push_str("RESET ALL; ");
        if self.tenant_group.is_some() || rows.is_some() {
            // `RESET ALL` leaves the role alone: the previous scope's must go before the
            // proof, which checks that the session runs as the login role.
            sql.push_str("RESET ROLE; ");
        }
        sql.push_str("DISCARD SEQUENCES; ");
        if local {
            // Outside the pool's transactions the path stays empty, so nothing that
            // escapes a transaction resolves an unqualified table.
            sql.push_str("SET search_path TO ''; ");
        }
        if let Some(route) = c.route {
            // A utility statement read by the proof: the proof itself stays parameterless
            // (one generic plan). `route` is digits, `:` and a validated schema name.
            sql.push_str(set);
            sql.push_str(ROUTE_SETTING);
            sql.push_str(" TO '");
            sql.push_str(route);
            sql.push_str("'; ");
        }
        if let Some(tenant) = c.row_tenant {
            // Digits only: safe in a literal.
            sql.push_str(&format!(
                "{set}{} TO '{tenant}'; ",
                super::row_security::TENANT_SETTING
            ));
        }
        if local && c.route.is_some() {
            // Held until the pool's transaction ends, and taken before the proof checks
            // the schema: the router's own deletion, creation and migration of that
            // schema take this lock exclusively, so they wait for the request instead of
            // dropping the schema between the proof and the borrower's statements.
            let schema = c
                .route
                .and_then(|r| r.split_once(':'))
                .map_or("", |(_, s)| s);
            sql.push_str(&super::schema_lock::lock_shared_sql(schema));
        }
        if self.prepared {
            sql.push_str("EXECUTE ");
            sql.push_str(STATEMENT);
        } else {
            sql.push_str(&self.select());
        }
        if let (Some(rows), Some(_)) = (rows, c.row_tenant) {
            // Still as the login role, which may read the registry.
            sql.push_str("; ");
            sql.push_str(&rows.tenant_check(self.prepared));
        }
        // Reached only when the proof did not raise. A utility statement, so nothing is
        // planned; `path` is made of quoted, validated identifiers only.
        sql.push_str("; ");
        sql.push_str(set);
        sql.push_str("search_path TO ");
        sql.push_str(c.path);
        if let Some(role) = c.role {
            sql.push_str("; ");
            sql.push_str(set);
            sql.push_str("ROLE ");
            sql.push_str(&crate::schema_name::quote_ident(role));
            sql.push_str("; ");
            match (rows, c.row_tenant) {
                (Some(rows), Some(_)) => sql.push_str(&rows.role_check(self.prepared)),
                _ if self.prepared => {
                    sql.push_str("EXECUTE ");
                    sql.push_str(ROLE_STATEMENT);
                }
                _ => sql.push_str(&self.role_select()),
            }
        }
        sql
    }

    /// The tenant-role proof, run right after `SET ROLE`: fails with [`MARK`] and the
    /// reasons unless the session runs as the role just set (`current_setting('role')`,
    /// which `SET ROLE` fixed in this very message), named like this database's tenant
    /// roles, under the login role, and that role is no superuser.
    fn role_select(&self) -> String {
        let login = literal(&self.identity.login);
        let prefix = literal(&format!(
            "{}_",
            self.tenant_group.as_deref().unwrap_or_default()
        ));
        let set = "pg_catalog.current_setting('role')";
        // Session state only, no catalog read: `pg_authid` and `pg_auth_members` are shared
        // catalogs, whose locks bypass PostgreSQL's fast path, and reading them on every
        // checkout cost a third of the pool-level throughput under 16 concurrent
        // checkouts (BENCHMARKS.md, "Tenant roles"). A role's memberships and attributes
        // are checked where roles are made and repaired (`role_provision.rs`).
        format!(
            "SELECT CASE WHEN checked.problems OPERATOR(pg_catalog.=) '' THEN 0 \
               ELSE pg_catalog.int4in(pg_catalog.textout(pg_catalog.concat('{MARK}', \
                 checked.problems))) END \
             FROM (SELECT pg_catalog.concat_ws('; ', \
               CASE WHEN session_user OPERATOR(pg_catalog.<>) {login} \
                   OR current_user OPERATOR(pg_catalog.<>) {set} \
                   OR NOT pg_catalog.starts_with({set}, {prefix}) \
                 THEN pg_catalog.concat('the session ran as role ', current_user, \
                   ' (session user ', session_user, '), not as the tenant role ', {set}, \
                   ' under the login role ', {login}) END, \
               CASE WHEN pg_catalog.current_setting('is_superuser') OPERATOR(pg_catalog.<>) 'off' \
                 THEN pg_catalog.concat('the tenant role ', current_user, ' is a superuser') END \
             ) AS problems) AS checked"
        )
    }

    /// The proof `SELECT`: fails with [`MARK`] and the reasons unless every check passes;
    /// also sets Diesel's session settings and releases advisory locks.
    fn select(&self) -> String {
        let local = self.local();
        let login = literal(&self.identity.login);
        let pid = match self.identity.pid {
            Some(pid) => format!(
                "CASE WHEN pg_catalog.pg_backend_pid() OPERATOR(pg_catalog.<>) {pid} \
                 THEN pg_catalog.concat('the connection was served by backend ', \
                 pg_catalog.pg_backend_pid(), ', not its own {pid} (a transaction pooler?)') END, "
            ),
            None => String::new(),
        };
        format!(
            "SELECT CASE WHEN proof.problems OPERATOR(pg_catalog.=) '' THEN 0 \
               ELSE pg_catalog.int4in(pg_catalog.textout(pg_catalog.concat('{MARK}', \
                 proof.problems))) END, \
             pg_catalog.set_config('TimeZone', 'UTC', false), \
             pg_catalog.set_config('client_encoding', 'UTF8', false), \
             pg_catalog.pg_advisory_unlock_all() \
             FROM (SELECT pg_catalog.concat_ws('; ', \
               CASE WHEN pg_catalog.now() OPERATOR(pg_catalog.<>) pg_catalog.statement_timestamp() \
                 THEN 'the session was inside a transaction block opened before the checkout' END, \
               CASE WHEN session_user OPERATOR(pg_catalog.<>) {login} \
                   OR current_user OPERATOR(pg_catalog.<>) {login} \
                 THEN pg_catalog.concat('the session ran as role ', current_user, \
                   ' (session user ', session_user, '), not as the login role ', {login}) END, \
               {pid}\
               CASE WHEN pg_catalog.pg_my_temp_schema() OPERATOR(pg_catalog.<>) 0 AND EXISTS ( \
                   SELECT FROM pg_catalog.pg_depend \
                   WHERE refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass \
                   AND refobjid OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()) \
                 THEN 'the session held temporary objects' END, \
               CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_cursors) \
                 THEN 'the session held open cursors' END, \
               CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_listening_channels()) \
                 THEN 'the session was listening on notification channels' END, \
               CASE WHEN {local} AND ( \
                   pg_catalog.current_setting('transaction_read_only') OPERATOR(pg_catalog.<>) \
                     pg_catalog.current_setting('default_transaction_read_only') \
                   OR pg_catalog.current_setting('transaction_isolation') OPERATOR(pg_catalog.<>) \
                     pg_catalog.current_setting('default_transaction_isolation') \
                   OR pg_catalog.current_setting('transaction_deferrable') OPERATOR(pg_catalog.<>) \
                     pg_catalog.current_setting('default_transaction_deferrable')) \
                 THEN 'the transaction began under transaction defaults a borrower had changed' END, \
               CASE WHEN COALESCE(pg_catalog.current_setting('{ROUTE_SETTING}', true), '') \
                   OPERATOR(pg_catalog.=) '' THEN NULL \
                 WHEN COALESCE(pg_catalog.to_regnamespace(pg_catalog.split_part( \
                     pg_catalog.current_setting('{ROUTE_SETTING}', true), ':', 2))::pg_catalog.oid \
                   OPERATOR(pg_catalog.=) pg_catalog.split_part( \
                     pg_catalog.current_setting('{ROUTE_SETTING}', true), ':', 1)::pg_catalog.oid, false) \
                 THEN NULL \
                 ELSE pg_catalog.concat('{STALE_ROUTE}', \
                   pg_catalog.current_setting('{ROUTE_SETTING}', true)) END \
             ) AS problems) AS proof"
        )
    }
}

/// The reason a failed proof gave, found in the text of the error it raised.
pub(crate) fn reason(error_text: &str) -> Option<&str> {
    let start = error_text.find(MARK)? + MARK.len();
    let rest = &error_text[start..];
    // The server quotes the rejected text: `invalid input syntax for type integer: "…"`.
    Some(rest.split('"').next().unwrap_or(rest).trim_end())
}

/// `text` as an SQL string literal in the `E'…'` form, which means the same whatever
/// `standard_conforming_strings` says.
pub(crate) fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 3);
    out.push_str("E'");
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proof(mode: PoolMode, prepared: bool) -> Proof {
        Proof::new(
            Identity::new(prepared.then_some(4242), "app".into()),
            mode,
            prepared,
        )
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(literal("app"), "E'app'");
        assert_eq!(literal(r"o'\x"), r"E'o\'\\x'");
    }

    #[test]
    fn session_checkout_resets_then_executes_the_prepared_proof() {
        let sql = proof(PoolMode::Session, true).checkout("\"acme\", pg_temp", None, None, false);
        assert_eq!(
            sql,
            "RESET ALL; DISCARD SEQUENCES; EXECUTE diesel_tenancy_checkout; \
             SET search_path TO \"acme\", pg_temp"
        );
    }

    #[test]
    fn transaction_local_checkout_begins_and_keeps_the_session_path_empty() {
        let sql = proof(PoolMode::TransactionLocal, true).checkout("\"acme\"", None, None, false);
        assert!(sql.starts_with("BEGIN; RESET ALL; DISCARD SEQUENCES; SET search_path TO ''; "));
        assert!(sql.ends_with("EXECUTE diesel_tenancy_checkout; SET LOCAL search_path TO \"acme\""));
    }

    #[test]
    fn a_deallocating_switch_prepares_the_proof_again() {
        let sql = proof(PoolMode::Session, true).checkout("\"b\"", None, None, true);
        assert!(sql.starts_with("DEALLOCATE ALL; PREPARE diesel_tenancy_checkout AS SELECT"));
        let inline = proof(PoolMode::TransactionLocal, false).checkout("\"b\"", None, None, true);
        assert!(!inline.contains("PREPARE"), "{inline}");
    }

    #[test]
    fn inline_proof_carries_the_path_and_no_backend_check() {
        let sql = proof(PoolMode::TransactionLocal, false).checkout("\"acme\"", None, None, false);
        assert!(
            sql.ends_with("; SET LOCAL search_path TO \"acme\""),
            "{sql}"
        );
        assert!(sql.contains("CASE WHEN true AND"), "{sql}");
        assert!(!sql.contains("pg_backend_pid"), "{sql}");
        assert!(!sql.contains("EXECUTE"), "{sql}");
    }

    #[test]
    fn a_route_is_set_before_the_proof_reads_it() {
        let sql = proof(PoolMode::Session, true).checkout(
            "\"acme\", pg_temp",
            Some("16384:acme"),
            None,
            false,
        );
        assert_eq!(
            sql,
            "RESET ALL; DISCARD SEQUENCES; SET diesel_tenancy.route TO '16384:acme'; \
             EXECUTE diesel_tenancy_checkout; SET search_path TO \"acme\", pg_temp"
        );
        let local = proof(PoolMode::TransactionLocal, true).checkout(
            "\"acme\"",
            Some("1:acme"),
            None,
            false,
        );
        assert!(
            local.contains(
                "SET LOCAL diesel_tenancy.route TO '1:acme'; SELECT pg_catalog.\
                 pg_advisory_xact_lock_shared(1952804468, pg_catalog.hashtext('acme')); EXECUTE"
            ),
            "{local}"
        );
        assert!(proof(PoolMode::Session, true)
            .prepare()
            .contains("pg_catalog.to_regnamespace"));
    }

    #[test]
    fn the_prepared_proof_checks_every_state_it_claims() {
        let sql = proof(PoolMode::Session, true).prepare();
        for needle in [
            "pg_catalog.now() OPERATOR(pg_catalog.<>) pg_catalog.statement_timestamp()",
            "current_user OPERATOR(pg_catalog.<>) E'app'",
            "pg_catalog.pg_backend_pid() OPERATOR(pg_catalog.<>) 4242",
            "pg_catalog.pg_my_temp_schema()",
            "pg_catalog.pg_cursors",
            "pg_catalog.pg_listening_channels()",
            "pg_catalog.pg_advisory_unlock_all()",
            "set_config('TimeZone', 'UTC', false)",
        ] {
            assert!(sql.contains(needle), "missing {needle}");
        }
        // Every function and operator is qualified: nothing resolves through the path.
        for bare in [" now()", " set_config(", " = ", " <> ", " concat("] {
            assert!(!sql.contains(bare), "unqualified {bare:?} in {sql}");
        }
    }

    fn with_roles(mode: PoolMode, prepared: bool) -> Proof {
        proof(mode, prepared).with_tenant_roles("dt9".into())
    }

    #[test]
    fn without_tenant_roles_the_message_never_touches_the_role() {
        for (mode, prepared) in [
            (PoolMode::Session, true),
            (PoolMode::TransactionLocal, false),
        ] {
            let sql = proof(mode, prepared).checkout("\"acme\"", None, None, false);
            assert!(!sql.contains("ROLE"), "{sql}");
            assert!(!proof(mode, prepared).prepare().contains(ROLE_STATEMENT));
        }
    }

    #[test]
    fn session_checkout_with_roles_resets_the_role_before_the_proof_and_sets_it_after() {
        let sql = with_roles(PoolMode::Session, true).checkout(
            "\"acme\", pg_temp",
            None,
            Some("dt9_acme"),
            false,
        );
        assert_eq!(
            sql,
            "RESET ALL; RESET ROLE; DISCARD SEQUENCES; EXECUTE diesel_tenancy_checkout; \
             SET search_path TO \"acme\", pg_temp; SET ROLE \"dt9_acme\"; \
             EXECUTE diesel_tenancy_role"
        );
        // `public` runs as the login role: reset, proven, never set.
        let public =
            with_roles(PoolMode::Session, true).checkout("\"public\", pg_temp", None, None, false);
        assert_eq!(
            public,
            "RESET ALL; RESET ROLE; DISCARD SEQUENCES; EXECUTE diesel_tenancy_checkout; \
             SET search_path TO \"public\", pg_temp"
        );
    }

    #[test]
    fn transaction_local_checkout_with_roles_sets_a_local_role() {
        let sql = with_roles(PoolMode::TransactionLocal, true).checkout(
            "\"acme\"",
            None,
            Some("dt9_acme"),
            false,
        );
        assert!(
            sql.starts_with("BEGIN; RESET ALL; RESET ROLE; DISCARD SEQUENCES; "),
            "{sql}"
        );
        assert!(
            sql.ends_with("SET LOCAL search_path TO \"acme\"; SET LOCAL ROLE \"dt9_acme\"; EXECUTE diesel_tenancy_role"),
            "{sql}"
        );
        // Behind a pooler the role proof is sent inline, like the main proof.
        let inline = with_roles(PoolMode::TransactionLocal, false).checkout(
            "\"acme\"",
            None,
            Some("dt9_acme"),
            false,
        );
        assert!(
            inline.contains("SET LOCAL ROLE \"dt9_acme\"; SELECT CASE WHEN checked.problems"),
            "{inline}"
        );
        assert!(!inline.contains("EXECUTE"), "{inline}");
    }

    #[test]
    fn the_role_proof_is_prepared_with_the_main_one_and_again_after_a_deallocation() {
        let proof = with_roles(PoolMode::Session, true);
        let prepare = proof.prepare();
        assert!(prepare.starts_with("PREPARE diesel_tenancy_checkout AS SELECT"));
        assert!(
            prepare.contains("; PREPARE diesel_tenancy_role AS SELECT"),
            "{prepare}"
        );
        let switch = proof.checkout("\"b\"", None, Some("dt9_b"), true);
        assert!(switch.starts_with(&format!(
            "DEALLOCATE ALL; {prepare}; RESET ALL; RESET ROLE;"
        )));
    }

    #[test]
    fn the_role_proof_checks_the_role_and_reads_no_catalog() {
        let sql = with_roles(PoolMode::Session, true).role_select();
        for needle in [
            "session_user OPERATOR(pg_catalog.<>) E'app'",
            "current_user OPERATOR(pg_catalog.<>) pg_catalog.current_setting('role')",
            "NOT pg_catalog.starts_with(pg_catalog.current_setting('role'), E'dt9_')",
            "pg_catalog.current_setting('is_superuser') OPERATOR(pg_catalog.<>) 'off'",
        ] {
            assert!(sql.contains(needle), "missing {needle}");
        }
        assert!(!sql.contains(" FROM pg_catalog.pg_"), "{sql}");
        for bare in [" now()", " = ", " <> ", " concat(", " current_setting("] {
            assert!(!sql.contains(bare), "unqualified {bare:?} in {sql}");
        }
    }

    #[test]
    fn reasons_are_read_back_from_the_error_text() {
        let text = "invalid input syntax for type integer: \
                    \"diesel-tenancy: the session held open cursors\"";
        assert_eq!(reason(text), Some("the session held open cursors"));
        assert_eq!(reason("prepared statement does not exist"), None);
    }
}
