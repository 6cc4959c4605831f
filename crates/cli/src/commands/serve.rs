//! `pavilion serve`.

use crate::config::ServeArgs;
use crate::exit::{CmdResult, Context, ExitStatus, Failure, UsageError};
use pavilion_enforce::{
    Admission, AdmissionConfig, AllowedRegistries, CallerAuth, PolicySet, PushPolicy,
    SignatureReview,
};
use pavilion_registry::Extensions;
use std::sync::Arc;

/// Runs the registry until SIGTERM or Ctrl-C.
pub fn run(args: ServeArgs) -> CmdResult {
    // regorus makes and drops an error for many ordinary evaluation steps;
    // with RUST_BACKTRACE=1 each captured a backtrace, halving admission
    // throughput (bench/policy). Panics still get theirs (RUST_BACKTRACE);
    // errors do not, unless RUST_LIB_BACKTRACE says otherwise. Set here,
    // before any thread exists.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    // The settings' checks are plain messages: a bad key is exit 1.
    let mut settings = args.settings().map_err(Failure::other)?;
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log)
        .map_err(Failure::other)
        .context("invalid log filter")?
        // The spans marked for export are the exporter's alone: with
        // `--log trace` they would otherwise be made (and their ids drawn
        // and logged) with no exporter to take them.
        .add_directive(
            "pavilion::otel=off"
                .parse()
                .map_err(Failure::other)
                .context("the log filter's telemetry directive")?,
        );
    // A bad endpoint is a usage error, named with where it came from.
    let traces = settings
        .telemetry
        .resolve()
        .map_err(|e| UsageError(e.to_string()))?;
    if let Some(t) = &traces {
        settings.server.trace_sampler = pavilion_registry::metrics::trace::TraceSampler {
            parent_based: t.sampler.parent_based,
            ratio: t.sampler.ratio,
        };
    }
    let (otlp, exporter) = match &traces {
        Some(t) => {
            let (layer, exporter) = pavilion_telemetry::pipeline(t)
                .map_err(Failure::other)
                .context("setting up the OTLP exporter")?;
            settings.server.trace_spans = Some(exporter.counts());
            (Some(layer), Some(exporter))
        }
        None => (None, None),
    };
    // Each layer has its own filter: the log's does not decide which
    // spans are exported, and without an endpoint no subscriber wants the
    // spans marked for export, so they are never made.
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let log: Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync> = match settings.log_format
    {
        // The access line (one per request) is written by our own
        // formatter, the same text at a fraction of the cost.
        crate::config::LogFormat::Text => {
            let ansi = crate::output::colour_on_stderr();
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(ansi)
                .event_format(pavilion_telemetry::access::TextFormat::new(ansi))
                .boxed()
        }
        // Flat objects, one per line: what log shippers parse without
        // configuration. Span lists are left out (the access line carries
        // its own ids).
        crate::config::LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .event_format(pavilion_telemetry::access::JsonFormat::new())
            .with_writer(std::io::stderr)
            .boxed(),
    };
    // The exporter's layer is added only when there is one: an absent
    // layer (`Option::None`) counts as one that wants every call site,
    // and would make every request's span without anything to take it.
    let mut layers = vec![log.with_filter(filter).boxed()];
    if let Some(l) = otlp {
        layers.push(l.with_filter(pavilion_telemetry::targets()).boxed());
    }
    tracing_subscriber::registry().with(layers).init();
    if let Some(t) = &traces {
        tracing::info!(endpoint = %t.endpoint, service = %t.service_name, "exporting traces over OTLP/HTTP");
    }
    // Policies are loaded (and checked) before the port opens: a typo in a
    // rule stops the start with the file and line, not the first push.
    // The authorization rules (package pavilion.authz) come with the
    // others, or are the default when the directory has none.
    let authz_default = [(
        pavilion_policy::Point::Authz,
        pavilion_policy::DEFAULT_AUTHZ,
    )];
    let policies = match &settings.policy {
        Some(dir) => Some(Arc::new(
            PolicySet::load_with_defaults(Some(dir), &authz_default)
                .map_err(|e| UsageError(e.to_string()))?,
        )),
        None => None,
    };
    // The names trust policy scopes are chosen by: configured, else the
    // address as bound (known only once listening: port 0 picks one).
    let names = Arc::new(std::sync::OnceLock::new());
    if !settings.names.is_empty() {
        let _ = names.set(settings.names.clone());
    }
    let gate = policies.as_ref().map(|p| {
        Arc::new(PushPolicy::new(
            p.clone(),
            settings.trust.clone(),
            names.clone(),
        )) as Arc<dyn pavilion_registry::Gate>
    });
    // Admission resolves images, with the server user's docker credentials
    // as `pavilion pull` would, only in the registries allowed (by default
    // this registry's names), within the deadline. The connect timeout
    // leaves a dead host time to fail on its own; the read timeout is a
    // backstop behind the deadline, which answers first.
    let adm = &settings.admission;
    let registries = AllowedRegistries::new(adm.registries.clone(), names.clone());
    // Requests, redirects and token realms stay within the same registries:
    // an allowed registry cannot send the server (and its credentials) on.
    let hosts = registries.clone();
    let client = pavilion_client::Client::new(pavilion_client::ClientOptions {
        connect_timeout: Some(adm.timeout.min(std::time::Duration::from_secs(2))),
        read_timeout: Some(adm.timeout + std::time::Duration::from_secs(1)),
        allowed_hosts: Some(pavilion_client::HostAllowList(Arc::new(move || {
            hosts.list().to_vec()
        }))),
        // TLS as the server user's certs.d says (a private registry's CA).
        ..crate::remote::client_options(false, false, &crate::remote::TlsArgs::default())?
    })
    .context("creating the admission registry client")?;
    let auth = if adm.unauthenticated {
        tracing::warn!(
            "admission and Gatekeeper endpoints accept callers without credentials \
             (admission_unauthenticated): limit who reaches this port"
        );
        CallerAuth::unauthenticated()
    } else {
        CallerAuth::new(adm.token.as_deref(), adm.client_names.clone())
    };
    if !auth.configured() {
        tracing::warn!(
            "admission and Gatekeeper endpoints refuse every call: \
             no admission_token, admission_token_file or admission_client_ca configured"
        );
    }
    let admission = AdmissionConfig {
        client,
        trust: settings.trust.clone(),
        policies: policies.clone(),
        cache_ttl: settings.verification_cache,
        registries,
        auth,
        timeout: adm.timeout,
    };
    // Credentials, keys and rules are read before the port opens: a server
    // that cannot check them does not start.
    let access = if settings.auth.enabled {
        let authz = match &policies {
            Some(p) => p.clone(),
            None => Arc::new(
                PolicySet::load_with_defaults(None, &authz_default)
                    .map_err(|e| UsageError(e.to_string()))?,
            ),
        };
        let scheme = if settings.server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let realm = settings
            .names
            .first()
            .map(|n| format!("{scheme}://{n}/token"));
        Some(super::serve_access::access(&settings.auth, authz, realm)?)
    } else {
        None
    };
    // Always: the signature report decodes envelopes even without a trust
    // policy, and judges them under the one the gate uses when given.
    let signatures = Arc::new(SignatureReview::new(settings.trust.clone(), names.clone()))
        as Arc<dyn pavilion_registry::SignatureInspector>;
    let ext = Extensions {
        gate,
        signatures: Some(signatures),
        access: access.clone(),
        routes: Some(Box::new(move |state| Admission::router(admission, state))),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        if let Some(w) = access.as_ref().and_then(|a| a.workload.clone()) {
            tokio::spawn(super::serve_access::refresh_workload_keys(w));
        }
        // The exporter runs until serve ends, then sends what is queued.
        let (stop_exporter, stopped) = tokio::sync::oneshot::channel::<()>();
        let exporting = exporter.map(|e| {
            tokio::spawn(e.run(async move {
                let _ = stopped.await;
            }))
        });
        let cfg = settings.server;
        let data = cfg.data_dir.clone();
        let json_log = settings.log_format == crate::config::LogFormat::Json;
        let scheme = if cfg.tls.is_some() { "https" } else { "http" };
        let served = pavilion_registry::serve(cfg, ext, shutdown_signal(), |addr| {
            if names.set(vec![addr.to_string()]).is_ok() && addr.ip().is_unspecified() {
                tracing::warn!(
                    %addr,
                    "no --name given and the listen address is unspecified: trust policy \
                     scopes and admission lookups will name {addr}, which no client writes; \
                     set --name to the names clients use"
                );
            }
            // Tests and scripts wait for this line to learn the bound port
            // (with JSON logs, in the message of a JSON line like the rest).
            let line = format!(
                "pavilion listening on {scheme}://{addr} (data in {})",
                data.display()
            );
            if json_log {
                eprintln!(
                    "{}",
                    serde_json::json!({"level": "INFO", "target": "pavilion", "message": line})
                );
            } else {
                eprintln!("{line}");
            }
            tracing::info!(%addr, "listening");
        })
        .await
        .map_err(explain);
        if let Some(task) = exporting {
            let _ = stop_exporter.send(());
            // A collector that does not answer does not hold the exit up
            // for long; what it did not take is lost.
            if tokio::time::timeout(std::time::Duration::from_secs(3), task)
                .await
                .is_err()
            {
                tracing::warn!("the last traces were not exported within 3 s");
            }
        }
        served
    })?;
    Ok(ExitStatus::Success)
}

/// A newcomer's most likely failure, the port taken (often by a registry
/// started earlier), named with its way out; anything else as it is.
fn explain(e: pavilion_registry::ServeError) -> Failure {
    Failure::other(match e {
        pavilion_registry::ServeError::Bind { addr, source }
            if source.kind() == std::io::ErrorKind::AddrInUse =>
        {
            anyhow::anyhow!(
                "{addr} is already in use (another pavilion serve or registry?): \
                 stop it, or listen elsewhere with --addr, e.g. --addr 127.0.0.1:{}",
                addr.port().wrapping_add(1).max(1)
            )
        }
        other => anyhow::Error::new(other).context("registry failed"),
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
