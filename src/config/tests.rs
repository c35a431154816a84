//! Every validation rule, checked by its message and its line.

use std::path::Path;

use super::*;

const ZONE: &str = "$TTL 300\n@ IN SOA ns1 hostmaster 7 7200 3600 1209600 60\n@ IN NS ns1\n\
ns1 IN A 127.0.0.1\ninfo IN TXT \"static\"\nchild IN NS ns.child\n";

const HEAD: &str = "[[zone]]\norigin = \"example.com\"\nfile = \"z.zone\"\n";

fn run(body: &str) -> Result<Config, ConfigError> {
    let text = format!("{HEAD}{body}");
    validate(Path::new("cfg/t.toml"), &text, &|p: &Path| {
        assert_eq!(
            p,
            Path::new("cfg/z.zone"),
            "relative to the config's directory"
        );
        Ok(ZONE.to_string())
    })
}

const CHECK: &str =
    "[[check]]\nname = \"pdx\"\nkind = \"https\"\nurl = \"https://example.net/ping\"\n";

fn alias(targets: &str) -> String {
    format!("[[alias]]\nname = \"desktop.example.com\"\ntargets = [{targets}]\n")
}

/// The first problem's message must contain `needle`, on `line`.
fn fails(body: &str, needle: &str, line: usize) {
    let err = run(body).expect_err(needle);
    let p = &err.0[0];
    assert!(p.message.contains(needle), "want {needle:?}, got {err}");
    assert_eq!(p.line, line, "line of {needle:?}: {err}");
    assert!(p.hint.is_some(), "every problem says how to fix it: {err}");
}

