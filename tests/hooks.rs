//! Tenant lifecycle hooks on the real PostgreSQL: they run inside the transaction that
//! creates, deletes or renames a tenant, in the tenant's scope, and a failing hook
//! leaves nothing behind.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use common::TestDb;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_tenancy::{
    DomainName, Error, Hook, NewTenant, PoolMode, Refusal, SyncRouter, TenantHooks, TenantPool,
    TenantRegistry,
};

fn router(db: &TestDb, mode: PoolMode, hooks: TenantHooks) -> SyncRouter {
    let pool = TenantPool::builder()
        .max_size(2)
        .mode(mode)
        .build(&db.url)
        .unwrap();
    let router = SyncRouter::new(pool, common::TENANT).hooks(hooks);
    router.migrate_shared().unwrap();
    router
}

fn scalar(conn: &mut PgConnection, sql: &str) -> QueryResult<i64> {
    diesel::dsl::sql::<BigInt>(sql).get_result(conn)
}

fn seed(conn: &mut PgConnection) -> QueryResult<usize> {
    diesel::sql_query(
        "INSERT INTO hotels (name, location, description) VALUES ('Seed', 'here', 'nice')",
    )
    .execute(conn)
}

/// (registry rows, schemas named like `name`, domains) in the database.
fn leftovers(router: &SyncRouter, schema: &str) -> (i64, i64, i64) {
    router
        .pool()
        .with_public(|c| {
            let rows = scalar(c, "SELECT count(*) FROM public.tenants")?;
            let domains = scalar(c, "SELECT count(*) FROM public.domains")?;
            let schemas =
                diesel::dsl::sql::<BigInt>("SELECT count(*) FROM pg_namespace WHERE nspname = ")
                    .bind::<Text, _>(schema)
                    .get_result(c)?;
            Ok::<_, Error>((rows, schemas, domains))
        })
        .unwrap()
}

fn hotels_in(router: &SyncRouter, name: &str) -> i64 {
    let tenant = router
        .pool()
        .with_public(|c| TenantRegistry::get_by_name(c, name))
        .unwrap();
    router
        .pool()
        .with_tenant(&tenant.schema_name, |c| {
            Ok::<_, Error>(scalar(c, "SELECT count(*) FROM hotels")?)
        })
        .unwrap()
}

fn demo(name: &str) -> NewTenant {
    NewTenant {
        domains: vec![DomainName::new(&format!("{name}.test")).unwrap()],
        ..NewTenant::named(name)
    }
}

#[test]
fn after_create_seeds_the_new_tenant_in_its_own_scope_for_new_and_spare_schemas() {
    for mode in [PoolMode::Session, PoolMode::TransactionLocal] {
        let db = TestDb::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let hooks = TenantHooks::new().after_create({
            let seen = Arc::clone(&seen);
            move |conn, tenant| {
                let schema: String =
                    diesel::dsl::sql::<Text>("SELECT current_schema()::text").get_result(conn)?;
                let domains = TenantRegistry::domains_of(conn, tenant)?.len();
                seen.lock()
                    .unwrap()
                    .push((tenant.name.clone(), schema, domains));
                seed(conn)?;
                Ok(())
            }
        });
        let router = router(&db, mode, hooks);
        router.create_tenant(&demo("fresh")).unwrap();
        router.prepare_spares(1).unwrap();
        router.create_tenant(&demo("spare")).unwrap();
        assert_eq!(router.spare_count().unwrap(), 0, "the spare was claimed");
        assert_eq!(
            *seen.lock().unwrap(),
            [
                ("fresh".to_owned(), "fresh".to_owned(), 1),
                ("spare".to_owned(), "spare".to_owned(), 1)
            ],
            "{mode:?}: in the tenant's scope, after its domains"
        );
        assert_eq!(hotels_in(&router, "fresh"), 1, "{mode:?}");
        assert_eq!(hotels_in(&router, "spare"), 1, "{mode:?}");
    }
}

