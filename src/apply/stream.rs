//! The machine-readable stream of `berth apply --json`: one JSON object per line, in the manner
//! of Terraform's machine-readable UI. Every message has `@level`, `@message` (the line a human
//! would read) and `@timestamp` (RFC 3339, UTC), plus its `event` and that event's fields. The
//! first message is `{"event": "version", "format_version": "1.0", …}`: a reader checks the major
//! version before reading on. schemas/apply-events.schema.json is generated from these types.

use serde::Serialize;

use super::events::Event;

/// Version of the stream's format: the major changes when a field is removed or changes
/// meaning, the minor when one is added.
pub const FORMAT_VERSION: &str = "1.0";

/// Where the committed schema of one stream message lives, relative to the repository root.
pub const APPLY_EVENTS_SCHEMA_PATH: &str = "schemas/apply-events.schema.json";

/// How much a message matters (Terraform's `@level` words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// One line of the stream.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct StreamMessage {
    #[serde(rename = "@level")]
    pub level: Level,
    /// The event in words, as the text output shows it.
    #[serde(rename = "@message")]
    pub message: String,
    /// When the message was written: RFC 3339, UTC, milliseconds.
    #[serde(rename = "@timestamp")]
    #[schemars(regex(
        pattern = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
    ))]
    pub timestamp: String,
    #[serde(flatten)]
    pub event: Event,
}

impl StreamMessage {
    /// A message stamped now.
    pub fn now(level: Level, message: String, event: Event) -> StreamMessage {
        StreamMessage {
            level,
            message,
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            event,
        }
    }

    /// The stream's first message.
    pub fn version() -> StreamMessage {
        let berth = env!("CARGO_PKG_VERSION").to_string();
        StreamMessage::now(
            Level::Info,
            format!("berth {berth}: apply events, format {FORMAT_VERSION}"),
            Event::Version {
                format_version: FORMAT_VERSION.to_string(),
                berth,
            },
        )
    }

    /// The message as one line of JSON (no trailing newline).
    pub fn to_json_line(&self) -> String {
        // Strings, numbers and options only: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The JSON Schema of one stream message as pretty JSON text, ending with a newline (the
/// committed file's exact contents).
pub fn apply_events_json_schema() -> String {
    crate::plan::schema::json_schema_text::<StreamMessage>()
}
