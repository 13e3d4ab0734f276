//! [`RegistryCache`]: the tenant registry in memory, kept fresh with LISTEN/NOTIFY.
//!
//! The registry migration installs statement triggers that `pg_notify` the channel
//! [`CHANNEL`] on every change to `public.tenants` or `public.domains`. A background
//! thread holds its own connection (not one of the pool's), `LISTEN`s on that channel
//! and reloads the whole registry on any notification. Because it subscribes *before*
//! loading, no change can slip between the load and the subscription. When its
//! connection drops it reconnects with backoff and reloads everything, serving the last
//! snapshot in the meantime.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;

use crate::domain_name::DomainName;
use crate::error::{Error, Result};
use crate::registry::{Domain, Tenant};
use crate::registry_listener::{self, Command, Settings, Worker};
use crate::tenant_name::tenant_name_key;

/// The NOTIFY channel the registry triggers signal on.
pub(crate) const CHANNEL: &str = "diesel_tenancy_registry";

/// The default bound on the age of the registry data a lookup answers from.
pub(crate) const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5);

/// The smallest bound accepted: the feed must be able to prove itself within it.
pub(crate) const MIN_MAX_AGE: Duration = Duration::from_millis(500);

/// How long [`RegistryCache::refresh`] waits for the listener to answer.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(30);

/// One consistent view of the registry: every tenant and domain, indexed.
#[derive(Debug, Default)]
pub struct Snapshot {
    tenants: Vec<Arc<Tenant>>,
    domains: Vec<Domain>,
    by_name: HashMap<String, Arc<Tenant>>,
    by_domain: HashMap<String, Arc<Tenant>>,
    by_id: HashMap<i64, Arc<Tenant>>,
}

impl Snapshot {
    /// Indexes `tenants` by name key ([`tenant_name_key`](crate::tenant_name_key)) and
    /// id, and `domains` by domain. Domains of tenants not in `tenants` are ignored.
    ///
    /// Two tenants with one name key (impossible in a migrated registry, whose unique
    /// index is on that key) make the name ambiguous: it then finds neither.
    pub fn new(tenants: Vec<Tenant>, domains: Vec<Domain>) -> Self {
        let tenants: Vec<Arc<Tenant>> = tenants.into_iter().map(Arc::new).collect();
        let by_id: HashMap<i64, Arc<Tenant>> =
            tenants.iter().map(|t| (t.id, Arc::clone(t))).collect();
        let mut by_name = HashMap::with_capacity(tenants.len());
        let mut ambiguous = Vec::new();
        for t in &tenants {
            let key = tenant_name_key(&t.name).into_owned();
            if by_name.insert(key.clone(), Arc::clone(t)).is_some() {
                ambiguous.push(key);
            }
        }
        for key in ambiguous {
            log::error!("diesel-tenancy: two tenants share the name key {key:?}; it finds neither");
            by_name.remove(&key);
        }
        let by_domain = domains
            .iter()
            .filter_map(|d| {
                let tenant = by_id.get(&d.tenant_id)?;
                Some((d.domain.to_ascii_lowercase(), Arc::clone(tenant)))
            })
            .collect();
        Snapshot {
            tenants,
            domains,
            by_name,
            by_domain,
            by_id,
        }
    }

    /// The tenant called `name` (trimmed, compared case-insensitively).
    pub fn by_name(&self, name: &str) -> Option<Arc<Tenant>> {
        self.by_name.get(&*tenant_name_key(name)).cloned()
    }

    /// The tenant reached at `domain`.
    pub fn by_domain(&self, domain: &DomainName) -> Option<Arc<Tenant>> {
        self.by_domain.get(domain.as_str()).cloned()
    }

    /// The tenant with registry id `id`.
    pub fn by_id(&self, id: i64) -> Option<Arc<Tenant>> {
        self.by_id.get(&id).cloned()
    }

    /// Every tenant, ordered by name.
    pub fn tenants(&self) -> &[Arc<Tenant>] {
        &self.tenants
    }

    /// Every domain.
    pub fn domains(&self) -> &[Domain] {
        &self.domains
    }
}

/// State shared between the cache handle and its listener thread.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    snapshot: RwLock<Arc<Snapshot>>,
    generation: AtomicU64,
    listening: AtomicBool,
}

impl Shared {
    pub(crate) fn store(&self, snapshot: Snapshot) {
        let mut slot = self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *slot = Arc::new(snapshot);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn set_listening(&self, listening: bool) {
        self.listening.store(listening, Ordering::Release);
    }

    fn load(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(PoisonError::into_inner))
    }
}

struct Control {
    commands: Sender<Command>,
    thread: JoinHandle<()>,
}

/// The tenant registry held in memory and invalidated across processes.
///
/// Lookups never touch the database. A change committed by any process reaches every
/// cache within about [`poll_interval`](RegistryCacheBuilder::poll_interval) (50 ms by
/// default) plus one reload. Dropping the cache (or calling [`stop`](Self::stop)) stops
/// its listener thread and closes its connection.
///
/// ```no_run
/// use diesel_tenancy::RegistryCache;
///
/// # fn main() -> diesel_tenancy::Result<()> {
/// let cache = RegistryCache::start("postgres://localhost/app")?;
/// if let Some(acme) = cache.find_by_name("ACME") {
///     println!("schema {}", acme.schema_name);
/// }
/// # Ok(()) }
/// ```
pub struct RegistryCache {
    shared: Arc<Shared>,
    control: Mutex<Option<Control>>,
}

