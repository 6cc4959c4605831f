//! `pavilion serve`.

use crate::config::ServeArgs;
use anyhow::{Context, Result};
use pavilion_enforce::{Admission, AdmissionConfig, PolicySet, PushPolicy};
use pavilion_registry::Extensions;
use std::sync::Arc;

/// Runs the registry until SIGTERM or Ctrl-C.
pub fn run(args: ServeArgs) -> Result<()> {
    // regorus makes and drops an error for many ordinary evaluation steps;
    // with RUST_BACKTRACE=1 each captured a backtrace, halving admission
    // throughput (bench/policy). Panics still get theirs (RUST_BACKTRACE);
    // errors do not, unless RUST_LIB_BACKTRACE says otherwise. Set here,
    // before any thread exists.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    let settings = args.settings()?;
    let filter =
        tracing_subscriber::EnvFilter::try_new(&settings.log).context("invalid log filter")?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    // Policies are loaded (and checked) before the port opens: a typo in a
    // rule stops the start with the file and line, not the first push.
    let policies = match &settings.policy {
        Some(dir) => Some(Arc::new(
            PolicySet::load(dir).map_err(|e| crate::exit::UsageError(e.to_string()))?,
        )),
        None => None,
    };
    let gate = policies.as_ref().map(|p| {
        Arc::new(PushPolicy::new(p.clone(), settings.trust.clone()))
            as Arc<dyn pavilion_registry::PushGate>
    });
    // Admission resolves images in any registry, with the server user's
    // docker credentials, as `pavilion pull` would.
    let client = super::transfer::make_client(false, false, None, None)?;
    let admission = AdmissionConfig {
        client,
        trust: settings.trust.clone(),
        policies,
        cache_ttl: settings.verification_cache,
    };
    let ext = Extensions {
        gate,
        routes: Some(Box::new(move |state| Admission::router(admission, state))),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let cfg = settings.server;
        let data = cfg.data_dir.clone();
        let scheme = if cfg.tls.is_some() { "https" } else { "http" };
        pavilion_registry::serve(cfg, ext, shutdown_signal(), |addr| {
            // Tests and scripts wait for this line to learn the bound port.
            eprintln!(
                "pavilion listening on {scheme}://{addr} (data in {})",
                data.display()
            );
            tracing::info!(%addr, "listening");
        })
        .await
        .context("registry failed")
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
