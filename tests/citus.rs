//! Issue 16 on a real Citus cluster: every tenant a distributed schema, placement, moves,
//! the checkout's guarantees through the coordinator, reference tables. The hotel
//! service on the cluster (the proof of concept, a move under load) is tested by the
//! hotel package's `tests/hotel_citus.rs`.
//!
//! The cluster is the one `CITUS_URL` names (`../shared/citus/cluster.sh start` prints
//! its URL); each test works in a database of its own on every node. Without
//! `CITUS_URL` this binary prints one line saying how to start a cluster and reports the
//! cluster tests as ignored (never as passed); the tests of what the Citus commands say
//! on plain PostgreSQL run either way. `.ci/run` starts a cluster and fails unless the
//! cluster tests ran.

mod citus_support;
mod common;

#[path = "citus/checkout.rs"]
mod checkout;
#[path = "citus/lifecycle.rs"]
mod lifecycle;
#[path = "citus/measure.rs"]
mod measure;
#[path = "citus/moves.rs"]
mod moves;
#[path = "citus/plain.rs"]
mod plain;
#[path = "citus/reference.rs"]
mod reference;

use libtest_mimic::{Arguments, Trial};

/// A test that needs the cluster: ignored, visibly, without `CITUS_URL`.
fn cluster(name: &'static str, test: fn()) -> Trial {
    Trial::test(name, move || {
        test();
        Ok(())
    })
    .with_ignored_flag(citus_support::citus_url().is_none())
}

/// A test on the plain PostgreSQL server of the other tests (`DATABASE_URL`).
fn plain(name: &'static str, test: fn()) -> Trial {
    Trial::test(name, move || {
        test();
        Ok(())
    })
}

fn main() {
    let args = Arguments::from_args();
    if citus_support::citus_url().is_none() && !args.list {
        println!("{}", citus_support::HOW_TO_START);
    }
    let trials = vec![
        cluster(
            "create_rename_delete_leave_nothing_on_any_node",
            lifecycle::create_rename_delete_leave_nothing_on_any_node,
        ),
        cluster(
            "a_new_migration_reaches_40_tenants_on_both_workers",
            lifecycle::a_new_migration_reaches_40_tenants_on_both_workers,
        ),
        cluster(
            "status_lists_undistributed_tenants_and_distribute_fixes_them",
            lifecycle::status_lists_undistributed_tenants_and_distribute_fixes_them,
        ),
        cluster(
            "spares_are_distributed_schemas_too",
            lifecycle::spares_are_distributed_schemas_too,
        ),
        cluster(
            "tenant_roles_are_refused_with_a_typed_error",
            lifecycle::tenant_roles_are_refused_with_a_typed_error,
        ),
        cluster(
            "rebalance_spreads_tenants_over_the_workers",
            moves::rebalance_spreads_tenants_over_the_workers,
        ),
        cluster(
            "the_checkout_guarantees_hold_through_the_coordinator",
            checkout::the_checkout_guarantees_hold_through_the_coordinator,
        ),
        cluster(
            "transaction_local_mode_works_behind_pgbouncer_on_the_coordinator",
            checkout::transaction_local_mode_works_behind_pgbouncer_on_the_coordinator,
        ),
        cluster(
            "a_tenant_query_joins_a_reference_table_on_its_worker",
            reference::a_tenant_query_joins_a_reference_table_on_its_worker,
        ),
        plain(
            "the_citus_commands_say_in_one_line_that_they_need_citus",
            plain::the_citus_commands_say_in_one_line_that_they_need_citus,
        ),
        // A measurement, not a test: run by bench/citus.sh (`-- --ignored measure`).
        plain(
            "measure_citus_beside_plain_postgresql",
            measure::measure_citus_beside_plain_postgresql,
        )
        .with_ignored_flag(true),
    ];
    libtest_mimic::run(&args, trials).exit();
}