#[test]
fn a_valid_config_has_defaults() {
    let c = run(&format!(
        "{CHECK}{}",
        alias("{ region = \"us-west-2\", connection_id = \"ABC\", checks = [\"pdx\"] }")
    ))
    .unwrap();
    assert_eq!(c.server.listen, vec!["127.0.0.1:5353".parse().unwrap()]);
    assert_eq!(c.server.state_dir, Path::new("cfg/state"));
    assert_eq!(c.checks[0].timing, Timing::default());
    let ProbeSpec::Http(h) = &c.checks[0].probe else {
        panic!()
    };
    assert_eq!(h.expect_status, vec![200..=399]);
    assert!(h.tls_verify);
    assert_eq!(c.aliases[0].ttl, 30);
    assert_eq!(c.aliases[0].policy, Policy::default());
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn unknown_keys_are_rejected() {
    fails(
        "[server]\nlisten_on = [\"127.0.0.1:53\"]\n",
        "unknown field `listen_on`",
        5,
    );
}

#[test]
fn connection_id_must_match_the_api_pattern() {
    fails(
        &alias("{ region = \"r1\", connection_id = \"wsca-12345\" }"),
        "not a WorkSpaces connection identifier",
        6,
    );
    fails(
        &alias("{ region = \"r1\", connection_id = \"A123456789012345678901\" }"),
        "not a WorkSpaces connection identifier",
        6,
    );
}

#[test]
fn alias_must_be_a_name_inside_a_served_zone() {
    fails(
        "[[alias]]\nname = \"desk top.example.com\"\ntargets = []\n",
        "not a valid connection string",
        5,
    );
    fails(
        "[[alias]]\nname = \"desktop.example.org\"\ntargets = []\n",
        "not inside any served zone",
        5,
    );
    fails(
        "[[alias]]\nname = \"x.child.example.com\"\ntargets = []\n",
        "below the delegation",
        5,
    );
}

#[test]
fn alias_must_not_collide_with_static_txt() {
    fails(
        "[[alias]]\nname = \"info.example.com\"\ntargets = [{ region = \"r\", connection_id = \"A\" }]\n",
        "collides with a static TXT",
        5,
    );
}

#[test]
fn unknown_check_names_are_listed() {
    let err = run(&format!(
        "{CHECK}{}",
        alias("{ region = \"r1\", connection_id = \"A\", checks = [\"pdy\"] }")
    ))
    .unwrap_err();
    assert!(
        err.to_string().contains("check \"pdy\" is not defined"),
        "{err}"
    );
    assert!(err.to_string().contains("one of: pdx"), "{err}");
}

#[test]
fn timeout_must_be_below_interval() {
    fails(
        &format!("{CHECK}interval = \"5s\"\ntimeout = \"5s\"\n"),
        "must be shorter than interval",
        9,
    );
}

#[test]
fn probes_cannot_run_back_to_back_or_time_out_at_once() {
    fails(
        &format!("{CHECK}interval = \"2ns\"\ntimeout = \"1ns\"\n"),
        "is shorter than 100ms: probes would run back to back",
        8,
    );
    fails(
        &format!("{CHECK}interval = \"10s\"\ntimeout = \"1ms\"\n"),
        "is shorter than 10ms: no probe",
        9,
    );
}

#[test]
fn thresholds_must_be_positive() {
    fails(
        &format!("{CHECK}fall = 0\n"),
        "`fall` must be between 1 and 100",
        8,
    );
    fails(
        &format!("{CHECK}rise = -1\n"),
        "`rise` must be between 1 and 100",
        8,
    );
}

#[test]
fn duplicate_names_are_rejected() {
    fails(&format!("{CHECK}{CHECK}"), "defined twice", 9);
    let a = alias("{ region = \"r\", connection_id = \"A\" }");
    fails(
        &format!("{a}{a}"),
        "alias desktop.example.com. is defined twice",
        8,
    );
    fails(
        &alias(
            "{ region = \"r\", connection_id = \"A\" }, { region = \"r\", connection_id = \"B\" }",
        ),
        "appears twice",
        6,
    );
}

#[test]
fn fields_of_another_kind_are_named() {
    fails(
        "[[check]]\nname = \"t\"\nkind = \"tcp\"\naddress = \"h:1\"\nurl = \"http://x/\"\n",
        "`url` does not apply to tcp checks",
        8,
    );
    fails(
        "[[check]]\nname = \"t\"\nkind = \"http\"\nurl = \"https://x/\"\n",
        "does not match kind",
        7,
    );
    fails(
        "[[check]]\nname = \"t\"\nkind = \"tcp\"\naddress = \"nohost\"\n",
        "is not host:port",
        7,
    );
}

#[test]
fn durations_are_bounded() {
    // Passed `check` once, then panicked the probe loop at its first sleep.
    fails(
        &format!("{CHECK}interval = \"580000000000y\"\n"),
        "longest duration accepted",
        8,
    );
    fails(
        &format!("{CHECK}interval = \"367d\"\n"),
        "longest duration accepted",
        8,
    );
    run(&format!("{CHECK}interval = \"1y\"\ntimeout = \"10s\"\n")).unwrap();
}

#[test]
fn durations_and_statuses_are_parsed() {
    fails(
        &format!("{CHECK}interval = \"ten seconds\"\n"),
        "is not a duration",
        8,
    );
    fails(
        &format!("{CHECK}expect_status = [\"2xx\"]\n"),
        "not a status code or range",
        8,
    );
}

#[test]
fn zone_problems_name_the_zone_file() {
    let err = validate(Path::new("t.toml"), HEAD, &|_: &Path| {
        Ok("$TTL 1\n@ IN SOA a b 1 2 3 4 5\n".into())
    })
    .unwrap_err();
    assert!(err.0[0].message.contains("no NS record"), "{err}");
    assert_eq!(err.0[0].file, Path::new("z.zone"));
    let err = validate(Path::new("t.toml"), HEAD, &|_: &Path| {
        Err(std::io::Error::other("gone"))
    })
    .unwrap_err();
    assert!(err.to_string().contains("cannot read zone file"), "{err}");
    let err = validate(Path::new("t.toml"), "", &|_: &Path| unreachable!()).unwrap_err();
    assert!(err.to_string().contains("no [[zone]]"), "{err}");
}

#[test]
fn high_ttl_warns() {
    let c = run("[[alias]]\nname = \"desktop.example.com\"\nttl = 300\ntargets = [{ region = \"r\", connection_id = \"A\" }]\n").unwrap();
    assert!(
        c.warnings
            .iter()
            .any(|w| w.message.contains("ttl 300 is above 60")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn admin_api_stays_on_loopback() {
    assert_eq!(
        run("").unwrap().admin_listen,
        "127.0.0.1:8053".parse().unwrap()
    );
    assert_eq!(
        run("[admin]\nlisten = \"[::1]:9000\"\n")
            .unwrap()
            .admin_listen,
        "[::1]:9000".parse().unwrap()
    );
    fails(
        "[admin]\nlisten = \"0.0.0.0:8053\"\n",
        "reachable from other hosts",
        5,
    );
    fails("[admin]\nlisten = \"localhost\"\n", "is not IP:port", 5);
}

#[test]
fn command_checks_need_a_program() {
    fails(
        "[[check]]\nname = \"c\"\nkind = \"command\"\n",
        "has no `command`",
        5,
    );
    fails(
        "[[check]]\nname = \"c\"\nkind = \"command\"\ncommand = []\n",
        "must name a program",
        7,
    );
    fails(
        "[[check]]\nname = \"c\"\nkind = \"tcp\"\naddress = \"h:1\"\ncommand = [\"x\"]\n",
        "`command` does not apply to tcp checks",
        8,
    );
    let c =
        run("[[check]]\nname = \"c\"\nkind = \"command\"\ncommand = [\"aws\", \"cloudwatch\"]\n")
            .unwrap();
    assert_eq!(
        c.checks[0].probe,
        ProbeSpec::Command {
            argv: vec!["aws".into(), "cloudwatch".into()]
        }
    );
}

#[test]
fn composites_resolve_members_and_reject_cycles() {
    let base = "[[check]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\n[[check]]\nname = \"b\"\nkind = \"tcp\"\naddress = \"h:2\"\n";
    let c = run(&format!(
        "{base}[[check]]\nname = \"two\"\nkind = \"at_least\"\nat_least = 1\nchecks = [\"a\", \"b\"]\n{}",
        alias("{ region = \"us-west-2\", connection_id = \"A\", checks = [\"two\"] }")
    ))
    .unwrap();
    assert_eq!(
        c.checks[2].probe,
        ProbeSpec::Composite {
            rule: Rule::AtLeast(1),
            members: vec![0, 1]
        }
    );
    assert!(
        c.warnings.is_empty(),
        "members of a used composite are used: {:?}",
        c.warnings
    );

    let cycle = "[[check]]\nname = \"x\"\nkind = \"all\"\nchecks = [\"y\"]\n[[check]]\nname = \"y\"\nkind = \"any\"\nchecks = [\"x\"]\n";
    fails(cycle, "depends on itself: x -> y -> x", 4);
    fails(
        &format!(
            "{base}[[check]]\nname = \"n\"\nkind = \"at_least\"\nat_least = 3\nchecks = [\"a\", \"b\"]\n"
        ),
        "at_least = 3 but the check combines 2",
        15,
    );
    fails(
        &format!("{base}[[check]]\nname = \"n\"\nkind = \"all\"\nchecks = [\"zz\"]\n"),
        "check \"zz\" is not defined",
        15,
    );
    fails(
        &format!(
            "{base}[[check]]\nname = \"n\"\nkind = \"all\"\ninterval = \"1s\"\nchecks = [\"a\"]\n"
        ),
        "`interval` does not apply to all checks",
        15,
    );
}

#[test]
fn rules_count_healthy_members() {
    assert!(Rule::All.holds(2, 2) && !Rule::All.holds(1, 2));
    assert!(Rule::Any.holds(1, 3) && !Rule::Any.holds(0, 3));
    assert!(Rule::AtLeast(2).holds(2, 3) && !Rule::AtLeast(2).holds(1, 3));
}

#[test]
fn token_file_is_read_and_checked() {
    let text = format!("{HEAD}[admin]\nlisten = \"0.0.0.0:8053\"\ntoken_file = \"tokens\"\n");
    let read = |body: &'static str| {
        move |p: &Path| -> std::io::Result<String> {
            Ok(if p.ends_with("tokens") {
                body.to_string()
            } else {
                ZONE.to_string()
            })
        }
    };
    let c = validate(
        Path::new("cfg/t.toml"),
        &text,
        &read("# ops\nalice 0123456789abcdef\n"),
    )
    .unwrap();
    assert_eq!(c.admin_tokens[0].label, "alice");
    assert!(
        !format!("{:?}", c.admin_tokens).contains("0123456789abcdef"),
        "secrets stay out of debug output"
    );
    let err = validate(Path::new("cfg/t.toml"), &text, &read("alice short\n")).unwrap_err();
    assert!(err.0[0].message.contains("16 characters"), "{err}");
    assert_eq!(
        (err.0[0].line, err.0[0].file.as_path()),
        (1, Path::new("cfg/tokens"))
    );
    let err = validate(Path::new("cfg/t.toml"), &text, &read("# nobody\n")).unwrap_err();
    assert!(err.to_string().contains("holds no tokens"), "{err}");
}

#[test]
fn external_checks_take_staleness_settings_only() {
    let c = run("[[check]]\nname = \"e\"\nkind = \"external\"\n").unwrap();
    assert_eq!(
        c.checks[0].probe,
        ProbeSpec::External {
            stale_after: std::time::Duration::from_secs(120),
            on_stale: OnStale::Unhealthy
        }
    );
    assert_eq!(
        (c.checks[0].timing.fall, c.checks[0].timing.rise),
        (1, 1),
        "one report moves it"
    );
    fails(
        "[[check]]\nname = \"e\"\nkind = \"external\"\non_stale = \"maybe\"\n",
        "on_stale \"maybe\" is not known",
        7,
    );
    fails(
        "[[check]]\nname = \"e\"\nkind = \"external\"\ninterval = \"1s\"\n",
        "`interval` does not apply to external checks",
        7,
    );
    fails(
        "[[check]]\nname = \"t\"\nkind = \"tcp\"\naddress = \"h:1\"\nstale_after = \"1s\"\n",
        "`stale_after` does not apply to tcp checks",
        8,
    );
}

#[test]
fn webhooks_need_http_urls_and_readable_secrets() {
    let text =
        format!("{HEAD}[[webhook]]\nurl = \"https://hooks.example.net/x\"\nsecret_file = \"s\"\n");
    let c = validate(Path::new("cfg/t.toml"), &text, &|p: &Path| {
        Ok(if p.ends_with("s") {
            " k3y \n".into()
        } else {
            ZONE.into()
        })
    })
    .unwrap();
    assert_eq!(c.webhooks[0].secret.as_deref(), Some("k3y"));
    assert!(!format!("{:?}", c.webhooks).contains("k3y"));
    fails(
        "[[webhook]]\nurl = \"ftp://x/\"\n",
        "is not an http(s) URL",
        5,
    );
}

const KEY: &str = "[[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\nsecret = \"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\"\n";

#[test]
fn replication_settings_are_read() {
    let c = run(&format!(
        "serial = \"dateserial\"\nallow_transfer = [{{ from = [\"10.0.0.0/8\", \"192.0.2.7\"] }}, {{ key = \"xfr\" }}]\n\
         notify = [{{ address = \"192.0.2.53:53\", key = \"xfr\" }}]\n\n{KEY}\n\
         [[zone]]\norigin = \"other.org\"\nprimaries = [{{ address = \"192.0.2.1:53\", key = \"xfr\" }}]\n"
    ))
    .unwrap();
    let xfr = Name::from_ascii("xfr.").unwrap();
    let p = &c.zones[0].policy;
    assert_eq!(p.serial, crate::serial::SerialScheme::DateSerial);
    assert_eq!(p.allow_transfer.len(), 2);
    assert_eq!(p.allow_transfer[0].from[1], "192.0.2.7/32".parse().unwrap());
    assert_eq!(p.allow_transfer[1].key.as_ref(), Some(&xfr));
    assert_eq!(p.notify[0].addr, "192.0.2.53:53".parse().unwrap());
    assert_eq!(c.keys[0].secret, b"secretsecretsecretsecret");
    let s = &c.secondaries[0];
    assert_eq!(s.origin, Name::from_ascii("other.org.").unwrap());
    assert_eq!(s.primaries[0].key.as_ref(), Some(&xfr));
    // NOTIFY is accepted from the primaries unless said otherwise.
    assert_eq!(
        s.policy.allow_notify[0].from[0],
        "192.0.2.1/32".parse().unwrap()
    );
    assert!(
        format!("{:?}", c.keys).contains("<secret>"),
        "secrets stay out of Debug"
    );
}

#[test]
fn replication_mistakes_are_pinned_to_their_line() {
    fails(
        "serial = \"weekly\"\n",
        "serial scheme \"weekly\" is not known",
        4,
    );
    fails(
        "allow_transfer = [{ key = \"nope\" }]\n",
        "TSIG key \"nope\" is not defined",
        4,
    );
    fails(
        "allow_transfer = [{ from = [\"10.0.0.0/33\"] }]\n",
        "neither an IP address nor a network",
        4,
    );
    fails("allow_transfer = [{}]\n", "needs `from`, `key`, or both", 4);
    fails(
        "notify = [{ address = \"192.0.2.1\" }]\n",
        "is not IP:port",
        4,
    );
    fails(
        "allow_notify = [{ from = [\"10.0.0.1\"] }]\n",
        "only applies to secondary zones",
        4,
    );
    fails(
        "\n[[key]]\nname = \"k\"\nalgorithm = \"hmac-md5\"\nsecret = \"c2VjcmV0c2VjcmV0c2VjcmV0\"\n",
        "TSIG algorithm \"hmac-md5\" is not supported",
        7,
    );
    fails(
        "\n[[key]]\nname = \"k\"\nalgorithm = \"hmac-sha256\"\nsecret = \"not base64!\"\n",
        "not base64",
        8,
    );
    fails(
        "\n[[key]]\nname = \"k\"\nalgorithm = \"hmac-sha256\"\nsecret = \"c2hvcnQ=\"\n",
        "shorter than 16 bytes",
        8,
    );
    fails(
        "\n[[zone]]\norigin = \"x.org\"\nfile = \"z.zone\"\nprimaries = [{ address = \"192.0.2.1:53\" }]\n",
        "has both `file` and `primaries`",
        6,
    );
    fails(
        "\n[[zone]]\norigin = \"x.org\"\n",
        "has neither `file` nor `primaries`",
        6,
    );
}

#[test]
fn tsig_keys_come_from_bind_key_files_with_their_line_in_errors() {
    let text = "[[key]]\nfile = \"keys/xfr.key\"\n\n[[zone]]\norigin = \"example.com\"\nfile = \"z.zone\"\n";
    let read = |key: &'static str| {
        move |p: &Path| -> std::io::Result<String> {
            Ok(if p.ends_with("xfr.key") { key } else { ZONE }.to_string())
        }
    };
    let good = "key \"xfr\" {\n\talgorithm hmac-sha512;\n\tsecret \"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\";\n};\n";
    let c = validate(Path::new("cfg/t.toml"), text, &read(good)).unwrap();
    assert_eq!(c.keys[0].name, Name::from_ascii("xfr.").unwrap());
    let bad = "key \"xfr\" {\n\talgorithm hmac-sha256;\n\tsecret \"###\";\n};\n";
    let err = validate(Path::new("cfg/t.toml"), text, &read(bad)).unwrap_err();
    let p = &err.0[0];
    assert_eq!(p.file, Path::new("cfg/keys/xfr.key"));
    assert!(p.message.contains("not base64"), "{err}");
}

#[test]
fn an_alias_cannot_live_in_a_secondary_zone() {
    let body = format!(
        "\n[[zone]]\norigin = \"other.org\"\nprimaries = [{{ address = \"192.0.2.1:53\" }}]\n\n{}",
        "[[alias]]\nname = \"desktop.other.org\"\ntargets = [{ region = \"r1\", connection_id = \"ABC\" }]\n"
    );
    let err = run(&body).unwrap_err();
    assert!(err.to_string().contains("secondary zone"), "{err}");
}

#[test]
fn servfail_in_a_transferred_zone_is_warned_about() {
    let body = format!(
        "allow_transfer = [{{ from = [\"10.0.0.0/8\"] }}]\n\n{}",
        "[[alias]]\nname = \"desktop.example.com\"\nall_down = \"servfail\"\ntargets = [{ region = \"r1\", connection_id = \"ABC\" }]\n"
    );
    let c = run(&body).unwrap();
    assert!(
        c.warnings
            .iter()
            .any(|w| w.message.contains("cannot travel by zone transfer") && w.line == 8),
        "{:?}",
        c.warnings
    );
}

#[test]
fn a_bad_primary_address_is_reported_once() {
    let err = run("\n[[zone]]\norigin = \"x.org\"\nprimaries = [{ address = \"192.0.2.1\" }]\n")
        .unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert!(err.0[0].message.contains("primaries address"), "{err}");
}

#[test]
fn rrl_is_on_by_default_and_its_settings_are_checked() {
    let c = run(&alias("{ region = \"r1\", connection_id = \"ABC\" }")).unwrap();
    assert_eq!(c.rrl, RrlConfig::default());
    assert_eq!(c.rrl.responses_per_second, 200);
    assert_eq!(
        (c.rrl.slip, c.rrl.ipv4_prefix, c.rrl.ipv6_prefix),
        (2, 24, 56)
    );
    let c = run("[rrl]\nresponses_per_second = 0\nslip = 1\nexempt = [\"10.1.2.3/8\", \"::1\"]\n")
        .unwrap();
    assert_eq!(c.rrl.responses_per_second, 0);
    assert_eq!(
        c.rrl.exempt,
        vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]
    );
    fails("[rrl]\nslip = 101\n", "`slip` = 101 is out of range", 5);
    fails(
        "[rrl]\nresponses_per_second = -1\n",
        "`responses_per_second` = -1 is out of range",
        5,
    );
    fails("[rrl]\nipv4_prefix = 33\n", "`ipv4_prefix` = 33", 5);
    fails("[rrl]\nipv6_prefix = 0\n", "`ipv6_prefix` = 0", 5);
    fails(
        "[rrl]\nexempt = [\"10.0.0.0/33\"]\n",
        "\"10.0.0.0/33\" is neither an IP address nor a network",
        5,
    );
    fails("[rrl]\nrate = 5\n", "unknown field `rate`", 5);
}

#[test]
fn identity_texts_are_bounded() {
    let c = run("[server]\nnsid = \"ns1\"\nidentity = \"pdx-1\"\nversion = \"v\"\n").unwrap();
    assert_eq!(c.server.nsid.as_deref(), Some("ns1"));
    assert_eq!(c.server.identity.as_deref(), Some("pdx-1"));
    assert_eq!(c.server.version.as_deref(), Some("v"));
    assert!(c.server.cookie_secret.is_none());
    fails(
        "[server]\nidentity = \"\"\n",
        "`identity` must be 1 to 255 bytes",
        5,
    );
    let long = "x".repeat(256);
    fails(
        &format!("[server]\nnsid = \"{long}\"\n"),
        "`nsid` must be 1 to 255 bytes long (it is 256)",
        5,
    );
}

#[test]
fn cookie_secret_file_holds_sixteen_bytes_in_hex() {
    let with = |secret: &'static str| {
        let text = format!("[server]\ncookie_secret_file = \"cookie.secret\"\n{HEAD}");
        validate(Path::new("cfg/t.toml"), &text, &move |p: &Path| {
            if p == Path::new("cfg/cookie.secret") {
                Ok(secret.to_string())
            } else if p == Path::new("cfg/missing") {
                Err(std::io::Error::from(std::io::ErrorKind::NotFound))
            } else {
                Ok(ZONE.to_string())
            }
        })
    };
    let c = with("000102030405060708090a0b0c0d0e0f\n").unwrap();
    let want: [u8; 16] = std::array::from_fn(|i| i as u8);
    assert_eq!(c.server.cookie_secret, Some(CookieSecret::new(want)));
    for bad in [
        "0001",
        "zz0102030405060708090a0b0c0d0e0f",
        "000102030405060708090a0b0c0d0e0f00",
    ] {
        let err = with(bad).expect_err(bad);
        let p = &err.0[0];
        assert!(p.message.contains("does not hold 32 hex digits"), "{err}");
        assert_eq!(p.line, 2);
        assert!(
            p.hint
                .as_deref()
                .unwrap_or("")
                .contains("openssl rand -hex 16")
        );
    }
}

