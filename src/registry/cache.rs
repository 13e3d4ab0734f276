//! [`RegistryCache`]: the tenant registry in memory, kept fresh with LISTEN/NOTIFY, with a
//! bounded age.
//!
//! The registry migration installs statement triggers that `pg_notify` the channel
//! `diesel_tenancy_registry` on every change to `public.tenants` or `public.domains`. A background
//! thread holds its own connection (not one of the pool's), `LISTEN`s on that channel
//! and reloads the whole registry on any notification. Because it subscribes *before*
//! loading, no change can slip between the load and the subscription. It proves the feed
//! with a ping every second, each call under a deadline (`link.rs`); when the
//! feed fails it reconnects with backoff and reloads everything, and lookups through
//! [`RegistryCache::fresh_snapshot`] are refused once the data is older than the bound.

use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;

use super::domain_name::DomainName;
use super::listener::{Command, Settings, Worker};
use super::rows::Tenant;
use super::snapshot::{load, RegistrySnapshot};
use super::snapshot_cell::SnapshotCell;
use crate::error::{Error, Result};

/// How long [`RegistryCache::refresh`] waits for the listener to answer.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(10);

struct Control {
    commands: Sender<Command>,
    thread: JoinHandle<()>,
}

/// The tenant registry held in memory, invalidated across processes, with a bounded age.
///
/// Lookups never touch the database. A change committed by any process reaches every
/// cache within about [`poll_interval`](RegistryCacheBuilder::poll_interval) (50 ms by
/// default) plus one reload, while its change feed (a `LISTEN` connection of its own) is
/// healthy. The feed proves itself with a ping every
/// [`ping_interval`](RegistryCacheBuilder::ping_interval), each read and ping with a
/// client-side [`deadline`](RegistryCacheBuilder::deadline); the data counts as current
/// as of the last proof. [`fresh_snapshot`](Self::fresh_snapshot) refuses data older than
/// [`max_age`](RegistryCacheBuilder::max_age) (5 seconds by default), so however the feed
/// fails (killed, half-open, refused, slow) no lookup answers from data older than the
/// bound; [`reload_from`](Self::reload_from) brings it back through any other connection.
/// Dropping the cache (or calling [`stop`](Self::stop)) stops its listener thread and
/// closes its connection.
///
/// ```no_run
/// use diesel_tenancy::RegistryCache;
///
/// # fn main() -> diesel_tenancy::Result<()> {
/// let cache = RegistryCache::start("postgres://localhost/app")?;
/// if let Some(acme) = cache.fresh_snapshot()?.by_name("ACME") {
///     println!("schema {}", acme.schema_name);
/// }
/// # Ok(()) }
/// ```
pub struct RegistryCache {
    shared: Arc<SnapshotCell>,
    control: Mutex<Option<Control>>,
    max_age: Duration,
}

impl std::fmt::Debug for RegistryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCache")
            .field("tenants", &self.snapshot().tenants().len())
            .field("generation", &self.generation())
            .field("listening", &self.is_listening())
            .field("age", &self.age())
            .finish()
    }
}

impl RegistryCache {
    /// Connects, subscribes, loads the registry and starts the listener, with the
    /// defaults of [`RegistryCacheBuilder`].
    pub fn start(database_url: &str) -> Result<RegistryCache> {
        RegistryCache::builder().start(database_url)
    }

    /// A builder with the defaults documented on each setter.
    pub fn builder() -> RegistryCacheBuilder {
        RegistryCacheBuilder::default()
    }

    /// The last snapshot, however old; cheap (one reference count). Route requests with
    /// [`fresh_snapshot`](Self::fresh_snapshot) instead.
    pub fn snapshot(&self) -> Arc<RegistrySnapshot> {
        self.shared.load()
    }

    /// The snapshot, if it was proven current within
    /// [`max_age`](RegistryCacheBuilder::max_age); otherwise [`Error::Unavailable`]
    /// (a 503 in the Rocket integration). Cheap: no database round trip.
    pub fn fresh_snapshot(&self) -> Result<Arc<RegistrySnapshot>> {
        self.shared
            .fresh(self.max_age)
            .map_err(|age| Error::Unavailable {
                what: "the tenant registry cache",
                reason: match age {
                    Some(age) => format!(
                        "its data was last confirmed {} ms ago, over the {} ms bound, and its \
                     change feed is not healthy",
                        age.as_millis(),
                        self.max_age.as_millis()
                    ),
                    None => "it has not loaded the registry yet".into(),
                },
            })
    }

    /// How long ago the snapshot was last proven current.
    pub fn age(&self) -> Option<Duration> {
        self.shared.age()
    }

    /// The bound [`fresh_snapshot`](Self::fresh_snapshot) enforces.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// The tenant called `name` ([`tenant_name_key`](crate::tenant_name_key) equality) in the last snapshot,
    /// however old.
    pub fn find_by_name(&self, name: &str) -> Option<Arc<Tenant>> {
        self.snapshot().by_name(name)
    }

