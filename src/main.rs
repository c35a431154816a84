use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use txtfailover::config::{self, Config, DEFAULT_CONFIG};

/// Authoritative DNS failover for Amazon WorkSpaces connection strings.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Probe, decide and answer DNS queries.
    Serve {
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Validate the configuration and zone files, and print what would be served.
    Check {
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // hickory-server logs two INFO lines per response: keep it at warn.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,hickory_server=warn,hickory_proto=warn,hickory_net=warn")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let (Command::Serve { config: path } | Command::Check { config: path }) = &cli.command;
    let config = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "{} problem(s) in the configuration; nothing was started",
                e.0.len()
            );
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Check { .. } => {
            print_check(&config);
            ExitCode::SUCCESS
        }
        Command::Serve { .. } => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("building the tokio runtime");
            match runtime.block_on(txtfailover::serve::serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn print_check(config: &Config) {
    for w in &config.warnings {
        println!("warning: {w}");
    }
    println!("configuration {} is valid", config.source.display());
    for a in &config.server.listen {
        println!("listen {a} (udp, tcp)");
    }
    for z in &config.zones {
        println!(
            "zone {} serial {} ({} records)",
            z.origin,
            z.soa.serial,
            z.records.len() + 1
        );
    }
    for c in &config.checks {
        let t = &c.timing;
        println!(
            "check {} every {} timeout {} fall {} rise {}",
            c.name,
            humantime::format_duration(t.interval),
            humantime::format_duration(t.timeout),
            t.fall,
            t.rise
        );
    }
    for a in &config.aliases {
        let primary = &a.targets[0];
        println!(
            "{} {} IN TXT \"{}\"   ; {} until probes say otherwise",
            a.name, a.ttl, primary.connection_id, primary.region
        );
        for (i, t) in a.targets.iter().enumerate() {
            let checks: Vec<&str> = t
                .checks
                .iter()
                .map(|&c| config.checks[c].name.as_str())
                .collect();
            println!(
                "  #{i} {} {} checks [{}]",
                t.region,
                t.connection_id,
                checks.join(", ")
            );
        }
    }
}
