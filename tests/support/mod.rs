//! Test support: the real binary on loopback, local HTTP endpoints that can
//! be switched to fail, and a small DNS client.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

pub const DEADLINE: Duration = Duration::from_secs(15);
/// The admin token `Server::start_with_token` configures.
pub const TOKEN: &str = "0123456789abcdef0123";

/// A local HTTP endpoint answering every request with a status it can change.
pub struct Endpoint {
    pub addr: SocketAddr,
    status: Arc<AtomicU16>,
}

impl Endpoint {
    pub fn start(body: &'static str) -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let status = Arc::new(AtomicU16::new(200));
        let s = status.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let code = s.load(Ordering::SeqCst);
                std::thread::spawn(move || {
                    conn.set_read_timeout(Some(Duration::from_secs(2))).ok();
                    if read_head(&mut conn).is_none() {
                        return;
                    }
                    let reply = format!(
                        "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(reply.as_bytes());
                });
            }
        });
        Endpoint { addr, status }
    }

    pub fn set_status(&self, code: u16) {
        self.status.store(code, Ordering::SeqCst);
    }

    pub fn url(&self) -> String {
        format!("http://{}/ping", self.addr)
    }
}

/// A loopback port free for both UDP and TCP right now, from below the
/// kernel's ephemeral range (32768 and up): the many client connections the
/// tests open take their local ports from that range, and one of them
/// holding the port when the server binds it (the DNS port only after the
/// first probe round) made the server exit now and then.
pub fn free_port() -> u16 {
    loop {
        let port = rand::random_range(10_000..32_000);
        if UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
}

pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_txtfailover")
}

/// Runs the binary with `args`: success, stdout, stderr.
pub fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub const ZONE: &str = "$ORIGIN example.com.\n$TTL 3600\n\
@ IN SOA ns1 hostmaster ( 5 7200 3600 1209600 60 )\n\
@ IN NS ns1\n\
ns1 IN A 127.0.0.1\n\
www IN A 192.0.2.10\n";

/// Writes `config` (with `{port}` replaced) and `zone` into `dir`.
pub fn write_config(dir: &Path, port: u16, config: &str, zone: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("zones")).unwrap();
    std::fs::write(dir.join("zones/example.com.zone"), zone).unwrap();
    // The OS may hand out the port just released for DNS: never share it.
    let admin = std::iter::repeat_with(free_port)
        .find(|&p| p != port)
        .unwrap();
    let head = format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\nstate_dir = \"state\"\nudp_workers = 2\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\n\
         [[zone]]\norigin = \"example.com\"\nfile = \"zones/example.com.zone\"\n\n"
    );
    let path = dir.join("txtfailover.toml");
    std::fs::write(&path, head + config).unwrap();
    path
}

impl Server {
    /// Starts `serve` on a config written into `dir` and waits until it answers.
    pub fn start(dir: &Path, config: &str, zone: &str) -> Server {
        let port = free_port();
        let path = write_config(dir, port, config, zone);
        Server::start_with(dir, &path, port)
    }

