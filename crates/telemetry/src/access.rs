//! A faster text formatting of the access log line (target
//! [`ACCESS_TARGET`]), written once per request: `tracing-subscriber`'s
//! own text format spent about 27,000 instructions on it (styling that is
//! switched off, a visitor per field, its date code), a quarter of a cached
//! manifest GET (callgrind, bench/observability). This writes the same
//! line, byte for byte (tested against the default format), with plain
//! writes; every other event, and every event when colours are on (a
//! terminal, not a log shipper), goes to the default format unchanged.
//! [`JsonFormat`] does the same for `--log-format json` (the flattened
//! objects `serve` configures), where `serde_json` through
//! `tracing-serde` cost about as much.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{DefaultFields, Format, Full, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent};
use tracing_subscriber::registry::LookupSpan;

/// The target of the per-request access line.
pub const ACCESS_TARGET: &str = "pavilion::access";

/// The text event format `serve` logs with: [`ACCESS_TARGET`]'s lines
/// written directly, the rest by `tracing-subscriber`'s full format.
pub struct TextFormat {
    inner: Format<Full>,
    ansi: bool,
}

impl TextFormat {
    /// With colours when `ansi` (then every line takes the default path).
    pub fn new(ansi: bool) -> TextFormat {
        TextFormat {
            inner: Format::default().with_ansi(ansi),
            ansi,
        }
    }
}

impl<S> FormatEvent<S, DefaultFields> for TextFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, DefaultFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        // The default format names the spans in scope before the target;
        // the access line is written outside any span the log records.
        if self.ansi || meta.target() != ACCESS_TARGET || ctx.lookup_current().is_some() {
            return self.inner.format_event(ctx, writer, event);
        }
        timestamp(&mut writer, SystemTime::now())?;
        // The level right-aligned in five columns, as `{:>5}` would.
        let level = meta.level().as_str();
        writer.write_str(&"      "[..6 - level.len().min(5)])?;
        writer.write_str(level)?;
        writer.write_char(' ')?;
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        let mut fields = Fields {
            out: &mut writer,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writeln!(writer)
    }
}

/// Writes fields as the default format does: the message bare, then
/// `name=value` with strings quoted and escaped (`{:?}`), separated by
/// single spaces.
struct Fields<'a, 'w> {
    out: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn pad(&mut self) -> fmt::Result {
        if std::mem::take(&mut self.first) {
            Ok(())
        } else {
            self.out.write_char(' ')
        }
    }

    fn name(&mut self, field: &Field) -> fmt::Result {
        let name = field.name();
        self.out
            .write_str(name.strip_prefix("r#").unwrap_or(name))?;
        self.out.write_char('=')
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
            return;
        }
        // `{:?}` of a string that needs no escape is the string quoted:
        // written whole rather than a character at a time.
        if plain(value) {
            if self.result.is_err() || field.name().starts_with("log.") {
                return;
            }
            self.result = self.pad().and_then(|_| {
                self.name(field)?;
                self.out.write_char('"')?;
                self.out.write_str(value)?;
                self.out.write_char('"')
            });
            return;
        }
        self.record_debug(field, &value)
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        self.result = self
            .pad()
            .and_then(|_| self.name(field))
            .and_then(|_| self.out.write_str(itoa(value, &mut [0; 20])));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        self.result = self.pad().and_then(|_| {
            if field.name() != "message" {
                self.name(field)?;
            }
            write!(self.out, "{value:?}")
        });
    }
}

/// The JSON event format `serve --log-format json` logs with: one flat
/// object per line (`timestamp`, `level`, the event's fields, `target`),
/// [`ACCESS_TARGET`]'s written directly, the rest by `tracing-subscriber`.
pub struct JsonFormat {
    inner: Format<Json>,
}

impl JsonFormat {
    /// Flattened, without span lists (the access line carries its ids).
    pub fn new() -> JsonFormat {
        JsonFormat {
            inner: Format::default()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false),
        }
    }
}

impl Default for JsonFormat {
    fn default() -> Self {
        JsonFormat::new()
    }
}

impl<S> FormatEvent<S, JsonFields> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if meta.target() != ACCESS_TARGET {
            return self.inner.format_event(ctx, writer, event);
        }
        writer.write_str("{\"timestamp\":\"")?;
        timestamp(&mut writer, SystemTime::now())?;
        writer.write_str("\",\"level\":\"")?;
        writer.write_str(meta.level().as_str())?;
        writer.write_char('"')?;
        let mut fields = JsonEntries {
            out: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        json_str(&mut writer, meta.target())?;
        writer.write_str("}\n")
    }
}

/// Writes fields as `tracing-serde` does: `,"name":value`, strings and
/// `{:?}` values as JSON strings, numbers and booleans bare.
struct JsonEntries<'a, 'w> {
    out: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl JsonEntries<'_, '_> {
    fn entry(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            self.out.write_char(',')?;
            json_str(self.out, field.name())?;
            self.out.write_char(':')?;
            value(self.out)
        })();
    }
}

impl Visit for JsonEntries<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, |w| json_str(w, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, |w| w.write_str(itoa(value, &mut [0; 20])));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.entry(field, |w| {
            w.write_str(&serde_json::to_string(&value).map_err(|_| fmt::Error)?)
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, |w| json_str(w, &format!("{value:?}")));
    }
}

