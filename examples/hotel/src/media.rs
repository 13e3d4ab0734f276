//! `/media/<path>`: uploaded pictures, served only within the tenant that owns them.

use std::path::PathBuf;

use diesel_tenancy::rocket::CurrentTenant;
use rocket::fairing::AdHoc;
use rocket::fs::NamedFile;
use rocket::{get, routes, State};

use crate::config::MediaRoot;
use crate::picture;
use crate::problem::Problem;

pub fn stage() -> AdHoc {
    AdHoc::on_ignite("Media", |rocket| async {
        rocket.mount("/", routes![serve])
    })
}

/// Looks only under `MEDIA_ROOT/<the request's schema>/`: another tenant's file is a 404
/// (a path Rocket refuses, with `..` or a hidden segment, forwards: 404 too).
#[get("/media/<path..>")]
pub async fn serve(
    tenant: CurrentTenant,
    path: PathBuf,
    media: &State<MediaRoot>,
) -> Result<NamedFile, Problem> {
    let relative = path.to_string_lossy();
    let file =
        picture::resolve(&media.0, tenant.schema(), &relative).ok_or_else(Problem::not_found)?;
    NamedFile::open(file)
        .await
        .map_err(|_| Problem::not_found())
}