impl std::fmt::Debug for RegistryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCache")
            .field("tenants", &self.snapshot().tenants.len())
            .field("generation", &self.generation())
            .field("listening", &self.is_listening())
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

    /// The current snapshot; cheap (one reference count).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.load()
    }

    /// The tenant called `name`, compared case-insensitively after trimming.
    pub fn find_by_name(&self, name: &str) -> Option<Arc<Tenant>> {
        self.snapshot().by_name(name)
    }

    /// The tenant reached at `domain`.
    pub fn find_by_domain(&self, domain: &DomainName) -> Option<Arc<Tenant>> {
        self.snapshot().by_domain(domain)
    }

    /// How many snapshots have been loaded; grows by one per reload.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// Whether the listener is connected and subscribed right now.
    pub fn is_listening(&self) -> bool {
        self.shared.listening.load(Ordering::Acquire)
    }

    /// Reloads the registry now and waits for it, e.g. right after creating a tenant
    /// in this process. Blocking: call it from a blocking thread in async code.
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
    /// snapshot. Idempotent.
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
#[derive(Debug, Clone)]
pub struct RegistryCacheBuilder {
    settings: Settings,
}

impl Default for RegistryCacheBuilder {
    fn default() -> Self {
        RegistryCacheBuilder {
            settings: Settings {
                poll_interval: Duration::from_millis(50),
                ping_interval: Duration::from_secs(5),
                max_backoff: Duration::from_secs(5),
                connect_timeout: Duration::from_secs(5),
            },
        }
    }
}

impl RegistryCacheBuilder {
    /// How often the listener checks its socket for notifications (no round trip: the
    /// notifications are already in the socket buffer). Defaults to 50 ms.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.settings.poll_interval = every;
        self
    }

    /// How often an idle listener pings the server to notice a silently dead
    /// connection. Defaults to 5 seconds.
    pub fn ping_interval(mut self, every: Duration) -> Self {
        self.settings.ping_interval = every;
        self
    }

    /// The longest wait between two reconnection attempts; waits start at 100 ms and
    /// double. Defaults to 5 seconds.
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.settings.max_backoff = max;
        self
    }

    /// How long opening the listener connection may take (`connect_timeout`, whole
    /// seconds, added to `postgres://` URLs that do not set it). Defaults to 5 seconds.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = timeout;
        self
    }

    /// Connects, subscribes, loads the registry and starts the listener thread.
    ///
    /// Fails if the first load fails (e.g. the registry migrations have not run:
    /// run [`SyncRouter::migrate_shared`](crate::SyncRouter::migrate_shared) first).
    pub fn start(self, database_url: &str) -> Result<RegistryCache> {
        let url =
            registry_listener::with_connect_timeout(database_url, self.settings.connect_timeout);
        let mut conn = registry_listener::connect(&url)?;
        let shared = Arc::new(Shared::default());
        shared.store(load(&mut conn)?);
        shared.set_listening(true);
        let (commands, inbox) = mpsc::channel();
        let worker = Worker::new(url, self.settings, Arc::clone(&shared), inbox, conn);
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
        })
    }
}

/// Loads every tenant and domain in one read-only, repeatable-read transaction.
pub(crate) fn load(conn: &mut PgConnection) -> Result<Snapshot> {
    let started = Instant::now();
    let snapshot = conn
        .build_transaction()
        .read_only()
        .repeatable_read()
        .run(|conn| {
            let tenants = crate::registry::TenantRegistry::list(conn)?;
            let domains = crate::registry::TenantRegistry::list_domains(conn)?;
            Ok::<_, Error>(Snapshot::new(tenants, domains))
        })?;
    log::debug!(
        "diesel-tenancy: loaded {} tenants and {} domains in {:?}",
        snapshot.tenants.len(),
        snapshot.domains.len(),
        started.elapsed()
    );
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema_name::SchemaName;

    fn tenant(id: i64, name: &str) -> Tenant {
        Tenant {
            id,
            name: name.into(),
            schema_name: SchemaName::derive_from(name).unwrap(),
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn indexes_by_name_domain_and_id() {
        let domain = |id, d: &str, tenant_id| Domain {
            id,
            domain: d.into(),
            tenant_id,
            is_primary: true,
        };
        let s = Snapshot::new(
            vec![tenant(1, "Demo1"), tenant(2, "Hôtel")],
            vec![domain(1, "demo1.localhost", 1), domain(2, "orphan.test", 9)],
        );
        assert_eq!(s.by_name(" demo1 ").unwrap().id, 1);
        assert_eq!(s.by_name("HÔTEL").unwrap().id, 2);
        assert!(s.by_name("demo").is_none());
        let d = DomainName::from_host("Demo1.localhost:8000").unwrap();
        assert_eq!(s.by_domain(&d).unwrap().id, 1);
        assert!(s
            .by_domain(&DomainName::new("orphan.test").unwrap())
            .is_none());
        assert_eq!(s.by_id(2).unwrap().name, "Hôtel");
        assert_eq!(s.tenants().len(), 2);
    }
}