#[test]
fn watching_the_secondaries_has_defaults_and_bounds() {
    let one = alias("{ region = \"r1\", connection_id = \"ABC\" }");
    let c = run(&one).unwrap();
    assert_eq!(c.server.secondary_check_interval, Duration::from_secs(60));
    assert_eq!(c.server.secondary_lag_warn, Duration::from_secs(120));
    let c = run(&format!(
        "[server]\nsecondary_check_interval = \"5s\"\nsecondary_lag_warn = \"30s\"\n{one}"
    ))
    .unwrap();
    assert_eq!(c.server.secondary_check_interval, Duration::from_secs(5));
    assert_eq!(c.server.secondary_lag_warn, Duration::from_secs(30));
    fails(
        "[server]\nsecondary_check_interval = \"100ms\"\n",
        "`secondary_check_interval` must be between 1s and 1h",
        5,
    );
    fails(
        "[server]\nsecondary_lag_warn = \"2days\"\n",
        "`secondary_lag_warn` must be between 1s and 1day",
        5,
    );
}

#[test]
fn tcp_limits_have_defaults_and_bounds() {
    let one = alias("{ region = \"r1\", connection_id = \"ABC\" }");
    let c = run(&one).unwrap();
    assert_eq!(c.server.tcp_idle_timeout, Duration::from_secs(10));
    assert_eq!(c.server.tcp_max_connections, None);
    assert_eq!(c.server.tcp_max_per_source, 16);
    assert_eq!(c.server.tcp_max_queries_per_connection, 1000);
    assert_eq!(
        c.server.tcp_max_connection_lifetime,
        Duration::from_secs(120)
    );
    let c = run(&format!(
        "[server]\ntcp_max_connections = 100\ntcp_max_per_source = 4\n\
         tcp_max_queries_per_connection = 7\ntcp_max_connection_lifetime = \"30s\"\n{one}"
    ))
    .unwrap();
    assert_eq!(c.server.tcp_max_connections, Some(100));
    assert_eq!(c.server.tcp_max_per_source, 4);
    assert_eq!(c.server.tcp_max_queries_per_connection, 7);
    assert_eq!(
        c.server.tcp_max_connection_lifetime,
        Duration::from_secs(30)
    );
    fails(
        "[server]\ntcp_max_connections = 0\n",
        "`tcp_max_connections` must be between 1 and 1048576",
        5,
    );
    fails(
        "[server]\ntcp_max_per_source = -3\n",
        "`tcp_max_per_source` must be between 1",
        5,
    );
    fails(
        "[server]\ntcp_max_connections = 10\ntcp_max_per_source = 20\n",
        "larger than `tcp_max_connections`",
        6,
    );
    fails(
        "[server]\ntcp_max_queries_per_connection = 2000000\n",
        "`tcp_max_queries_per_connection` must be between 1 and 1000000",
        5,
    );
    fails(
        "[server]\ntcp_max_connection_lifetime = \"500ms\"\n",
        "`tcp_max_connection_lifetime` must be between 1s and 1day",
        5,
    );
    fails(
        "[server]\ntcp_idle_timeout = \"580000000000y\"\n",
        "`tcp_idle_timeout`",
        5,
    );
}

