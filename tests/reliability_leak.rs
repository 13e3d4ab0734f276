//! Leak property test: many random checkouts under injected faults never read another
//! tenant's data. The faults are the first release's seven plus every attack of issue 11
//! (`common::attack`: server-side path changes, SQL a text scan misses, hidden
//! transactions, temporary objects, other session state, swapped connections). Every
//! innocent checkout checks its tenant, role and settings and writes a token; at the end
//! every token must be committed in its own schema and no session may be left inside a
//! transaction. Figures land in `$CARGO_TARGET_TMPDIR/leak_report.txt`; see RELIABILITY.md.

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::attack::{self, Attack};
use common::sentinel::{self, name_of};
use common::TestDb;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_tenancy::{Error, PoolMode, Scope, TenantPool};

const TENANTS: usize = 50;
const THREADS: usize = 8;
/// Checkouts per thread per configuration; 2 modes × 4 pool sizes × 8 threads × this.
const PER_THREAD: usize = 1_600;

/// A tiny deterministic generator (xorshift64*), seeded per thread.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    None,
    Panic,
    QueryError,
    Rollback,
    SavepointAfterScopeChange,
    LeaveTransactionOpen,
    RawRollback,
    TerminateBackend,
    Attack(Attack),
}

/// The first release's faults, then every attack.
fn faults() -> Vec<Fault> {
    let mut faults = vec![
        Fault::Panic,
        Fault::QueryError,
        Fault::Rollback,
        Fault::SavepointAfterScopeChange,
        Fault::LeaveTransactionOpen,
        Fault::RawRollback,
        Fault::TerminateBackend,
    ];
    faults.extend(attack::ALL.iter().copied().map(Fault::Attack));
    faults
}

#[derive(Default)]
struct Counts {
    checkouts: AtomicU64,
    verified_reads: AtomicU64,
    wrong_reads: AtomicU64,
    errors: AtomicU64,
    panics: AtomicU64,
    faults: Mutex<BTreeMap<String, u64>>,
    wrong_examples: Mutex<Vec<String>>,
    /// Every innocent checkout's token, with the schema it belongs to.
    attempted: Mutex<std::collections::HashMap<String, String>>,
    /// Tokens of innocent checkouts that returned `Ok` (so were committed).
    committed: Mutex<Vec<String>>,
    leftover_transactions: AtomicU64,
}

/// Counts one innocent checkout's findings; true when it wrote its token.
fn innocent(
    conn: &mut PgConnection,
    scope: &Scope,
    token: &str,
    counts: &Counts,
) -> Result<bool, Error> {
    match attack::innocent_work(conn, scope, token)? {
        None => {
            counts.verified_reads.fetch_add(1, Ordering::Relaxed);
            Ok(true)
        }
        Some(wrong) => {
            let mut ex = counts.wrong_examples.lock().unwrap();
            if ex.len() < 10 {
                ex.push(wrong);
            }
            counts.wrong_reads.fetch_add(1, Ordering::Relaxed);
            Ok(false)
        }
    }
}

/// Counts one sentinel check.
fn check(conn: &mut PgConnection, expected: &str, counts: &Counts) -> Result<(), Error> {
    match sentinel::check(conn, expected)? {
        None => counts.verified_reads.fetch_add(1, Ordering::Relaxed),
        Some(wrong) => {
            let mut ex = counts.wrong_examples.lock().unwrap();
            if ex.len() < 10 {
                ex.push(wrong);
            }
            counts.wrong_reads.fetch_add(1, Ordering::Relaxed)
        }
    };
    Ok(())
}

fn inject(
    conn: &mut PgConnection,
    fault: Fault,
    own: &Scope,
    other: &Scope,
    url: &str,
) -> Result<(), Error> {
    use diesel::result::Error::RollbackTransaction;
    let other_scope = other;
    let other = &name_of(other);
    match fault {
        Fault::None => Ok(()),
        Fault::Panic => panic!("injected panic"),
        Fault::QueryError => Ok(conn.batch_execute("SELECT * FROM no_such_table")?),
        Fault::Rollback => {
            let _ = conn.transaction::<(), diesel::result::Error, _>(|c| {
                c.batch_execute(&format!("SET search_path TO \"{other}\""))?;
                Err(RollbackTransaction)
            });
            Ok(())
        }
        Fault::SavepointAfterScopeChange => {
            conn.transaction::<(), diesel::result::Error, _>(|c| {
                c.batch_execute(&format!("SET search_path TO \"{other}\""))?;
                let _ = c.transaction::<(), _, _>(|c| {
                    c.batch_execute("SET search_path TO public")?;
                    Err(RollbackTransaction)
                });
                Ok(())
            })?;
            Ok(())
        }
        Fault::LeaveTransactionOpen => {
            Ok(conn.batch_execute(&format!("BEGIN; SET LOCAL search_path TO \"{other}\""))?)
        }
        Fault::RawRollback => Ok(conn.batch_execute("ROLLBACK")?),
        Fault::TerminateBackend => Ok(conn.batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND backend_type = 'client backend' ORDER BY random() LIMIT 1",
        )?),
        Fault::Attack(a) => Ok(attack::run(a, conn, own, other_scope, url)?),
    }
}

