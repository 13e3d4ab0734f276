//! [`TenantClient`] and [`AsyncTenantClient`]: `rocket::local` clients whose requests
//! name a tenant (features `testing` and `rocket`).

use ::rocket::http::uri::Origin;
use ::rocket::http::{Header, Method};
use ::rocket::local::{asynchronous, blocking};
use ::rocket::{Orbit, Rocket};

use crate::error::{Error, Result};
use crate::rocket::Tenancy;

/// The header every request of a tenant client carries.
fn tenant_header(rocket: &Rocket<Orbit>, how: &How) -> Result<Header<'static>> {
    let tenancy = tenancy(rocket)?;
    match how {
        How::Header(tenant) => match tenancy.resolvers().header_name() {
            Some(name) => Ok(Header::new(name.to_owned(), tenant.clone())),
            None => Err(Error::Config(
                "the application resolves no tenant header (tenancy.header = false): \
                 use a host client"
                    .into(),
            )),
        },
        How::Host(host) if tenancy.resolvers().has_host() => Ok(Header::new("Host", host.clone())),
        How::Host(_) => Err(Error::Config(
            "the application does not resolve tenants by host (tenancy.host = false): \
             use a header client"
                .into(),
        )),
    }
}

fn tenancy(rocket: &Rocket<Orbit>) -> Result<&Tenancy> {
    rocket.state::<Tenancy>().ok_or_else(|| {
        Error::Config("the Rocket application has no TenancyFairing attached".into())
    })
}

/// How the client names its tenant.
#[derive(Debug, Clone)]
enum How {
    /// The tenant's name in the configured tenant header.
    Header(String),
    /// A domain registered for the tenant, as the `Host`.
    Host(String),
}

/// Panics with `e` for a client that cannot be made.
fn unusable(e: Error) -> ! {
    panic!("cannot make a tenant test client: {e}")
}

/// The request methods, each returning the client's request with the tenant header on.
macro_rules! requests {
    ($request:ty) => {
        /// A request with `method` to `uri` that names the client's tenant.
        pub fn req<'u, U>(&self, method: Method, uri: U) -> $request
        where
            U: TryInto<Origin<'u>> + std::fmt::Display,
            'u: 'c,
        {
            self.client.req(method, uri).header(self.header.clone())
        }

        /// A `GET` request naming the client's tenant.
        pub fn get<'u: 'c, U: TryInto<Origin<'u>> + std::fmt::Display>(&self, uri: U) -> $request {
            self.req(Method::Get, uri)
        }

        /// A `POST` request naming the client's tenant.
        pub fn post<'u: 'c, U: TryInto<Origin<'u>> + std::fmt::Display>(&self, uri: U) -> $request {
            self.req(Method::Post, uri)
        }

        /// A `PUT` request naming the client's tenant.
        pub fn put<'u: 'c, U: TryInto<Origin<'u>> + std::fmt::Display>(&self, uri: U) -> $request {
            self.req(Method::Put, uri)
        }

        /// A `PATCH` request naming the client's tenant.
        pub fn patch<'u: 'c, U: TryInto<Origin<'u>> + std::fmt::Display>(
            &self,
            uri: U,
        ) -> $request {
            self.req(Method::Patch, uri)
        }

        /// A `DELETE` request naming the client's tenant.
        pub fn delete<'u: 'c, U: TryInto<Origin<'u>> + std::fmt::Display>(
            &self,
            uri: U,
        ) -> $request {
            self.req(Method::Delete, uri)
        }

        /// The header each request carries (`Tenant-Header: acme`, `Host: acme.test`).
        pub fn carries(&self) -> &Header<'static> {
            &self.header
        }
    };
}

