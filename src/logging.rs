//! Log output (docs/deployment.md "Health, metrics, logs"): `tracing` to stderr, one line per event, as text or as JSON lines.
//!
//! The JSON form has its own formatter because the spec fixes the key names
//! (`{"ts":…,"level":…,"target":…,"msg":…, fields…}`), which tracing-subscriber's JSON layer spells
//! differently.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, ServeArgs};

/// Installs the global subscriber for `--log-level` and `--log-format`.
pub fn init(args: &ServeArgs) -> Result<(), String> {
    let filter = EnvFilter::try_new(&args.log_level).map_err(|e| format!("--log-level {:?}: {e}", args.log_level))?;
    // Colours only for a terminal: redirected logs stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.event_format(JsonLines).init(),
    }
    Ok(())
}

/// One JSON object per event: `ts`, `level`, `target`, `msg`, then the event's fields in order.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        writeln!(writer, "{}", Value::Object(event_object(event)))
    }
}

/// The JSON object for one event.
fn event_object(event: &Event<'_>) -> Map<String, Value> {
    let mut ts = String::new();
    let _ = SystemTime.format_time(&mut Writer::new(&mut ts));
    let meta = event.metadata();
    let mut obj = Map::new();
    obj.insert("ts".into(), ts.into());
    obj.insert("level".into(), meta.level().as_str().into());
    obj.insert("target".into(), meta.target().into());
    // Placed now so it comes before the fields; the visitor fills it in.
    obj.insert("msg".into(), "".into());
    event.record(&mut Fields(&mut obj));
    obj
}

/// Collects an event's fields; `message` becomes `msg`.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let key = if field.name() == "message" { "msg" } else { field.name() };
        self.0.insert(key.to_string(), value);
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn json_lines_use_the_spec_keys_in_order() {
        let out = Buffer::default();
        let subscriber = tracing_subscriber::fmt().with_writer(out.clone()).event_format(JsonLines).finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "ui_gateway::session", internal = "5d41", vended = %7, peer = "127.0.0.1:1", "session created");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let line: Map<String, Value> = serde_json::from_str(text.trim()).unwrap();
        let keys: Vec<&str> = line.keys().map(String::as_str).collect();
        assert_eq!(keys, ["ts", "level", "target", "msg", "internal", "vended", "peer"]);
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["target"], "ui_gateway::session");
        assert_eq!(line["msg"], "session created");
        assert_eq!(line["vended"], "7");
        let ts = line["ts"].as_str().unwrap();
        assert!(ts.len() >= 20 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
    }
}