fn run_config(
    db: &TestDb,
    scopes: &[Scope],
    mode: PoolMode,
    size: u32,
    counts: &Counts,
    seed: u64,
) {
    let pool = TenantPool::builder()
        .mode(mode)
        .max_size(size)
        .min_idle(Some(0))
        .connection_timeout(Duration::from_secs(20))
        .build(&db.url)
        .unwrap();
    let faults = faults();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let pool = pool.clone();
            let faults = &faults;
            s.spawn(move || {
                let mut rng = Rng((seed ^ (t as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
                for _ in 0..PER_THREAD {
                    let scope = scopes[rng.below(scopes.len())].clone();
                    let other = scopes[rng.below(scopes.len())].clone();
                    let fault = if rng.below(100) < 12 {
                        faults[rng.below(faults.len())]
                    } else {
                        Fault::None
                    };
                    if fault != Fault::None {
                        *counts
                            .faults
                            .lock()
                            .unwrap()
                            .entry(format!("{fault:?}"))
                            .or_default() += 1;
                    }
                    counts.checkouts.fetch_add(1, Ordering::Relaxed);
                    let expected = name_of(&scope);
                    let token = attack::token(&scope);
                    if fault == Fault::None {
                        counts
                            .attempted
                            .lock()
                            .unwrap()
                            .insert(token.clone(), expected.clone());
                    }
                    let outcome = catch_unwind(AssertUnwindSafe(|| {
                        pool.with_scope(scope.clone(), |c| {
                            if fault == Fault::None {
                                return innocent(c, &scope, &token, counts);
                            }
                            check(c, &expected, counts)?;
                            inject(c, fault, &scope, &other, &db.url)?;
                            if fault == Fault::Rollback {
                                check(c, &expected, counts)?;
                            }
                            Ok::<_, Error>(false)
                        })
                    }));
                    match outcome {
                        Ok(Ok(true)) => counts.committed.lock().unwrap().push(token),
                        Ok(Ok(false)) => {}
                        Ok(Err(_)) => {
                            counts.errors.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            counts.panics.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    // No session of the pool is left inside a transaction.
    let mut direct = PgConnection::establish(&db.url).unwrap();
    let open: i64 = diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
    )
    .get_result(&mut direct)
    .unwrap();
    counts
        .leftover_transactions
        .fetch_add(open as u64, Ordering::Relaxed);
    // After the storm every scope still reads its own sentinel.
    for scope in scopes {
        let expected = name_of(scope);
        pool.with_scope(scope.clone(), |c| check(c, &expected, counts))
            .unwrap();
    }
}

/// Every token found in a `writes` table belongs to that table's schema, and every
/// innocent checkout that returned `Ok` has its token committed.
fn check_writes(db: &TestDb, scopes: &[Scope], counts: &Counts) -> (u64, u64) {
    let mut direct = PgConnection::establish(&db.url).unwrap();
    let attempted = counts.attempted.lock().unwrap();
    let mut found = std::collections::HashSet::new();
    let mut misplaced = 0;
    for scope in scopes {
        let schema = name_of(scope);
        let tokens: Vec<String> = diesel::dsl::sql::<diesel::sql_types::Text>(&format!(
            "SELECT token FROM \"{schema}\".writes"
        ))
        .load(&mut direct)
        .unwrap();
        for token in tokens {
            if attempted.get(&token) != Some(&schema) {
                misplaced += 1;
            }
            found.insert(token);
        }
    }
    let lost = counts
        .committed
        .lock()
        .unwrap()
        .iter()
        .filter(|t| !found.contains(*t))
        .count() as u64;
    (misplaced, lost)
}

#[test]
fn no_cross_tenant_read_under_faults() {
    // Panics are injected on purpose; keep their messages out of the output.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !format!("{info}").contains("injected panic") {
            default_hook(info);
        }
    }));
    let db = TestDb::new();
    let scopes = sentinel::setup(db.pool(4), "leak", TENANTS);
    attack::setup(&db.pool(2), &scopes);
    let counts = Counts::default();
    let started = Instant::now();
    let mut seed = 0x5eed_u64;
    for mode in [PoolMode::Session, PoolMode::TransactionLocal] {
        for size in 1..=4 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            run_config(&db, &scopes, mode, size, &counts, seed);
        }
    }
    let elapsed = started.elapsed();
    let (misplaced, lost) = check_writes(&db, &scopes, &counts);
    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let faults = counts.faults.lock().unwrap().clone();
    let committed = counts.committed.lock().unwrap().len();
    let report = format!(
        "leak property test: {} tenants + public, {} threads, pool sizes 1-4, modes Session and TransactionLocal\n\
         checkouts: {}\nverified reads: {}\nwrong-schema reads: {}\nerrors returned: {}\npanics caught: {}\n\
         innocent writes committed: {}\nwrites in another schema: {}\ncommitted writes lost: {}\n\
         sessions left inside a transaction: {}\n\
         fault kinds: {}\nfaults injected: {:?}\nelapsed: {:.1} s\n",
        TENANTS,
        THREADS,
        c(&counts.checkouts),
        c(&counts.verified_reads),
        c(&counts.wrong_reads),
        c(&counts.errors),
        c(&counts.panics),
        committed,
        misplaced,
        lost,
        c(&counts.leftover_transactions),
        faults.len(),
        faults,
        elapsed.as_secs_f64()
    );
    println!("{report}");
    let _ = std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("leak_report.txt"),
        &report,
    );
    assert_eq!(
        c(&counts.wrong_reads),
        0,
        "{report}\nexamples: {:?}",
        counts.wrong_examples.lock().unwrap()
    );
    assert_eq!((misplaced, lost), (0, 0), "{report}");
    assert_eq!(c(&counts.leftover_transactions), 0, "{report}");
    assert!(c(&counts.checkouts) >= 100_000, "{report}");
    // Every fault kind was exercised, and most checkouts did real verified work.
    assert_eq!(faults.len(), self::faults().len(), "{report}");
    assert!(
        c(&counts.verified_reads) >= c(&counts.checkouts) * 8 / 10,
        "{report}"
    );
}
