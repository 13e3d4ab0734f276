//! The Citus test cluster ([`test_support::citus`]) and the CLI runner of the Citus
//! tests.
#![allow(dead_code)]

pub use test_support::citus::*;

/// What one CLI command printed.
pub struct Ran {
    pub outcome: diesel_tenancy::cli::Outcome,
    pub out: String,
    pub err: String,
}

impl Ran {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.out).unwrap_or_else(|e| panic!("{e}: {:?}", self.out))
    }

    pub fn assert_ok(&self) -> &Ran {
        assert_eq!(
            self.outcome,
            diesel_tenancy::cli::Outcome::Success,
            "stdout: {}\nstderr: {}",
            self.out,
            self.err
        );
        self
    }
}

/// Runs the management command `args` (as after the program name) against `router`.
pub fn cli(router: &diesel_tenancy::SyncRouter, args: &[&str]) -> Ran {
    use clap::Parser;
    #[derive(Parser)]
    struct App {
        #[command(subcommand)]
        command: diesel_tenancy::cli::Command,
    }
    let app = App::try_parse_from(std::iter::once("app").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let outcome = diesel_tenancy::cli::run(&app.command, router, &mut out, &mut err);
    Ran {
        outcome,
        out: String::from_utf8(out).expect("utf-8 stdout"),
        err: String::from_utf8(err).expect("utf-8 stderr"),
    }
}
