//! [`SyncRouter::for_each_tenant`]: the same work in every tenant's scope (django-tenants'
//! `all_tenants_command`, stancl's `tenants:run`), `jobs` tenants at a time.

use std::time::{Duration, Instant};

use diesel::connection::Connection;
use diesel::pg::PgConnection;

use super::batch::{run_parallel, BatchOptions, Outcome};
use super::router::{schema_exists, SyncRouter};
use super::transaction_mark::TransactionMark;
use crate::error::{Error, Place, Result};
use crate::registry::{Tenant, TenantRegistry};

/// What running the work in one tenant gave.
#[derive(Debug)]
pub struct TenantRun<T, E = Error> {
    /// Tenant name.
    pub tenant: String,
    /// Tenant schema.
    pub schema: String,
    /// The work's value, or why it failed (the tenant's transaction was rolled back).
    pub result: std::result::Result<T, E>,
    /// Time taken, checkout included.
    pub duration: Duration,
}

impl<T: Send, E: Send> Outcome for TenantRun<T, E> {
    fn tenant(&self) -> &str {
        &self.tenant
    }
    fn failed(&self) -> bool {
        self.result.is_err()
    }
}

/// What [`SyncRouter::for_each_tenant`] did.
#[derive(Debug)]
pub struct EachReport<T, E = Error> {
    /// One entry per tenant the work ran in, ordered by name.
    pub tenants: Vec<TenantRun<T, E>>,
    /// Tenants selected but never started: the run stopped at the first failure
    /// (without `keep_going`).
    pub not_run: usize,
    /// Wall time.
    pub duration: Duration,
}

impl<T, E> EachReport<T, E> {
    /// The tenants where the work failed.
    pub fn failures(&self) -> impl Iterator<Item = &TenantRun<T, E>> {
        self.tenants.iter().filter(|t| t.result.is_err())
    }

    /// Whether the work ran in every selected tenant and succeeded everywhere.
    pub fn is_success(&self) -> bool {
        self.not_run == 0 && self.tenants.iter().all(|t| t.result.is_ok())
    }
}

impl SyncRouter {
    /// Runs `work` in the scope of every registered tenant (or those `options` select),
    /// `options.jobs` tenants at a time, and reports per tenant.
    ///
    /// Each tenant's work runs on a connection checked out for that tenant (so
    /// `search_path` is its schema, as in a request), inside one transaction: committed
    /// when `work` returns `Ok`, rolled back when it returns `Err` — all or nothing per
    /// tenant. A tenant whose schema is missing fails with [`Error::SchemaMissing`]
    /// before `work` runs. `work` must not end the transaction itself (`COMMIT`,
    /// `ROLLBACK`) nor ignore a failed statement: the crate checks with the server and
    /// reports [`Error::TransactionBroken`] for that tenant. Without
    /// `options.keep_going` no tenant is started after the first failure.
    ///
    /// The error type `E` is the caller's (anything that converts from this crate's
    /// [`Error`] and Diesel's, e.g. `anyhow::Error`); the outer `Result` fails only when
    /// the tenant list cannot be read or `options.only` names an unknown tenant. The
    /// `public` schema is not a registered tenant and is not included.
    ///
    /// ```no_run
    /// use diesel::prelude::*;
    /// use diesel_tenancy::{BatchOptions, SyncRouter};
    ///
    /// # fn run(router: &SyncRouter) -> diesel_tenancy::Result<()> {
    /// let options = BatchOptions { jobs: 4, keep_going: true, ..Default::default() };
    /// let report = router.for_each_tenant(&options, |conn, _tenant| {
    ///     let n: i64 = diesel::dsl::sql::<diesel::sql_types::BigInt>("SELECT count(*) FROM hotels")
    ///         .get_result(conn)?;
    ///     Ok::<_, diesel_tenancy::Error>(n)
    /// })?;
    /// for run in &report.tenants {
    ///     match &run.result {
    ///         Ok(n) => println!("{}: {n} hotels", run.tenant),
    ///         Err(e) => eprintln!("{}: {e}", run.tenant),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn for_each_tenant<T, E, F>(
        &self,
        options: &BatchOptions<TenantRun<T, E>>,
        work: F,
    ) -> Result<EachReport<T, E>>
    where
        F: Fn(&mut PgConnection, &Tenant) -> std::result::Result<T, E> + Sync,
        T: Send,
        E: From<Error> + From<diesel::result::Error> + Send,
    {
        let started = Instant::now();
        let tenants = self.pool.with_public(TenantRegistry::list)?;
        let selection = options.selection(tenants.iter().map(|t| t.name.as_str()))?;
        let todo: Vec<Tenant> = tenants
            .into_iter()
            .filter(|t| selection.admits(&t.name))
            .collect();
        let selected = todo.len();
        let jobs = options.jobs.clamp(1, self.pool.max_size().max(1) as usize);
        let tenants = run_parallel(todo, jobs, options, |tenant: &Tenant| {
            let t0 = Instant::now();
            let result = self.run_in(tenant, &work);
            TenantRun {
                tenant: tenant.name.clone(),
                schema: tenant.schema_name.to_string(),
                result,
                duration: t0.elapsed(),
            }
        });
        Ok(EachReport {
            not_run: selected - tenants.len(),
            tenants,
            duration: started.elapsed(),
        })
    }

    /// `work` in one tenant's scope and transaction.
    fn run_in<T, E, F>(&self, tenant: &Tenant, work: &F) -> std::result::Result<T, E>
    where
        F: Fn(&mut PgConnection, &Tenant) -> std::result::Result<T, E>,
        E: From<Error> + From<diesel::result::Error>,
    {
        let schema = &tenant.schema_name;
        self.pool.with_tenant(schema, |conn| {
            conn.transaction(|conn| {
                if !schema_exists(conn, schema)? {
                    return Err(E::from(Error::SchemaMissing {
                        schema: schema.to_string(),
                    }));
                }
                let mark = TransactionMark::take(conn)?;
                let value = work(conn, tenant)?;
                let place = Place::Schema(schema.to_string());
                mark.check(conn, &place, "the work")?;
                Ok(value)
            })
        })
    }
}
