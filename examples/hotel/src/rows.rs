//! [`Rows`]: where hotel rows are read and written, and how: the request's tenant on the
//! face's database handle, or a tenant the admin panel picked.

use diesel_tenancy::diesel::PgConnection;
use diesel_tenancy::rocket::{ApiError, AsyncTenantDb, TenantDb};
use diesel_tenancy::{SchemaName, TenantPool};
use rocket::futures::FutureExt;
use rocket::request::{FromRequest, Outcome};
use rocket::Request;

use crate::face::Face;
use crate::model::{self, Changes, Hotel, NewHotel};
use crate::model_async;
use crate::problem::Problem;

/// The hotel rows of one tenant.
///
/// As a request guard it is the request's tenant: on the sync pool
/// ([`TenantDb`], each query on a blocking thread) for the `rocket` face, on the async
/// pool ([`AsyncTenantDb`], each query awaited on the request's task) for
/// `rocket-async`. Both fail the same way (400 `{"detail":"Tenant not found"}`, 503).
pub enum Rows {
    /// The request's tenant, on the sync pool.
    Request(TenantDb),
    /// The request's tenant, on the async pool.
    Async(AsyncTenantDb),
    /// A tenant the admin panel picked, on the sync pool.
    Chosen(TenantPool, SchemaName),
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Rows {
    type Error = ApiError;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, ApiError> {
        match request.rocket().state::<Face>() {
            Some(Face::RocketAsync) => AsyncTenantDb::from_request(request).await.map(Rows::Async),
            _ => TenantDb::from_request(request).await.map(Rows::Request),
        }
    }
}

impl Rows {
    /// The schema, which also names the tenant's media directory.
    pub fn schema(&self) -> &str {
        match self {
            Rows::Request(db) => db.tenant().schema(),
            Rows::Async(db) => db.tenant().schema(),
            Rows::Chosen(_, schema) => schema.as_str(),
        }
    }

    /// The hotels, in id order.
    pub async fn list(&self) -> Result<Vec<Hotel>, Problem> {
        match self {
            Rows::Async(db) => {
                // The query leaves with the checkout, in one round trip.
                let (conn, hotels) = db.connection_with(model_async::list_first).await?;
                let hotels = hotels?;
                conn.commit().await?;
                Ok(hotels)
            }
            _ => self.blocking(|c| Ok(model::list(c)?)).await,
        }
    }

    /// Hotel `id`, if there is one.
    pub async fn get(&self, id: i64) -> Result<Option<Hotel>, Problem> {
        match self {
            Rows::Async(db) => {
                let (conn, hotel) = db
                    .connection_with(|c| model_async::get_first(c, id))
                    .await?;
                let hotel = hotel?;
                conn.commit().await?;
                Ok(hotel)
            }
            _ => self.blocking(move |c| Ok(model::get(c, id)?)).await,
        }
    }

    /// Writes a new hotel.
    pub async fn insert(&self, new: NewHotel) -> Result<Hotel, Problem> {
        match self {
            Rows::Async(db) => {
                let (conn, hotel) = db
                    .connection_with(|c| model_async::insert_first(c, new.clone()))
                    .await?;
                let hotel = hotel?;
                conn.commit().await?;
                Ok(hotel)
            }
            _ => self.blocking(move |c| Ok(model::insert(c, &new)?)).await,
        }
    }

    /// Applies `changes` to hotel `id`: its picture before and the row after, or `None`
    /// if there is no such hotel.
    pub async fn update(
        &self,
        id: i64,
        changes: Changes,
    ) -> Result<Option<(Option<String>, Hotel)>, Problem> {
        match self {
            Rows::Async(db) => {
                db.run(|c| async move { Ok(model_async::update(c, id, &changes).await?) }.boxed())
                    .await
            }
            _ => {
                let changed = self
                    .blocking(move |c| Ok(model::update(c, id, &changes)?))
                    .await?;
                Ok(changed.map(|(before, after)| (before.picture, after)))
            }
        }
    }

    /// Deletes hotel `id`; returns it, or `None` if there was none.
    pub async fn delete(&self, id: i64) -> Result<Option<Hotel>, Problem> {
        match self {
            Rows::Async(db) => {
                db.run(move |c| async move { Ok(model_async::delete(c, id).await?) }.boxed())
                    .await
            }
            _ => self.blocking(move |c| Ok(model::delete(c, id)?)).await,
        }
    }

    /// Runs `f` on a sync connection scoped to the tenant, on a blocking thread; the
    /// async face's rows have none (every method above awaits them instead).
    async fn blocking<T, F>(&self, f: F) -> Result<T, Problem>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, Problem> + Send + 'static,
        T: Send + 'static,
    {
        match self {
            Rows::Request(db) => db.run(f).await,
            Rows::Chosen(pool, schema) => {
                let (pool, schema) = (pool.clone(), schema.clone());
                rocket::tokio::task::spawn_blocking(move || pool.with_tenant(&schema, f))
                    .await
                    .map_err(|e| Problem::internal("hotel task", &e))?
            }
            Rows::Async(_) => Err(Problem::internal(
                "hotel rows",
                &"the async face's rows have no blocking connection",
            )),
        }
    }
}
