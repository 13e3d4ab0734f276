//! The hotel service on axum (`HOTEL_FACE=axum`, [`Face::Axum`](crate::face::Face)): the same `/hotels/` API, admin API
//! and `/health` as the Rocket face, from the same database, with the same answers; the
//! tenant resolved by `diesel_tenancy::axum`'s layer, each hotel query awaited on the
//! async pool. The admin panel, media files and multipart bodies are the Rocket face's.

mod admin;
mod body;
mod hotels;
mod problem;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use diesel_tenancy::axum::Tenancy;
use diesel_tenancy::database::create_database_if_missing;
use diesel_tenancy::{
    PoolMode, SyncRouter, TenantMode, TenantPool, TenantPoolBuilder, TenantRoles,
};
use serde_json::{json, Value};

use crate::config::Settings;
use crate::seed;
use crate::service::TENANT_MIGRATIONS;

/// Serves until Ctrl-C: creates the database if missing, migrates, starts the tenancy.
pub fn serve(settings: &Settings, database_url: &str) -> Result<(), String> {
    create_database_if_missing(database_url).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(run(settings, database_url))
}

/// The pools' settings, as the Rocket face's fairing makes them: `databases.hotel`'s
/// `pool_size`, `timeout` (seconds, 5 by default) and `mode`, row tenants and roles.
fn pool(settings: &Settings, database_url: &str) -> Result<TenantPoolBuilder, String> {
    let figment = settings.figment(database_url);
    let key = |name: &str| format!("databases.{}.{name}", crate::config::DATABASE);
    let timeout = figment.extract_inner::<u64>(&key("timeout")).unwrap_or(5);
    let mut builder = TenantPool::builder()
        .connection_timeout(Duration::from_secs(timeout))
        .row_tenants(settings.tenant_mode == TenantMode::Rows);
    if let Ok(size) = figment.extract_inner::<u32>(&key("pool_size")) {
        builder = builder.max_size(size);
    }
    match figment
        .extract_inner::<String>(&key("mode"))
        .ok()
        .as_deref()
    {
        None | Some("session") => {}
        Some("transaction_local") => builder = builder.mode(PoolMode::TransactionLocal),
        Some(other) => {
            return Err(format!(
                "databases.hotel.mode is {other:?}: use session or transaction_local"
            ))
        }
    }
    Ok(if settings.tenant_roles {
        builder.tenant_roles(TenantRoles::new())
    } else {
        builder
    })
}

async fn run(settings: &Settings, database_url: &str) -> Result<(), String> {
    let text = |e: diesel_tenancy::Error| e.to_string();
    let url = database_url.to_owned();
    let sync = pool(settings, database_url)?.max_size(2);
    let sync = tokio::task::spawn_blocking(move || sync.build(&url))
        .await
        .map_err(|e| e.to_string())?
        .map_err(text)?;
    let router = SyncRouter::new(sync, TENANT_MIGRATIONS)
        .public_tenant(true)
        .tenant_mode(settings.tenant_mode)
        .hooks(seed::hooks(settings.seed_demo));
    let pool = pool(settings, database_url)?
        .build_async(database_url)
        .await
        .map_err(text)?;
    let tenancy = Tenancy::builder(router, pool)
        .start(database_url)
        .await
        .map_err(text)?;
    let figment = settings.figment(database_url);
    let address = figment
        .extract_inner::<IpAddr>("address")
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let port = figment.extract_inner::<u16>("port").unwrap_or(8000);
    let listener = tokio::net::TcpListener::bind((address, port))
        .await
        .map_err(|e| format!("cannot listen on {address}:{port}: {e}"))?;
    println!("hotel: the hotel API runs on the axum face, at http://{address}:{port}");
    let app = app(settings, &tenancy).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(stopped())
        .await
        .map_err(|e| e.to_string())
}

/// Ctrl-C, or SIGTERM (as `kill` sends; Rocket stops on both too).
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// The service's routes behind the tenancy layer.
pub fn app(settings: &Settings, tenancy: &Tenancy) -> Router {
    let mut app = Router::new()
        .route("/health", get(health))
        .merge(hotels::routes(settings.media_root.clone()));
    match &settings.admin_token {
        Some(token) => app = app.merge(admin::routes(token.clone())),
        None => log::info!("admin API off: set HOTEL_ADMIN_TOKEN to turn it on"),
    }
    app.fallback(problem::not_found).layer(tenancy.layer())
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}