/// `s` as a JSON string: written as it is when nothing in it needs an
/// escape, else by `serde_json`.
fn json_str(out: &mut Writer<'_>, s: &str) -> fmt::Result {
    if plain(s) {
        out.write_char('"')?;
        out.write_str(s)?;
        return out.write_char('"');
    }
    out.write_str(&serde_json::to_string(s).map_err(|_| fmt::Error)?)
}

/// Whether `s` is printable ASCII without a quote or a backslash: then
/// both `{:?}` and JSON write it between quotes as it is.
fn plain(s: &str) -> bool {
    s.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

/// `n` in decimal, in `buf`.
fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

/// `t` as RFC 3339 in UTC with microseconds (`2026-12-07T09:14:17.245681Z`),
/// the default format's timestamp, written digit by digit (`write!` with
/// seven padded numbers cost more than the rest of the line).
fn timestamp(out: &mut impl fmt::Write, t: SystemTime) -> fmt::Result {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = crate::time::civil(days as i64);
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut n: u64| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, y.clamp(0, 9999) as u64);
    put(5, 2, u64::from(m));
    put(8, 2, u64::from(day));
    put(11, 2, rem / 3600);
    put(14, 2, rem / 60 % 60);
    put(17, 2, rem % 60);
    put(20, 6, u64::from(d.subsec_micros()));
    // Only ASCII digits were written into an ASCII template.
    out.write_str(std::str::from_utf8(&b).unwrap_or("0000-00-00T00:00:00.000000Z"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    /// The lines `emit` logs, in text or JSON, with our format or the
    /// default one, without their timestamps.
    fn lines(fast: bool, json: bool, emit: impl Fn()) -> Vec<String> {
        let buf = Buf::default();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(buf.clone())
            .with_ansi(false);
        match (json, fast) {
            (false, true) => tracing::subscriber::with_default(
                tracing_subscriber::registry().with(layer.event_format(TextFormat::new(false))),
                &emit,
            ),
            (false, false) => {
                tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), &emit)
            }
            (true, true) => tracing::subscriber::with_default(
                tracing_subscriber::registry().with(layer.json().event_format(JsonFormat::new())),
                &emit,
            ),
            (true, false) => tracing::subscriber::with_default(
                tracing_subscriber::registry().with(
                    layer
                        .json()
                        .flatten_event(true)
                        .with_current_span(false)
                        .with_span_list(false),
                ),
                &emit,
            ),
        }
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| match l.split_once("\",\"level\"") {
                Some((_, rest)) => rest.to_string(),
                None => l.split_once(' ').unwrap().1.to_string(),
            })
            .collect()
    }

    /// Access lines and others, with what needs escaping.
    fn emit() {
        let span_id: Option<&str> = None;
        tracing::info!(
            target: "pavilion::access",
            request_id = %"0af7651916cd43dd8448eb211c80319c",
            method = "GET",
            route = "/v2/{name}/manifests/{reference}",
            status = 200u16,
            bytes_in = 0u64,
            bytes_out = 1234567u64,
            duration_ms = 3u64,
            identity = "alice \"the\" admin\n\u{1b}[31m \u{7f} é",
            trace_id = "-",
            span_id = span_id,
            "request"
        );
        tracing::info!(
            target: "pavilion::access",
            request_id = %"r2",
            status = 0u64,
            span_id = Some("00f067aa0ba902b7"),
            big = u64::MAX,
            neg = -3i64,
            ratio = 0.5f64,
            ok = true,
            r#type = "x",
            "request"
        );
        tracing::warn!(target: "pavilion::other", n = 1u64, "not the access line");
        tracing::warn!(target: "pavilion::access", n = 2u64, "warned");
        tracing::error!(target: "pavilion::access", n = 3u64, "failed");
        let _s = tracing::info_span!("in a span").entered();
        tracing::info!(target: "pavilion::access", status = 1u64, "request");
    }

    #[test]
    fn the_access_line_is_the_default_formats_line() {
        let ours = lines(true, false, emit);
        assert_eq!(ours, lines(false, false, emit));
        assert_eq!(ours.len(), 6);
        assert!(ours[0].starts_with(" INFO pavilion::access: request request_id=0af7"));
        assert!(ours[0].contains(r#"identity="alice \"the\" admin\n\u{1b}[31m \u{7f} é""#));
    }

    #[test]
    fn the_json_access_line_is_the_default_formats_line() {
        let ours = lines(true, true, emit);
        assert_eq!(ours, lines(false, true, emit));
        assert_eq!(ours.len(), 6);
        assert!(
            ours[0].starts_with(r#":"INFO","message":"request","request_id":"0af7"#),
            "{}",
            ours[0]
        );
        for l in &ours {
            let whole = format!("{{\"timestamp\":\"x\",\"level\"{l}");
            assert!(
                serde_json::from_str::<serde_json::Value>(&whole).is_ok(),
                "{whole}"
            );
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let mut s = String::new();
        let t = UNIX_EPOCH + Duration::new(1_796_634_857, 245_681_999);
        timestamp(&mut s, t).unwrap();
        assert_eq!(s, "2026-12-07T09:14:17.245681Z");
        for (secs, want) in [
            (0u64, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, "2000-02-29T00:00:00.000000Z"),
            (4_107_542_399, "2100-02-28T23:59:59.000000Z"),
        ] {
            let mut s = String::new();
            timestamp(&mut s, UNIX_EPOCH + Duration::from_secs(secs)).unwrap();
            assert_eq!(s, want);
        }
    }
}
