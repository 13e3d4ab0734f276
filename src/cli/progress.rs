//! A progress bar on stderr for `migrate` and `tenant sql`, drawn only on a terminal.

use std::io::Write;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use crate::migrate::{BatchOptions, Outcome, Progress};

/// Cells in the bar.
const WIDTH: usize = 30;

/// Counts finished tenants and redraws one stderr line after each.
#[derive(Debug)]
pub(super) struct Bar {
    total: usize,
    /// (done, failed)
    state: Mutex<(usize, usize)>,
}

impl Bar {
    /// Draws an empty bar for `total` tenants.
    pub(super) fn start(total: usize) -> Arc<Bar> {
        let bar = Arc::new(Bar {
            total,
            state: Mutex::new((0, 0)),
        });
        draw(&render(0, total, 0, ""));
        bar
    }

    /// The callback for [`BatchOptions::progress`](crate::BatchOptions::progress).
    pub(super) fn callback<R: Outcome + 'static>(self: &Arc<Self>) -> Progress<R> {
        let bar = Arc::clone(self);
        Arc::new(move |report: &R| bar.tick(report))
    }

    fn tick(&self, report: &dyn Outcome) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.0 += 1;
        if report.failed() {
            state.1 += 1;
        }
        draw(&render(state.0, self.total, state.1, report.tenant()));
    }

    /// Clears the bar so the summary starts on a clean line.
    pub(super) fn finish(&self) {
        draw("");
    }
}

/// The options of `migrate` and `tenant sql`, from the selection flags they share,
/// reporting to `bar` when one is drawn.
pub(super) fn options<R: Outcome + 'static>(
    bar: Option<&Arc<Bar>>,
    jobs: NonZeroUsize,
    only: &[String],
    skip: &[String],
    keep_going: bool,
) -> BatchOptions<R> {
    BatchOptions {
        jobs: jobs.get(),
        only: only.to_vec(),
        skip: skip.to_vec(),
        keep_going,
        progress: bar.map(Bar::callback),
    }
}

fn draw(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K{line}");
    let _ = err.flush();
}

/// One frame: `[=========>          ] 3/10 tenants, 1 failed  acme`.
pub(super) fn render(done: usize, total: usize, failed: usize, last: &str) -> String {
    let filled = (done.min(total) * WIDTH)
        .checked_div(total)
        .unwrap_or(WIDTH);
    let mut cells = "=".repeat(filled);
    if filled < WIDTH {
        cells.push('>');
        cells.push_str(&" ".repeat(WIDTH - filled - 1));
    }
    let mut line = format!("[{cells}] {done}/{total} tenants");
    if failed > 0 {
        line.push_str(&format!(", {failed} failed"));
    }
    if !last.is_empty() {
        let name: String = last.chars().filter(|c| !c.is_control()).take(40).collect();
        line.push_str("  ");
        line.push_str(&name);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn frames() {
        assert_eq!(
            render(0, 10, 0, ""),
            format!("[>{}] 0/10 tenants", " ".repeat(29))
        );
        assert_eq!(
            render(5, 10, 1, "acme"),
            format!(
                "[{}>{}] 5/10 tenants, 1 failed  acme",
                "=".repeat(15),
                " ".repeat(14)
            )
        );
        assert_eq!(
            render(3, 3, 0, "x"),
            format!("[{}] 3/3 tenants  x", "=".repeat(30))
        );
        assert_eq!(
            render(0, 0, 0, ""),
            format!("[{}] 0/0 tenants", "=".repeat(30))
        );
        assert!(render(1, 2, 0, "a\x1b[31mb").ends_with("a[31mb"));
    }
}