#[test]
fn shipped_probe_defaults() {
    let d = Timing::default();
    assert_eq!(
        (d.interval, d.timeout, d.fall, d.rise, d.attempts),
        (Duration::from_secs(5), Duration::from_secs(2), 5, 2, 2)
    );
    assert!(
        d.timeout * d.attempts <= d.interval,
        "a default round fits its interval"
    );
}

#[test]
fn attempts_are_bounded_and_a_round_fits_the_interval() {
    fails(
        &format!("{CHECK}attempts = 0\n"),
        "`attempts` = 0 is out of range (1 to 10)",
        8,
    );
    fails(
        &format!("{CHECK}attempts = 11\n"),
        "`attempts` = 11 is out of range (1 to 10)",
        8,
    );
    fails(
        &format!("{CHECK}interval = \"5s\"\ntimeout = \"2s\"\nattempts = 3\n"),
        "a round of 3 attempts can last 3 × timeout (2s), longer than the interval (5s)",
        10,
    );
    // Without `attempts` the error points at the timeout that is too long.
    fails(
        &format!("{CHECK}interval = \"1s\"\ntimeout = \"600ms\"\n"),
        "a round of 2 attempts",
        9,
    );
    let ok = |body: &str| {
        run(&format!(
            "{CHECK}{body}{}",
            alias("{ region = \"r1\", connection_id = \"ABC\", checks = [\"pdx\"] }")
        ))
        .unwrap()
        .checks[0]
            .timing
    };
    let t = ok("interval = \"1s\"\ntimeout = \"500ms\"\n");
    assert_eq!((t.attempts, t.timeout), (2, Duration::from_millis(500)));
    let t = ok("interval = \"1s\"\nattempts = 4\n");
    assert_eq!(
        t.timeout,
        Duration::from_millis(250),
        "an unset timeout shrinks so the round fits"
    );
    assert_eq!(ok("attempts = 1\ntimeout = \"4s\"\n").attempts, 1);
}

