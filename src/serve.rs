//! `txtfailover serve`: probe once, build the first snapshot, listen, then
//! keep probing and deciding until told to stop.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::config::Config;
use crate::engine::Engine;
use crate::health;
use crate::state::StateStore;

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let store = StateStore::open(&config.server.state_dir)?;
    let probers = health::build_probers(&config.checks)?;
    tracing::info!(
        checks = config.checks.len(),
        "running the first probe round"
    );
    let first = health::first_round(&probers, &config.checks).await;
    let engine = Engine::start(config.clone(), store, first, Instant::now())?;
    let server = crate::dns::listen(
        &config.server.listen,
        config.server.udp_workers,
        config.server.tcp_idle_timeout,
        engine.cell(),
    )
    .await?;
    let (tx, rx) = mpsc::channel(1024);
    let _loops = health::spawn_loops(&probers, &config.checks, tx);
    tracing::info!("ready");
    tokio::select! {
        () = engine.run(rx) => anyhow::bail!("the decision engine stopped"),
        r = crate::dns::serve_tcp(server) => r.and_then(|()| anyhow::bail!("the TCP server stopped")),
        () = shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
