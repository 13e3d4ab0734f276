//! Citus: every tenant schema a distributed schema, and where tenants live.
//!
//! On a database with the `citus` extension (a Citus coordinator), the router makes each
//! tenant schema it creates a *distributed schema* (Citus's schema-based sharding): its
//! tables live together on one worker node, and queries routed by `search_path` go to
//! that node. Nothing is asked of the user: the creating transaction turns
//! `citus.enable_schema_based_sharding` on for itself (`SET LOCAL`), whatever the
//! database's setting, so a tenant can never end up as a plain schema on the
//! coordinator because the setting was off.
//!
//! The router's methods ([`SyncRouter`](crate::SyncRouter)) hand the work to these parts:
//!
//! - `provision.rs`: creation, spares, `tenant distribute`, and the status check that
//!   lists tenant schemas that are not distributed;
//! - `placement.rs`: which node each tenant lives on, and how big it is;
//! - `moves.rs`: moving one tenant to another node, rebalancing all of them;
//! - `reference.rs`: shared tables as Citus reference tables (opt-in).
//!
//! Whether a database is a Citus one is the pool's to know (`pool/citus.rs`): the pool
//! refuses tenant roles there.
//!
//! On plain PostgreSQL, creation and status cost one catalog query more and do nothing
//! else; the placement, move, rebalance and distribute operations fail with
//! [`Error::NeedsCitus`](crate::Error::NeedsCitus).

pub(super) mod moves;
pub(super) mod placement;
pub(super) mod provision;
pub(super) mod reference;

pub(super) use provision::{ensure_distributed, shard_new_schemas, status};
