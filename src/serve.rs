//! `txtfailover serve`: probe once, build the first snapshot, listen, then
//! keep probing and deciding until told to stop.

use std::sync::Arc;
use std::time::Instant;

use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use tokio::sync::mpsc;

use crate::admin::{self, AdminState};
use crate::engine::{StatusCell, request_reload};
use crate::metrics::Metrics;
use crate::status::StatusView;

use crate::config::Config;
use crate::dns::cookie::CookieSecret;
use crate::dns::options::ServerOptions;
use crate::dns::rrl::Limiter;
use crate::engine::{Engine, memory, unix_now_ms};
use crate::health;
use crate::health::alarm::AlarmBoard;
use crate::state::StateStore;

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    crate::logging::configured(config.server.log_format);
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    // Before anything opens a file: room for probes and TCP clients alike.
    let fds = crate::fdlimit::raise();
    let tcp_limits = tcp_limits(&config, fds.soft);
    // SIGHUP's default action ends the process: take it over before the
    // slow part of start-up (the first probe round waits up to a probe
    // timeout), so a reload asked for meanwhile is done once ready.
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let store = StateStore::open(&config.server.state_dir)?;
    crate::xfr::client::check_sources(&config.server.query_source)?;
    // The admin API comes up first so /readyz can say "starting".
    let status: StatusCell = Arc::new(ArcSwap::from_pointee(StatusView::default()));
    let ready = Arc::new(AtomicBool::new(false));
    let metrics = Arc::new(Metrics::new());
    let (command_tx, commands) = mpsc::channel(16);
    let admin_commands = command_tx.clone();
    let tokens: admin::TokenCell = Arc::new(ArcSwap::from_pointee(config.admin_tokens.clone()));
    let admin_state = AdminState {
        status: status.clone(),
        ready: ready.clone(),
        metrics: metrics.clone(),
        tokens: tokens.clone(),
        commands: admin_commands,
        config_path: config.source.clone(),
    };
    let admin_listener = admin::bind(config.admin_listen).await?;
    tracing::info!(addr = %config.admin_listen, "admin API listening");
    let admin = tokio::spawn(admin::serve(
        admin_listener,
        admin_state,
        config.admin_limits,
    ));
    let alarms = Arc::new(AlarmBoard::default());
    let probers = health::build_probers(&config.checks, &alarms)?;
    // Checks whose state decisions.json holds fresh need no first round:
    // a restart answers at once, and they are probed as soon as it does.
    let remembered = memory::load(&store);
    let resumed = memory::resumable(&config, &remembered, unix_now_ms());
    let first_probers: Vec<_> = probers
        .iter()
        .zip(&resumed)
        .map(|(p, &r)| if r { None } else { p.clone() })
        .collect();
    tracing::info!(
        checks = first_probers.iter().flatten().count(),
        resumed = resumed.iter().filter(|r| **r).count(),
        "running the first probe round"
    );
    let first = health::first_round(&first_probers, &config.checks, &metrics).await;
    let mut engine = Engine::start(
        status,
        metrics.clone(),
        config.clone(),
        store,
        (remembered, &resumed),
        first,
        Instant::now(),
    )?;
    engine.set_admin_tokens(tokens);
    engine.set_alarm_board(alarms);
    let opts = Arc::new(ServerOptions {
        cookie_secret: config
            .server
            .cookie_secret
            .clone()
            .unwrap_or_else(CookieSecret::random),
        nsid: config.server.nsid.clone().map(String::into_bytes),
        identity: config.server.identity.clone(),
        version: config.server.version.clone(),
    });
    let rrl = Limiter::new(&config.rrl).map(Arc::new);
    match &rrl {
        Some(_) => tracing::info!(
            responses_per_second = config.rrl.responses_per_second,
            slip = config.rrl.slip,
            exempt = config.rrl.exempt.len(),
            "response rate limiting on (UDP)"
        ),
        None => tracing::warn!("response rate limiting is off ([rrl] responses_per_second = 0)"),
    }
    let tcp_front = crate::dns::listen(
        &config.server.listen,
        config.server.udp_workers,
        tcp_limits,
        engine.cell(),
        metrics,
        opts,
        rrl,
    )
    .await?;
    let (tx, rx) = mpsc::channel(1024);
    engine.start_probing(&probers, tx, &resumed);
    engine.start_secondaries(command_tx.clone());
    engine.start_watching(command_tx.clone());
    let hup_commands = command_tx.clone();
    let config_path = config.source.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading");
            let _ = request_reload(config_path.clone(), &hup_commands).await;
        }
    });
    let decisions = engine.memory_writer();
    ready.store(true, Ordering::Release);
    tracing::info!("ready");
    crate::service::ready();
    let heartbeat = crate::service::Heartbeat::default();
    crate::service::spawn_watchdog(heartbeat.clone());
    tokio::select! {
        () = engine.run(rx, commands, heartbeat) => anyhow::bail!("the decision engine stopped"),
        r = admin => match r {
            Ok(Ok(())) => anyhow::bail!("the admin API stopped"),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(e.into()),
        },
        () = shutdown_signal() => {
            // Serials are persisted on every change, so nothing is lost by
            // stopping here. TCP stops accepting and finishes what it has;
            // UDP answers take microseconds and end with the process.
            tracing::info!("shutting down");
            crate::service::stopping();
            match tokio::time::timeout(std::time::Duration::from_secs(5), tcp_front.shutdown()).await {
                Ok(_) => tracing::info!("stopped"),
                Err(_) => tracing::warn!("TCP connections still open after 5s; stopping anyway"),
            }
            // An answer change just before the signal: on disk before exit.
            let flushed = tokio::task::spawn_blocking(move || {
                decisions.flush(std::time::Duration::from_secs(2))
            })
            .await;
            if !matches!(flushed, Ok(true)) {
                tracing::warn!("decisions.json may miss the latest change");
            }
            Ok(())
        }
    }
}

/// The TCP limits from the config, the connection cap derived from the
/// open-files limit when not set (see `fdlimit`).
fn tcp_limits(config: &Config, open_files: u64) -> crate::dns::TcpLimits {
    let s = &config.server;
    let reserve = crate::fdlimit::reserve(config.checks.len(), s.listen.len(), s.udp_workers);
    let max_connections = crate::fdlimit::tcp_cap(s.tcp_max_connections, open_files, reserve);
    let limits = crate::dns::TcpLimits {
        max_connections,
        max_per_source: s.tcp_max_per_source.min(max_connections),
        idle_timeout: s.tcp_idle_timeout,
        max_queries: s.tcp_max_queries_per_connection,
        max_lifetime: s.tcp_max_connection_lifetime,
    };
    tracing::info!(
        max_connections,
        reserve,
        max_per_source = limits.max_per_source,
        idle_timeout = ?limits.idle_timeout,
        max_queries = limits.max_queries,
        max_lifetime = ?limits.max_lifetime,
        "TCP limits"
    );
    limits
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
