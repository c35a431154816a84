//! The README's deployment guides, run as written on one host: every server
//! of a guide gets its own loopback address (127.0.0.2, 127.0.0.3 …) in
//! place of its documented one, all on one port. Only what cannot be the
//! same on a test host changes: addresses and port, state and run
//! directories, the probed URL (a local endpoint) and an admin port each.
//! The peers' access rules name addresses, so a server that sent from the
//! host's default address (127.0.0.1) would be refused: these tests are
//! what shows that the guides' source addresses are right.

mod support;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::rr::{RData, RecordType};
use support::*;

/// The README block called `name`.
fn block(name: &str) -> String {
    named_blocks()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("README.md lost its {name} block"))
        .1
}

/// One documented address and the loopback address standing in for it.
type Host = (&'static str, &'static str);

/// `text` with each documented address replaced, ports first (`:53` in
/// txtfailover's files, `@53` in Knot's and NSD's).
fn relocate(text: &str, hosts: &[Host], port: u16) -> String {
    let mut out = text.to_string();
    for (doc, local) in hosts {
        out = out
            .replace(&format!("{doc}:53"), &format!("{local}:{port}"))
            .replace(&format!("{doc}@53"), &format!("{local}@{port}"));
    }
    for (doc, local) in hosts {
        out = out.replace(doc, local);
    }
    out
}

/// A port free on every address the guide uses.
fn port_for(addresses: &[&str]) -> u16 {
    loop {
        let port = free_port();
        let free = addresses.iter().all(|a| {
            let at = SocketAddr::new(a.parse().unwrap(), port);
            UdpSocket::bind(at).is_ok() && std::net::TcpListener::bind(at).is_ok()
        });
        if free {
            return port;
        }
    }
}

/// A server process of the guide, killed when dropped.
struct Process {
    child: Child,
    name: &'static str,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    fn spawn(
        name: &'static str,
        program: &str,
        args: &[&str],
        dir: &Path,
        addr: SocketAddr,
    ) -> Process {
        // Daemons live in /usr/sbin, which not every PATH has.
        let sbin = Path::new("/usr/sbin").join(program);
        let path = if sbin.exists() {
            sbin
        } else {
            PathBuf::from(program)
        };
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(&path)
            .args(args)
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program} ({e}); .ci/run installs it"));
        Process {
            child,
            name,
            addr,
            log,
        }
    }

    fn log_text(&self) -> String {
        format!(
            "--- {} log:\n{}",
            self.name,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }

    /// The TXT `name` answers here ("" for none).
    fn txt(&self, name: &str) -> String {
        query_udp_timeout(
            self.addr,
            &plain_query(name, RecordType::TXT),
            Duration::from_millis(500),
        )
        .map(|m| txt_of(&m).join(" "))
        .unwrap_or_default()
    }

    /// The zone's serial here, if it answers one.
    fn serial(&self, zone: &str) -> Option<u32> {
        let m = query_udp_timeout(
            self.addr,
            &plain_query(zone, RecordType::SOA),
            Duration::from_millis(500),
        )?;
        m.answers.iter().find_map(|r| match &r.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        })
    }

    /// Polls until `name` answers `want` here.
    fn wait_txt(&mut self, name: &str, want: &str, others: &[&Process]) {
        let start = Instant::now();
        loop {
            let got = self.txt(name);
            if got == want {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status})\n{}", self.name, self.log_text());
            }
            if start.elapsed() > DEADLINE {
                let logs: Vec<String> = others.iter().map(|p| p.log_text()).collect();
                panic!(
                    "{} answers {got:?} for {name}, want {want}\n{}\n{}",
                    self.name,
                    self.log_text(),
                    logs.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Writes the guide's txtfailover config `name` into `dir`, relocated, with
/// a local state directory, `url` probed over HTTP, and an admin API of its
/// own at `admin` with TOKEN.
fn txtfailover_config(
    dir: &Path,
    name: &str,
    hosts: &[Host],
    port: u16,
    url: &str,
    admin: SocketAddr,
) -> PathBuf {
    let text = relocate(&block(name), hosts, port)
        .replace(
            "state_dir = \"/var/lib/txtfailover\"",
            "state_dir = \"state\"",
        )
        .replace("kind = \"https\"", "kind = \"http\"");
    let text: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("url = ") {
                format!("url = \"{url}\"")
            } else {
                l.to_string()
            }
        })
        .collect();
    let text = format!(
        "{}\n[admin]\nlisten = \"{admin}\"\ntoken_file = \"tokens\"\n",
        text.join("\n")
    );
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    std::fs::create_dir_all(dir.join("zones")).unwrap();
    std::fs::write(dir.join("keys/xfr.key"), block("keys/xfr.key")).unwrap();
    std::fs::write(dir.join("tokens"), format!("ops {TOKEN}\n")).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn serve(name: &'static str, dir: &Path, config: &Path, addr: SocketAddr) -> Process {
    Process::spawn(
        name,
        bin(),
        &["serve", "--config", config.to_str().unwrap()],
        dir,
        addr,
    )
}

/// Moves the alias to us-east-1 the way an operator would.
fn pin_to_iad(admin: SocketAddr, dir: &Path, alias: &str) {
    let url = format!("http://{admin}");
    let (ok, out, err) = cli(&[
        "override",
        "set",
        alias,
        "us-east-1",
        "--reason",
        "guide test",
        "--admin",
        &url,
        "--token-file",
        dir.join("tokens").to_str().unwrap(),
    ]);
    assert!(ok, "override failed: {out}{err}");
}

fn admin_on(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse::<IpAddr>().unwrap(), free_port())
}

