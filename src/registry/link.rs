//! [`Link`]: the registry listener's connection, driven from its own thread so that every
//! call has a deadline.
//!
//! Diesel's `PgConnection` blocks in libpq and exposes no socket, so a read cannot be
//! given a timeout from outside. A half-open connection (a NAT or load balancer that
//! silently dropped it, a proxy that stopped forwarding) blocks a `SELECT 1` for as long
//! as the kernel retransmits, about 15 minutes by default. The link therefore runs each
//! call on a thread that owns the connection and waits for the answer with a deadline. A
//! call that misses it abandons the link: the caller opens a new one, and the stuck thread
//! ends (closing its connection) whenever libpq returns, its answer unread. TCP keepalives
//! and `tcp_user_timeout` on the connection ([`listener_url`]) make libpq return soon on
//! a real network failure; the deadline does not rely on them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::{Connection, SimpleConnection};
use diesel::pg::PgConnection;

use super::snapshot::{load, RegistrySnapshot};
use crate::error::{Error, Result};

/// The NOTIFY channel the registry triggers signal on.
const CHANNEL: &str = "diesel_tenancy_registry";

/// Most link threads that may be stuck at once; beyond it no new link is opened (the
/// cache then ages and requests fall back or get 503) until one of them ends.
const MAX_STUCK: usize = 4;

/// What a link does for its caller.
enum Job {
    /// Reads what the socket already holds; whether a registry notification was there.
    Drain,
    /// One round trip (`SELECT 1`), then [`Job::Drain`].
    Ping,
    /// Loads the whole registry.
    Load,
}

enum Reply {
    Changed(bool),
    Loaded(Box<RegistrySnapshot>),
}

/// A listening connection on its own thread.
pub(crate) struct Link {
    jobs: Sender<Job>,
    replies: Receiver<Result<Reply>>,
}

