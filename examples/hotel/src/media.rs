//! `/media/<path>`: uploaded pictures, served only within the tenant that owns them.

use diesel_tenancy::rocket::CurrentTenant;
use rocket::fairing::AdHoc;
use rocket::fs::NamedFile;
use rocket::http::uri::{fmt::Path, Segments};
use rocket::{get, routes, State};

use crate::config::MediaRoot;
use crate::picture;
use crate::problem::Problem;

pub fn stage() -> AdHoc {
    AdHoc::on_ignite("Media", |rocket| async {
        rocket.mount("/", routes![serve])
    })
}

/// Looks only under `MEDIA_ROOT/<the request's schema>/`: another tenant's file is a 404.
#[get("/media/<path..>")]
async fn serve(
    tenant: CurrentTenant,
    path: Segments<'_, Path>,
    media: &State<MediaRoot>,
) -> Result<NamedFile, Problem> {
    let relative = path.collect::<Vec<_>>().join("/");
    let file =
        picture::resolve(&media.0, tenant.schema(), &relative).ok_or_else(Problem::not_found)?;
    NamedFile::open(file)
        .await
        .map_err(|_| Problem::not_found())
}
