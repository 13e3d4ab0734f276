//! Tenants that each hold a sentinel row naming themselves, to catch wrong-schema reads.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_tenancy::{Error, NewTenant, Scope, SyncRouter, TenantPool};

diesel::table! {
    sentinel (name) {
        name -> Text,
    }
}

diesel::define_sql_function! {
    fn current_schema() -> Nullable<Text>;
}

/// The name a scope's sentinel row holds.
pub fn name_of(scope: &Scope) -> String {
    scope
        .schema()
        .map_or("public".into(), |s| s.as_str().into())
}

/// Creates `n` tenants (`{prefix}00`, …) through `pool`, each with a sentinel row, plus one
/// in `public`; returns public's scope followed by the tenants'.
pub fn setup(pool: TenantPool, prefix: &str, n: usize) -> Vec<Scope> {
    let router = SyncRouter::new(pool, super::TENANT);
    router.migrate_shared().expect("shared migrations");
    router
        .pool()
        .with_public(|c| {
            Ok::<_, Error>(c.batch_execute(
                "CREATE TABLE public.sentinel (name text NOT NULL); \
                 INSERT INTO public.sentinel VALUES ('public')",
            )?)
        })
        .expect("public sentinel");
    let mut scopes = vec![Scope::Public];
    for i in 0..n {
        let t = router
            .create_tenant(&NewTenant::named(format!("{prefix}{i:02}")))
            .expect("create tenant");
        let s = t.schema_name;
        router
            .pool()
            .with_tenant(&s, |c| {
                Ok::<_, Error>(c.batch_execute(&format!(
                    "CREATE TABLE sentinel (name text NOT NULL); INSERT INTO sentinel VALUES ('{s}')"
                ))?)
            })
            .expect("tenant sentinel");
        scopes.push(Scope::Tenant(s));
    }
    scopes
}

/// Reads `current_schema()` and the sentinel row in one query (a Diesel DSL query, so it
/// goes through the prepared-statement cache). `Ok(None)` if both name `expected`,
/// `Ok(Some(description))` if not.
pub fn check(conn: &mut PgConnection, expected: &str) -> Result<Option<String>, Error> {
    let (schema, found): (Option<String>, String) = sentinel::table
        .select((current_schema(), sentinel::name))
        .first(conn)?;
    if schema.as_deref() == Some(expected) && found == expected {
        Ok(None)
    } else {
        Ok(Some(format!(
            "expected {expected}, current_schema {schema:?}, sentinel {found}"
        )))
    }
}
