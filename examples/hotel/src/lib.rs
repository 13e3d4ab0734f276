//! The seed's hotel service on `diesel-tenancy`: one PostgreSQL schema per tenant, the
//! tenant chosen per request by `Tenant-Header` or the Host's registered domain.
//!
//! ```text
//! cargo run -p hotel                      # find or start a database, migrate, serve
//! cargo run -p hotel -- tenant create demo1
//! cargo run -p hotel -- migrate --check
//! ```
//!
//! `main.rs` runs [`run`] (`commands.rs`); the service is [`rocket()`](fn@rocket) (`service.rs`), one
//! stage per resource module. The tests (`tests/`) drive it through `rocket::local`, or
//! run the binary where the process is the point. See `README.md` for the walkthrough
//! and `config.rs` for the settings.

mod admin;
mod axum_face;
mod body;
mod commands;
pub mod config;
mod database;
mod embedded_pg;
pub mod face;
mod health;
mod hotels;
mod media;
mod model;
mod model_async;
mod oversize;
mod panel;
mod pg_server;
mod picture;
mod problem;
mod rows;
mod seed;
mod service;
mod validate;

pub use axum_face::app as axum_app;
pub use commands::run;
pub use service::{rocket, service, TENANT_MIGRATIONS};
