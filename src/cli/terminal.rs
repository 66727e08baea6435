//! The terminal: logs on stderr, the live line (the spinner, `run`'s progress) that log lines
//! clear first, and the signals that stop `run`.

use std::sync::atomic::{AtomicBool, Ordering};

use super::{Cli, Command};

/// Logs go to stderr, so that stdout stays the command's own output. Colour only on a terminal,
/// and never with `NO_COLOR` set (<https://no-color.org>): cron mail and log files get plain
/// text. `RUST_LOG` overrides the level; by default the refresh's own outcome log is off, as the
/// command prints each outcome itself, except under `run`, where it is the only word of each.
pub fn init_logging(cli: &Cli) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let default = match cli.command {
        // One line per outcome: the stages' own logs are for RUST_LOG=flarefeed=info.
        Command::Run { .. } => "flarefeed=warn,flarefeed::outcome=info",
        _ => DEFAULT_LOG,
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && !no_color)
        .with_writer(|| LogWriter)
        .init();
}

/// The CLI's log level when `RUST_LOG` is not set.
pub const DEFAULT_LOG: &str = "flarefeed=info,flarefeed::outcome=off";

/// Whether the spinner's line is on the terminal now: a log line clears it first.
static SPINNER_SHOWN: AtomicBool = AtomicBool::new(false);

/// Stderr, clearing the spinner's line before a log line is written over it.
struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut stderr = std::io::stderr().lock();
        if SPINNER_SHOWN.swap(false, Ordering::Relaxed) {
            stderr.write_all(CLEAR_LINE)?;
        }
        stderr.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Carriage return, then erase the line (ECMA-48 EL).
const CLEAR_LINE: &[u8] = b"\r\x1b[2K";

/// Awaits `work`, and meanwhile, on a terminal, shows the feed and the time taken so far: a
/// refresh spends 5 to 60 s waiting for the solver. Nothing is drawn through pipes or on a dumb
/// terminal.
pub(super) async fn spinning<T>(feed: &str, work: impl Future<Output = T>) -> T {
    use std::io::IsTerminal;
    let dumb = std::env::var("TERM").is_ok_and(|term| term == "dumb");
    if !std::io::stderr().is_terminal() || dumb {
        return work.await;
    }
    const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    let started = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval(std::time::Duration::from_millis(100));
    tokio::pin!(work);
    let mut frame = 0;
    let result = loop {
        tokio::select! {
            result = &mut work => break result,
            _ = ticks.tick() => {
                let seconds = started.elapsed().as_secs_f64();
                draw_live_line(&format!("{} {feed}  {seconds:.1} s", FRAMES[frame % FRAMES.len()]));
                frame += 1;
            }
        }
    };
    clear_live_line();
    result
}

/// Draws `text` as the terminal's live line (the spinner, `run`'s progress), in place of the
/// last one; a log line clears it first ([`LogWriter`]).
pub(super) fn draw_live_line(text: &str) {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(CLEAR_LINE);
    let _ = stderr.write_all(text.as_bytes());
    let _ = stderr.flush();
    SPINNER_SHOWN.store(true, Ordering::Relaxed);
}

/// Erases the live line, if one is shown.
pub(super) fn clear_live_line() {
    use std::io::Write;
    if SPINNER_SHOWN.swap(false, Ordering::Relaxed) {
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(CLEAR_LINE);
        let _ = stderr.flush();
    }
}

/// Completes on Ctrl-C or SIGTERM, with the signal's name. The handlers are registered now,
/// when this is called, not when the future is first polled (a signal stream registers when it
/// is made, a `ctrl_c()` future only when polled), so a signal that comes before the first poll
/// is not lost.
pub(super) fn shutdown_signal() -> std::io::Result<impl Future<Output = &'static str> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async move {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    })
}

/// The exit code of a process stopped by `signal`, as shells report it: 128 + its number.
pub(super) fn signal_exit_code(signal: &str) -> u8 {
    match signal {
        "SIGTERM" => 128 + 15,
        _ => 128 + 2,
    }
}
