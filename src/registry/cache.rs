//! [`RegistryCache`]: the tenant registry in memory, kept fresh with LISTEN/NOTIFY, with a
//! bounded age.
//!
//! The registry migration installs statement triggers that `pg_notify` the channel
//! [`CHANNEL`] on every change to `public.tenants` or `public.domains`. A background
//! thread holds its own connection (not one of the pool's), `LISTEN`s on that channel
//! and reloads the whole registry on any notification. Because it subscribes *before*
//! loading, no change can slip between the load and the subscription. It proves the feed
//! with a ping every second, each call under a deadline (`registry_link.rs`); when the
//! feed fails it reconnects with backoff and reloads everything, and lookups through
//! [`RegistryCache::fresh_snapshot`] are refused once the data is older than the bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;

use super::domain_name::DomainName;
use super::link::{listener_url, Link};
use super::listener::{Command, Settings, Worker};
use super::tenant_name::tenant_name_key;
use super::tenant_registry::{Domain, Tenant};
use crate::error::{Error, Result};
use crate::pool::Scope;

/// The NOTIFY channel the registry triggers signal on.
pub(crate) const CHANNEL: &str = "diesel_tenancy_registry";

/// The default bound on the age of the registry data a lookup answers from.
pub(crate) const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5);

/// The smallest bound accepted: the feed must be able to prove itself within it.
pub(crate) const MIN_MAX_AGE: Duration = Duration::from_millis(500);

/// How long [`RegistryCache::refresh`] waits for the listener to answer.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(10);

/// One consistent view of the registry: every tenant and domain, indexed.
#[derive(Debug, Default)]
pub struct Snapshot {
    tenants: Vec<Arc<Tenant>>,
    domains: Vec<Domain>,
    by_name: HashMap<String, Arc<Tenant>>,
    by_domain: HashMap<String, Arc<Tenant>>,
    by_id: HashMap<i64, Arc<Tenant>>,
    /// The `pg_namespace` OID of each tenant's schema when the snapshot was loaded, if
    /// they were loaded.
    schema_oids: Option<HashMap<i64, u32>>,
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
            schema_oids: None,
        }
    }

    /// Records the OID of each tenant's schema (tenant id → OID), which makes
    /// [`scope_of`](Self::scope_of) pin routes to them.
    pub fn with_schema_oids(mut self, oids: HashMap<i64, u32>) -> Self {
        self.schema_oids = Some(oids);
        self
    }

    /// The scope a route to `tenant` uses: [`Scope::Pinned`] to the schema's OID when the
    /// OIDs were loaded with the snapshot, so a checkout fails closed once that schema is
    /// gone or replaced (a tenant whose schema did not exist gets OID 0, which no schema
    /// has); [`Scope::Tenant`] for a snapshot built without them.
    pub fn scope_of(&self, tenant: &Tenant) -> Scope {
        match &self.schema_oids {
            Some(oids) => Scope::Pinned {
                schema: tenant.schema_name.clone(),
                oid: oids.get(&tenant.id).copied().unwrap_or(0),
            },
            None => Scope::Tenant(tenant.schema_name.clone()),
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

/// The snapshot and the moment it was last proven current.
#[derive(Debug, Default)]
struct Current {
    snapshot: Arc<Snapshot>,
    /// Every registry change committed before this instant is in `snapshot`; `None`
    /// until the first load.
    as_of: Option<Instant>,
}

/// State shared between the cache handle, its listener thread and reloads made through
/// other connections.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    current: RwLock<Current>,
    generation: AtomicU64,
    listening: AtomicBool,
}

impl Shared {
    /// Keeps `snapshot`, loaded by a transaction that began after `as_of`, unless a
    /// snapshot begun later is already kept (loads through several connections may
    /// finish out of order).
    pub(crate) fn store(&self, snapshot: Snapshot, as_of: Instant) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.as_of.is_some_and(|kept| kept > as_of) {
            return;
        }
        current.snapshot = Arc::new(snapshot);
        current.as_of = Some(as_of);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Records that nothing changed in the registry before `as_of` that the snapshot
    /// lacks (a ping sent then was answered with no notification pending).
    pub(crate) fn prove(&self, as_of: Instant) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.as_of.is_some_and(|kept| kept < as_of) {
            current.as_of = Some(as_of);
        }
    }

    pub(crate) fn set_listening(&self, listening: bool) {
        self.listening.store(listening, Ordering::Release);
    }

    fn load(&self) -> Arc<Snapshot> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&current.snapshot)
    }

    /// The snapshot if it was proven current within `max_age`, else its age.
    fn fresh(&self, max_age: Duration) -> std::result::Result<Arc<Snapshot>, Option<Duration>> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        let age = current.as_of.map(|as_of| as_of.elapsed());
        match age {
            Some(age) if age <= max_age => Ok(Arc::clone(&current.snapshot)),
            _ => Err(age),
        }
    }

    fn age(&self) -> Option<Duration> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        current.as_of.map(|as_of| as_of.elapsed())
    }
}

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
    shared: Arc<Shared>,
    control: Mutex<Option<Control>>,
    max_age: Duration,
}

