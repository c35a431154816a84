//! The command line as users meet it: `check` on good and bad configs, and the
//! README's dig verification against a running server.

mod support;

use std::process::Command;

use support::*;

fn check(dir: &std::path::Path, config: &str, zone: &str) -> (bool, String, String) {
    let path = write_config(dir, 5353, config, zone);
    cli(&["check", "--config", path.to_str().unwrap()])
}

#[test]
fn check_prints_what_would_be_served() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = check(
        dir.path(),
        "[[alias]]\nname = \"desktop.example.com\"\ntargets = [{ region = \"us-west-2\", connection_id = \"ABC123\" }]\n",
        ZONE,
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("desktop.example.com. 30 IN TXT \"ABC123\""),
        "{out}"
    );
    assert!(out.contains("has no checks"), "the warning is shown: {out}");
}

#[test]
fn check_rejects_bad_config_with_file_line_and_hint() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[[alias]]\nname = \"desktop.example.com\"\ntargets = [{ region = \"us-west-2\", connection_id = \"wsca-abc\" }]\n";
    let (ok, _, err) = check(dir.path(), config, ZONE);
    assert!(!ok);
    // The targets line is line 12 of the written file (10 header lines first).
    assert!(err.contains("txtfailover.toml:13:"), "{err}");
    assert!(
        err.contains("not a WorkSpaces connection identifier"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    assert!(err.contains("nothing was started"), "{err}");
}

#[test]
fn check_rejects_durations_no_timer_can_hold() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[[check]]\nname = \"pdx\"\nkind = \"tcp\"\naddress = \"127.0.0.1:9\"\ninterval = \"580000000000y\"\n";
    let (ok, _, err) = check(dir.path(), config, ZONE);
    assert!(!ok, "accepted: {err}");
    assert!(err.contains("txtfailover.toml:15:"), "{err}");
    assert!(err.contains("longest duration accepted"), "{err}");
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn check_rejects_broken_zone_file_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let zone = format!("{ZONE}broken IN A 999.1.1.1\n");
    let (ok, _, err) = check(dir.path(), "", &zone);
    assert!(!ok);
    assert!(err.contains("example.com.zone:7:"), "{err}");
}

#[test]
fn serve_refuses_to_start_on_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        free_port(),
        "[[check]]\nname = \"x\"\nkind = \"ftp\"\n",
        ZONE,
    );
    let out = Command::new(bin())
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("check kind \"ftp\" is not known"));
}

/// The verification command exactly as README.md gives it, pointed at this
/// test's port.
#[test]
fn readme_dig_command_verifies_the_answer() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let command = readme
        .lines()
        .find(|l| l.starts_with("dig @127.0.0.1 -p 5353 desktop.example.com TXT"))
        .expect("README.md gives the dig verification command");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        "[[alias]]\nname = \"desktop.example.com\"\ntargets = [{ region = \"us-west-2\", connection_id = \"PDXexampleConnId0001\" }]\n",
        ZONE,
    );
    let command = command.replace("-p 5353", &format!("-p {}", server.addr.port()));
    let out = Command::new("sh")
        .arg("-c")
        .arg(&command)
        .output()
        .expect("dig is installed (bind9-dnsutils)");
    assert!(
        out.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "\"PDXexampleConnId0001\""
    );
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        dir.path(),
        "[[alias]]\nname = \"desktop.example.com\"\ntargets = [{ region = \"r\", connection_id = \"A1\" }]\n",
        ZONE,
    );
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}\n{}", server.log_text());
    assert!(server.log_text().contains("shutting down"));
    assert!(
        dir.path().join("state/serials.json").exists(),
        "serials persisted"
    );
}

