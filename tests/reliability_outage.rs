//! A database outage while work flows: checkouts fail fast with an "unavailable" error
//! (no hang), and the pool serves again soon after the server is back.

mod common;

use std::time::{Duration, Instant};

use common::private_pg::PrivatePg;
use diesel::prelude::*;
use diesel_tenancy::database::create_database_if_missing;
use diesel_tenancy::{Error, NewTenant, PoolMode, SyncRouter, TenantPool};

diesel::table! {
    hotels (id) {
        id -> BigInt,
        name -> Varchar,
    }
}

fn list(pool: &TenantPool, schema: &diesel_tenancy::SchemaName) -> Result<usize, Error> {
    pool.with_tenant(schema, |c| {
        Ok::<_, Error>(hotels::table.select(hotels::id).load::<i64>(c)?.len())
    })
}

#[test]
fn pool_fails_fast_during_an_outage_and_recovers() {
    let pg = PrivatePg::start();
    let url = pg.url("outage");
    create_database_if_missing(&url).unwrap();
    for mode in [PoolMode::Session, PoolMode::TransactionLocal] {
        let timeout = Duration::from_secs(1);
        let pool = TenantPool::builder()
            .mode(mode)
            .max_size(3)
            .min_idle(Some(1))
            .connection_timeout(timeout)
            .build(&url)
            .unwrap();
        let router = SyncRouter::new(pool.clone(), common::TENANT);
        router.migrate_shared().unwrap();
        let name = format!("{mode:?}").to_lowercase();
        let schema = router
            .create_tenant(&NewTenant::named(name))
            .unwrap()
            .schema_name;
        assert_eq!(list(&pool, &schema).unwrap(), 0);

        pg.down();
        for _ in 0..5 {
            let t0 = Instant::now();
            let err = list(&pool, &schema).unwrap_err();
            assert!(err.is_unavailable(), "{mode:?}: {err}");
            assert!(t0.elapsed() < timeout * 10, "{mode:?}: failed, not hung");
        }

        pg.up();
        let back = Instant::now();
        let recovered = loop {
            match list(&pool, &schema) {
                Ok(n) => break n,
                Err(e) => {
                    assert!(e.is_unavailable(), "{mode:?}: {e}");
                    assert!(
                        back.elapsed() < Duration::from_secs(30),
                        "{mode:?} never recovered"
                    );
                }
            }
        };
        assert_eq!(recovered, 0);
        println!(
            "{mode:?}: serving again {:.2} s after the server was back",
            back.elapsed().as_secs_f64()
        );
    }
}
