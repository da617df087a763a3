//! Logging setup and the process's stop signal.

/// The environment variable that picks the log format ([`LogFormat`]). Read here, before the
/// configuration, because logging starts first.
pub const LOG_FORMAT_VAR: &str = "LOG_FORMAT";

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line (`timestamp`, `level`, `message`, the event's other fields,
    /// `span` (the current one) and `spans` (all, outermost first) with their fields such as
    /// `request_id` and `payment_id`), for log collectors.
    Json,
}

/// `LOG_FORMAT` is neither `text` nor `json`. `Display` is the one line the user sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("LOG_FORMAT={value:?} is not a log format: set LOG_FORMAT to text (the default) or json")]
pub struct LogFormatError {
    value: String,
}

impl LogFormat {
    /// The format `LOG_FORMAT` names (unset or empty: text).
    pub fn from_env() -> Result<LogFormat, LogFormatError> {
        LogFormat::parse(std::env::var(LOG_FORMAT_VAR).ok().as_deref())
    }

    /// Parse a `LOG_FORMAT` value (case-insensitive; `None` or empty: text).
    pub fn parse(value: Option<&str>) -> Result<LogFormat, LogFormatError> {
        match value.map(str::trim) {
            None | Some("") => Ok(LogFormat::Text),
            Some(v) if v.eq_ignore_ascii_case("text") => Ok(LogFormat::Text),
            Some(v) if v.eq_ignore_ascii_case("json") => Ok(LogFormat::Json),
            Some(v) => Err(LogFormatError {
                value: v.chars().take(40).collect(),
            }),
        }
    }
}

/// Install the global tracing subscriber: `RUST_LOG` filters (default `info`), logs go to
/// stderr so that stdout stays for what the user asked for (the walk-through, bench tables),
/// in `format`. Requests are logged by path only; headers and bodies (which carry access
/// tokens) never are.
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C), as pi-sim's [`pi_sim::signal::stop_signal`] does
/// (one implementation for both binaries), and logs that the service is stopping.
pub async fn stop_signal() {
    pi_sim::signal::stop_signal().await;
    tracing::info!("stop signal received: shutting down gracefully");
}

#[cfg(test)]
mod tests {
    use crate::telemetry::*;

    #[test]
    fn log_formats_parse() {
        assert_eq!(LogFormat::parse(None), Ok(LogFormat::Text));
        assert_eq!(LogFormat::parse(Some("")), Ok(LogFormat::Text));
        assert_eq!(LogFormat::parse(Some("JSON")), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse(Some(" text ")), Ok(LogFormat::Text));
        let err = LogFormat::parse(Some("yaml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "LOG_FORMAT=\"yaml\" is not a log format: set LOG_FORMAT to text (the default) or json"
        );
    }
}
