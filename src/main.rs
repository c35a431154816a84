use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use txtfailover::cli;
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
        /// Log line format (default: `[server] log_format`, else text).
        #[arg(long, value_enum)]
        log_format: Option<txtfailover::logging::LogFormat>,
    },
    /// Validate the configuration and zone files, and print what would be served.
    Check {
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// What every alias answers, and why (through the admin API).
    Status {
        #[command(flatten)]
        api: Api,
    },
    /// The full decision trace of one alias.
    Why {
        alias: String,
        #[command(flatten)]
        api: Api,
    },
    /// Re-read the configuration and zone files of the running server.
    Reload {
        #[command(flatten)]
        api: Api,
    },
    /// Pin an alias to a target, or clear the pin.
    Override {
        #[command(subcommand)]
        action: OverrideAction,
    },
    /// Print the shell completion script for SHELL.
    Completions { shell: clap_complete::Shell },
    /// Print the man page, txtfailover(1).
    Man,
    /// Admin API tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Print [[alias]] blocks from `aws workspaces describe-connection-aliases` outputs.
    Import {
        /// A Region and the file holding that Region's output, e.g. us-west-2=pdx.json; once per Region.
        #[arg(long = "region", value_name = "REGION=FILE", required = true)]
        regions: Vec<String>,
        /// The Region answered while healthy (default: the first --region).
        #[arg(long)]
        primary: Option<String>,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Print a `LABEL TOKEN` line with a new random token, for the server's token_file.
    New { label: String },
}

#[derive(clap::Args)]
struct Api {
    /// Base URL of the admin API.
    #[arg(long, default_value = "http://127.0.0.1:8053")]
    admin: String,
    /// File holding the bearer token: the server's `label token` file (its
    /// first token is used) or the bare token (else $TXTFAILOVER_TOKEN).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum OverrideAction {
    /// Pin ALIAS to the target in REGION.
    Set {
        alias: String,
        region: String,
        /// Why: logged with the change.
        #[arg(long)]
        reason: String,
        /// How long, e.g. 2h.
        #[arg(long = "for", conflicts_with = "until")]
        for_: Option<String>,
        /// Until an RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        api: Api,
    },
    /// Clear the pin (and release a manual failback).
    Clear {
        alias: String,
        #[command(flatten)]
        api: Api,
    },
}

/// Writes a line to stderr; a reader that went away (`2>&1 | head`) is
/// not worth a panic (`eprintln!` panics on a closed stderr, exit 101).
fn emit_err(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn emit(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        emit_err(&format!("error: cannot write the output: {e}"));
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `[server] log_format` applies once `serve` has read the configuration.
    txtfailover::logging::init(match &cli.command {
        Command::Serve { log_format, .. } => *log_format,
        _ => None,
    });
    let path = match cli.command {
        Command::Status { .. }
        | Command::Why { .. }
        | Command::Override { .. }
        | Command::Reload { .. } => {
            return operator(cli.command);
        }
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "txtfailover",
                &mut out,
            );
            emit(&String::from_utf8_lossy(&out));
            return ExitCode::SUCCESS;
        }
        Command::Man => return man_page(),
        Command::Token {
            action: TokenAction::New { label },
        } => {
            return match cli::new_token_line(&label) {
                Ok(line) => {
                    emit(&line);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    emit_err(&format!("error: {e:#}"));
                    ExitCode::from(2)
                }
            };
        }
        Command::Import { regions, primary } => return import(&regions, primary.as_deref()),
        Command::Serve { ref config, .. } | Command::Check { ref config } => config.clone(),
    };
    let path = &path;
    let config = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            emit_err(&format!(
                "{e}\n{} problem(s) in the configuration; nothing was started",
                e.0.len()
            ));
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Check { .. } => {
            emit(&check_report(&config));
            ExitCode::SUCCESS
        }
        Command::Status { .. }
        | Command::Why { .. }
        | Command::Override { .. }
        | Command::Reload { .. }
        | Command::Completions { .. }
        | Command::Man
        | Command::Token { .. }
        | Command::Import { .. } => {
            unreachable!("handled before the configuration is read")
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
                    emit_err(&format!("error: {e:#}"));
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// What `check` prints: the configuration as it would be served.
fn check_report(config: &Config) -> String {
    let mut out = String::new();
    for w in &config.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let _ = writeln!(out, "configuration {} is valid", config.source.display());
    for a in &config.server.listen {
        let _ = writeln!(out, "listen {a} (udp, tcp)");
    }
    for z in &config.zones {
        let _ = writeln!(
            out,
            "zone {} serial {} ({} records), transfers {}, notifies {}",
            z.origin,
            z.soa.serial,
            z.records.len() + 1,
            if z.policy.allow_transfer.is_empty() {
                "refused"
            } else {
                "allowed by rule"
            },
            z.policy.notify.len()
        );
    }
    for s in &config.secondaries {
        let primaries: Vec<String> = s.primaries.iter().map(|p| p.addr.to_string()).collect();
        let _ = writeln!(
            out,
            "zone {} secondary of {} (transferred at start)",
            s.origin,
            primaries.join(", ")
        );
    }
    for k in &config.keys {
        let _ = writeln!(out, "tsig key {} {}", k.name, k.algorithm);
    }
    for c in &config.checks {
        let t = &c.timing;
        let _ = writeln!(
            out,
            "check {} every {} timeout {} attempts {} fall {} rise {}{}",
            c.name,
            humantime::format_duration(t.interval),
            humantime::format_duration(t.timeout),
            t.attempts,
            t.fall,
            t.rise,
            if c.canary { " (canary)" } else { "" }
        );
    }
    for a in &config.aliases {
        let primary = &a.targets[0];
        let _ = writeln!(
            out,
            "{} {} IN TXT \"{}\"   ; {} until probes say otherwise",
            a.name, a.ttl, primary.connection_id, primary.region
        );
        for (i, t) in a.targets.iter().enumerate() {
            let checks: Vec<&str> = t
                .checks
                .iter()
                .map(|&c| config.checks[c].name.as_str())
                .collect();
            let _ = writeln!(
                out,
                "  #{i} {} {} checks [{}]",
                t.region,
                t.connection_id,
                checks.join(", ")
            );
        }
    }
    out
}

/// `man`: txtfailover(1) in roff, its SUBCOMMANDS section naming each.
/// The `.TH` line goes first, where `man` and `whatis` look for it; the
/// renderer puts its apostrophe string definitions before it.
/// Largest output file `import` reads: describe-connection-aliases prints
/// well under a kilobyte per alias.
const MAX_IMPORT_BYTES: u64 = 16 << 20;

/// `import`: the blocks on stdout, warnings on stderr; exit 1 on bad input.
fn import(regions: &[String], primary: Option<&str>) -> ExitCode {
    let mut sources = Vec::new();
    for arg in regions {
        let Some((region, file)) = arg.split_once('=') else {
            emit_err(&format!(
                "error: --region {arg:?} is not REGION=FILE; write e.g. --region us-west-2=pdx.json"
            ));
            return ExitCode::from(2);
        };
        let json = match read_bounded(std::path::Path::new(file), MAX_IMPORT_BYTES) {
            Ok(j) => j,
            Err(e) => {
                emit_err(&format!(
                    "error: cannot read {file}: {e}; save it with `aws workspaces describe-connection-aliases --region {region} > {file}`"
                ));
                return ExitCode::FAILURE;
            }
        };
        sources.push(txtfailover::import::Source {
            region: region.to_string(),
            file: file.to_string(),
            json,
        });
    }
    match txtfailover::import::import(&sources, primary) {
        Ok(imported) => {
            for w in &imported.warnings {
                emit_err(&format!("warning: {w}"));
            }
            emit(&imported.config);
            ExitCode::SUCCESS
        }
        Err(e) => {
            emit_err(&format!("error: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// A text file of at most `limit` bytes.
fn read_bounded(path: &std::path::Path, limit: u64) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(limit.saturating_add(1))
        .read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB",
            limit >> 20
        )));
    }
    Ok(text)
}

fn man_page() -> ExitCode {
    let mut out = Vec::new();
    match clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut out) {
        Ok(()) => {
            let text = String::from_utf8_lossy(&out);
            let (title, rest): (Vec<&str>, Vec<&str>) =
                text.lines().partition(|l| l.starts_with(".TH "));
            let mut page = String::new();
            for line in title.iter().chain(&rest) {
                page.push_str(line);
                page.push('\n');
            }
            emit(&page);
            ExitCode::SUCCESS
        }
        Err(e) => {
            emit_err(&format!("error: cannot render the man page: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// Runs an operator command against the admin API.
fn operator(command: Command) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result: anyhow::Result<String> = runtime.block_on(async {
        let client = |api: &Api| -> anyhow::Result<cli::Client> {
            let token = match &api.token_file {
                Some(f) => Some(
                    std::fs::read_to_string(f)
                        .map_err(anyhow::Error::from)
                        .and_then(|text| cli::token_from_file(&text))
                        .map_err(|e| anyhow::anyhow!("token file {}: {e}", f.display()))?,
                ),
                None => std::env::var("TXTFAILOVER_TOKEN").ok(),
            };
            Ok(cli::Client { base: api.admin.clone(), token })
        };
        match command {
            Command::Status { api } => {
                let v = client(&api)?.get("/v1/status").await?;
                Ok(if api.json { v.to_string() } else { cli::status_table(&v) })
            }
            Command::Why { alias, api } => {
                let v = client(&api)?.get(&format!("/v1/aliases/{alias}")).await?;
                Ok(if api.json { v.to_string() } else { cli::why_table(&v) })
            }
            Command::Override { action: OverrideAction::Set { alias, region, reason, for_, until, api } } => {
                let body = serde_json::json!({ "target": region, "reason": reason, "for": for_, "until": until });
                let v = client(&api)?.put(&format!("/v1/overrides/{alias}"), body).await?;
                Ok(if api.json { v.to_string() } else { format!("{}\n", v["ok"].as_str().unwrap_or("done")) })
            }
            Command::Override { action: OverrideAction::Clear { alias, api } } => {
                let v = client(&api)?.delete(&format!("/v1/overrides/{alias}")).await?;
                Ok(if api.json { v.to_string() } else { format!("{}\n", v["ok"].as_str().unwrap_or("done")) })
            }
            Command::Reload { api } => {
                let v = client(&api)?.post("/v1/reload").await?;
                Ok(if api.json { v.to_string() } else { format!("{}\n", v["ok"].as_str().unwrap_or("done")) })
            }
            Command::Serve { .. }
            | Command::Check { .. }
            | Command::Completions { .. }
            | Command::Man
            | Command::Token { .. }
            | Command::Import { .. } => unreachable!("handled by main"),
        }
    });
    match result {
        Ok(text) if text.ends_with('\n') => {
            emit(&text);
            ExitCode::SUCCESS
        }
        Ok(text) => {
            emit(&format!("{text}\n"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            emit_err(&format!("error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}