#[test]
fn derived_checks_make_one_attempt_and_refuse_the_key() {
    let c = run(
        "[[check]]\nname = \"e\"\nkind = \"external\"\n[[check]]\nname = \"x\"\nkind = \"any\"\nchecks = [\"e\"]\n",
    )
    .unwrap();
    assert_eq!(
        (c.checks[0].timing.attempts, c.checks[1].timing.attempts),
        (1, 1)
    );
    fails(
        "[[check]]\nname = \"e\"\nkind = \"external\"\nattempts = 2\n",
        "`attempts` does not apply to external checks",
        7,
    );
    fails(
        "[[check]]\nname = \"e\"\nkind = \"external\"\n[[check]]\nname = \"x\"\nkind = \"all\"\nchecks = [\"e\"]\nattempts = 2\n",
        "`attempts` does not apply to all checks",
        11,
    );
}

#[test]
fn canaries_are_probed_checks_that_need_no_alias() {
    let c = run(&format!(
        "{CHECK}[[check]]\nname = \"aws\"\nkind = \"tcp\"\naddress = \"h:443\"\ncanary = true\n\
         [[check]]\nname = \"e\"\nkind = \"external\"\ncanary = true\n{}",
        alias("{ region = \"us-west-2\", connection_id = \"ABC\", checks = [\"pdx\"] }")
    ))
    .unwrap();
    assert!(!c.checks[0].canary);
    assert!(c.checks[1..].iter().all(|c| c.canary));
    assert!(
        c.warnings.is_empty(),
        "an unused canary is not warned about: {:?}",
        c.warnings
    );
    let c = run(&format!("{CHECK}canary = false\n")).unwrap();
    assert!(!c.checks[0].canary);
    assert_eq!(c.warnings.len(), 1, "an unused plain check still warns");
    fails(
        &format!(
            "{CHECK}[[check]]\nname = \"both\"\nkind = \"any\"\nchecks = [\"pdx\"]\ncanary = true\n"
        ),
        "any check \"both\" cannot be a canary",
        12,
    );
}

