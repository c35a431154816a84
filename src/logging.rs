//! Log lines on stderr, for people (text) or machines (JSON, one object a
//! line), and with the syslog priority journald reads when stderr is the
//! journal.
//!
//! The subscriber is installed before the configuration is read (so nothing
//! logged early is lost) and `[server] log_format` is known only after, so
//! the format is a process-wide switch read per event.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{Format, Full, Json, Writer};
use tracing_subscriber::fmt::time::SystemTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// `serve --log-format` and `[server] log_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per event for people.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

static FORMAT: AtomicU8 = AtomicU8::new(0);
/// Set when `--log-format` was given: it wins over the configuration.
static FROM_FLAG: AtomicBool = AtomicBool::new(false);

fn store(format: LogFormat) {
    FORMAT.store(format as u8, Ordering::Relaxed);
}

fn current() -> LogFormat {
    if FORMAT.load(Ordering::Relaxed) == LogFormat::Json as u8 {
        LogFormat::Json
    } else {
        LogFormat::Text
    }
}

/// Installs the subscriber on stderr. `flag`: `--log-format`, if given.
pub fn init(flag: Option<LogFormat>) {
    if let Some(f) = flag {
        store(f);
        FROM_FLAG.store(true, Ordering::Relaxed);
    }
    // hickory-proto logs per packet (a WARN per unknown algorithm byte of an
    // EDNS DAU/DHU/N3U option, 275 log bytes per query byte), so a sender
    // could turn queries into disk writes. Only its errors are shown; our
    // own packet-driven lines are rate-limited (`packet_log!`).
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,hickory_proto=error,hickory_net=error"));
    let journal = stderr_is_journal();
    // Colour only for a person at a terminal who did not opt out
    // (https://no-color.org); files and the journal get plain bytes.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = !journal && !no_color && std::io::stderr().is_terminal();
    let lines = Lines {
        text: Format::default(),
        // journald stamps every line itself; the level is written with the
        // priority (the padded one would leave a space in the message).
        journal: Format::default()
            .without_time()
            .with_level(false)
            .with_ansi(false),
        json: Format::default()
            .json()
            .with_current_span(false)
            .with_span_list(false),
        journal_priority: journal,
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .event_format(lines)
        .init();
}

/// `[server] log_format`, once the configuration is read; the flag wins.
pub fn configured(format: LogFormat) {
    if !FROM_FLAG.load(Ordering::Relaxed) {
        store(format);
    }
}

/// Whether stderr is the journal's stream: systemd sets `JOURNAL_STREAM` to
/// its `device:inode`; a child whose stderr was redirected inherits the
/// variable, so the numbers must match (sd_journal_stream_fd(3)).
fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    stderr_dev_ino() == Some((dev, ino))
}

fn stderr_dev_ino() -> Option<(u64, u64)> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

/// The syslog priority journald takes from a `<N>` line prefix
/// (SyslogLevelPrefix=, on by default).
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Formats each event as the switch says.
struct Lines {
    text: Format<Full, SystemTime>,
    journal: Format<Full, ()>,
    json: Format<Json, SystemTime>,
    journal_priority: bool,
}

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let level = event.metadata().level();
        let prefix = priority(level);
        match (current(), self.journal_priority) {
            (LogFormat::Text, false) => self.text.format_event(ctx, writer, event),
            (LogFormat::Json, false) => self.json.format_event(ctx, writer, event),
            // journald strips the prefix, also from JSON lines (which
            // escape their newlines).
            (LogFormat::Json, true) => {
                write!(writer, "<{prefix}>")?;
                self.json.format_event(ctx, writer, event)
            }
            // journald makes each line an entry of its own: a message of
            // several lines (a config warning and its hint) needs the
            // priority on each.
            (LogFormat::Text, true) => {
                let mut text = String::new();
                self.journal
                    .format_event(ctx, Writer::new(&mut text), event)?;
                let mut lines = text.lines();
                if let Some(first) = lines.next() {
                    writeln!(writer, "<{prefix}>{level} {first}")?;
                }
                for line in lines {
                    writeln!(writer, "<{prefix}>{line}")?;
                }
                Ok(())
            }
        }
    }
}