    /// Like `start`, with `[admin] token_file` holding TOKEN for "alice".
    pub fn start_with_token(dir: &Path, config: &str) -> Server {
        let port = free_port();
        let path = write_config(dir, port, config, ZONE);
        std::fs::write(dir.join("tokens"), format!("# operators\nalice {TOKEN}\n")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replacen("[admin]\n", "[admin]\ntoken_file = \"tokens\"\n", 1);
        std::fs::write(&path, text).unwrap();
        Server::start_with(dir, &path, port)
    }

    pub fn start_with(dir: &Path, config: &Path, port: u16) -> Server {
        Server::launch(dir, config, port, None)
    }

    /// Like `start_with`, with the open-files limit (soft and hard) at
    /// `fd_limit` when given, as a service manager would set it.
    pub fn launch(dir: &Path, config: &Path, port: u16, fd_limit: Option<u32>) -> Server {
        Server::launch_with(dir, config, port, fd_limit, &[], &[])
    }

    /// Like `launch`, with more `serve` arguments and environment variables.
    /// stderr goes to `serve-<port>.log` in `dir` (an existing file keeps
    /// its inode).
    pub fn launch_with(
        dir: &Path,
        config: &Path,
        port: u16,
        fd_limit: Option<u32>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let log = dir.join(format!("serve-{port}.log"));
        let mut command = match fd_limit {
            None => Command::new(bin()),
            Some(limit) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(bin());
                sh
            }
        };
        // The AWS SDK reads its whole configuration from the environment
        // (keys, profiles, the ECS and web-identity endpoints): a test sets
        // what it uses, and the developer's own never reaches the server.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("AWS_") {
                command.env_remove(key);
            }
        }
        let child = command
            .args(["serve", "--config"])
            .arg(config)
            .args(args)
            // The log filter users get by default.
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .env_remove("JOURNAL_STREAM")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir: dir.to_path_buf(),
            log,
        };
        let start = Instant::now();
        loop {
            if query_udp_timeout(
                server.addr,
                &plain_query("example.com.", RecordType::SOA),
                Duration::from_millis(200),
            )
            .is_some()
            {
                return server;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("server exited ({status}); log:\n{}", server.log_text());
            }
            assert!(
                start.elapsed() < DEADLINE,
                "server did not answer in time; log:\n{}",
                server.log_text()
            );
        }
    }

    /// The admin API address written into the config.
    pub fn admin_addr(&self) -> SocketAddr {
        let text = std::fs::read_to_string(self.dir.join("txtfailover.toml")).unwrap();
        let line = text
            .lines()
            .skip_while(|l| *l != "[admin]")
            .find(|l| l.starts_with("listen = "))
            .unwrap();
        line.trim_start_matches("listen = ")
            .trim_matches('"')
            .parse()
            .unwrap()
    }

    /// GET on the admin API: status code and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.admin_addr(), path)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The TXT strings answered for `name`, over UDP.
    pub fn txt(&self, name: &str) -> Vec<String> {
        txt_of(&self.udp(&plain_query(name, RecordType::TXT)))
    }

    pub fn udp(&self, query: &Message) -> Message {
        query_udp(self.addr, query)
    }

    pub fn tcp(&self, query: &Message) -> Message {
        query_tcp(self.addr, query)
    }

    pub fn serial(&self) -> u32 {
        let r = self.udp(&plain_query("example.com.", RecordType::SOA));
        match &r.answers[0].data {
            RData::SOA(soa) => soa.serial,
            other => panic!("not a SOA: {other:?}"),
        }
    }

    /// Polls until `name`'s TXT is `want`; returns how long it took.
    pub fn wait_for_txt(&self, name: &str, want: &str) -> Duration {
        let start = Instant::now();
        loop {
            let got = self.txt(name);
            if got == [want] {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{name} still answers {got:?}, want {want}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub fn txt_of(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect()
}

pub fn plain_query(name: &str, rtype: RecordType) -> Message {
    let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    let mut q = Query::query(Name::from_ascii(name).unwrap(), rtype);
    q.set_query_class(DNSClass::IN);
    m.add_query(q);
    m.metadata.recursion_desired = true;
    m
}

pub fn edns_query(name: &str, rtype: RecordType, payload: u16, dnssec_ok: bool) -> Message {
    let mut m = plain_query(name, rtype);
    let mut e = Edns::new();
    e.set_max_payload(payload);
    e.set_dnssec_ok(dnssec_ok);
    m.set_edns(e);
    m
}

fn rand_id() -> u16 {
    (Instant::now().elapsed().subsec_nanos() ^ std::process::id()) as u16
}

pub fn query_udp_timeout(addr: SocketAddr, query: &Message, timeout: Duration) -> Option<Message> {
    raw_udp(addr, &query.to_vec().unwrap(), timeout).map(|b| Message::from_vec(&b).unwrap())
}

pub fn raw_udp(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(timeout)).unwrap();
    sock.send_to(bytes, addr).unwrap();
    let mut buf = [0u8; 65535];
    let n = sock.recv(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

pub fn query_udp(addr: SocketAddr, query: &Message) -> Message {
    // Loopback drops nothing under these loads, but retry once anyway.
    for _ in 0..3 {
        if let Some(m) = query_udp_timeout(addr, query, Duration::from_secs(2)) {
            assert_eq!(m.metadata.id, query.metadata.id);
            return m;
        }
    }
    panic!("no UDP answer from {addr}");
}

pub fn raw_tcp(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&(bytes.len() as u16).to_be_bytes()).unwrap();
    s.write_all(bytes).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).unwrap();
    buf
}

pub fn query_tcp(addr: SocketAddr, query: &Message) -> Message {
    Message::from_vec(&raw_tcp(addr, &query.to_vec().unwrap())).unwrap()
}

/// A local HTTPS endpoint with a self-signed certificate for `name`. Its body
/// reports the SNI and Host it saw, so tests can check both.
pub struct TlsEndpoint {
    pub addr: SocketAddr,
}

impl TlsEndpoint {
    pub fn start(name: &str) -> TlsEndpoint {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key)
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { continue };
                let config = config.clone();
                std::thread::spawn(move || {
                    tcp.set_read_timeout(Some(Duration::from_secs(2))).ok();
                    let conn = rustls::ServerConnection::new(config).unwrap();
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    let Some(req) = read_head(&mut tls) else {
                        return;
                    };
                    let req = req.to_ascii_lowercase();
                    let host = req
                        .lines()
                        .find_map(|l| l.strip_prefix("host: "))
                        .unwrap_or("")
                        .split(':')
                        .next()
                        .unwrap_or("")
                        .to_string();
                    let sni = tls.conn.server_name().unwrap_or("").to_string();
                    let body = format!("healthy sni={sni} host={host}");
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(reply.as_bytes());
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                });
            }
        });
        TlsEndpoint { addr }
    }
}

