//! Where traces go and under which service name, from the places an
//! OpenTelemetry user looks: `serve --otlp-endpoint` (or
//! `PAVILION_OTLP_ENDPOINT`), the standard `OTEL_*` variables, then the
//! `[telemetry]` table of the configuration file. Nothing configured:
//! traces are off.

use crate::export::Batching;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Url;
use std::time::Duration;

/// The default `service.name`.
pub const DEFAULT_SERVICE_NAME: &str = "pavilion";

/// A configuration that cannot be used; serve does not start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An endpoint that is not an http(s) URL.
    #[error(
        "{source_name} {value:?} is not an OTLP/HTTP endpoint: {why} (e.g. http://localhost:4318)"
    )]
    Endpoint {
        /// Where it came from.
        source_name: &'static str,
        /// What it said.
        value: String,
        /// What is wrong with it.
        why: String,
    },
    /// A variable that is not what it should be.
    #[error("{name}: {why}")]
    Variable {
        /// The variable.
        name: &'static str,
        /// What is wrong with it.
        why: String,
    },
}

/// Checked settings for the exporter.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The full URL spans are posted to (`.../v1/traces`).
    pub endpoint: Url,
    /// `service.name` of the resource.
    pub service_name: String,
    /// Extra request headers (a collector's API key).
    pub headers: HeaderMap,
    /// Queue and batch sizes.
    pub batching: Batching,
    /// `OTEL_TRACES_SAMPLER` (and its `_ARG`): follow a caller's sampled
    /// flag, and which share of the rest to record.
    pub sampler: Sampler,
}

/// Which traces are recorded, as `OTEL_TRACES_SAMPLER` says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    /// `parentbased_*`: a caller's sampled flag decides when there is one.
    pub parent_based: bool,
    /// The share of the other traces recorded, 0 to 1.
    pub ratio: f64,
}

/// Parses `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` (the
/// specification's names; default `parentbased_always_on`). A sampler the
/// server does not know stops the start: silently recording everything, or
/// nothing, is not what was asked.
fn sampler(name: Option<String>, arg: Option<String>) -> Result<Sampler, ConfigError> {
    let ratio = || -> Result<f64, ConfigError> {
        match &arg {
            None => Ok(1.0),
            Some(a) => match a.trim().parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(ConfigError::Variable {
                    name: "OTEL_TRACES_SAMPLER_ARG",
                    why: format!("{a:?} is not a ratio between 0 and 1"),
                }),
            },
        }
    };
    let name = name.map(|n| n.trim().to_string());
    let (parent_based, ratio) = match name.as_deref().unwrap_or("parentbased_always_on") {
        "always_on" => (false, 1.0),
        "always_off" => (false, 0.0),
        "traceidratio" => (false, ratio()?),
        "parentbased_always_on" => (true, 1.0),
        "parentbased_always_off" => (true, 0.0),
        "parentbased_traceidratio" => (true, ratio()?),
        other => {
            return Err(ConfigError::Variable {
                name: "OTEL_TRACES_SAMPLER",
                why: format!(
                    "{other:?} is not a sampler this server knows (always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio)"
                ),
            })
        }
    };
    Ok(Sampler {
        parent_based,
        ratio,
    })
}

/// The places that are not environment variables.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sources<'a> {
    /// `--otlp-endpoint` / `PAVILION_OTLP_ENDPOINT`.
    pub flag: Option<&'a str>,
    /// `[telemetry] otlp_endpoint`.
    pub file_endpoint: Option<&'a str>,
    /// `[telemetry] service_name`.
    pub file_service_name: Option<&'a str>,
}

/// How an endpoint is turned into the traces URL.
#[derive(Clone, Copy)]
enum Path {
    /// As given (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`).
    AsGiven,
    /// `v1/traces` under its path (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    Append,
    /// `/v1/traces` when it has no path, else as given (the flag and the
    /// file: `http://collector:4318` and a full URL both do what was meant).
    AppendToRoot,
}