impl Link {
    /// Connects and subscribes on a new thread, waiting at most `deadline`.
    pub(crate) fn open(url: &str, deadline: Duration, stuck: &Arc<AtomicUsize>) -> Result<Link> {
        if stuck.load(Ordering::Acquire) >= MAX_STUCK {
            return Err(unavailable(format!(
                "{MAX_STUCK} earlier listener connections are still stuck in the network"
            )));
        }
        let (jobs, inbox) = mpsc::channel();
        let (outbox, replies) = mpsc::channel();
        let url = url.to_owned();
        let running = Arc::clone(stuck);
        running.fetch_add(1, Ordering::AcqRel);
        let spawned = std::thread::Builder::new()
            .name("diesel-tenancy-registry-link".into())
            .spawn(move || {
                serve(&url, &inbox, &outbox);
                running.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(e) = spawned {
            stuck.fetch_sub(1, Ordering::AcqRel);
            return Err(unavailable(format!(
                "could not start a listener thread: {e}"
            )));
        }
        let link = Link { jobs, replies };
        match link.replies.recv_timeout(deadline) {
            Ok(Ok(_)) => Ok(link),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(missed("connecting", deadline)),
        }
    }

    /// Whether a registry notification was received (no round trip).
    pub(crate) fn drain(&self, deadline: Duration) -> Result<bool> {
        self.changed(Job::Drain, deadline)
    }

    /// Proves the connection alive with one round trip; whether a registry notification
    /// was received before its answer.
    pub(crate) fn ping(&self, deadline: Duration) -> Result<bool> {
        self.changed(Job::Ping, deadline)
    }

    /// Loads the registry.
    pub(crate) fn load(&self, deadline: Duration) -> Result<RegistrySnapshot> {
        match self.call(Job::Load, deadline)? {
            Reply::Loaded(snapshot) => Ok(*snapshot),
            Reply::Changed(_) => Err(unavailable("the listener answered out of turn".into())),
        }
    }

    fn changed(&self, job: Job, deadline: Duration) -> Result<bool> {
        match self.call(job, deadline)? {
            Reply::Changed(changed) => Ok(changed),
            Reply::Loaded(_) => Err(unavailable("the listener answered out of turn".into())),
        }
    }

    fn call(&self, job: Job, deadline: Duration) -> Result<Reply> {
        let what = match job {
            Job::Drain => "reading notifications",
            Job::Ping => "a ping",
            Job::Load => "loading the registry",
        };
        if self.jobs.send(job).is_err() {
            return Err(unavailable("its connection thread has ended".into()));
        }
        match self.replies.recv_timeout(deadline) {
            Ok(reply) => reply,
            Err(RecvTimeoutError::Timeout) => Err(missed(what, deadline)),
            Err(RecvTimeoutError::Disconnected) => {
                Err(unavailable("its connection thread has ended".into()))
            }
        }
    }
}

/// The link thread: connect, subscribe, then answer jobs until the caller lets go.
fn serve(url: &str, inbox: &Receiver<Job>, outbox: &Sender<Result<Reply>>) {
    let mut conn = match connect(url) {
        Ok(conn) => conn,
        Err(e) => {
            let _ = outbox.send(Err(e));
            return;
        }
    };
    if outbox.send(Ok(Reply::Changed(false))).is_err() {
        return;
    }
    while let Ok(job) = inbox.recv() {
        let reply = match job {
            Job::Drain => drain(&mut conn).map(Reply::Changed),
            Job::Ping => conn
                .batch_execute("SELECT 1")
                .map_err(Error::Query)
                .and_then(|()| drain(&mut conn))
                .map(Reply::Changed),
            Job::Load => load(&mut conn).map(|s| Reply::Loaded(Box::new(s))),
        };
        let failed = reply.is_err();
        // The caller gave up waiting: this connection is no longer anyone's.
        if outbox.send(reply).is_err() || failed {
            return;
        }
    }
}

/// Reads the notifications libpq already received (`PQconsumeInput`: no round trip).
fn drain(conn: &mut PgConnection) -> Result<bool> {
    let mut changed = false;
    for notification in conn.notifications_iter() {
        changed |= notification.map_err(Error::Query)?.channel == CHANNEL;
    }
    Ok(changed)
}

/// Opens the listener's own connection and subscribes to the registry channel.
fn connect(url: &str) -> Result<PgConnection> {
    let mut conn = PgConnection::establish(url)?;
    conn.batch_execute(&format!(
        "SET statement_timeout = '30s'; SET idle_in_transaction_session_timeout = '30s'; \
         LISTEN {CHANNEL}"
    ))?;
    Ok(conn)
}

/// The listener's connection string: `url` plus, where it does not set them, a connect
/// timeout, an `application_name` (sent at connect, so it shows in `pg_stat_activity`
/// from the start), TCP keepalives and `tcp_user_timeout`, so that on a real network
/// failure libpq itself gives up within about `deadline` and the stuck thread ends.
pub(crate) fn listener_url(url: &str, connect_timeout: Duration, deadline: Duration) -> String {
    let secs = |d: Duration| d.as_secs().max(1).to_string();
    with_params(
        url,
        &[
            ("connect_timeout", secs(connect_timeout)),
            ("application_name", "diesel_tenancy_listener".into()),
            ("keepalives", "1".into()),
            ("keepalives_idle", secs(deadline)),
            ("keepalives_interval", "1".into()),
            ("keepalives_count", "3".into()),
            ("tcp_user_timeout", deadline.as_millis().max(1).to_string()),
        ],
    )
}

/// Adds each `(key, value)` that `url` does not set, to a `postgres://` URL (as query
/// parameters) or a `key=value` connection string.
pub(crate) fn with_params(url: &str, params: &[(&str, String)]) -> String {
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let mut out = url.to_owned();
    for (key, value) in params {
        let set = if is_url {
            url.split_once('?').is_some_and(|(_, query)| {
                query
                    .split('&')
                    .any(|pair| pair.split('=').next() == Some(key))
            })
        } else {
            url.split_whitespace()
                .any(|pair| pair.split('=').next().map(str::trim) == Some(key))
        };
        if set {
            continue;
        }
        let sep = match (is_url, out.contains('?')) {
            (true, true) => "&",
            (true, false) => "?",
            (false, _) if out.trim().is_empty() => "",
            (false, _) => " ",
        };
        out = format!("{out}{sep}{key}={value}");
    }
    out
}

fn unavailable(reason: String) -> Error {
    Error::Unavailable {
        what: "the tenant registry listener",
        reason,
    }
}

fn missed(what: &str, deadline: Duration) -> Error {
    unavailable(format!("{what} took longer than {deadline:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_only_missing_parameters() {
        let p = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let params: Vec<(String, String)> = vec![p("connect_timeout", "5"), p("keepalives", "1")];
        let params: Vec<(&str, String)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        assert_eq!(
            with_params("postgres://h/db", &params),
            "postgres://h/db?connect_timeout=5&keepalives=1"
        );
        assert_eq!(
            with_params("postgres://h/db?sslmode=disable&connect_timeout=2", &params),
            "postgres://h/db?sslmode=disable&connect_timeout=2&keepalives=1"
        );
        assert_eq!(
            with_params("host=h dbname=db keepalives=0", &params),
            "host=h dbname=db keepalives=0 connect_timeout=5"
        );
        let url = listener_url(
            "postgres://h/db",
            Duration::from_secs(5),
            Duration::from_millis(1500),
        );
        assert!(url.contains("tcp_user_timeout=1500"), "{url}");
        assert!(
            url.contains("application_name=diesel_tenancy_listener"),
            "{url}"
        );
        assert!(url.contains("keepalives_idle=1&"), "{url}");
    }
}