/// A minimal HTTP/1.1 GET (Connection: close).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(addr, "GET", path, None, "")
}

/// A minimal HTTP/1.1 request with an optional bearer token and JSON body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (code, body)
}

/// Reads an HTTP request up to the blank line after its headers.
fn read_head(r: &mut impl Read) -> Option<String> {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    Some(String::from_utf8_lossy(&req).into_owned())
}

/// The sum of the samples in Prometheus text whose line starts with
/// `prefix` (a name, or a name with some or all of its labels); 0 for none.
pub fn metric_in(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

impl Server {
    /// `metric_in` on this server's `/metrics`.
    pub fn metric(&self, prefix: &str) -> f64 {
        let (code, text) = self.get("/metrics");
        assert_eq!(code, 200, "{text}");
        metric_in(&text, prefix)
    }
}

/// A TCP connection to `to` from the loopback address `from` (127.0.0.0/8
/// holds many), with read and write timeouts.
pub fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::new(IpAddr::V4(from), 0).into())?;
    s.connect_timeout(&to.into(), Duration::from_secs(2))?;
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(s)
}

/// Polls until the server has closed `s` (EOF or reset), failing after
/// `within`: how long it took, and how many bytes came before the close.
pub fn wait_closed(s: &mut TcpStream, within: Duration) -> (Duration, usize) {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 512];
    let mut seen = 0;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (start.elapsed(), seen),
            Ok(n) => seen += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (start.elapsed(), seen),
        }
        assert!(
            start.elapsed() < within,
            "connection still open after {within:?}"
        );
    }
}

/// What a `SwitchEndpoint` does with a connection, set at any time.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Answers 200 with its body (a TCP probe connects).
    Up,
    /// Answers 503 (a TCP probe still connects).
    Fail,
    /// Not listening: connections are refused.
    Refuse,
    /// Accepts and never answers, holding the connection.
    Hang,
}