impl std::fmt::Debug for RegistryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCache")
            .field("tenants", &self.snapshot().tenants.len())
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
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.load()
    }

    /// The snapshot, if it was proven current within
    /// [`max_age`](RegistryCacheBuilder::max_age); otherwise [`Error::Unavailable`]
    /// (a 503 in the Rocket integration). Cheap: no database round trip.
    pub fn fresh_snapshot(&self) -> Result<Arc<Snapshot>> {
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

    /// The tenant called `name` ([`tenant_name_key`] equality) in the last snapshot,
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
        self.shared.generation.load(Ordering::Acquire)
    }

    /// Whether the listener is connected and subscribed right now.
    pub fn is_listening(&self) -> bool {
        self.shared.listening.load(Ordering::Acquire)
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
#[derive(Debug, Clone)]
pub struct RegistryCacheBuilder {
    settings: Settings,
}

impl Default for RegistryCacheBuilder {
    fn default() -> Self {
        RegistryCacheBuilder {
            settings: Settings {
                poll_interval: Duration::from_millis(50),
                ping_interval: Duration::from_secs(1),
                max_backoff: Duration::from_secs(1),
                connect_timeout: Duration::from_secs(2),
                deadline: Duration::from_secs(1),
                max_age: DEFAULT_MAX_AGE,
            },
        }
    }
}

impl RegistryCacheBuilder {
    /// The bound on the age of the data [`RegistryCache::fresh_snapshot`] answers from:
    /// the snapshot must have been proven current (loaded, or its feed pinged with no
    /// change pending) within it. Defaults to 5 seconds; at least 500 ms.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.settings.max_age = max_age.max(MIN_MAX_AGE);
        self
    }

    /// How often the listener checks its socket for notifications (no round trip: the
    /// notifications are already in the socket buffer). Defaults to 50 ms.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.settings.poll_interval = every;
        self
    }

    /// How often the listener proves its feed with a round trip (each proof renews the
    /// snapshot's age). Defaults to 1 second; at most a quarter of `max_age`.
    pub fn ping_interval(mut self, every: Duration) -> Self {
        self.settings.ping_interval = every;
        self
    }

    /// How long one ping or read of the feed may take before the feed counts as lost
    /// and is reopened (a load may take up to half of `max_age`). Defaults to 1 second;
    /// at most a quarter of `max_age`.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.settings.deadline = deadline;
        self
    }

    /// The longest wait between two reconnection attempts; waits start at 100 ms and
    /// double. Defaults to 1 second.
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.settings.max_backoff = max;
        self
    }

    /// How long opening the listener connection may take (`connect_timeout`, whole
    /// seconds, added to connection strings that do not set it). Defaults to 2 seconds.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = timeout;
        self
    }

    /// Connects, subscribes, loads the registry and starts the listener thread.
    ///
    /// Fails if the first load fails (e.g. the registry migrations have not run:
    /// run [`SyncRouter::migrate_shared`](crate::SyncRouter::migrate_shared) first).
    pub fn start(self, database_url: &str) -> Result<RegistryCache> {
        let mut settings = self.settings;
        let quarter = settings.max_age / 4;
        settings.ping_interval = settings.ping_interval.min(quarter);
        settings.deadline = settings.deadline.min(quarter);
        let url = listener_url(database_url, settings.connect_timeout, settings.deadline);
        let stuck = Arc::new(AtomicUsize::new(0));
        let link = Link::open(&url, settings.connect_timeout + settings.deadline, &stuck)?;
        let shared = Arc::new(Shared::default());
        let sent = Instant::now();
        shared.store(link.load(settings.max_age)?, sent);
        shared.set_listening(true);
        let (commands, inbox) = mpsc::channel();
        let max_age = settings.max_age;
        let worker = Worker::new(url, settings, Arc::clone(&shared), inbox, link, stuck);
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

/// Loads every tenant and domain in one read-only, repeatable-read transaction; inside a
/// transaction already open (a `TransactionLocal` checkout), in a savepoint of it, where
/// the reads may see commits between them: a tenant whose schema OID is missing from the
/// later read is then pinned to OID 0 and fails closed.
pub(crate) fn load(conn: &mut PgConnection) -> Result<Snapshot> {
    use diesel::connection::{AnsiTransactionManager, Connection, TransactionManager};
    let started = Instant::now();
    let read = |conn: &mut PgConnection| {
        let tenants = super::tenant_registry::TenantRegistry::list(conn)?;
        let domains = super::tenant_registry::TenantRegistry::list_domains(conn)?;
        let oids = schema_oids(conn)?;
        Ok::<_, Error>(Snapshot::new(tenants, domains).with_schema_oids(oids))
    };
    let nested = !matches!(
        AnsiTransactionManager::transaction_manager_status_mut(conn).transaction_depth(),
        Ok(None)
    );
    let snapshot = if nested {
        conn.transaction(read)?
    } else {
        conn.build_transaction()
            .read_only()
            .repeatable_read()
            .run(read)?
    };
    log::debug!(
        "diesel-tenancy: loaded {} tenants and {} domains in {:?}",
        snapshot.tenants.len(),
        snapshot.domains.len(),
        started.elapsed()
    );
    Ok(snapshot)
}

#[derive(diesel::QueryableByName)]
struct SchemaOid {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
    #[diesel(sql_type = diesel::sql_types::Oid)]
    oid: u32,
}

/// The OID of every registered tenant's schema that exists.
fn schema_oids(conn: &mut PgConnection) -> Result<HashMap<i64, u32>> {
    use diesel::RunQueryDsl;
    let rows: Vec<SchemaOid> = diesel::sql_query(
        "SELECT t.id, n.oid FROM public.tenants t \
         JOIN pg_catalog.pg_namespace n ON n.nspname OPERATOR(pg_catalog.=) t.schema_name",
    )
    .load(conn)?;
    Ok(rows.into_iter().map(|r| (r.id, r.oid)).collect())
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
