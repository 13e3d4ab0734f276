//! What pinning a route to its schema's OID costs per checkout (a measurement, ignored in
//! CI): `cargo test --release --all-features --test route_cost -- --ignored --nocapture`.

mod common;

use std::time::{Duration, Instant};

use common::TestDb;
use diesel::prelude::*;
use diesel_tenancy::{NewTenant, Scope};

#[derive(QueryableByName)]
struct Oid {
    #[diesel(sql_type = diesel::sql_types::Oid)]
    oid: u32,
}

fn per_checkout(pool: &diesel_tenancy::TenantPool, scope: &Scope, n: u32) -> Duration {
    let started = Instant::now();
    for _ in 0..n {
        let conn = pool.checkout(scope.clone()).expect("checkout");
        conn.commit().expect("check-in");
    }
    started.elapsed() / n
}

#[test]
#[ignore = "a measurement"]
fn route_proof_cost_per_checkout() {
    let db = TestDb::new();
    let router = db.router(1);
    let t = router.create_tenant(&NewTenant::named("acme")).unwrap();
    let oid = router
        .pool()
        .with_public(|c| {
            diesel::sql_query("SELECT oid FROM pg_namespace WHERE nspname = 'acme'")
                .get_result::<Oid>(c)
                .map_err(diesel_tenancy::Error::from)
        })
        .unwrap()
        .oid;
    let plain = Scope::Tenant(t.schema_name.clone());
    let pinned = Scope::Pinned {
        schema: t.schema_name.clone(),
        oid,
    };
    let pool = router.pool();
    per_checkout(pool, &plain, 2000);
    per_checkout(pool, &pinned, 2000);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        a.push(per_checkout(pool, &plain, 3000));
        b.push(per_checkout(pool, &pinned, 3000));
    }
    a.sort();
    b.sort();
    println!(
        "per checkout, median of 7 × 3000 (Session mode, pool of 1): Tenant {:?}, Pinned {:?}",
        a[3], b[3]
    );
}
