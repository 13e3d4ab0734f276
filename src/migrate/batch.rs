//! Work over many tenants: which ones, how many at once, what after a failure, and who
//! hears about progress. Shared by [`SyncRouter::migrate_all`](crate::SyncRouter::migrate_all)
//! and [`SyncRouter::for_each_tenant`](crate::SyncRouter::for_each_tenant).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{Error, Result};
use crate::registry::tenant_name_key;
use crate::registry::Tenant;

/// Called after each tenant with what its run reported (e.g. to advance a progress bar).
pub type Progress<R> = Arc<dyn Fn(&R) + Send + Sync>;

/// Options for work run over many tenants, `R` being what one tenant's run reports:
/// [`TenantReport`](crate::TenantReport) for [`MigrateOptions`](crate::MigrateOptions),
/// [`TenantRun`](crate::TenantRun) for [`SyncRouter::for_each_tenant`](crate::SyncRouter::for_each_tenant).
///
/// ```
/// use diesel_tenancy::BatchOptions;
///
/// let options: BatchOptions<diesel_tenancy::TenantRun<i64>> = BatchOptions {
///     jobs: 4,
///     skip: vec!["legacy".into()],
///     keep_going: true,
///     ..Default::default()
/// };
/// assert!(options.only.is_empty());
/// ```
pub struct BatchOptions<R> {
    /// Tenants worked on at once. Defaults to 1; capped at the pool size.
    pub jobs: usize,
    /// Only these tenants (names compared by [`tenant_name_key`](crate::tenant_name_key)).
    /// Empty means all. A name that is not registered is [`Error::UnknownTenant`].
    pub only: Vec<String>,
    /// Never these tenants (names compared the same way).
    pub skip: Vec<String>,
    /// Go on with the other tenants after one fails. Defaults to `false`: after the first
    /// failure no further tenant is started (those already running finish).
    pub keep_going: bool,
    /// Called after each tenant, from the thread that worked on it.
    pub progress: Option<Progress<R>>,
}

impl<R> Default for BatchOptions<R> {
    fn default() -> Self {
        BatchOptions {
            jobs: 1,
            only: Vec::new(),
            skip: Vec::new(),
            keep_going: false,
            progress: None,
        }
    }
}

impl<R> Clone for BatchOptions<R> {
    fn clone(&self) -> Self {
        BatchOptions {
            jobs: self.jobs,
            only: self.only.clone(),
            skip: self.skip.clone(),
            keep_going: self.keep_going,
            progress: self.progress.clone(),
        }
    }
}

impl<R> std::fmt::Debug for BatchOptions<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchOptions")
            .field("jobs", &self.jobs)
            .field("only", &self.only)
            .field("skip", &self.skip)
            .field("keep_going", &self.keep_going)
            .finish_non_exhaustive()
    }
}

impl<R> BatchOptions<R> {
    /// The name filter these options describe, checked against the registered `known`
    /// names.
    pub(crate) fn selection<'a>(
        &self,
        known: impl IntoIterator<Item = &'a str>,
    ) -> Result<Selection> {
        Selection::new(&self.only, &self.skip, known)
    }
}

/// `only` (everything when empty) minus `skip`, by [`tenant_name_key`].
#[derive(Debug)]
pub(crate) struct Selection {
    only: HashSet<String>,
    skip: HashSet<String>,
}

impl Selection {
    /// Fails with [`Error::UnknownTenant`] if `only` names a tenant not in `known`.
    pub(crate) fn new<'a>(
        only: &[String],
        skip: &[String],
        known: impl IntoIterator<Item = &'a str>,
    ) -> Result<Selection> {
        let keys = |v: &[String]| -> HashSet<String> {
            v.iter().map(|n| tenant_name_key(n).into_owned()).collect()
        };
        let known: HashSet<String> = known
            .into_iter()
            .map(|n| tenant_name_key(n).into_owned())
            .collect();
        if let Some(missing) = only.iter().find(|n| !known.contains(&*tenant_name_key(n))) {
            return Err(Error::UnknownTenant {
                name: missing.clone(),
            });
        }
        Ok(Selection {
            only: keys(only),
            skip: keys(skip),
        })
    }

    /// Whether the tenant called `name` is selected.
    pub(crate) fn admits(&self, name: &str) -> bool {
        let key = tenant_name_key(name);
        (self.only.is_empty() || self.only.contains(&*key)) && !self.skip.contains(&*key)
    }
}

/// What the parallel runner needs to know of one tenant's report.
pub(crate) trait Outcome: Send {
    /// The tenant's name.
    fn tenant(&self) -> &str;
    /// Whether the tenant's work failed.
    fn failed(&self) -> bool;
}

/// Runs `work` over `items` on `jobs` threads; without `keep_going`, stops handing out
/// work after the first failure. Reports come back sorted by tenant name key.
pub(crate) fn run_parallel<R, F>(
    items: Vec<Tenant>,
    jobs: usize,
    options: &BatchOptions<R>,
    work: F,
) -> Vec<R>
where
    R: Outcome,
    F: Fn(&Tenant) -> R + Sync,
{
    let queue = Mutex::new(items.into_iter().collect::<VecDeque<_>>());
    let results = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let next = queue
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pop_front();
                let Some(tenant) = next else { break };
                let report = work(&tenant);
                if report.failed() && !options.keep_going {
                    stop.store(true, Ordering::Release);
                }
                if let Some(progress) = &options.progress {
                    progress(&report);
                }
                results
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(report);
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(PoisonError::into_inner);
    results.sort_by_cached_key(|r| tenant_name_key(r.tenant()).into_owned());
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn selection_compares_names_by_the_registry_key() {
        let known = ["Acme", "Globex", "Initech"];
        let all = Selection::new(&[], &[], known).unwrap();
        assert!(known.iter().all(|n| all.admits(n)));

        let some =
            Selection::new(&names(&["  acme ", "GLOBEX"]), &names(&["globex"]), known).unwrap();
        assert!(some.admits("Acme"));
        assert!(!some.admits("Globex"), "skip wins over only");
        assert!(!some.admits("Initech"));

        let skip = Selection::new(&[], &names(&["INITECH"]), known).unwrap();
        assert!(skip.admits("Acme") && !skip.admits("Initech"));
    }

    #[test]
    fn selection_refuses_an_unknown_name_in_only() {
        let err = Selection::new(&names(&["nobody"]), &[], ["Acme"]).unwrap_err();
        assert!(matches!(err, Error::UnknownTenant { name } if name == "nobody"));
        // An unknown name in `skip` skips nothing and is no error.
        assert!(Selection::new(&[], &names(&["nobody"]), ["Acme"]).is_ok());
    }
}
