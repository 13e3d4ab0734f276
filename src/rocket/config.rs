//! The fairing's settings: code defaults, overridden by Rocket's figment configuration.

use std::sync::Arc;
use std::time::Duration;

use ::rocket::figment::Figment;
use serde::Deserialize;

use crate::pool::{PoolMode, TenantPoolBuilder, TenantRoles};
use crate::registry::TenantMode;
use crate::resolve::{ResolverChain, TenantResolver, TrustedProxies};

/// Settings that code sets on [`TenancyFairing`](super::TenancyFairing) and that
/// `Rocket.toml` or `ROCKET_*` variables can override.
#[derive(Debug, Clone)]
pub(super) struct Options {
    pool_size: Option<u32>,
    timeout: Duration,
    mode: Option<PoolMode>,
    header: Option<String>,
    host: bool,
    path_prefix: Option<String>,
    migrate_tenants: bool,
    public_tenant: bool,
    migrate_jobs: usize,
    trusted_proxies: TrustedProxies,
    max_registry_age: Duration,
    /// `Some`: the configuration turns tenant roles on or off, whatever code said.
    tenant_roles: Option<bool>,
    /// `Some`: the mode the configuration gives new tenants (`rows` also lets the pool
    /// serve row tenants).
    tenant_mode: Option<TenantMode>,
    /// `Some`: the configuration turns the pool's row tenants on or off.
    row_tenants: Option<bool>,
    /// Whether the fairing also builds the async pool (feature `rocket-async`).
    async_pool: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pool_size: None,
            timeout: Duration::from_secs(5),
            mode: None,
            header: Some(crate::resolve::DEFAULT_HEADER.to_owned()),
            host: true,
            path_prefix: None,
            migrate_tenants: true,
            public_tenant: false,
            migrate_jobs: 1,
            trusted_proxies: TrustedProxies::none(),
            max_registry_age: crate::registry::DEFAULT_MAX_AGE,
            tenant_roles: None,
            tenant_mode: None,
            row_tenants: None,
            async_pool: false,
        }
    }
}

impl Options {
    pub(super) fn set_header(&mut self, name: Option<String>) {
        self.header = name;
    }

    /// Turns the header rule off, or on with its name (the default name if none).
    pub(super) fn enable_header(&mut self, enabled: bool) {
        self.header = match (enabled, self.header.take()) {
            (false, _) => None,
            (true, Some(name)) => Some(name),
            (true, None) => Some(crate::resolve::DEFAULT_HEADER.to_owned()),
        };
    }

    pub(super) fn set_host(&mut self, enabled: bool) {
        self.host = enabled;
    }

    pub(super) fn set_path_prefix(&mut self, prefix: String) {
        self.path_prefix = Some(prefix);
    }

    pub(super) fn set_trusted_proxies(&mut self, proxies: TrustedProxies) {
        self.trusted_proxies = proxies;
    }

    pub(super) fn set_max_registry_age(&mut self, max_age: Duration) {
        self.max_registry_age = max_age;
    }

    pub(super) fn set_migrate_tenants(&mut self, enabled: bool) {
        self.migrate_tenants = enabled;
    }

    pub(super) fn set_migrate_jobs(&mut self, jobs: usize) {
        self.migrate_jobs = jobs.max(1);
    }

    pub(super) fn set_public_tenant(&mut self, enabled: bool) {
        self.public_tenant = enabled;
    }

    /// The resolver chain these options describe, with `custom` rules after the others.
    pub(super) fn chain(&self, custom: &[Arc<dyn TenantResolver>]) -> ResolverChain {
        let mut chain = ResolverChain::new().trusted_proxies(self.trusted_proxies.clone());
        if let Some(header) = &self.header {
            chain = chain.header(header.clone());
        }
        if self.host {
            chain = chain.host();
        }
        if let Some(prefix) = &self.path_prefix {
            chain = chain.path_prefix(prefix.clone());
        }
        custom
            .iter()
            .fold(chain, |chain, r| chain.custom_shared(Arc::clone(r)))
    }