const PDX: &str = "PDXexampleConnId0001";
const IAD: &str = "IADexampleConnId0001";

#[test]
fn guide_a_primary_and_secondary_on_their_own_addresses() {
    let hosts: &[Host] = &[("10.0.0.53", "127.0.0.2"), ("10.0.1.53", "127.0.0.3")];
    let port = port_for(&["127.0.0.2", "127.0.0.3"]);
    let endpoint = Endpoint::start("healthy");
    let root = tempfile::tempdir().unwrap();
    let (pdir, sdir) = (root.path().join("primary"), root.path().join("secondary"));
    let admin = admin_on("127.0.0.2");
    let pconf = txtfailover_config(&pdir, "primary.toml", hosts, port, &endpoint.url(), admin);
    std::fs::write(
        pdir.join("zones/example.com.zone"),
        relocate(&block("zones/example.com.zone"), hosts, port),
    )
    .unwrap();
    let sconf = txtfailover_config(
        &sdir,
        "secondary.toml",
        hosts,
        port,
        &endpoint.url(),
        admin_on("127.0.0.3"),
    );

    let mut primary = serve(
        "primary",
        &pdir,
        &pconf,
        SocketAddr::new([127, 0, 0, 2].into(), port),
    );
    primary.wait_txt("desktop.example.com", PDX, &[]);
    let mut secondary = serve(
        "secondary",
        &sdir,
        &sconf,
        SocketAddr::new([127, 0, 0, 3].into(), port),
    );
    // The secondary's first transfer, allowed only from 10.0.1.53's stand-in.
    secondary.wait_txt("desktop.example.com", PDX, &[&primary]);

    pin_to_iad(admin, &pdir, "desktop.example.com");
    primary.wait_txt("desktop.example.com", IAD, &[]);
    // Carried by NOTIFY (the SOA refresh is an hour away), accepted only
    // from 10.0.0.53's stand-in.
    secondary.wait_txt("desktop.example.com", IAD, &[&primary]);
    // The guide's own check: the same serial on both.
    assert_eq!(
        primary.serial("example.com"),
        secondary.serial("example.com")
    );
    let log = primary.log_text();
    assert!(log.contains("NOTIFY acknowledged"), "{log}");
    assert!(!log.contains("refused"), "{log}");
}

