//! The background thread behind [`RegistryCache`](crate::RegistryCache): LISTEN, reload on
//! NOTIFY, reconnect with backoff.
//!
//! Diesel exposes no socket to wait on, so the thread wakes every `poll_interval` and
//! drains what libpq has already received (`PQconsumeInput` does not block and costs no
//! round trip). The wait itself is a channel receive, so `stop` wakes it at once.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::{Connection, SimpleConnection};
use diesel::pg::PgConnection;

use crate::error::Result;
use crate::registry_cache::{load, Shared, CHANNEL};

/// Shortest wait before reconnecting after a failure; it doubles up to `max_backoff`.
const MIN_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) poll_interval: Duration,
    pub(crate) ping_interval: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) connect_timeout: Duration,
}

/// What the cache handle asks of its thread.
pub(crate) enum Command {
    /// Reload now and report how it went.
    Refresh(SyncSender<Result<()>>),
    /// Exit.
    Stop,
}

enum Wake {
    Tick,
    Stop,
    Refresh(SyncSender<Result<()>>),
}

pub(crate) struct Worker {
    url: String,
    settings: Settings,
    shared: Arc<Shared>,
    inbox: Receiver<Command>,
    conn: Option<PgConnection>,
    failures: u32,
    last_contact: Instant,
}

impl Worker {
    pub(crate) fn new(
        url: String,
        settings: Settings,
        shared: Arc<Shared>,
        inbox: Receiver<Command>,
        conn: PgConnection,
    ) -> Self {
        Worker {
            url,
            settings,
            shared,
            inbox,
            conn: Some(conn),
            failures: 0,
            last_contact: Instant::now(),
        }
    }

    pub(crate) fn run(mut self) {
        loop {
            let wait = if self.conn.is_some() {
                self.settings.poll_interval
            } else {
                self.backoff()
            };
            match self.wait(wait) {
                Wake::Stop => break,
                Wake::Refresh(reply) => {
                    // The asker may have given up waiting; nothing to do then.
                    let _ = reply.send(self.reload());
                }
                Wake::Tick if self.conn.is_none() => {
                    let _ = self.reconnect();
                }
                Wake::Tick => self.poll(),
            }
        }
        self.shared.set_listening(false);
    }

    fn wait(&self, timeout: Duration) -> Wake {
        match self.inbox.recv_timeout(timeout) {
            Ok(Command::Refresh(reply)) => Wake::Refresh(reply),
            Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => Wake::Stop,
            Err(RecvTimeoutError::Timeout) => Wake::Tick,
        }
    }

    fn backoff(&self) -> Duration {
        let factor = 1u32 << self.failures.saturating_sub(1).min(16);
        (MIN_BACKOFF * factor).min(self.settings.max_backoff.max(MIN_BACKOFF))
    }

    /// Drains received notifications; reloads if there were any; pings when idle.
    fn poll(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let mut changed = false;
        let mut lost = None;
        for notification in conn.notifications_iter() {
            match notification {
                Ok(n) => changed |= n.channel == CHANNEL,
                Err(e) => {
                    lost = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = lost {
            self.lose(&crate::Error::Query(e));
        } else if changed {
            let _ = self.reload();
        } else if self.last_contact.elapsed() >= self.settings.ping_interval {
            match conn.batch_execute("SELECT 1") {
                Ok(()) => self.last_contact = Instant::now(),
                Err(e) => self.lose(&crate::Error::Query(e)),
            }
        }
    }

    /// Loads a fresh snapshot, reconnecting first if needed.
    fn reload(&mut self) -> Result<()> {
        let Some(conn) = self.conn.as_mut() else {
            return self.reconnect();
        };
        match load(conn) {
            Ok(snapshot) => {
                self.shared.store(snapshot);
                self.last_contact = Instant::now();
                Ok(())
            }
            Err(e) => {
                self.lose(&e);
                Err(e)
            }
        }
    }

    /// Opens a new connection, subscribes, then loads everything.
    fn reconnect(&mut self) -> Result<()> {
        let attempt = connect(&self.url).and_then(|mut conn| {
            let snapshot = load(&mut conn)?;
            Ok((conn, snapshot))
        });
        match attempt {
            Ok((conn, snapshot)) => {
                self.shared.store(snapshot);
                self.conn = Some(conn);
                self.shared.set_listening(true);
                if self.failures > 0 {
                    log::info!("diesel-tenancy: registry listener reconnected and reloaded");
                }
                self.failures = 0;
                self.last_contact = Instant::now();
                Ok(())
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                if self.failures == 1 || self.failures.is_multiple_of(20) {
                    log::warn!(
                        "diesel-tenancy: registry listener cannot reconnect \
                         (attempt {}): {e}; serving the last snapshot",
                        self.failures
                    );
                }
                Err(e)
            }
        }
    }

    /// Drops a connection that failed; the next tick reconnects.
    fn lose(&mut self, e: &crate::Error) {
        if self.conn.take().is_some() {
            log::warn!("diesel-tenancy: registry listener lost its connection: {e}; reconnecting");
        }
        self.shared.set_listening(false);
        self.failures = self.failures.max(1);
    }
}

/// Opens the listener's own connection and subscribes to the registry channel.
pub(crate) fn connect(url: &str) -> Result<PgConnection> {
    let mut conn = PgConnection::establish(url)?;
    conn.batch_execute(&format!(
        "SET application_name = 'diesel_tenancy_listener'; \
         SET statement_timeout = '30s'; \
         LISTEN {CHANNEL}"
    ))?;
    Ok(conn)
}

/// Adds `connect_timeout` to a `postgres://` URL that does not set one, so a reconnect
/// to an unreachable host cannot block `stop` for long.
pub(crate) fn with_connect_timeout(url: &str, timeout: Duration) -> String {
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    if !is_url || url.contains("connect_timeout=") {
        return url.to_owned();
    }
    let secs = timeout.as_secs().max(1);
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}connect_timeout={secs}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_a_connect_timeout_to_urls_only() {
        let t = Duration::from_secs(5);
        assert_eq!(
            with_connect_timeout("postgres://h/db", t),
            "postgres://h/db?connect_timeout=5"
        );
        assert_eq!(
            with_connect_timeout("postgres://h/db?sslmode=disable", t),
            "postgres://h/db?sslmode=disable&connect_timeout=5"
        );
        assert_eq!(
            with_connect_timeout("postgres://h/db?connect_timeout=2", t),
            "postgres://h/db?connect_timeout=2"
        );
        assert_eq!(
            with_connect_timeout("host=h dbname=db", t),
            "host=h dbname=db"
        );
    }
}
