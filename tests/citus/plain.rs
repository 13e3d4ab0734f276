//! On plain PostgreSQL the Citus commands say, in one line, that they need Citus, and
//! nothing else changes.

use diesel_tenancy::cli::Outcome;
use diesel_tenancy::{Error, NewTenant, SyncRouter};

use crate::citus_support::cli;
use crate::common::{TestDb, TENANT};

pub fn the_citus_commands_say_in_one_line_that_they_need_citus() {
    let db = TestDb::new();
    let router = db.router(2);
    router
        .create_tenant(&NewTenant::named("acme"))
        .expect("create");
    for args in [
        &["tenant", "placement"][..],
        &["tenant", "placement", "--json"],
        &["tenant", "move", "acme", "127.0.0.1:9701"],
        &["tenant", "rebalance"],
        &["tenant", "rebalance", "--dry-run"],
        &["tenant", "distribute", "acme"],
        &["tenant", "distribute", "--all"],
    ] {
        let ran = cli(&router, args);
        assert_eq!(ran.outcome, Outcome::Failed, "{args:?}: {}", ran.out);
        assert!(ran.out.is_empty(), "{args:?}: {}", ran.out);
        assert_eq!(ran.err.lines().count(), 1, "{args:?}: {}", ran.err);
        assert!(
            ran.err.starts_with("error: `tenant ") && ran.err.contains("needs Citus"),
            "{args:?}: {}",
            ran.err
        );
    }
    assert!(matches!(
        router.make_reference_tables(),
        Err(Error::NeedsCitus { .. })
    ));
    // Everything else is as before: no Citus part in the status, and the reference-table
    // opt-in does nothing.
    assert!(router.status().expect("status").citus.is_none());
    let opted = SyncRouter::new(db.pool(2), TENANT).citus_reference_tables(true);
    assert!(opted.migrate_shared().expect("shared").is_empty());
    let check = cli(&opted, &["migrate", "--check", "--json"]);
    assert_eq!(check.json()["citus"], serde_json::Value::Null);
    assert_eq!(
        cli(&opted, &["migrate", "--check"]).out,
        "Nothing pending.\n"
    );
}