/// The settings, or `None` when traces are off. `env` reads a variable
/// (an empty one counts as unset, as the OpenTelemetry specification says).
pub fn resolve(
    src: Sources<'_>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Settings>, ConfigError> {
    let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    if env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none") {
        return Ok(None);
    }
    let traces = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    let generic = env("OTEL_EXPORTER_OTLP_ENDPOINT");
    let chosen = if let Some(v) = src.flag {
        Some(("--otlp-endpoint", v.to_string(), Path::AppendToRoot))
    } else if let Some(v) = traces {
        Some(("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", v, Path::AsGiven))
    } else if let Some(v) = generic {
        Some(("OTEL_EXPORTER_OTLP_ENDPOINT", v, Path::Append))
    } else {
        src.file_endpoint.map(|v| {
            (
                "[telemetry] otlp_endpoint",
                v.to_string(),
                Path::AppendToRoot,
            )
        })
    };
    let Some((source_name, value, path)) = chosen else {
        return Ok(None);
    };
    let endpoint = endpoint(source_name, value.trim(), path)?;
    let service_name = env("OTEL_SERVICE_NAME")
        .or(src.file_service_name.map(str::to_string))
        .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string());
    let headers = match env("OTEL_EXPORTER_OTLP_TRACES_HEADERS") {
        Some(h) => headers("OTEL_EXPORTER_OTLP_TRACES_HEADERS", &h)?,
        None => match env("OTEL_EXPORTER_OTLP_HEADERS") {
            Some(h) => headers("OTEL_EXPORTER_OTLP_HEADERS", &h)?,
            None => HeaderMap::new(),
        },
    };
    let d = Batching::default();
    let number = |name: &'static str, default: usize| match env(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map_err(|_| ConfigError::Variable {
                name,
                why: format!("{v:?} is not a whole number"),
            }),
    };
    let max_queue = number("OTEL_BSP_MAX_QUEUE_SIZE", d.max_queue)?.max(1);
    let batching = Batching {
        max_queue,
        // A batch no larger than the queue (as the specification says):
        // the exporter holds one batch besides the queue, so at most twice
        // the queue's spans wait in memory.
        max_batch: number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", d.max_batch)?.clamp(1, max_queue),
        delay: Duration::from_millis(
            number("OTEL_BSP_SCHEDULE_DELAY", d.delay.as_millis() as usize)?.max(1) as u64,
        ),
    };
    let sampler = sampler(env("OTEL_TRACES_SAMPLER"), env("OTEL_TRACES_SAMPLER_ARG"))?;
    Ok(Some(Settings {
        endpoint,
        service_name,
        headers,
        batching,
        sampler,
    }))
}

/// A checked endpoint URL.
fn endpoint(source_name: &'static str, value: &str, path: Path) -> Result<Url, ConfigError> {
    let bad = |why: &str| ConfigError::Endpoint {
        source_name,
        value: value.to_string(),
        why: why.to_string(),
    };
    let mut url = Url::parse(value).map_err(|e| {
        if value.contains("://") {
            bad(&e.to_string())
        } else {
            bad("it needs a scheme, http:// or https://")
        }
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(bad("OTLP/HTTP takes http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it names no host"));
    }
    let append = match path {
        Path::AsGiven => false,
        Path::Append => true,
        Path::AppendToRoot => url.path() == "/" || url.path().is_empty(),
    };
    if append {
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}/v1/traces"));
    }
    Ok(url)
}

/// `key=value,key=value`, values percent-decoded (the specification's
/// format for `OTEL_EXPORTER_OTLP_HEADERS`). Values are never echoed in
/// errors: they are usually credentials.
fn headers(name: &'static str, text: &str) -> Result<HeaderMap, ConfigError> {
    let mut map = HeaderMap::new();
    for pair in text.split(',').filter(|p| !p.trim().is_empty()) {
        let bad = |why: &str| ConfigError::Variable {
            name,
            why: why.to_string(),
        };
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| bad("expected key=value pairs separated by commas"))?;
        let key = HeaderName::from_bytes(k.trim().as_bytes())
            .map_err(|_| bad(&format!("{:?} is not a header name", k.trim())))?;
        let value = HeaderValue::from_bytes(&percent_decode(v.trim()))
            .map_err(|_| bad(&format!("the value of {key} is not a header value")))?;
        map.append(key, value);
    }
    Ok(map)
}

