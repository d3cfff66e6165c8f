//! Diagnostics: a `tracing` subscriber, so that warnings berth logs (a guest force-destroyed
//! after its shutdown timed out, a failed post-copy switch, a lock that could not be removed)
//! reach the user, and libvirt's and libxml2's own messages go through it instead of raw stderr.
//!
//! - Warnings and errors are shown on stderr by default.
//! - `-v` adds info, `-vv` debug (libvirt's and libxml2's own messages), `-vvv` trace.
//! - `RUST_LOG` (e.g. `RUST_LOG=berth::apply=debug`) refines per target; where it says nothing,
//!   the `-v` level holds.
//! - `--log-file PATH` appends that log to PATH (mode 0600, with timestamps); stderr then keeps
//!   only warnings and errors.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use super::error::CliError;

/// The level `-v` repeated `verbose` times asks for.
fn level(verbose: u8) -> LevelFilter {
    match verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

/// The filter of the main log: `RUST_LOG`'s directives over the `-v` level.
fn filter(verbose: u8) -> EnvFilter {
    EnvFilter::builder()
        .with_default_directive(level(verbose).into())
        .from_env_lossy()
}

/// The stderr layer: short lines (no timestamp; the module from `-v` on, or with `RUST_LOG`,
/// whose directives name modules).
fn stderr_layer<S, W>(verbose: u8, color: bool, writer: W) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static,
{
    tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .without_time()
        .with_target(verbose > 0 || std::env::var_os("RUST_LOG").is_some_and(|v| !v.is_empty()))
        .with_ansi(color)
}

/// Installs the subscriber for the whole process. `color`: ANSI colours on stderr.
pub fn init(verbose: u8, log_file: Option<&Path>, color: bool) -> Result<(), CliError> {
    let stderr = stderr_layer(verbose, color, std::io::stderr);
    let result = match log_file {
        None => tracing_subscriber::registry()
            .with(stderr.with_filter(filter(verbose)))
            .try_init(),
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(|source| CliError::LogFile {
                    path: path.to_path_buf(),
                    source,
                })?;
            let to_file = tracing_subscriber::fmt::layer()
                .with_writer(Mutex::new(file))
                .with_ansi(false)
                .with_filter(filter(verbose));
            tracing_subscriber::registry()
                .with(stderr.with_filter(LevelFilter::WARN))
                .with(to_file)
                .try_init()
        }
    };
    // Only a second installation can fail (a test harness that installed its own): keep it.
    let _ = result;
    crate::inventory::libvirt::route_errors_to_tracing();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_v_adds_a_level() {
        assert_eq!(level(0), LevelFilter::WARN);
        assert_eq!(level(1), LevelFilter::INFO);
        assert_eq!(level(2), LevelFilter::DEBUG);
        assert_eq!(level(5), LevelFilter::TRACE);
    }

    /// What the stderr layer prints for one warning and one info event at `verbose`.
    fn printed(verbose: u8) -> String {
        let buffer = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let writer = move || Sink(sink.clone());
        let subscriber = tracing_subscriber::registry()
            .with(stderr_layer(verbose, false, writer).with_filter(level(verbose)));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(guest = "vm01", "graceful shutdown timed out; destroying");
            tracing::info!("connected");
        });
        let bytes = buffer.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    struct Sink(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn warnings_are_shown_by_default_and_info_from_v() {
        let quiet = printed(0);
        assert!(
            quiet.contains("WARN graceful shutdown timed out; destroying guest=\"vm01\""),
            "{quiet}"
        );
        assert!(!quiet.contains("connected"), "{quiet}");
        let verbose = printed(1);
        assert!(verbose.contains("INFO"), "{verbose}");
        assert!(verbose.contains("connected"), "{verbose}");
    }
}
