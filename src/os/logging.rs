//! The stderr logger: one line per record, `[LEVEL] message`, and, while
//! the interactive editor owns the terminal, records are held and printed
//! above the prompt by the display instead of through it.
//!
//! `--log-file` uses simplelog's `WriteLogger` instead (see `main.rs`).

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use log::{LevelFilter, Log, Metadata, Record};

static CAPTURE: AtomicBool = AtomicBool::new(false);
static HELD: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Most bytes of log held for the display; older ones are dropped.
const HELD_CAP: usize = 64 * 1024;

struct StderrLogger {
    level: LevelFilter,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level && !metadata.target().starts_with("mio")
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!("[{}] {}\n", record.level(), record.args());
        if CAPTURE.load(Ordering::Relaxed)
            && let Ok(mut held) = HELD.lock()
        {
            if held.len() + line.len() <= HELD_CAP {
                held.extend_from_slice(line.as_bytes());
            }
            return;
        }
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the stderr logger at `level`.
pub fn init_stderr(level: LevelFilter) -> Result<(), log::SetLoggerError> {
    log::set_boxed_logger(Box::new(StderrLogger { level }))?;
    log::set_max_level(level);
    Ok(())
}

/// Hold log lines for the display (true) or write them at once (false).
pub fn capture(on: bool) {
    CAPTURE.store(on, Ordering::Relaxed);
    if !on {
        let held = take_held();
        let _ = std::io::stderr().write_all(&held);
    }
}

/// The log lines held since the last call.
pub fn take_held() -> Vec<u8> {
    HELD.lock()
        .map(|mut h| std::mem::take(&mut *h))
        .unwrap_or_default()
}
