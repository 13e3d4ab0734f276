//! Deciding a request's route: what it names, what that resolves to in a registry no
//! older than its bound, and the scope of the route. Shared by the Rocket and axum faces
//! (features `rocket`, `axum`), which only read the request and send the answer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex as AsyncMutex;

use super::http_error::HttpError;
use super::{Malformed, Resolution, ResolverChain, TenantRef};
use crate::error::{Error, Result};
use crate::pool::{Scope, TenantPool};
use crate::registry::{RegistryCache, RegistrySnapshot};

/// The longest a request waits for the registry to be reloaded through the pool when
/// the cache's change feed is down; then it gets 503.
const FALLBACK_DEADLINE: Duration = Duration::from_secs(2);

/// Decides requests against a [`RegistryCache`] with a [`ResolverChain`]: no database
/// round trip while the cache's change feed is healthy; past the cache's bound one
/// reload through the pool at a time, each given 2 seconds; otherwise a 503.
#[derive(Debug)]
pub(crate) struct Decider {
    cache: Arc<RegistryCache>,
    chain: Arc<ResolverChain>,
    public_tenant: bool,
    /// One reload through the pool at a time when the feed is down.
    fallback: AsyncMutex<()>,
    /// A fallback reload is still running (maybe stuck past its deadline).
    fallback_busy: Arc<AtomicBool>,
}

impl Decider {
    pub(crate) fn new(
        cache: Arc<RegistryCache>,
        chain: ResolverChain,
        public_tenant: bool,
    ) -> Self {
        Decider {
            cache,
            chain: Arc::new(chain),
            public_tenant,
            fallback: AsyncMutex::new(()),
            fallback_busy: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The in-memory registry.
    pub(crate) fn cache(&self) -> &Arc<RegistryCache> {
        &self.cache
    }

    /// The rules requests are resolved by.
    pub(crate) fn chain(&self) -> &ResolverChain {
        &self.chain
    }

    /// Whether `public` holds the tenant tables, so tenant routes accept `public`.
    pub(crate) fn is_public_tenant(&self) -> bool {
        self.public_tenant
    }

    /// Decides what a request `named` (from [`ResolverChain::named`], read before any
    /// `.await` so the request need not be `Sync`): what that resolves to now, and the
    /// scope of its route. `reload` makes the reload through the pool, run on a blocking
    /// thread only when the cache is past its bound.
    pub(crate) async fn decide<R>(
        &self,
        named: Result<Vec<TenantRef>, Malformed>,
        reload: impl FnOnce() -> R,
    ) -> Result<Decided, HttpError>
    where
        R: FnOnce() -> Result<()> + Send + 'static,
    {
        let named: Arc<[TenantRef]> = match named {
            Ok(named) => named.into(),
            Err(malformed) => {
                return Ok(Decided {
                    named: Arc::from([]),
                    resolution: Resolution::Malformed(malformed),
                    scope: None,
                })
            }
        };
        let snapshot = self.fresh_snapshot(reload).await?;
        let resolution = self.chain.find_first(&named, &*snapshot);
        let scope = match &resolution {
            Resolution::Tenant(t) => Some(snapshot.scope_of(t)),
            _ => None,
        };
        Ok(Decided {
            named,
            resolution,
            scope,
        })
    }

    /// The cached registry if it is within its bound; otherwise reloaded through the
    /// pool by `reload` (one reload at a time, each given 2 seconds); otherwise a 503.
    pub(crate) async fn fresh_snapshot<R>(
        &self,
        reload: impl FnOnce() -> R,
    ) -> Result<Arc<RegistrySnapshot>, HttpError>
    where
        R: FnOnce() -> Result<()> + Send + 'static,
    {
        if let Ok(snapshot) = self.cache.fresh_snapshot() {
            return Ok(snapshot);
        }
        let _turn = self.fallback.lock().await;
        if let Ok(snapshot) = self.cache.fresh_snapshot() {
            return Ok(snapshot);
        }
        if self.fallback_busy.swap(true, Ordering::AcqRel) {
            // The last reload is still stuck: do not pile up more.
            return Err(HttpError::registry_unavailable(None));
        }
        let busy = Arc::clone(&self.fallback_busy);
        let reload = reload();
        let task = tokio::task::spawn_blocking(move || {
            let result = reload();
            busy.store(false, Ordering::Release);
            result
        });
        match tokio::time::timeout(FALLBACK_DEADLINE, task).await {
            Ok(Ok(Ok(()))) => self
                .cache
                .fresh_snapshot()
                .map_err(|e| HttpError::registry_unavailable(Some(e))),
            Ok(Ok(Err(e))) => Err(HttpError::registry_unavailable(Some(e))),
            Ok(Err(_)) | Err(_) => Err(HttpError::registry_unavailable(None)),
        }
    }

    /// What a request needs to be decided again later, once its route proved stale.
    pub(crate) fn routing(&self) -> Routing {
        Routing {
            cache: Arc::clone(&self.cache),
            chain: Arc::clone(&self.chain),
            public_tenant: self.public_tenant,
        }
    }
}

/// A request's decision: what it named, what that resolved to, the route's scope.
#[derive(Debug)]
pub(crate) struct Decided {
    named: Arc<[TenantRef]>,
    resolution: Resolution,
    /// The scope of a resolved tenant, pinned to its schema's OID.
    scope: Option<Scope>,
}

impl Decided {
    /// What the request named, in the order of the rules.
    pub(crate) fn named(&self) -> &Arc<[TenantRef]> {
        &self.named
    }

    /// What that resolved to.
    pub(crate) fn resolution(&self) -> &Resolution {
        &self.resolution
    }

    /// The scope of a resolved tenant, pinned to its schema's OID.
    pub(crate) fn scope(&self) -> Option<&Scope> {
        self.scope.as_ref()
    }

    /// The resolution alone.
    #[cfg(feature = "rocket")]
    pub(crate) fn into_resolution(self) -> Resolution {
        self.resolution
    }
}

/// Deciding a request again against a reloaded registry, once its route proved stale.
#[derive(Debug, Clone)]
pub(crate) struct Routing {
    cache: Arc<RegistryCache>,
    chain: Arc<ResolverChain>,
    public_tenant: bool,
}

impl Routing {
    /// Reloads the registry through `pool`, then decides `named` again: the new scope,
    /// or [`Error::UnknownTenant`] when it names no tenant any more. Blocking.
    pub(crate) fn decide_again(&self, pool: &TenantPool, named: &[TenantRef]) -> Result<Scope> {
        pool.with_public(|conn| self.cache.reload_from(conn))?;
        let snapshot = self.cache.fresh_snapshot()?;
        match self.chain.find_first(named, &*snapshot) {
            Resolution::Tenant(t) => Ok(snapshot.scope_of(&t)),
            Resolution::Public if self.public_tenant => Ok(Scope::Public),
            _ => Err(Error::UnknownTenant {
                name: named.first().map(ToString::to_string).unwrap_or_default(),
            }),
        }
    }
}

/// Runs blocking work on tokio's blocking pool; a panic there is re-raised here.
pub(crate) async fn blocking<T, E, F>(f: F) -> std::result::Result<T, E>
where
    F: FnOnce() -> std::result::Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<Error> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(E::from(Error::Unavailable {
            what: "the blocking database task",
            reason: "it was cancelled (the server is shutting down)".into(),
        })),
    }
}
