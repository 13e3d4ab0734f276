//! [`SyncRouter::for_each_tenant`](crate::SyncRouter::for_each_tenant): the same work in every tenant's scope (django-tenants'
//! `all_tenants_command`, stancl's `tenants:run`), `jobs` tenants at a time.

use std::time::{Duration, Instant};

use diesel::connection::Connection;
use diesel::pg::PgConnection;

use super::batch::{run_parallel, BatchOptions, Outcome};
use super::transaction_mark::TransactionMark;
use crate::error::{Error, Result};
use crate::pool::TenantPool;
use crate::registry::{Tenant, TenantMode, TenantRegistry};

/// What running the work in one tenant gave.
#[derive(Debug)]
#[non_exhaustive]
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

/// What [`SyncRouter::for_each_tenant`](crate::SyncRouter::for_each_tenant) did.
#[derive(Debug)]
#[non_exhaustive]
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

/// Runs `work` in every tenant `options` selects; see
/// [`SyncRouter::for_each_tenant`](crate::SyncRouter::for_each_tenant).
pub(super) fn for_each_tenant<T, E, F>(
    pool: &TenantPool,
    options: &BatchOptions<TenantRun<T, E>>,
    work: F,
) -> Result<EachReport<T, E>>
where
    F: Fn(&mut PgConnection, &Tenant) -> std::result::Result<T, E> + Sync,
    T: Send,
    E: From<Error> + From<diesel::result::Error> + Send,
{
    let started = Instant::now();
    let tenants = pool.with_public(TenantRegistry::list)?;
    let selection = options.selection(tenants.iter().map(|t| t.name.as_str()))?;
    let todo: Vec<Tenant> = tenants
        .into_iter()
        .filter(|t| selection.admits(&t.name))
        .collect();
    let selected = todo.len();
    let jobs = options.jobs.clamp(1, pool.max_size().max(1) as usize);
    let tenants = run_parallel(todo, jobs, options, |tenant: &Tenant| {
        let t0 = Instant::now();
        let result = run_in(pool, tenant, &work);
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

/// `work` in one tenant's scope and transaction: a schema tenant's schema (which must
/// exist), or a row tenant's rows ([`Scope::Rows`](crate::Scope::Rows)).
fn run_in<T, E, F>(pool: &TenantPool, tenant: &Tenant, work: &F) -> std::result::Result<T, E>
where
    F: Fn(&mut PgConnection, &Tenant) -> std::result::Result<T, E>,
    E: From<Error> + From<diesel::result::Error>,
{
    let scope = tenant.scope();
    let place = scope.schema_ref();
    let schema = &tenant.schema_name;
    let rows = tenant.mode == TenantMode::Rows;
    pool.with_scope(scope, |conn| {
        conn.transaction(|conn| {
            if !rows && !crate::sql::schema_exists(conn, schema.as_str())? {
                return Err(E::from(Error::SchemaMissing {
                    schema: schema.to_string(),
                }));
            }
            let mark = TransactionMark::take(conn)?;
            let value = work(conn, tenant)?;
            mark.check(conn, &place, "the work")?;
            Ok(value)
        })
    })
}