    /// `base` with what the configuration says of the pool: its checkout timeout, size,
    /// mode and tenant roles (`true` turns on `TenantRoles::new()` unless code set roles).
    pub(super) fn pool_builder(&self, base: TenantPoolBuilder) -> TenantPoolBuilder {
        let mut builder = base.connection_timeout(self.timeout);
        if let Some(size) = self.pool_size {
            builder = builder.max_size(size);
        }
        if let Some(mode) = self.mode {
            builder = builder.mode(mode);
        }
        builder = match self.tenant_roles {
            Some(true) if !builder.has_tenant_roles() => builder.tenant_roles(TenantRoles::new()),
            Some(false) => builder.without_tenant_roles(),
            _ => builder,
        };
        match (self.row_tenants, self.tenant_mode) {
            (Some(on), _) => builder.row_tenants(on),
            (None, Some(TenantMode::Rows)) => builder.row_tenants(true),
            _ => builder,
        }
    }

    /// The mode the configuration gives new tenants, if it names one.
    pub(super) fn tenant_mode(&self) -> Option<TenantMode> {
        self.tenant_mode
    }

    pub(super) fn set_tenant_mode(&mut self, mode: TenantMode) {
        self.tenant_mode = Some(mode);
    }

    #[cfg(feature = "rocket-async")]
    pub(super) fn set_async_pool(&mut self, enabled: bool) {
        self.async_pool = enabled;
    }

    #[cfg(feature = "rocket-async")]
    pub(super) fn async_pool(&self) -> bool {
        self.async_pool
    }

    pub(super) fn public_tenant(&self) -> bool {
        self.public_tenant
    }

    pub(super) fn migrate_tenants(&self) -> bool {
        self.migrate_tenants
    }

    pub(super) fn migrate_jobs(&self) -> usize {
        self.migrate_jobs
    }

    pub(super) fn max_registry_age(&self) -> Duration {
        self.max_registry_age
    }

    pub(super) fn path_prefix(&self) -> Option<&str> {
        self.path_prefix.as_deref()
    }
}

/// The prefix used when `path_prefix = true`.
const DEFAULT_PATH_PREFIX: &str = "t";

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ModeSetting {
    Session,
    TransactionLocal,
}

impl From<ModeSetting> for PoolMode {
    fn from(m: ModeSetting) -> Self {
        match m {
            ModeSetting::Session => PoolMode::Session,
            ModeSetting::TransactionLocal => PoolMode::TransactionLocal,
        }
    }
}

/// `true`/`false`, or a name.
#[derive(Deserialize)]
#[serde(untagged)]
enum Toggle {
    On(bool),
    Named(String),
}

