//! Faults under load against the hotel service: PostgreSQL stops and starts while requests
//! flow. During the outage every request gets 503 (never a 500, never a hang); after the
//! server is back the service answers 200 again within 5 s. Figures are printed and
//! written to `$CARGO_TARGET_TMPDIR/outage_report.txt` (see RELIABILITY.md).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use diesel_tenancy::testing::TestDatabase;
use serde_json::json;
use support::{http, Http, Options, Server};
use test_support::private_pg::PrivatePg;

/// One request's outcome: when it was sent, how long it took, its status (0 = no answer).
#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Instant,
    took: Duration,
    status: u16,
}

const CLIENTS: usize = 4;

#[test]
fn a_database_restart_under_load_gives_503_then_recovers() {
    let pg = PrivatePg::start();
    let db = TestDatabase::reserve(&pg.url("hotel")).expect("a database name");
    let server = Server::start(
        &db,
        Options {
            env: vec![("ROCKET_DATABASES", "{hotel={pool_size=4,timeout=1}}".into())],
            ..Options::default()
        },
    );
    server.create_tenant("demo1");
    let created = server.json(
        "POST",
        "/hotels/",
        &[("Tenant-Header", "demo1")],
        json!({"name": "Ritz", "location": "Paris", "description": "Grand"}),
    );
    assert_eq!(created.status, 201);

    let stop = AtomicBool::new(false);
    let samples = Mutex::new(Vec::<Sample>::new());
    let (t_down, t_up) = std::thread::scope(|s| {
        for _ in 0..CLIENTS {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    let status = http::request(
                        server.port,
                        "GET",
                        "/hotels/",
                        &[("Tenant-Header", "demo1")],
                        None,
                    )
                    .map(|r| r.status)
                    .unwrap_or(0);
                    samples.lock().unwrap().push(Sample {
                        at,
                        took: at.elapsed(),
                        status,
                    });
                }
            });
        }
        let count_after = |t: Instant, pred: &dyn Fn(&Sample) -> bool| {
            samples
                .lock()
                .unwrap()
                .iter()
                .filter(|x| x.at >= t && pred(x))
                .count()
        };
        let wait_for = |what: &str, done: &dyn Fn() -> bool| {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !done() {
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        let start = Instant::now();
        wait_for("200s before the outage", &|| {
            count_after(start, &|x| x.status == 200) >= 50
        });
        pg.down();
        let t_down = Instant::now();
        wait_for("503s during the outage", &|| {
            count_after(t_down, &|x| x.status == 503) >= 20
        });
        pg.up();
        let t_up = Instant::now();
        wait_for("a 200 after the restart", &|| {
            count_after(t_up, &|x| x.status == 200) >= 20
        });
        stop.store(true, Ordering::Relaxed);
        (t_down, t_up)
    });

    let samples = samples.into_inner().unwrap();
    let during: Vec<_> = samples
        .iter()
        .filter(|x| x.at >= t_down && x.at + x.took < t_up)
        .collect();
    let by_status = |v: &[&Sample], code: u16| v.iter().filter(|x| x.status == code).count();
    let all: Vec<_> = samples.iter().collect();
    let first_ok_after_up = samples
        .iter()
        .filter(|x| x.at >= t_up && x.status == 200)
        .map(|x| x.at + x.took)
        .min()
        .expect("a 200 after the restart");
    let recovery = first_ok_after_up - t_up;
    let slowest_503 = samples
        .iter()
        .filter(|x| x.status == 503)
        .map(|x| x.took)
        .max()
        .unwrap_or_default();
    let report = format!(
        "hotel service, pool_size 4, pool timeout 1 s, {CLIENTS} clients in a loop\n\
         requests: {} (200: {}, 503: {}, other: {})\n\
         sent while PostgreSQL was down: {} (503: {})\n\
         slowest 503: {:.2} s\n\
         first 200 after PostgreSQL was back: {:.2} s\n",
        all.len(),
        by_status(&all, 200),
        by_status(&all, 503),
        all.len() - by_status(&all, 200) - by_status(&all, 503),
        during.len(),
        by_status(&during, 503),
        slowest_503.as_secs_f64(),
        recovery.as_secs_f64(),
    );
    println!("{report}");
    let _ = std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("outage_report.txt"),
        &report,
    );
    let bad: Vec<_> = samples
        .iter()
        .filter(|x| x.status != 200 && x.status != 503)
        .collect();
    assert!(
        bad.is_empty(),
        "only 200 or 503, never a 500 or a dropped request: {bad:?}\n{report}"
    );
    assert_eq!(
        by_status(&during, 200),
        0,
        "nothing is served from a dead database\n{report}"
    );
    assert!(
        slowest_503 < Duration::from_secs(10),
        "a 503 comes within the pool timeout, not a hang\n{report}"
    );
    assert!(
        recovery <= Duration::from_secs(5),
        "serving again within 5 s\n{report}"
    );
    drop(server);
}

#[test]
fn an_exhausted_pool_answers_503_not_a_hang() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;

    let db = support::test_database();
    let server = Server::start(
        &db,
        Options {
            env: vec![("ROCKET_DATABASES", "{hotel={pool_size=2,timeout=1}}".into())],
            ..Options::default()
        },
    );
    server.create_tenant("demo1");
    assert_eq!(
        server.get("/hotels/", &[("Tenant-Header", "demo1")]).status,
        200
    );

    // Another session locks demo1's table: requests that reach it hold their pooled
    // connection while they wait, until both connections of the pool are taken.
    let mut locker = diesel::PgConnection::establish(db.url()).unwrap();
    locker
        .batch_execute("BEGIN; LOCK TABLE demo1.hotels IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let port = server.port;
    let blocked: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                http::request(port, "GET", "/hotels/", &[("Tenant-Header", "demo1")], None)
                    .map(|r| r.status)
            })
        })
        .collect();
    // Wait until both requests are inside PostgreSQL, waiting for the lock.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut probe = diesel::PgConnection::establish(db.url()).unwrap();
        let waiting: N = diesel::RunQueryDsl::get_result(
            diesel::sql_query(
                "SELECT count(*) AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            ),
            &mut probe,
        )
        .unwrap();
        if waiting.n >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the requests never reached the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let t0 = Instant::now();
    // `Server::get` refuses any 5xx; this request is expected to get one.
    let third =
        http::request(port, "GET", "/hotels/", &[("Tenant-Header", "demo1")], None).unwrap();
    let waited = t0.elapsed();
    assert_eq!(third.status, 503, "{}", third.text());
    assert!(third.json()["detail"].is_string());
    assert!(
        waited < Duration::from_secs(10),
        "503 after the pool timeout, not a hang"
    );
    println!(
        "exhausted pool: 503 after {:.2} s (pool timeout 1 s)",
        waited.as_secs_f64()
    );

    locker.batch_execute("ROLLBACK").unwrap();
    for handle in blocked {
        assert_eq!(
            handle.join().unwrap().unwrap(),
            200,
            "the blocked requests complete"
        );
    }
    assert_eq!(
        server.get("/hotels/", &[("Tenant-Header", "demo1")]).status,
        200
    );
    drop(server);
}