impl Mode {
    fn from_u8(v: u8) -> Mode {
        match v {
            0 => Mode::Up,
            1 => Mode::Fail,
            2 => Mode::Refuse,
            _ => Mode::Hang,
        }
    }
}

/// A mode cell that several endpoints can share, so that they change
/// together, between two probes of either.
#[derive(Clone)]
pub struct Switch(Arc<std::sync::atomic::AtomicU8>);

impl Default for Switch {
    fn default() -> Switch {
        Switch(Arc::new(std::sync::atomic::AtomicU8::new(0)))
    }
}

impl Switch {
    pub fn set(&self, mode: Mode) {
        self.0.store(mode as u8, Ordering::SeqCst);
    }

    pub fn get(&self) -> Mode {
        Mode::from_u8(self.0.load(Ordering::SeqCst))
    }
}

/// A local HTTP (and TCP) endpoint switched between answering 200, 503,
/// refusing connections and hanging; it can also fail only its first N
/// requests, and counts what it saw.
pub struct SwitchEndpoint {
    pub addr: SocketAddr,
    pub switch: Switch,
    fail_first: Arc<std::sync::atomic::AtomicU32>,
    requests: Arc<std::sync::atomic::AtomicU32>,
    failed: Arc<std::sync::atomic::AtomicU32>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for SwitchEndpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl SwitchEndpoint {
    pub fn start() -> SwitchEndpoint {
        SwitchEndpoint::with(Switch::default(), 0)
    }

    /// An endpoint whose first `n` requests ever are answered 503.
    pub fn failing_first(n: u32) -> SwitchEndpoint {
        SwitchEndpoint::with(Switch::default(), n)
    }

    /// An endpoint following `switch` (which others may share).
    pub fn sharing(switch: &Switch) -> SwitchEndpoint {
        SwitchEndpoint::with(switch.clone(), 0)
    }

    fn with(switch: Switch, fail_first: u32) -> SwitchEndpoint {
        use std::sync::atomic::{AtomicBool, AtomicU32};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let ep = SwitchEndpoint {
            addr,
            switch,
            fail_first: Arc::new(AtomicU32::new(fail_first)),
            requests: Arc::new(AtomicU32::new(0)),
            failed: Arc::new(AtomicU32::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (switch, fail_first, requests, failed, stop) = (
            ep.switch.clone(),
            ep.fail_first.clone(),
            ep.requests.clone(),
            ep.failed.clone(),
            ep.stop.clone(),
        );
        std::thread::spawn(move || {
            let mut listener = Some(listener);
            while !stop.load(Ordering::SeqCst) {
                let mode = switch.get();
                if mode == Mode::Refuse {
                    listener = None;
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                }
                let l = match &listener {
                    Some(l) => l,
                    None => match TcpListener::bind(addr) {
                        Ok(l) => {
                            l.set_nonblocking(true).unwrap();
                            listener.insert(l)
                        }
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(2));
                            continue;
                        }
                    },
                };
                let mut conn = match l.accept() {
                    Ok((conn, _)) => conn,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                };
                let (switch, fail_first, requests, failed) = (
                    switch.clone(),
                    fail_first.clone(),
                    requests.clone(),
                    failed.clone(),
                );
                std::thread::spawn(move || {
                    conn.set_nonblocking(false).ok();
                    if mode == Mode::Hang {
                        // Held until the switch moves on (or 10 s).
                        let start = Instant::now();
                        while switch.get() == Mode::Hang
                            && start.elapsed() < Duration::from_secs(10)
                        {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        return;
                    }
                    conn.set_read_timeout(Some(Duration::from_secs(2))).ok();
                    if read_head(&mut conn).is_none() {
                        return;
                    }
                    requests.fetch_add(1, Ordering::SeqCst);
                    let first = fail_first
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    let code = if first || mode == Mode::Fail {
                        failed.fetch_add(1, Ordering::SeqCst);
                        503
                    } else {
                        200
                    };
                    let body = "healthy";
                    let reply = format!(
                        "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(reply.as_bytes());
                });
            }
        });
        ep
    }

    pub fn set(&self, mode: Mode) {
        self.switch.set(mode);
    }

    pub fn url(&self) -> String {
        format!("http://{}/ping", self.addr)
    }

    /// HTTP requests read so far (TCP probes that send nothing are not counted).
    pub fn requests(&self) -> u32 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Requests answered 503 so far.
    pub fn failed(&self) -> u32 {
        self.failed.load(Ordering::SeqCst)
    }
}

/// What one poll saw: the TXT strings joined with `|`, or the rcode when
/// there is no TXT.
pub fn answer_label(m: &Message) -> String {
    let txt = txt_of(m);
    if txt.is_empty() {
        format!("{:?} (no TXT)", m.metadata.response_code)
    } else {
        txt.join(",")
    }
}

/// Every distinct answer a `Poller` saw, in order, with when it first saw it
/// (since the poller started).
#[derive(Clone, Debug, Default)]
pub struct PollLog {
    pub changes: Vec<(Duration, String)>,
    pub queries: u32,
    pub lost: u32,
}

impl PollLog {
    /// The distinct answers seen, in the order first seen.
    pub fn answers(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (_, a) in &self.changes {
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
        out
    }
}

/// Queries a name over UDP in a background thread every `every` and records
/// each answer that differs from the one before, so a brief flip between two
/// checks of the test is not missed.
pub struct Poller {
    stop: Arc<std::sync::atomic::AtomicBool>,
    log: Arc<std::sync::Mutex<PollLog>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Poller {
    pub fn start(addr: SocketAddr, name: &str, every: Duration) -> Poller {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let log = Arc::new(std::sync::Mutex::new(PollLog::default()));
        let (s, l, name) = (stop.clone(), log.clone(), name.to_string());
        let handle = std::thread::spawn(move || {
            let start = Instant::now();
            while !s.load(Ordering::SeqCst) {
                let q = plain_query(&name, RecordType::TXT);
                let got = query_udp_timeout(addr, &q, Duration::from_millis(500));
                let mut log = l.lock().unwrap();
                log.queries += 1;
                match got {
                    None => log.lost += 1,
                    Some(m) => {
                        let a = answer_label(&m);
                        if log.changes.last().is_none_or(|(_, last)| *last != a) {
                            log.changes.push((start.elapsed(), a));
                        }
                    }
                }
                drop(log);
                std::thread::sleep(every);
            }
        });
        Poller {
            stop,
            log,
            handle: Some(handle),
        }
    }

    /// What was seen so far.
    pub fn log(&self) -> PollLog {
        self.log.lock().unwrap().clone()
    }

    pub fn stop(mut self) -> PollLog {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
        self.log()
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Polls `ok` every 20 ms until it holds, failing after `within` with
/// `what` and `context()`; how long it took.
pub fn poll_until(
    within: Duration,
    what: &str,
    context: impl Fn() -> String,
    mut ok: impl FnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < within,
            "timed out after {within:?} waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

impl Server {
    /// Sends SIGTERM and waits (DEADLINE) for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no exit after SIGTERM; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server with SIGTERM and starts it again on the same
    /// directory, config and port; the old log is kept beside the new one
    /// as `serve-<port>.before-restart.log`.
    pub fn restart(mut self) -> Server {
        let status = self.terminate();
        assert!(status.success(), "SIGTERM exit: {status}");
        let (dir, port) = (self.dir.clone(), self.addr.port());
        let kept = dir.join(format!("serve-{port}.before-restart.log"));
        std::fs::rename(&self.log, &kept).unwrap();
        drop(self);
        Server::start_with(&dir, &dir.join("txtfailover.toml"), port)
    }

    /// The `state` of a check in `/v1/checks` (`up`, `down`, `no data`).
    pub fn check_state(&self, name: &str) -> String {
        let (code, body) = self.get("/v1/checks");
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name} in {body}"))["state"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// One alias's entry in `/v1/status` (name with or without the final dot).
    pub fn alias_status(&self, name: &str) -> serde_json::Value {
        let (code, body) = self.get("/v1/status");
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let bare = name.trim_end_matches('.');
        v["aliases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"].as_str().unwrap_or("").trim_end_matches('.') == bare)
            .unwrap_or_else(|| panic!("no alias {name} in {body}"))
            .clone()
    }
}

/// (file name, contents) of every named block in README.md.
pub fn named_blocks() -> Vec<(String, String)> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut out = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if !line.starts_with("```") {
            continue;
        }
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        let Some(first) = body.first() else { continue };
        let name = first
            .strip_prefix("# ")
            .or_else(|| first.strip_prefix("; "))
            .and_then(|rest| rest.split_whitespace().next());
        if let Some(name) = name.filter(|n| {
            [".toml", ".key", ".zone", ".conf"]
                .iter()
                .any(|ext| n.ends_with(ext))
        }) {
            out.push((name.to_string(), body.join("\n") + "\n"));
        }
    }
    out
}

/// A stand-in secondary on a loopback UDP port: it acknowledges NOTIFY and
/// answers every SOA query with the serial last `set` (a real secondary
/// that has stopped transferring looks the same from the primary).
pub struct FakeSecondary {
    pub addr: SocketAddr,
    serial: Arc<std::sync::atomic::AtomicU32>,
}

impl FakeSecondary {
    pub fn start(serial: u32) -> FakeSecondary {
        use hickory_proto::rr::Record;
        use hickory_proto::rr::rdata::SOA;
        let socket = UdpSocket::bind(("127.0.0.1", free_port())).unwrap();
        let addr = socket.local_addr().unwrap();
        let shared = Arc::new(std::sync::atomic::AtomicU32::new(serial));
        let serial = shared.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok((len, from)) = socket.recv_from(&mut buf) {
                let Ok(request) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                let op = request.metadata.op_code;
                let mut m = Message::new(request.metadata.id, MessageType::Response, op);
                m.metadata.authoritative = true;
                m.queries = request.queries.clone();
                if let (OpCode::Query, Some(q)) = (op, request.queries.first()) {
                    m.answers.push(Record::from_rdata(
                        q.name().clone(),
                        60,
                        RData::SOA(SOA::new(
                            Name::from_ascii("ns1.example.com.").unwrap(),
                            Name::from_ascii("hostmaster.example.com.").unwrap(),
                            serial.load(Ordering::Relaxed),
                            7200,
                            3600,
                            1_209_600,
                            60,
                        )),
                    ));
                }
                let _ = socket.send_to(&m.to_vec().unwrap(), from);
            }
        });
        FakeSecondary {
            addr,
            serial: shared,
        }
    }

    pub fn set(&self, serial: u32) {
        self.serial.store(serial, Ordering::Relaxed);
    }
}

/// Polls `GET /v1/status` until `ok` holds for the zone's entry of the
/// secondary at `addr`; returns that entry.
pub fn wait_secondary(
    s: &Server,
    addr: SocketAddr,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let (_, body) = s.get("/v1/status");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let found = v["zones"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|z| z["secondaries"].as_array().into_iter().flatten())
            .find(|r| r["address"] == addr.to_string().as_str())
            .cloned();
        if let Some(r) = found.filter(|r| ok(r)) {
            return r;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "secondary {addr} never {what}; status:\n{body}\nlog:\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls the server's log until a line holds every one of `parts`.
pub fn wait_log_line(s: &Server, parts: &[&str]) -> String {
    let start = Instant::now();
    loop {
        if let Some(line) = s
            .log_text()
            .lines()
            .find(|l| parts.iter().all(|p| l.contains(p)))
        {
            return line.to_string();
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no log line with {parts:?}:\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