#[test]
fn a_canary_under_a_target_is_refused() {
    // Directly, and as a member of the target's composite.
    fails(
        &format!(
            "{CHECK}canary = true\n{}",
            alias("{ region = \"r1\", connection_id = \"ABC\", checks = [\"pdx\"] }")
        ),
        "check \"pdx\" is a canary, but a target depends on it",
        4,
    );
    fails(
        &format!(
            "{CHECK}canary = true\n[[check]]\nname = \"r\"\nkind = \"any\"\nchecks = [\"pdx\"]\n{}",
            alias("{ region = \"r1\", connection_id = \"ABC\", checks = [\"r\"] }")
        ),
        "check \"pdx\" is a canary, but a target depends on it",
        4,
    );
}

#[test]
fn failback_backoff_settings() {
    let targets = "targets = [{ region = \"r\", connection_id = \"A\" }]\n";
    let policy = |body: &str| {
        run(&format!(
            "[[alias]]\nname = \"desktop.example.com\"\n{body}{targets}"
        ))
        .unwrap()
        .aliases[0]
            .policy
    };
    let p = policy("");
    assert_eq!(
        (p.failback_after, p.failback_after_max, p.failback_reset),
        (
            Duration::from_secs(600),
            Duration::from_secs(16 * 600),
            Duration::from_secs(3600)
        )
    );
    let p = policy("failback_after = \"10s\"\n");
    assert_eq!(
        p.failback_after_max,
        Duration::from_secs(160),
        "16 × this alias's failback_after"
    );
    let p = policy("failback_after = \"0s\"\n");
    assert_eq!(p.failback_after_max, Duration::ZERO);
    let p = policy("failback_after_max = \"10m\"\nfailback_reset = \"6h\"\n");
    assert_eq!(
        (p.failback_after_max, p.failback_reset),
        (Duration::from_secs(600), Duration::from_secs(6 * 3600))
    );
    let p = policy("failback_after = \"300d\"\n");
    assert_eq!(
        p.failback_after_max, MAX_DURATION,
        "the default stays bounded"
    );
    fails(
        &format!(
            "[[alias]]\nname = \"desktop.example.com\"\nfailback_after = \"5m\"\nfailback_after_max = \"1m\"\n{targets}"
        ),
        "failback_after_max (1m) is shorter than failback_after (5m)",
        7,
    );
    fails(
        &format!("[[alias]]\nname = \"desktop.example.com\"\nfailback_reset = \"367d\"\n{targets}"),
        "`failback_reset` = \"367d\" is longer than the longest duration accepted",
        6,
    );
    fails(
        &format!(
            "[[alias]]\nname = \"desktop.example.com\"\nfailback_after_max = \"soon\"\n{targets}"
        ),
        "`failback_after_max` = \"soon\" is not a duration",
        6,
    );
}

