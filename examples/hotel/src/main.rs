//! The hotel service's binary: see the crate docs (`lib.rs`).

fn main() -> std::process::ExitCode {
    hotel::run()
}
