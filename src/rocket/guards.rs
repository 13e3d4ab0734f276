//! The request guards: [`CurrentTenant`], [`TenantDb`] and [`PublicDb`].

use std::sync::Arc;

use ::rocket::http::Status;
use ::rocket::request::{FromRequest, Outcome};
use ::rocket::{Ignite, Request, Rocket, Sentinel};
use diesel::pg::PgConnection;

use super::api_error::{stash, ApiError};
use super::state::{blocking, Decided, Routing, Tenancy};
use crate::error::Error;
use crate::pool::Routed;
use crate::pool::Scope;
use crate::pool::TenantPool;
pub use crate::resolve::CurrentTenant;

/// The request's resolution, computed at most once per request.
struct Resolved(Result<Decided, ApiError>);

pub(super) fn tenancy<'r>(request: &'r Request<'_>) -> Result<&'r Tenancy, ApiError> {
    request.rocket().state::<Tenancy>().ok_or_else(|| {
        log::error!("diesel-tenancy: a tenancy guard ran without `TenancyFairing` attached");
        ApiError::new(Status::InternalServerError, "Internal server error")
    })
}

pub(super) fn fail<T>(request: &Request<'_>, error: ApiError) -> Outcome<T, ApiError> {
    let error = stash(request, error);
    Outcome::Error((error.status(), error))
}

#[::rocket::async_trait]
impl<'r> FromRequest<'r> for CurrentTenant {
    type Error = ApiError;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, ApiError> {
        let tenancy = match tenancy(request) {
            Ok(t) => t,
            Err(e) => return fail(request, e),
        };
        let resolved = request
            .local_cache_async(async { Resolved(tenancy.decide(request).await) })
            .await;
        let decided = match &resolved.0 {
            Ok(decided) => decided,
            Err(e) => return fail(request, e.clone()),
        };
        match CurrentTenant::from_resolution(decided.resolution(), tenancy.is_public_tenant()) {
            Ok(tenant) => Outcome::Success(tenant.routed(decided)),
            Err(e) => fail(request, e.into()),
        }
    }
}

pub(super) fn abort_without_fairing(rocket: &Rocket<Ignite>, guard: &str) -> bool {
    if rocket.state::<Tenancy>().is_some() {
        return false;
    }
    log::error!(
        "diesel-tenancy: a route uses the `{guard}` guard but `TenancyFairing` is not attached. \
         Attach it: `.attach(TenancyFairing::new(\"<database>\", TENANT_MIGRATIONS))`."
    );
    true
}

impl Sentinel for CurrentTenant {
    fn abort(rocket: &Rocket<Ignite>) -> bool {
        abort_without_fairing(rocket, "CurrentTenant")
    }
}

/// A database handle scoped to the request's tenant.
///
/// It fails like [`CurrentTenant`]. Its connection is checked out only inside
/// [`run`](Self::run), on a blocking thread, and is already scoped to the tenant
/// (`search_path` = the tenant's schema alone, or `public` for the public tenant).
#[derive(Debug, Clone)]
pub struct TenantDb {
    pool: TenantPool,
    tenant: CurrentTenant,
    routing: Routing,
}

impl TenantDb {
    /// The tenant this handle is scoped to.
    pub fn tenant(&self) -> &CurrentTenant {
        &self.tenant
    }

    /// Runs `f` on a connection scoped to the request's tenant, on a blocking thread.
    ///
    /// A pool timeout or an unreachable database comes back as an error whose
    /// [`ApiError`] is a 503. In `TransactionLocal` mode the work is committed when `f`
    /// returns `Ok` and rolled back otherwise.
    ///
    /// The checkout proves that the tenant's schema is still the one the registry named
    /// when the request was resolved. If it is not (the tenant was deleted, or deleted and
    /// created again, a moment ago), `f` has not run: the registry is reloaded and the
    /// request decided again, once; a tenant that is gone is
    /// [`Error::UnknownTenant`] (400 "Tenant not found"). If `f` fails on a relation or
    /// schema that does not exist, the same reload decides whether the tenant is gone
    /// (400) or the error is the application's.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let pool = self.pool.clone();
        let scope = self.tenant.scope().clone();
        let named = Arc::clone(self.tenant.named());
        let routing = self.routing.clone();
        blocking(move || match pool.run_routed(scope.clone(), f) {
            Routed::Done(result) => result,
            Routed::Stale(_, f) => {
                let scope = routing.decide_again(&pool, &named)?;
                match pool.run_routed(scope, f) {
                    Routed::Done(result) => result,
                    Routed::Stale(e, _) => Err(e.into()),
                    Routed::MissedRelation(e) => Err(e),
                }
            }
            Routed::MissedRelation(e) => match routing.decide_again(&pool, &named) {
                Ok(now) if now == scope => Err(e),
                Ok(_) => Err(Error::StaleRoute {
                    schema: scope.schema().map(ToString::to_string).unwrap_or_default(),
                }
                .into()),
                Err(gone) => Err(gone.into()),
            },
        })
        .await
    }
}

#[::rocket::async_trait]
impl<'r> FromRequest<'r> for TenantDb {
    type Error = ApiError;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, ApiError> {
        let tenant = match CurrentTenant::from_request(request).await {
            Outcome::Success(tenant) => tenant,
            Outcome::Error(e) => return Outcome::Error(e),
            Outcome::Forward(s) => return Outcome::Forward(s),
        };
        let found = tenancy(request).and_then(|t| {
            let pool = t.pool().map_err(ApiError::from)?;
            Ok((pool, t.routing()))
        });
        match found {
            Ok((pool, routing)) => Outcome::Success(TenantDb {
                pool,
                tenant,
                routing,
            }),
            Err(e) => fail(request, e),
        }
    }
}

impl Sentinel for TenantDb {
    fn abort(rocket: &Rocket<Ignite>) -> bool {
        abort_without_fairing(rocket, "TenantDb")
    }
}

/// A database handle scoped to `public` (shared tables, the tenant registry), whatever
/// tenant the request names.
#[derive(Debug, Clone)]
pub struct PublicDb {
    pool: TenantPool,
}

impl PublicDb {
    /// Runs `f` on a connection scoped to `public`, on a blocking thread; see
    /// [`TenantDb::run`].
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let pool = self.pool.clone();
        blocking(move || pool.with_scope(Scope::Public, f)).await
    }
}

#[::rocket::async_trait]
impl<'r> FromRequest<'r> for PublicDb {
    type Error = ApiError;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, ApiError> {
        match tenancy(request).and_then(|t| t.pool().map_err(ApiError::from)) {
            Ok(pool) => Outcome::Success(PublicDb { pool }),
            Err(e) => fail(request, e),
        }
    }
}

impl Sentinel for PublicDb {
    fn abort(rocket: &Rocket<Ignite>) -> bool {
        abort_without_fairing(rocket, "PublicDb")
    }
}