#[test]
fn a_failing_or_panicking_after_create_hook_leaves_nothing_behind() {
    for mode in [PoolMode::Session, PoolMode::TransactionLocal] {
        for spare in [false, true] {
            let db = TestDb::new();
            let hooks = TenantHooks::new()
                .after_create(|conn, _| {
                    seed(conn)?;
                    Ok(())
                })
                .after_create(|_, tenant| match tenant.name.as_str() {
                    "boom" => panic!("the seed data is broken"),
                    _ => Err("the seed data is broken".into()),
                });
            let router = router(&db, mode, hooks);
            if spare {
                router.prepare_spares(1).unwrap();
            }
            let err = router.create_tenant(&demo("acme")).unwrap_err();
            match &err {
                Error::Hook {
                    hook: Hook::AfterCreate,
                    tenant,
                    source,
                } => {
                    assert_eq!(tenant, "acme");
                    assert_eq!(source.to_string(), "the seed data is broken");
                }
                other => panic!("{mode:?}: {other}"),
            }
            assert_eq!(
                err.to_string(),
                "the after-create hook failed for tenant `acme`: the seed data is broken"
            );
            assert_eq!(
                leftovers(&router, "acme"),
                (0, 0, 0),
                "{mode:?} spare={spare}"
            );

            let panicked = catch_unwind(AssertUnwindSafe(|| router.create_tenant(&demo("boom"))));
            assert!(panicked.is_err(), "the hook's panic reaches the caller");
            assert_eq!(
                leftovers(&router, "boom"),
                (0, 0, 0),
                "{mode:?} spare={spare}"
            );
            if spare {
                assert_eq!(router.spare_count().unwrap(), 1, "the spare is back");
            }
            // The pool is fine afterwards.
            assert!(router
                .pool()
                .with_public(|c| Ok::<_, Error>(scalar(c, "SELECT 1::int8")?))
                .is_ok());
        }
    }
}

#[test]
fn a_hook_that_ignores_a_failed_statement_or_commits_is_caught() {
    let db = TestDb::new();
    let hooks = TenantHooks::new().after_create(|conn, tenant| {
        if tenant.name == "swallow" {
            let _ = conn.batch_execute("INSERT INTO no_such_table VALUES (1)");
        } else {
            conn.batch_execute("COMMIT")?;
        }
        Ok(())
    });
    let router = router(&db, PoolMode::Session, hooks);
    let err = router.create_tenant(&demo("swallow")).unwrap_err();
    assert!(
        matches!(&err, Error::TransactionBroken { by, reason, .. }
            if by == "the after-create hook" && reason.contains("aborted")),
        "{err}"
    );
    // The aborted transaction was rolled back whole, not committed as a half tenant.
    assert_eq!(leftovers(&router, "swallow"), (0, 0, 0));

    let err = router.create_tenant(&demo("committer")).unwrap_err();
    assert!(
        matches!(&err, Error::TransactionBroken { reason, .. } if reason.contains("ended")),
        "{err}"
    );
}

#[test]
fn before_delete_sees_the_tenant_and_can_veto() {
    for mode in [PoolMode::Session, PoolMode::TransactionLocal] {
        let db = TestDb::new();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let hooks = TenantHooks::new()
            .after_create(|conn, _| {
                seed(conn)?;
                Ok(())
            })
            .before_delete({
                let calls = Arc::clone(&calls);
                move |conn, tenant, drop_schema| {
                    let hotels = scalar(conn, "SELECT count(*) FROM hotels")?;
                    calls
                        .lock()
                        .unwrap()
                        .push((tenant.name.clone(), drop_schema, hotels));
                    if drop_schema && tenant.name == "keep" {
                        return Err(Refusal::new(format!(
                            "{} still has {hotels} hotel(s)",
                            tenant.name
                        ))
                        .into());
                    }
                    Ok(())
                }
            });
        let router = router(&db, mode, hooks);
        router.create_tenant(&demo("keep")).unwrap();
        router.create_tenant(&demo("gone")).unwrap();

        let err = router.delete_tenant("KEEP", true).unwrap_err();
        match &err {
            Error::Hook {
                hook: Hook::BeforeDelete,
                tenant,
                source,
            } => {
                assert_eq!(tenant, "keep");
                assert_eq!(
                    source.downcast_ref::<Refusal>().map(Refusal::reason),
                    Some("keep still has 1 hotel(s)")
                );
            }
            other => panic!("{mode:?}: {other}"),
        }
        assert_eq!(
            hotels_in(&router, "keep"),
            1,
            "{mode:?}: vetoed, nothing deleted"
        );
        router.delete_tenant("gone", true).unwrap();
        assert_eq!(leftovers(&router, "gone"), (1, 0, 1), "{mode:?}");
        router.delete_tenant("keep", false).unwrap();
        assert_eq!(
            leftovers(&router, "keep"),
            (0, 1, 0),
            "{mode:?}: schema kept"
        );
        assert_eq!(
            *calls.lock().unwrap(),
            [
                ("keep".to_owned(), true, 1),
                ("gone".to_owned(), true, 1),
                ("keep".to_owned(), false, 1)
            ],
            "{mode:?}"
        );
    }
}

