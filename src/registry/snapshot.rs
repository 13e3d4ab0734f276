//! [`RegistrySnapshot`]: one consistent view of the registry, indexed for lookups, and how it is
//! loaded.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use diesel::pg::PgConnection;

use super::domain_name::DomainName;
use super::rows::{Domain, Tenant, TenantMode};
use super::tenant_name::tenant_name_key;
use super::tenant_registry::TenantRegistry;
use crate::error::{Error, Result};
use crate::pool::Scope;

/// One consistent view of the registry: every tenant and domain, indexed.
#[derive(Debug, Default)]
pub struct RegistrySnapshot {
    tenants: Vec<Arc<Tenant>>,
    domains: Vec<Domain>,
    by_name: HashMap<String, Arc<Tenant>>,
    by_domain: HashMap<String, Arc<Tenant>>,
    by_id: HashMap<i64, Arc<Tenant>>,
    /// The `pg_namespace` OID of each tenant's schema when the snapshot was loaded, if
    /// they were loaded.
    schema_oids: Option<HashMap<i64, u32>>,
}

impl RegistrySnapshot {
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
        RegistrySnapshot {
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
    /// A row tenant's scope is [`Scope::Rows`] with its registry id, which is never
    /// reused (the checkout proves that the id is still a registered row tenant).
    pub fn scope_of(&self, tenant: &Tenant) -> Scope {
        if tenant.mode == TenantMode::Rows {
            return tenant.scope();
        }
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

/// Loads every tenant and domain in one read-only, repeatable-read transaction; inside a
/// transaction already open (a `TransactionLocal` checkout), in a savepoint of it, where
/// the reads may see commits between them: a tenant whose schema OID is missing from the
/// later read is then pinned to OID 0 and fails closed.
pub(crate) fn load(conn: &mut PgConnection) -> Result<RegistrySnapshot> {
    use diesel::connection::{AnsiTransactionManager, Connection, TransactionManager};
    let started = Instant::now();
    let read = |conn: &mut PgConnection| {
        let tenants = TenantRegistry::list(conn)?;
        let domains = TenantRegistry::list_domains(conn)?;
        let oids = schema_oids(conn)?;
        Ok::<_, Error>(RegistrySnapshot::new(tenants, domains).with_schema_oids(oids))
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
            mode: TenantMode::Schema,
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
        let s = RegistrySnapshot::new(
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
