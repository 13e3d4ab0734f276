//! The background thread behind [`RegistryCache`](crate::RegistryCache): LISTEN, reload on
//! NOTIFY, prove the feed alive, reconnect with backoff.
//!
//! Every call on the listening connection goes through a [`Link`] with a deadline, so no
//! network failure can hold this thread. The snapshot counts as current as of the start of
//! the last round trip that proved the feed: PostgreSQL delivers the notifications of
//! every transaction committed before a statement began ahead of that statement's answer,
//! so a ping answered with no notification pending proves that nothing changed before it
//! was sent. When the feed cannot prove itself, the proof stops advancing and lookups past
//! the cache's `max_age` are refused (`RegistryCache::fresh_snapshot`).

use std::sync::atomic::AtomicUsize;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::link::{listener_url, Link};
use super::snapshot_cell::SnapshotCell;
use crate::error::Result;

/// The default bound on the age of the registry data a lookup answers from.
pub(crate) const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5);

/// The smallest bound accepted: the feed must be able to prove itself within it.
pub(crate) const MIN_MAX_AGE: Duration = Duration::from_millis(500);

/// Shortest wait before reconnecting after a failure; it doubles up to `max_backoff`.
const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// How the listener keeps its feed, as [`RegistryCacheBuilder`](super::RegistryCacheBuilder)
/// set it (its setters document the defaults).
#[derive(Debug, Clone)]
pub(super) struct Settings {
    poll_interval: Duration,
    ping_interval: Duration,
    max_backoff: Duration,
    connect_timeout: Duration,
    /// How long one ping or read may take before the feed counts as lost.
    deadline: Duration,
    /// The bound on the age of the data lookups answer from.
    max_age: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            poll_interval: Duration::from_millis(50),
            ping_interval: Duration::from_secs(1),
            max_backoff: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(1),
            max_age: DEFAULT_MAX_AGE,
        }
    }
}

impl Settings {
    pub(super) fn set_max_age(&mut self, max_age: Duration) {
        self.max_age = max_age.max(MIN_MAX_AGE);
    }

    pub(super) fn set_poll_interval(&mut self, every: Duration) {
        self.poll_interval = every;
    }

    pub(super) fn set_ping_interval(&mut self, every: Duration) {
        self.ping_interval = every;
    }

    pub(super) fn set_deadline(&mut self, deadline: Duration) {
        self.deadline = deadline;
    }

    pub(super) fn set_max_backoff(&mut self, max: Duration) {
        self.max_backoff = max;
    }

    pub(super) fn set_connect_timeout(&mut self, timeout: Duration) {
        self.connect_timeout = timeout;
    }

    /// The bound on the age of the data lookups answer from.
    pub(super) fn max_age(&self) -> Duration {
        self.max_age
    }

    /// How long a load may take: reloads are bigger than pings, and must still finish
    /// within the bound.
    fn load_deadline(&self) -> Duration {
        (self.max_age / 2).max(self.deadline)
    }
}

/// What the cache handle asks of its thread.
pub(super) enum Command {
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

/// The listener thread's state.
pub(super) struct Worker {
    url: String,
    settings: Settings,
    shared: Arc<SnapshotCell>,
    inbox: Receiver<Command>,
    link: Option<Link>,
    failures: u32,
    last_ping: Instant,
    /// Link threads still alive after being abandoned (see `registry_link.rs`).
    stuck: Arc<AtomicUsize>,
}

impl Worker {
    /// Connects and subscribes (under a deadline), loads the registry into `shared`, and
    /// returns the worker to run on the listener thread, which takes its commands from
    /// `inbox`. Pings and reads get at most a quarter of `max_age` each.
    pub(super) fn start(
        database_url: &str,
        mut settings: Settings,
        shared: Arc<SnapshotCell>,
        inbox: Receiver<Command>,
    ) -> Result<Worker> {
        let quarter = settings.max_age / 4;
        settings.ping_interval = settings.ping_interval.min(quarter);
        settings.deadline = settings.deadline.min(quarter);
        let url = listener_url(database_url, settings.connect_timeout, settings.deadline);
        let stuck = Arc::new(AtomicUsize::new(0));
        let link = Link::open(&url, settings.connect_timeout + settings.deadline, &stuck)?;
        let sent = Instant::now();
        shared.store(link.load(settings.max_age)?, sent);
        shared.set_listening(true);
        Ok(Worker {
            url,
            settings,
            shared,
            inbox,
            link: Some(link),
            failures: 0,
            last_ping: sent,
            stuck,
        })
    }

    /// Runs until told to stop (or the cache handle is gone).
    pub(super) fn run(mut self) {
        loop {
            let wait = if self.link.is_some() {
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
                Wake::Tick if self.link.is_none() => {
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

    /// Reloads on a notification; every `ping_interval`, proves the feed with a ping.
    fn poll(&mut self) {
        let Some(link) = &self.link else {
            return;
        };
        if self.last_ping.elapsed() >= self.settings.ping_interval {
            let sent = Instant::now();
            self.last_ping = sent;
            match link.ping(self.settings.deadline) {
                Ok(true) => {
                    let _ = self.reload();
                }
                Ok(false) => self.shared.prove(sent),
                Err(e) => self.lose(&e),
            }
            return;
        }
        match link.drain(self.settings.deadline) {
            Ok(true) => {
                let _ = self.reload();
            }
            Ok(false) => {}
            Err(e) => self.lose(&e),
        }
    }

    /// Loads a fresh snapshot, reconnecting first if needed.
    fn reload(&mut self) -> Result<()> {
        let Some(link) = &self.link else {
            return self.reconnect();
        };
        let sent = Instant::now();
        match link.load(self.settings.load_deadline()) {
            Ok(snapshot) => {
                self.shared.store(snapshot, sent);
                Ok(())
            }
            Err(e) => {
                self.lose(&e);
                Err(e)
            }
        }
    }

    /// Opens a new link (connect, subscribe), then loads everything.
    fn reconnect(&mut self) -> Result<()> {
        let deadline = self.settings.connect_timeout + self.settings.deadline;
        let attempt = Link::open(&self.url, deadline, &self.stuck).and_then(|link| {
            let sent = Instant::now();
            let snapshot = link.load(self.settings.load_deadline())?;
            Ok((link, snapshot, sent))
        });
        match attempt {
            Ok((link, snapshot, sent)) => {
                self.shared.store(snapshot, sent);
                self.link = Some(link);
                self.last_ping = sent;
                self.shared.set_listening(true);
                if self.failures > 0 {
                    log::info!("diesel-tenancy: registry listener reconnected and reloaded");
                }
                self.failures = 0;
                Ok(())
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                if self.failures == 1 || self.failures.is_multiple_of(20) {
                    log::warn!(
                        "diesel-tenancy: registry listener cannot reconnect \
                         (attempt {}): {e}; lookups are refused once the data is older \
                         than {:?}",
                        self.failures,
                        self.settings.max_age
                    );
                }
                Err(e)
            }
        }
    }

    /// Lets go of a link that failed or missed a deadline; the next tick reconnects.
    fn lose(&mut self, e: &crate::Error) {
        if self.link.take().is_some() {
            log::warn!("diesel-tenancy: registry listener lost its connection: {e}; reconnecting");
        }
        self.shared.set_listening(false);
        self.failures = self.failures.max(1);
    }
}