/// The guide's Knot or NSD config, relocated, with what a process run by a
/// test needs: its listen address and port, local directories, logs on
/// stderr, no privileges to drop.
fn peer_config(name: &str, hosts: &[Host], port: u16, ip: &str, dir: &Path) -> String {
    let d = dir.display();
    let text = relocate(&block(name), hosts, port);
    let mut out = Vec::new();
    for line in text.lines() {
        match (name, line.trim()) {
            ("knot.conf", l) if l.starts_with("listen:") => {
                out.push(format!("    listen: {ip}@{port}"));
                out.push(format!("    rundir: {d}"));
            }
            ("knot.conf", "zone:") => {
                out.push(format!(
                    "log:\n  - target: stderr\n    any: info\n\
                     database:\n    storage: {d}\n\
                     template:\n  - id: default\n    storage: {d}\n    zonefile-sync: -1\n    \
                     zonefile-load: none\n    journal-content: none"
                ));
                out.push(line.to_string());
            }
            ("nsd.conf", "ip-address: ::0") => {}
            ("nsd.conf", l) if l.starts_with("ip-address:") => {
                out.push(format!("    ip-address: {ip}@{port}"));
                out.push(format!(
                    "    username: \"\"\n    chroot: \"\"\n    database: \"\"\n    zonesdir: \"{d}\"\n    \
                     zonelistfile: \"{d}/zone.list\"\n    xfrdfile: \"{d}/xfrd.state\"\n    xfrdir: \"{d}\"\n    \
                     pidfile: \"{d}/nsd.pid\"\n    verbosity: 2"
                ));
            }
            ("nsd.conf", "key:") => {
                out.push("remote-control:\n    control-enable: no".to_string());
                out.push(line.to_string());
            }
            _ => out.push(line.to_string()),
        }
    }
    out.join("\n") + "\n"
}

#[test]
fn guide_b_hidden_primary_with_knot_and_nsd_on_their_own_addresses() {
    let hosts: &[Host] = &[
        ("203.0.113.10", "127.0.0.4"),
        ("192.0.2.53", "127.0.0.5"),
        ("198.51.100.53", "127.0.0.6"),
    ];
    let port = port_for(&["127.0.0.4", "127.0.0.5", "127.0.0.6"]);
    let endpoint = Endpoint::start("healthy");
    let root = tempfile::tempdir().unwrap();
    let pdir = root.path().join("primary");
    let admin = admin_on("127.0.0.4");
    let pconf = txtfailover_config(
        &pdir,
        "hidden-primary.toml",
        hosts,
        port,
        &endpoint.url(),
        admin,
    );
    std::fs::write(
        pdir.join("zones/ws.example.com.zone"),
        relocate(&block("zones/ws.example.com.zone"), hosts, port),
    )
    .unwrap();
    let mut primary = serve(
        "hidden primary",
        &pdir,
        &pconf,
        SocketAddr::new([127, 0, 0, 4].into(), port),
    );
    primary.wait_txt("desktop.ws.example.com", PDX, &[]);

    let mut peers = Vec::new();
    for (name, program, ip, last) in [
        ("knot.conf", "knotd", "127.0.0.5", 5u8),
        ("nsd.conf", "nsd", "127.0.0.6", 6u8),
    ] {
        let dir = root.path().join(program);
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join(name);
        std::fs::write(&conf, peer_config(name, hosts, port, ip, &dir)).unwrap();
        let conf = conf.to_str().unwrap().to_string();
        let args: Vec<&str> = match program {
            "knotd" => vec!["-c", &conf],
            _ => vec!["-d", "-c", &conf],
        };
        let addr = SocketAddr::new([127, 0, 0, last].into(), port);
        let label = if program == "knotd" { "knot" } else { "nsd" };
        peers.push(Process::spawn(label, program, &args, &dir, addr));
    }
    // First transfers: allowed only from the secondaries' stand-ins.
    for peer in &mut peers {
        peer.wait_txt("desktop.ws.example.com", PDX, &[&primary]);
    }
    pin_to_iad(admin, &pdir, "desktop.ws.example.com");
    primary.wait_txt("desktop.ws.example.com", IAD, &[]);
    // Carried by NOTIFY, accepted only from the hidden primary's stand-in.
    for peer in &mut peers {
        peer.wait_txt("desktop.ws.example.com", IAD, &[&primary]);
    }
    let serial = primary.serial("ws.example.com");
    for peer in &peers {
        assert_eq!(peer.serial("ws.example.com"), serial, "{}", peer.log_text());
    }
    let log = primary.log_text();
    assert!(!log.contains("refused"), "{log}");
}
