//! `AsyncTenantDb` routes: a stale route is decided again, row tenants are served, and
//! launch aborts when the async pool is missing.

mod common;
mod rocket_async_support;

fn main() {}