/// The warnings on the config's `line`, and no errors.
fn warnings_on(body: &str, line: usize) -> Vec<String> {
    let c = run(body).unwrap();
    c.warnings
        .iter()
        .filter(|w| w.line == line)
        .map(|w| w.message.clone())
        .collect()
}

#[test]
fn a_command_check_whose_program_is_missing_warns() {
    let check = |program: &str| {
        warnings_on(
            &format!(
                "[[check]]\nname = \"c\"\nkind = \"command\"\ncommand = [\"{program}\", \"x\"]\n"
            ),
            7,
        )
    };
    let missing = check("/nonexistent/txtfailover-probe");
    assert!(missing[0].contains("is not found;"), "{missing:?}");
    let missing = check("txtfailover-no-such-program");
    assert!(missing[0].contains("is not found on PATH"), "{missing:?}");
    assert!(check("sh").is_empty(), "found on PATH");
    assert!(check("/bin/sh").is_empty(), "an absolute path that exists");
}

#[test]
fn head_with_expect_body_warns() {
    let body = "[[check]]\nname = \"pdx\"\nkind = \"https\"\nurl = \"https://example.net/ping\"\n\
                method = \"head\"\nexpect_body = \"ok\"\n";
    let w = warnings_on(body, 9);
    assert!(w[0].contains("a HEAD response has no body"), "{w:?}");
    assert!(warnings_on(&body.replace("head", "GET"), 9).is_empty());
}