/// A view of a blocking `rocket::local` client whose every request names one tenant:
/// by the tenant header the application's [`TenancyFairing`](crate::rocket::TenancyFairing)
/// reads (`Tenant-Header` unless configured otherwise), or by a `Host` registered for
/// the tenant. Several views can share one client, e.g. to check that two tenants do
/// not see each other's rows.
///
/// Making one reloads the application's registry cache, so tenants created before it
/// (e.g. with [`TestTenancy::create_tenant`](crate::testing::TestTenancy::create_tenant),
/// through another pool) resolve at once.
///
/// ```no_run
/// use diesel_migrations::{embed_migrations, EmbeddedMigrations};
/// use diesel_tenancy::rocket::TenancyFairing;
/// use diesel_tenancy::testing::{TenantClient, TestTenancy};
/// use rocket::http::Status;
/// use rocket::local::blocking::Client;
///
/// const TENANT: EmbeddedMigrations = embed_migrations!("migrations_tenant");
///
/// # fn app(figment: rocket::figment::Figment) -> rocket::Rocket<rocket::Build> {
/// #     rocket::custom(figment).attach(TenancyFairing::new("hotel", TENANT))
/// # }
/// let tenancy = TestTenancy::new(TENANT);
/// tenancy.create_tenant("acme");
/// let client = Client::tracked(app(tenancy.figment("hotel"))).unwrap();
/// let acme = TenantClient::header(&client, "acme");
/// assert_eq!(acme.get("/hotels").dispatch().status(), Status::Ok);
/// ```
#[derive(Debug)]
pub struct TenantClient<'c> {
    client: &'c blocking::Client,
    header: Header<'static>,
}

impl<'c> TenantClient<'c> {
    /// Requests name `tenant` in the application's tenant header.
    ///
    /// # Panics
    /// If the application has no [`TenancyFairing`](crate::rocket::TenancyFairing) or resolves
    /// no header, or its registry cache cannot be reloaded.
    pub fn header(client: &'c blocking::Client, tenant: &str) -> Self {
        Self::new(client, How::Header(tenant.to_owned())).unwrap_or_else(|e| unusable(e))
    }

    /// Requests carry `Host: host`, a domain registered for the tenant.
    ///
    /// # Panics
    /// As [`header`](Self::header), and if the application does not resolve hosts.
    pub fn host(client: &'c blocking::Client, host: &str) -> Self {
        Self::new(client, How::Host(host.to_owned())).unwrap_or_else(|e| unusable(e))
    }

    fn new(client: &'c blocking::Client, how: How) -> Result<Self> {
        let header = tenant_header(client.rocket(), &how)?;
        tenancy(client.rocket())?.cache().refresh()?;
        Ok(TenantClient { client, header })
    }

    /// The client, for requests that name no tenant.
    pub fn client(&self) -> &'c blocking::Client {
        self.client
    }

    requests!(blocking::LocalRequest<'c>);
}

/// [`TenantClient`] for an asynchronous `rocket::local` client (`#[rocket::async_test]`).
#[derive(Debug)]
pub struct AsyncTenantClient<'c> {
    client: &'c asynchronous::Client,
    header: Header<'static>,
}

impl<'c> AsyncTenantClient<'c> {
    /// Requests name `tenant` in the application's tenant header.
    ///
    /// # Panics
    /// As [`TenantClient::header`].
    pub async fn header(client: &'c asynchronous::Client, tenant: &str) -> Self {
        let how = How::Header(tenant.to_owned());
        Self::new(client, how).await.unwrap_or_else(|e| unusable(e))
    }

    /// Requests carry `Host: host`, a domain registered for the tenant.
    ///
    /// # Panics
    /// As [`TenantClient::host`].
    pub async fn host(client: &'c asynchronous::Client, host: &str) -> Self {
        let how = How::Host(host.to_owned());
        Self::new(client, how).await.unwrap_or_else(|e| unusable(e))
    }

    async fn new(client: &'c asynchronous::Client, how: How) -> Result<Self> {
        let header = tenant_header(client.rocket(), &how)?;
        tenancy(client.rocket())?.refresh_listener().await?;
        Ok(AsyncTenantClient { client, header })
    }

    /// The client, for requests that name no tenant.
    pub fn client(&self) -> &'c asynchronous::Client {
        self.client
    }

    requests!(asynchronous::LocalRequest<'c>);
}
