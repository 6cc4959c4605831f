//! `[telemetry]` of the serve configuration, beside `--otlp-endpoint` and
//! the `OTEL_*` variables (their order: pavilion_telemetry::config).
//!
//! ```toml
//! [telemetry]
//! otlp_endpoint = "http://otel-collector:4318"   # traces over OTLP/HTTP
//! service_name = "pavilion-eu"                    # default "pavilion"
//! ```

use serde::Deserialize;

/// `[telemetry]` as written.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct TelemetryFile {
    otlp_endpoint: Option<String>,
    service_name: Option<String>,
}

/// Where traces may be configured, before the environment is read.
#[derive(Debug, Default, Clone)]
pub struct TelemetryKeys {
    /// `--otlp-endpoint` / `PAVILION_OTLP_ENDPOINT`.
    pub flag: Option<String>,
    /// `[telemetry]`.
    pub file: TelemetryFile,
}

impl TelemetryKeys {
    /// The exporter's settings, `None` when traces are off.
    pub fn resolve(
        &self,
    ) -> Result<Option<pavilion_telemetry::Settings>, pavilion_telemetry::ConfigError> {
        pavilion_telemetry::resolve(
            pavilion_telemetry::Sources {
                flag: self.flag.as_deref(),
                file_endpoint: self.file.otlp_endpoint.as_deref(),
                file_service_name: self.file.service_name.as_deref(),
            },
            |name| std::env::var(name).ok(),
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::config::settings_from_file;

    #[test]
    fn the_telemetry_table_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings_from_file(
            dir.path(),
            "[telemetry]\notlp_endpoint = \"http://collector:4318\"\nservice_name = \"reg-eu\"\n",
        )
        .unwrap();
        let file = &s.telemetry.file;
        assert_eq!(file.otlp_endpoint.as_deref(), Some("http://collector:4318"));
        assert_eq!(file.service_name.as_deref(), Some("reg-eu"));
        assert!(s.telemetry.flag.is_none());
        let e =
            settings_from_file(dir.path(), "[telemetry]\nendpoint = \"http://c\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("unknown field"), "{e:#}");
    }
}