    /// The tenant reached at `domain` in the last snapshot, however old.
    pub fn find_by_domain(&self, domain: &DomainName) -> Option<Arc<Tenant>> {
        self.snapshot().by_domain(domain)
    }

    /// How many snapshots have been kept; grows by one per reload.
    pub fn generation(&self) -> u64 {
        self.shared.generation()
    }

    /// Whether the listener is connected and subscribed right now.
    pub fn is_listening(&self) -> bool {
        self.shared.is_listening()
    }

    /// Loads the registry through `conn` (any connection, in any scope: the registry
    /// tables are schema-qualified) and keeps it, so this process sees its own change at
    /// once even when the change feed is down. A load that began before the kept
    /// snapshot's is dropped.
    pub fn reload_from(&self, conn: &mut PgConnection) -> Result<()> {
        let sent = Instant::now();
        let snapshot = load(conn)?;
        self.shared.store(snapshot, sent);
        Ok(())
    }

    /// Reloads the registry through the listener's connection now and waits for it.
    /// Blocking: call it from a blocking thread in async code. When the listener is
    /// reconnecting this fails; [`reload_from`](Self::reload_from) works through a
    /// connection of yours.
    pub fn refresh(&self) -> Result<()> {
        let (reply, answer) = mpsc::sync_channel(1);
        {
            let control = self.control.lock().unwrap_or_else(PoisonError::into_inner);
            let sent = control
                .as_ref()
                .map(|c| c.commands.send(Command::Refresh(reply)).is_ok());
            if sent != Some(true) {
                return Err(stopped("it has been stopped"));
            }
        }
        match answer.recv_timeout(REFRESH_TIMEOUT) {
            Ok(result) => result,
            Err(_) => Err(stopped("its listener did not answer in time")),
        }
    }

    /// Stops the listener thread and waits for it; lookups keep answering from the last
    /// snapshot until it is older than the bound. Idempotent.
    pub fn stop(&self) {
        let control = self
            .control
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(control) = control {
            // The thread may already have exited; then there is nobody to tell.
            let _ = control.commands.send(Command::Stop);
            if control.thread.join().is_err() {
                log::error!("diesel-tenancy: the registry listener thread panicked");
            }
        }
        self.shared.set_listening(false);
    }
}

impl Drop for RegistryCache {
    fn drop(&mut self) {
        self.stop();
    }
}

fn stopped(reason: &str) -> Error {
    Error::Unavailable {
        what: "the tenant registry cache",
        reason: reason.to_owned(),
    }
}

/// Configures a [`RegistryCache`].
#[derive(Debug, Clone, Default)]
pub struct RegistryCacheBuilder {
    settings: Settings,
}

impl RegistryCacheBuilder {
    /// The bound on the age of the data [`RegistryCache::fresh_snapshot`] answers from:
    /// the snapshot must have been proven current (loaded, or its feed pinged with no
    /// change pending) within it. Defaults to 5 seconds; at least 500 ms.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.settings.set_max_age(max_age);
        self
    }

    /// How often the listener checks its socket for notifications (no round trip: the
    /// notifications are already in the socket buffer). Defaults to 50 ms.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.settings.set_poll_interval(every);
        self
    }

    /// How often the listener proves its feed with a round trip (each proof renews the
    /// snapshot's age). Defaults to 1 second; at most a quarter of `max_age`.
    pub fn ping_interval(mut self, every: Duration) -> Self {
        self.settings.set_ping_interval(every);
        self
    }

    /// How long one ping or read of the feed may take before the feed counts as lost
    /// and is reopened (a load may take up to half of `max_age`). Defaults to 1 second;
    /// at most a quarter of `max_age`.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.settings.set_deadline(deadline);
        self
    }

    /// The longest wait between two reconnection attempts; waits start at 100 ms and
    /// double. Defaults to 1 second.
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.settings.set_max_backoff(max);
        self
    }

    /// How long opening the listener connection may take (`connect_timeout`, whole
    /// seconds, added to connection strings that do not set it). Defaults to 2 seconds.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.set_connect_timeout(timeout);
        self
    }

    /// Connects, subscribes, loads the registry and starts the listener thread.
    ///
    /// Fails if the first load fails (e.g. the registry migrations have not run:
    /// run [`SyncRouter::migrate_shared`](crate::SyncRouter::migrate_shared) first).
    pub fn start(self, database_url: &str) -> Result<RegistryCache> {
        let max_age = self.settings.max_age();
        let shared = Arc::new(SnapshotCell::default());
        let (commands, inbox) = mpsc::channel();
        let worker = Worker::start(database_url, self.settings, Arc::clone(&shared), inbox)?;
        let thread = std::thread::Builder::new()
            .name("diesel-tenancy-registry".into())
            .spawn(move || worker.run())
            .map_err(|e| Error::Unavailable {
                what: "the tenant registry cache",
                reason: format!("could not start its listener thread: {e}"),
            })?;
        Ok(RegistryCache {
            shared,
            control: Mutex::new(Some(Control { commands, thread })),
            max_age,
        })
    }
}
