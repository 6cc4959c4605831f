//! `pavilion serve`.

use crate::config::ServeArgs;
use anyhow::{Context, Result};

/// Runs the registry until SIGTERM or Ctrl-C.
pub fn run(args: ServeArgs) -> Result<()> {
    let settings = args.settings()?;
    let filter =
        tracing_subscriber::EnvFilter::try_new(&settings.log).context("invalid log filter")?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let cfg = settings.server;
        let data = cfg.data_dir.clone();
        pavilion_registry::serve(cfg, shutdown_signal(), |addr| {
            // Tests and scripts wait for this line to learn the bound port.
            eprintln!(
                "pavilion listening on http://{addr} (data in {})",
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