/// `%XX` escapes decoded; anything else kept as it is.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)], src: Sources<'_>) -> Result<Option<Settings>, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        resolve(src, move |k| vars.get(k).cloned())
    }

    fn url(vars: &[(&str, &str)], src: Sources<'_>) -> String {
        with(vars, src).unwrap().unwrap().endpoint.to_string()
    }

    #[test]
    fn nothing_configured_is_off() {
        assert!(with(&[], Sources::default()).unwrap().is_none());
        assert!(
            with(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")], Sources::default())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_generic_variable_gets_v1_traces_and_the_traces_one_is_taken_as_is() {
        let none = Sources::default();
        let g = |v| url(&[("OTEL_EXPORTER_OTLP_ENDPOINT", v)], none);
        assert_eq!(g("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(g("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(g("https://c/otlp/"), "https://c/otlp/v1/traces");
        let t = url(
            &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/x")],
            none,
        );
        assert_eq!(t, "http://c:4318/x");
        let both = url(
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:1"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://traces:2/v1/traces",
                ),
            ],
            none,
        );
        assert_eq!(both, "http://traces:2/v1/traces");
    }

    #[test]
    fn the_flag_wins_and_gets_v1_traces_only_without_a_path() {
        let flag = |v| Sources {
            flag: Some(v),
            file_endpoint: Some("http://file:1"),
            ..Default::default()
        };
        let env = [(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://env:2/v1/traces",
        )];
        assert_eq!(url(&env, flag("http://flag:3")), "http://flag:3/v1/traces");
        assert_eq!(
            url(&env, flag("http://flag:3/custom")),
            "http://flag:3/custom"
        );
        let file = Sources {
            file_endpoint: Some("http://file:1"),
            ..Default::default()
        };
        assert_eq!(url(&env, file), "http://env:2/v1/traces");
        assert_eq!(url(&[], file), "http://file:1/v1/traces");
    }

    #[test]
    fn service_name_comes_from_the_variable_then_the_file() {
        let src = Sources {
            flag: Some("http://c:4318"),
            file_service_name: Some("from-file"),
            ..Default::default()
        };
        let name = |vars: &[(&str, &str)], src| with(vars, src).unwrap().unwrap().service_name;
        assert_eq!(name(&[("OTEL_SERVICE_NAME", "reg-eu")], src), "reg-eu");
        assert_eq!(name(&[], src), "from-file");
        let bare = Sources {
            flag: Some("http://c:4318"),
            ..Default::default()
        };
        assert_eq!(name(&[], bare), "pavilion");
    }

    #[test]
    fn disabled_sdk_and_exporter_none_turn_traces_off() {
        let src = Sources {
            flag: Some("http://c:4318"),
            ..Default::default()
        };
        assert!(with(&[("OTEL_SDK_DISABLED", "true")], src)
            .unwrap()
            .is_none());
        assert!(with(&[("OTEL_TRACES_EXPORTER", "none")], src)
            .unwrap()
            .is_none());
        assert!(with(&[("OTEL_SDK_DISABLED", "false")], src)
            .unwrap()
            .is_some());
    }

    #[test]
    fn bad_endpoints_say_where_they_came_from_and_what_is_wrong() {
        let flag = |v| Sources {
            flag: Some(v),
            ..Default::default()
        };
        for (v, why) in [
            ("localhost:4318", "http://"),
            ("collector", "needs a scheme"),
            ("ftp://c/", "http:// or https://"),
            ("http://", "empty host"),
        ] {
            let e = with(&[], flag(v)).unwrap_err().to_string();
            assert!(e.starts_with("--otlp-endpoint"), "{e}");
            assert!(e.contains(why), "{v}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn headers_are_pairs_with_percent_decoded_values() {
        let src = Sources {
            flag: Some("http://c:4318"),
            ..Default::default()
        };
        let s = with(
            &[("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b, x-team = ml")],
            src,
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.headers["api-key"], "a b");
        assert_eq!(s.batching.max_batch, 512);
        let small = with(&[("OTEL_BSP_MAX_QUEUE_SIZE", "16")], src)
            .unwrap()
            .unwrap();
        assert_eq!(
            (small.batching.max_queue, small.batching.max_batch),
            (16, 16)
        );
        assert_eq!(s.headers["x-team"], "ml");
        let e = with(&[("OTEL_EXPORTER_OTLP_HEADERS", "secret-value")], src).unwrap_err();
        assert!(!e.to_string().contains("secret-value"), "{e}");
    }

    #[test]
    fn samplers_are_the_specifications_names_and_unknown_ones_stop_the_start() {
        let src = Sources {
            flag: Some("http://127.0.0.1:4318"),
            ..Default::default()
        };
        let of = |vars: &[(&str, &str)]| with(vars, src).map(|s| s.unwrap().sampler);
        assert_eq!(
            of(&[]).unwrap(),
            Sampler {
                parent_based: true,
                ratio: 1.0
            }
        );
        assert_eq!(
            of(&[
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.01")
            ])
            .unwrap(),
            Sampler {
                parent_based: true,
                ratio: 0.01
            }
        );
        assert_eq!(
            of(&[("OTEL_TRACES_SAMPLER", "always_off")]).unwrap().ratio,
            0.0
        );
        for bad in [
            &[("OTEL_TRACES_SAMPLER", "jaeger_remote")][..],
            &[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
            ][..],
        ] {
            let e = of(bad).unwrap_err().to_string();
            assert!(e.starts_with("OTEL_TRACES_SAMPLER"), "{e}");
        }
    }
}