#[test]
fn a_region_without_workspaces_warns() {
    let body = alias(
        "{ region = \"us-west-2\", connection_id = \"A\" }, { region = \"us-wst-1\", connection_id = \"B\" }",
    );
    let c = run(&body).unwrap();
    let regions: Vec<&str> = c
        .warnings
        .iter()
        .filter(|w| w.message.contains("is not a Region where WorkSpaces runs"))
        .map(|w| w.message.as_str())
        .collect();
    assert_eq!(regions.len(), 1, "{:?}", c.warnings);
    assert!(regions[0].contains("\"us-wst-1\""), "{regions:?}");
    assert_eq!(c.aliases[0].targets[1].region, "us-wst-1", "still served");
}

#[test]
fn query_source_gives_each_peer_the_address_of_its_family() {
    let c = run(
        "notify = [{ address = \"192.0.2.53:53\" }, { address = \"[2001:db8::53]:53\" }]\n\
         \n[[zone]]\norigin = \"other.org\"\nprimaries = [{ address = \"192.0.2.1:53\" }]\n\
         \n[server]\nquery_source = [\"198.51.100.7\", \"2001:db8::7\"]\n",
    )
    .unwrap();
    let notify = &c.zones[0].policy.notify;
    assert_eq!(notify[0].source, Some("198.51.100.7".parse().unwrap()));
    assert_eq!(notify[1].source, Some("2001:db8::7".parse().unwrap()));
    assert_eq!(
        c.secondaries[0].primaries[0].source,
        Some("198.51.100.7".parse().unwrap())
    );
    // A family not given is left to the kernel.
    let c = run("notify = [{ address = \"[2001:db8::53]:53\" }]\n\n[server]\nquery_source = [\"127.0.0.2\"]\n")
        .unwrap();
    assert_eq!(c.zones[0].policy.notify[0].source, None);
}

#[test]
fn query_source_mistakes_are_pinned_to_their_line() {
    let server = |list: &str| format!("\n[server]\nquery_source = [\n{list}\n]\n");
    fails(&server("\"192.0.2.1:53\""), "is not an IP address", 7);
    fails(&server("\"0.0.0.0\""), "cannot be a source address", 7);
    fails(
        &server("\"::ffff:127.0.0.2\""),
        "is an IPv4 address written as IPv6",
        7,
    );
    fails(&server("\"fe80::1\""), "is link-local", 7);
    fails(
        &server("\"192.0.2.1\",\n\"192.0.2.2\""),
        "a second IPv4 address, 192.0.2.2",
        8,
    );
}

const ALARM: &str = "[[check]]\nname = \"pdx-alarm\"\nkind = \"cloudwatch_alarm\"\n";

#[test]
fn alarm_checks_have_their_own_defaults_and_fields() {
    let c = run(&format!(
        "{ALARM}alarm_name = \"ws-pdx\"\nregion = \"us-west-2\"\naccount = \"123456789012\"\n\
         endpoint_url = \"https://vpce-1.monitoring.us-west-2.vpce.amazonaws.com\"\n"
    ))
    .unwrap();
    assert_eq!(c.checks[0].timing, ALARM_TIMING);
    let ProbeSpec::CloudWatchAlarm(a) = &c.checks[0].probe else {
        panic!("{:?}", c.checks[0].probe)
    };
    assert_eq!(a.alarm_name, "ws-pdx");
    assert_eq!(a.account.as_deref(), Some("123456789012"));
    assert_eq!(a.on_insufficient_data, OnInsufficientData::Last);
    assert!(a.endpoint_url.is_some());
}

#[test]
fn alarm_check_mistakes_are_pinned_to_their_line() {
    // No region: the check could never work, so the config is refused.
    fails(
        &format!("{ALARM}alarm_name = \"a\"\n"),
        "has no `region`",
        5,
    );
    fails(
        &format!("{ALARM}region = \"us-west-2\"\n"),
        "has no `alarm_name`",
        5,
    );
    fails(
        &format!("{ALARM}alarm_name = \"a\"\nregion = \"US West\"\n"),
        "is not an AWS Region name",
        8,
    );
    fails(
        &format!("{ALARM}alarm_name = \"a\"\nregion = \"us-west-2\"\naccount = \"12\"\n"),
        "is not an AWS account id",
        9,
    );
    fails(
        &format!(
            "{ALARM}alarm_name = \"a\"\nregion = \"us-west-2\"\non_insufficient_data = \"maybe\"\n"
        ),
        "on_insufficient_data",
        9,
    );
    fails(
        &format!("{ALARM}alarm_name = \"a\"\nregion = \"us-west-2\"\nurl = \"https://x\"\n"),
        "`url` does not apply to cloudwatch_alarm checks",
        9,
    );
    fails(
        &format!("{CHECK}alarm_name = \"a\"\n"),
        "`alarm_name` does not apply to https checks",
        8,
    );
}
