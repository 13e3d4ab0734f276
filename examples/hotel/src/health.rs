//! `GET /health`: 200 `{"status":"ok"}` whatever the tenant header says.

use rocket::fairing::AdHoc;
use rocket::serde::json::{json, Value};
use rocket::{get, routes};

pub fn stage() -> AdHoc {
    AdHoc::on_ignite("Health", |rocket| async {
        rocket.mount("/", routes![health])
    })
}

#[get("/health")]
fn health() -> Value {
    json!({"status": "ok"})
}