#[derive(Deserialize)]
struct DatabaseSection {
    url: String,
    pool_size: Option<u32>,
    timeout: Option<u64>,
    mode: Option<ModeSetting>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TenancySection {
    header: Option<Toggle>,
    host: Option<bool>,
    path_prefix: Option<Toggle>,
    migrate_tenants: Option<bool>,
    public_tenant: Option<bool>,
    migrate_jobs: Option<usize>,
    trusted_proxies: Option<Vec<String>>,
    max_registry_age: Option<f64>,
    tenant_roles: Option<bool>,
    tenant_mode: Option<String>,
    row_tenants: Option<bool>,
    async_pool: Option<bool>,
}

/// Reads `databases.<database>` and `tenancy` from `figment` on top of `defaults`;
/// returns the database URL and the merged options, or a message for the launch log.
pub(super) fn read(
    figment: &Figment,
    database: &str,
    defaults: &Options,
) -> Result<(String, Options), String> {
    let key = format!("databases.{database}");
    let db: DatabaseSection = figment.extract_inner(&key).map_err(|e| {
        format!(
            "cannot read `{key}` ({e}). Set at least `{key}.url` in Rocket.toml, or \
             ROCKET_DATABASES='{{{database}={{url=\"postgres://…\"}}}}'"
        )
    })?;
    let tenancy: TenancySection = if figment.contains("tenancy") {
        figment
            .extract_inner("tenancy")
            .map_err(|e| format!("cannot read the `tenancy` settings: {e}"))?
    } else {
        TenancySection::default()
    };
    let mut o = defaults.clone();
    o.pool_size = db.pool_size.or(o.pool_size);
    o.timeout = db.timeout.map(Duration::from_secs).unwrap_or(o.timeout);
    o.mode = db.mode.map(PoolMode::from).or(o.mode);
    o.header = match tenancy.header {
        None => o.header,
        Some(Toggle::On(false)) => None,
        Some(Toggle::On(true)) => o
            .header
            .or_else(|| Some(crate::resolve::DEFAULT_HEADER.to_owned())),
        Some(Toggle::Named(name)) => Some(name),
    };
    o.host = tenancy.host.unwrap_or(o.host);
    o.path_prefix = match tenancy.path_prefix {
        None => o.path_prefix,
        Some(Toggle::On(false)) => None,
        Some(Toggle::On(true)) => o.path_prefix.or_else(|| Some(DEFAULT_PATH_PREFIX.into())),
        Some(Toggle::Named(prefix)) => Some(prefix),
    };
    o.migrate_tenants = tenancy.migrate_tenants.unwrap_or(o.migrate_tenants);
    o.public_tenant = tenancy.public_tenant.unwrap_or(o.public_tenant);
    o.migrate_jobs = tenancy.migrate_jobs.unwrap_or(o.migrate_jobs).max(1);
    if let Some(list) = tenancy.trusted_proxies {
        o.trusted_proxies = list
            .iter()
            .map(|p| p.parse())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("`tenancy.trusted_proxies`: {e}"))?;
    }
    if let Some(secs) = tenancy.max_registry_age {
        o.max_registry_age = Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|d| *d >= crate::registry::MIN_MAX_AGE)
            .ok_or_else(|| {
                format!(
                    "`tenancy.max_registry_age` is {secs}: give seconds, at least {:?}",
                    crate::registry::MIN_MAX_AGE
                )
            })?;
    }
    o.tenant_roles = tenancy.tenant_roles.or(o.tenant_roles);
    if let Some(mode) = tenancy.tenant_mode {
        o.tenant_mode = Some(TenantMode::parse(&mode).ok_or_else(|| {
            format!("`tenancy.tenant_mode` is {mode:?}: give \"schema\" or \"rows\"")
        })?);
    }
    o.row_tenants = tenancy.row_tenants.or(o.row_tenants);
    o.async_pool = tenancy.async_pool.unwrap_or(o.async_pool);
    if o.async_pool && cfg!(not(feature = "rocket-async")) {
        return Err("`tenancy.async_pool` needs diesel-tenancy's `rocket-async` feature".into());
    }
    if o.header.as_deref().is_some_and(|h| h.trim().is_empty()) {
        return Err("`tenancy.header` cannot be empty; use `false` to turn it off".into());
    }
    if o.path_prefix
        .as_deref()
        .is_some_and(|p| p.trim_matches('/').is_empty())
    {
        return Err(
            "`tenancy.path_prefix` cannot be empty (every path would name a tenant); \
             use e.g. \"t\", or `false` to turn it off"
                .into(),
        );
    }
    Ok((db.url, o))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::rocket::figment::providers::{Format, Toml};

    fn parse(toml: &str) -> Result<(String, Options), String> {
        read(
            &Figment::from(Toml::string(toml)),
            "app",
            &Options::default(),
        )
    }

    #[test]
    fn defaults_and_overrides() {
        let (url, o) = parse("[databases.app]\nurl = \"postgres://h/db\"").unwrap();
        assert_eq!(url, "postgres://h/db");
        assert_eq!((o.pool_size, o.timeout.as_secs(), o.mode), (None, 5, None));
        assert_eq!(o.tenant_roles, None);
        assert_eq!(o.header.as_deref(), Some("Tenant-Header"));
        assert!(o.host && o.migrate_tenants && !o.public_tenant);
        assert_eq!(o.path_prefix, None);

        let (_, o) = parse(
            "[databases.app]\nurl = \"u\"\npool_size = 3\ntimeout = 1\nmode = \"transaction_local\"\n\
             [tenancy]\nheader = \"X-Tenant\"\nhost = false\npath_prefix = true\n\
             migrate_tenants = false\npublic_tenant = true\nmigrate_jobs = 4\ntenant_roles = true",
        )
        .unwrap();
        assert_eq!(o.pool_size, Some(3));
        assert_eq!(o.timeout, Duration::from_secs(1));
        assert_eq!(o.mode, Some(PoolMode::TransactionLocal));
        assert_eq!(o.header.as_deref(), Some("X-Tenant"));
        assert_eq!(o.path_prefix.as_deref(), Some("t"));
        assert!(!o.host && !o.migrate_tenants && o.public_tenant);
        assert_eq!(o.migrate_jobs, 4);
        assert_eq!(o.tenant_roles, Some(true));
        assert_eq!((o.tenant_mode, o.row_tenants), (None, None));

        let (_, o) =
            parse("[databases.app]\nurl = \"u\"\n[tenancy]\ntenant_mode = \"Rows\"").unwrap();
        assert_eq!(o.tenant_mode, Some(TenantMode::Rows));
        let (_, o) = parse("[databases.app]\nurl = \"u\"\n[tenancy]\nrow_tenants = true").unwrap();
        assert_eq!((o.tenant_mode, o.row_tenants), (None, Some(true)));
        let err =
            parse("[databases.app]\nurl = \"u\"\n[tenancy]\ntenant_mode = \"cells\"").unwrap_err();
        assert!(err.contains("tenant_mode") && err.contains("rows"), "{err}");

        let (_, o) = parse("[databases.app]\nurl = \"u\"\n[tenancy]\nasync_pool = false").unwrap();
        assert!(!o.async_pool);
        let read = parse("[databases.app]\nurl = \"u\"\n[tenancy]\nasync_pool = true");
        match read {
            Ok((_, o)) => assert!(cfg!(feature = "rocket-async") && o.async_pool),
            Err(e) => assert!(
                !cfg!(feature = "rocket-async") && e.contains("rocket-async"),
                "{e}"
            ),
        }

        let (_, o) = parse("[databases.app]\nurl = \"u\"\n[tenancy]\nheader = false").unwrap();
        assert_eq!(o.header, None);

        let (_, o) = parse(
            "[databases.app]\nurl = \"u\"\n[tenancy]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n\
             max_registry_age = 2.5",
        )
        .unwrap();
        assert!(o.trusted_proxies.trusts("10.9.9.9".parse().unwrap()));
        assert!(!o.trusted_proxies.trusts("127.0.0.1".parse().unwrap()));
        assert_eq!(o.max_registry_age, Duration::from_millis(2500));
    }

    #[test]
    fn clear_errors() {
        let e = parse("").unwrap_err();
        assert!(
            e.contains("databases.app") && e.contains("ROCKET_DATABASES"),
            "{e}"
        );
        let e = parse("[databases.app]\nurl = \"u\"\n[tenancy]\nheadr = \"x\"").unwrap_err();
        assert!(e.contains("headr"), "{e}");
        let e = parse("[databases.app]\nurl = \"u\"\n[tenancy]\npath_prefix = \"/\"").unwrap_err();
        assert!(e.contains("path_prefix"), "{e}");
        let e = parse("[databases.app]\nurl = \"u\"\n[tenancy]\ntrusted_proxies = [\"proxy\"]")
            .unwrap_err();
        assert!(e.contains("trusted_proxies") && e.contains("proxy"), "{e}");
        let e = parse("[databases.app]\nurl = \"u\"\n[tenancy]\nmax_registry_age = 0").unwrap_err();
        assert!(e.contains("max_registry_age"), "{e}");
        let e = parse("[databases.app]\nurl = \"u\"\nmode = \"pgbouncer\"").unwrap_err();
        assert!(e.contains("mode") || e.contains("pgbouncer"), "{e}");
    }
}