#[test]
fn check_rejects_listen_addresses_serve_could_not_bind() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), 5353, "", ZONE);
    let text = std::fs::read_to_string(&path).unwrap();
    // The DNS port also given on the unspecified address.
    let overlap = text.replace(
        "listen = [\"127.0.0.1:5353\"]",
        "listen = [\"0.0.0.0:5353\", \"127.0.0.1:5353\"]",
    );
    std::fs::write(&path, overlap).unwrap();
    let (ok, _, err) = cli(&["check", "--config", path.to_str().unwrap()]);
    assert!(!ok, "accepted: {err}");
    assert!(err.contains("txtfailover.toml:2:"), "{err}");
    assert!(err.contains("overlaps 0.0.0.0:5353"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    // The admin API on the DNS port (both are TCP).
    let admin = text.replacen(
        "[admin]\nlisten = \"",
        "[admin]\nlisten = \"127.0.0.1:5353\"\n# was \"",
        1,
    );
    std::fs::write(&path, admin).unwrap();
    let (ok, _, err) = cli(&["check", "--config", path.to_str().unwrap()]);
    assert!(!ok, "accepted: {err}");
    assert!(err.contains("txtfailover.toml:6:"), "{err}");
    assert!(
        err.contains("takes the TCP port of the DNS listen address"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn check_exits_2_when_whoever_reads_its_errors_has_gone() {
    // `txtfailover check 2>&1 | head -1`: the reader leaves after a line.
    let dir = tempfile::tempdir().unwrap();
    let zone = format!("{ZONE}broken IN A 999.1.1.1\n");
    let path = write_config(dir.path(), 5353, "", &zone);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = Command::new(bin())
        .args(["check", "--config", path.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(writer)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2), "a config problem, not a panic");
}

#[test]
fn completions_and_man_page_come_from_the_command_definitions() {
    let subcommands = [
        "serve", "check", "status", "why", "reload", "override", "token",
    ];
    let (ok, out, err) = cli(&["completions", "bash"]);
    assert!(ok, "{err}");
    assert!(out.contains("_txtfailover"), "{out}");
    for s in subcommands {
        assert!(out.contains(&format!("txtfailover,{s})")), "bash lacks {s}");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let (ok, out, err) = cli(&["completions", shell]);
        assert!(ok && out.contains("override"), "{shell}: {err}");
    }
    assert!(
        !cli(&["completions", "tcsh"]).0,
        "an unknown shell is refused"
    );
    let (ok, out, err) = cli(&["man"]);
    assert!(ok, "{err}");
    assert!(out.starts_with(".TH txtfailover 1"), "{out}");
    for s in subcommands {
        assert!(
            out.contains(&format!("txtfailover\\-{s}(1)")),
            "man lacks {s}"
        );
    }
}

#[test]
fn a_new_token_works_from_the_servers_file_and_as_a_bare_token() {
    let (ok, first, err) = cli(&["token", "new", "ops"]);
    assert!(ok, "{err}");
    let (_, second, _) = cli(&["token", "new", "ops"]);
    assert_ne!(first, second, "every token is new");
    let token = first.strip_prefix("ops ").unwrap().trim_end();
    assert!(token.len() >= 43, "32 random bytes or more: {token}");
    for bad in ["", "two words", "tab\there", "hash#tag"] {
        let (ok, out, err) = cli(&["token", "new", bad]);
        assert!(!ok && out.is_empty(), "{bad:?} accepted: {out}");
        assert!(err.contains("label"), "{err}");
    }

    // The line as the server's token file, read by `serve` and by the CLI.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = write_config(
        dir.path(),
        port,
        "[[alias]]\nname = \"desktop.example.com\"\ntargets = [{ region = \"us-west-2\", connection_id = \"A1\" }]\n",
        ZONE,
    );
    std::fs::write(dir.path().join("tokens"), format!("# operators\n{first}")).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replacen("[admin]\n", "[admin]\ntoken_file = \"tokens\"\n", 1);
    std::fs::write(&path, text).unwrap();
    let server = Server::start_with(dir.path(), &path, port);
    let admin = format!("http://{}", server.admin_addr());
    let reload = |file: &std::path::Path| {
        cli(&[
            "reload",
            "--admin",
            &admin,
            "--token-file",
            file.to_str().unwrap(),
        ])
    };
    let (ok, out, err) = reload(&dir.path().join("tokens"));
    assert!(ok, "the server's own file: {out}{err}");
    let bare = dir.path().join("bare");
    std::fs::write(&bare, format!("{token}\n")).unwrap();
    let (ok, out, err) = reload(&bare);
    assert!(ok, "the bare token: {out}{err}");
    std::fs::write(&bare, "ops 0123456789abcdef0123\n").unwrap();
    let (ok, _, err) = reload(&bare);
    assert!(!ok, "another token is refused");
    assert!(err.contains("401"), "{err}");
}

#[test]
fn check_warns_about_what_can_never_work_but_still_passes() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[[check]]\nname = \"pdx\"\nkind = \"command\"\ncommand = [\"/nonexistent/probe\"]\n\
                  [[check]]\nname = \"head\"\nkind = \"https\"\nurl = \"https://example.net/\"\n\
                  method = \"HEAD\"\nexpect_body = \"ok\"\n\
                  [[alias]]\nname = \"desktop.example.com\"\n\
                  targets = [{ region = \"us-west-1\", connection_id = \"A1\", checks = [\"pdx\", \"head\"] }]\n";
    let (ok, out, err) = check(dir.path(), config, ZONE);
    assert!(ok, "warnings do not fail check: {err}");
    for needle in [
        "program \"/nonexistent/probe\" is not found",
        "a HEAD response has no body",
        "region \"us-west-1\" is not a Region where WorkSpaces runs",
    ] {
        assert!(
            out.contains("warning: ") && out.contains(needle),
            "{needle}: {out}"
        );
    }
}

/// `aws workspaces describe-connection-aliases --region R` output, as the
/// AWS CLI prints it (one alias, its associations).
fn aliases_output(alias_id: &str, associations: &[(&str, &str)]) -> String {
    let associations: Vec<String> = associations
        .iter()
        .map(|(status, id)| {
            format!(
                "{{\n                    \"AssociationStatus\": \"{status}\",\n                    \"AssociatedAccountId\": \"123456789012\",\n                    \"ResourceId\": \"d-906700aa11\",\n                    \"ConnectionIdentifier\": \"{id}\"\n                }}"
            )
        })
        .collect();
    format!(
        "{{\n    \"ConnectionAliases\": [\n        {{\n            \"ConnectionString\": \"desktop.example.com\",\n            \"AliasId\": \"{alias_id}\",\n            \"State\": \"CREATED\",\n            \"OwnerAccountId\": \"123456789012\",\n            \"Associations\": [\n                {}\n            ]\n        }}\n    ]\n}}\n",
        associations.join(",\n")
    )
}

#[test]
fn import_prints_blocks_that_check_accepts_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("pdx.json"),
        aliases_output(
            "wsca-pdx0001",
            &[("ASSOCIATED_WITH_OWNER_ACCOUNT", "PDXconn0001")],
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("iad.json"),
        aliases_output(
            "wsca-iad0001",
            &[
                ("PENDING_DISASSOCIATION", "IADold0001"),
                ("ASSOCIATED_WITH_OWNER_ACCOUNT", "IADconn0001"),
            ],
        ),
    )
    .unwrap();
    let out = Command::new(bin())
        .current_dir(d)
        .args([
            "import",
            "--region",
            "us-east-1=iad.json",
            "--region",
            "us-west-2=pdx.json",
        ])
        .args(["--primary", "us-west-2"])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: desktop.example.com (us-east-1, wsca-iad0001): the association with d-906700aa11 is PENDING_DISASSOCIATION"),
        "{stderr}"
    );
    // Appended as printed to a config serving the zone: `check` accepts it
    // and serves the primary's identifier.
    let (ok, report, err) = check(d, &stdout, ZONE);
    assert!(ok, "{err}\n{stdout}");
    assert!(report.contains("PDXconn0001"), "{report}");

    // A missing file and a malformed argument say what to do.
    let (ok, _, err) = cli(&["import", "--region", "us-west-2=/nonexistent/pdx.json"]);
    assert!(!ok);
    assert!(
        err.contains("aws workspaces describe-connection-aliases --region us-west-2 >"),
        "{err}"
    );
    let (ok, _, err) = cli(&["import", "--region", "pdx.json"]);
    assert!(!ok);
    assert!(err.contains("is not REGION=FILE"), "{err}");
}