#[test]
fn after_rename_gets_both_names_and_a_failure_keeps_the_old_one() {
    let db = TestDb::new();
    let renames = Arc::new(Mutex::new(Vec::new()));
    let hooks = TenantHooks::new().after_rename({
        let renames = Arc::clone(&renames);
        move |conn, tenant, old| {
            let schema: String =
                diesel::dsl::sql::<Text>("SELECT current_schema()::text").get_result(conn)?;
            renames
                .lock()
                .unwrap()
                .push((old.to_owned(), tenant.name.clone(), schema));
            if tenant.name == "Taken Back" {
                return Err("renames to this name are not allowed".into());
            }
            Ok(())
        }
    });
    let router = router(&db, PoolMode::Session, hooks);
    router.create_tenant(&demo("Acme")).unwrap();
    let renamed = router.rename_tenant("ACME", "Acme Corp").unwrap();
    assert_eq!(renamed.name, "Acme Corp");
    let err = router.rename_tenant("acme corp", "Taken Back").unwrap_err();
    assert!(
        matches!(&err, Error::Hook { hook: Hook::AfterRename, tenant, .. } if tenant == "Taken Back"),
        "{err}"
    );
    let names: Vec<String> = router
        .pool()
        .with_public(TenantRegistry::list)
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["Acme Corp"]);
    assert_eq!(
        *renames.lock().unwrap(),
        [
            ("Acme".to_owned(), "Acme Corp".to_owned(), "acme".to_owned()),
            (
                "Acme Corp".to_owned(),
                "Taken Back".to_owned(),
                "acme".to_owned()
            )
        ]
    );
}

#[rocket::async_test]
async fn the_fairings_hooks_run_for_the_rocket_applications_changes() {
    use diesel_tenancy::rocket::{ApiError, Tenancy};
    use diesel_tenancy::testing::TestTenancy;
    use rocket::http::Status;

    let tenancy = TestTenancy::new(common::TENANT);
    let hooks = TenantHooks::new()
        .after_create(|conn, _| {
            seed(conn)?;
            Ok(())
        })
        .before_delete(|_, tenant, _| {
            Err(Refusal::new(format!("{} is protected", tenant.name)).into())
        })
        .after_rename(|_, _, old| match old {
            "acme" => Ok(()),
            _ => Err("only acme may be renamed".into()),
        });
    let figment = tenancy.figment("hotel").merge(("log_level", "critical"));
    let app = rocket::custom(figment)
        .attach(diesel_tenancy::rocket::TenancyFairing::new("hotel", common::TENANT).hooks(hooks));
    let rocket = app.ignite().await.expect("the app ignites");
    let state = rocket.state::<Tenancy>().expect("managed");

    let acme = state.create_tenant(demo("acme")).await.unwrap();
    assert_eq!(
        hotels_in(tenancy.router(), "acme"),
        1,
        "seeded through the fairing's router"
    );
    let refused = state.delete_tenant("acme".into(), true).await.unwrap_err();
    let api = ApiError::from(refused);
    assert_eq!(api.status(), Status::Conflict);
    assert!(
        api.detail().ends_with("acme is protected"),
        "{}",
        api.detail()
    );
    let renamed = state
        .rename_tenant("ACME".into(), "Acme Corp".into())
        .await
        .unwrap();
    assert_eq!((renamed.id, renamed.name.as_str()), (acme.id, "Acme Corp"));
    assert!(
        state.cache().find_by_name("acme corp").is_some(),
        "the cache knows the new name"
    );
    let err = state
        .rename_tenant("Acme Corp".into(), "Other".into())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Hook {
                hook: Hook::AfterRename,
                ..
            }
        ),
        "{err}"
    );
}
