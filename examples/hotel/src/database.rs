//! Which PostgreSQL the service uses:
//!
//! 1. `DATABASE_URL` (or `databases.hotel.url` in `Rocket.toml`) when set: that server.
//! 2. Otherwise [`DEFAULT_DATABASE_URL`] when a server there logs role `postgres` in.
//! 3. Otherwise the embedded cluster ([`crate::embedded_pg`]), started for as long as
//!    the process runs.
//!
//! `HOTEL_EMBEDDED_PG=always` skips step 2, `never` skips step 3 (the default URL is
//! then used whether it answers or not).

use std::path::Path;

use diesel::{Connection, PgConnection};

use crate::config::{EmbeddedMode, Settings, DEFAULT_DATABASE_URL, DEFAULT_SERVER_URL};
use crate::embedded_pg::Cluster;

/// The database the process uses; an embedded cluster it runs stops (if it is the
/// last user) when this drops.
#[derive(Debug)]
pub struct Database {
    pub url: String,
    _cluster: Option<Cluster>,
}

/// Why the default server was not used: `url` names its maintenance database, which
/// exists before the service creates its own.
fn probe(url: &str) -> Result<(), String> {
    let sep = if url.contains('?') { '&' } else { '?' };
    PgConnection::establish(&format!("{url}{sep}connect_timeout=3"))
        .map(drop)
        .map_err(|e| {
            let text = e.to_string();
            let line = text.lines().next().unwrap_or_default().trim();
            line.rsplit("failed: ").next().unwrap_or(line).to_owned()
        })
}

/// The database for this run. `create`: an embedded cluster may be made (not for
/// `migrate --check`, which changes nothing). `verbose`: say where the data lives
/// and how to connect (the service), else one line (management commands).
pub fn open(settings: &Settings, create: bool, verbose: bool) -> Result<Database, String> {
    if let Some(url) = &settings.database_url {
        return Ok(Database {
            url: url.clone(),
            _cluster: None,
        });
    }
    let why = match settings.embedded {
        EmbeddedMode::Never => None,
        EmbeddedMode::Always => Some("HOTEL_EMBEDDED_PG=always".to_owned()),
        EmbeddedMode::Auto => match probe(DEFAULT_SERVER_URL) {
            Ok(()) => None,
            Err(e) => Some(format!(
                "no server logged in at {}: {e}",
                DEFAULT_DATABASE_URL
            )),
        },
    };
    let Some(why) = why else {
        return Ok(Database {
            url: DEFAULT_DATABASE_URL.to_owned(),
            _cluster: None,
        });
    };
    if verbose {
        eprintln!("hotel: {why}; using the embedded PostgreSQL.");
    }
    let cluster = Cluster::start(&settings.embedded_dir, create)?;
    if verbose {
        announce(&cluster, &settings.embedded_dir);
    } else {
        eprintln!(
            "hotel: using the embedded PostgreSQL in {} (127.0.0.1:{})",
            cluster.data_dir().display(),
            cluster.port
        );
    }
    Ok(Database {
        url: cluster.url("hotel"),
        _cluster: Some(cluster),
    })
}

fn announce(cluster: &Cluster, dir: &Path) {
    let how = if cluster.started {
        "started"
    } else {
        "already running"
    };
    eprintln!(
        "hotel: embedded PostgreSQL {} {how} on 127.0.0.1:{}, stopped when the last process using it stops\n\
         hotel:   data in {} (log: {}; set HOTEL_PG_DIR to put it elsewhere than {})\n\
         hotel:   connect with: {}",
        cluster.major(),
        cluster.port,
        cluster.data_dir().display(),
        cluster.log_file().display(),
        dir.display(),
        cluster.psql("hotel"),
    );
}

#[cfg(test)]
mod tests {
    use super::probe;

    #[test]
    fn a_closed_port_is_no_server() {
        // Nothing listens on a free port.
        let port = test_support::free_port();
        let err = probe(&format!(
            "postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable"
        ))
        .expect_err("nothing listens there");
        assert!(err.contains("refused"), "{err}");
    }
}
