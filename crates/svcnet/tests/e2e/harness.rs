//! The harness: the real `svcnet` binary as a child process on a loopback
//! port 0, its stderr kept for assertions, and three kinds of clients that
//! must agree — `dig`, `kdig`, and packets built with hickory-proto and sent
//! over std sockets. Every response is re-parsed by hickory-proto
//! (ARCHITECTURE: the dev-dependency oracle).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_svcnet");

/// The workspace root (where `examples/` lives).
pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `examples/<name>` as an absolute path.
pub(crate) fn example(name: &str) -> String {
    workspace()
        .join("examples")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// A running `svcnet serve`; killed on drop.
pub(crate) struct Server {
    child: Child,
    /// The bound UDP and TCP address.
    pub(crate) addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    /// When the process was spawned.
    started: Instant,
}

/// What follows a logged prefix up to a space or, in JSON logs, the quote
/// that ends the message.
fn first_word(rest: &str) -> &str {
    rest.split(|c: char| c.is_whitespace() || c == '"')
        .next()
        .unwrap_or("")
}

/// The line `serve` logs once the listeners are up.
const READY: &str = "serving DNS on udp+tcp ";

impl Server {
    /// Starts `svcnet serve --listen 127.0.0.1:0 ARGS...` and waits until it
    /// logs the bound address.
    pub(crate) fn start(args: &[&str]) -> Self {
        Self::start_bin(BIN, args)
    }

    /// [`Server::start`] with another build of the binary (a release build
    /// for measurements).
    pub(crate) fn start_bin(bin: &str, args: &[&str]) -> Self {
        let started = Instant::now();
        // Tests never reach the machine's own resolvers: without an explicit
        // `--upstream`, outside names are REFUSED.
        let no_upstream: &[&str] = if args.contains(&"--upstream") {
            &[]
        } else {
            &["--no-upstream"]
        };
        // `--log info` unless the test sets its own filter.
        let log_info: &[&str] = if args.contains(&"--log") {
            &[]
        } else {
            &["--log", "info"]
        };
        let mut child = Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(log_info)
            .args(no_upstream)
            .args(args)
            .env_remove("SVCNET_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let sink = Arc::clone(&log);
        // Drained for the whole life of the child: a full pipe would block
        // the server's logging and so the server.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
            }
        });
        let mut server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            started,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(line) = server.log_lines().iter().find(|l| l.contains(READY)) {
                let addr = line
                    .split_once(READY)
                    .and_then(|(_, rest)| first_word(rest).parse().ok());
                server.addr = addr.unwrap_or_else(|| panic!("no address in {line:?}"));
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "svcnet serve exited with {status} before listening:\n{}",
                    server.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "svcnet serve did not log {READY:?} within 20 s:\n{}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The bound address (UDP and TCP).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process id (for `/proc/<pid>/status`).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// When the process was spawned.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// The admin listener's address, from the line `serve` logs when it
    /// binds it (`--admin 127.0.0.1:0`).
    pub(crate) fn admin_addr(&self) -> SocketAddr {
        const ADMIN: &str = "admin (health, readiness) on http://";
        let line = self
            .wait_for_log(Duration::from_secs(5), |l| l.contains(ADMIN))
            .unwrap_or_else(|| panic!("no admin listener logged:\n{}", self.log_text()));
        line.split_once(ADMIN)
            .and_then(|(_, rest)| first_word(rest).parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
    }

    /// One exchange of raw bytes over `transport` (a fresh TCP connection
    /// for TCP), as the data-driven vectors need it.
    pub(crate) fn exchange(
        &self,
        transport: svcnet_testkit::Transport,
        packet: &[u8],
    ) -> Result<Vec<u8>, String> {
        match transport {
            svcnet_testkit::Transport::Udp => {
                udp_exchange(self.addr, packet, Duration::from_secs(2))
                    .ok_or_else(|| "no UDP reply within 2 s".to_owned())
            }
            svcnet_testkit::Transport::Tcp => {
                let mut conn = self.connect();
                write_framed(&mut conn, packet);
                read_framed(&mut conn).map_err(|e| format!("TCP: {e}"))
            }
        }
    }

    /// The port, as dig wants it.
    pub(crate) fn port(&self) -> String {
        self.addr.port().to_string()
    }

    /// Every stderr line so far.
    pub(crate) fn log_lines(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stderr so far, one string.
    pub(crate) fn log_text(&self) -> String {
        self.log_lines().join("\n")
    }

    /// Waits up to `timeout` for a stderr line matching `pred`.
    pub(crate) fn wait_for_log(
        &self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.log_lines().into_iter().find(|l| pred(l)) {
                return Some(l);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the child is still running.
    pub(crate) fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status.
    pub(crate) fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// `dig @server -p PORT +tries=1 +time=2 ARGS...`, parsed.
    pub(crate) fn dig(&self, args: &[&str]) -> Answer {
        let out = self.dig_raw(args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "dig {args:?} failed ({}):\n{text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Answer::parse_text("dig", &text)
    }

    /// `dig` without parsing or checking the exit status.
    pub(crate) fn dig_raw(&self, args: &[&str]) -> Output {
        let port = self.port();
        let mut all = vec!["@127.0.0.1", "-p", &port, "+tries=1", "+time=2"];
        all.extend_from_slice(args);
        run_tool("dig", &all)
    }

    /// `kdig @server -p PORT +retry=0 +timeout=2 ARGS...`, parsed (kdig's
    /// spelling of dig's `+tries=1 +time=2`).
    pub(crate) fn kdig(&self, args: &[&str]) -> Answer {
        let port = self.port();
        let mut all = vec!["@127.0.0.1", "-p", &port, "+retry=0", "+timeout=2"];
        all.extend_from_slice(args);
        let out = run_tool("kdig", &all);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "kdig {args:?} failed ({}):\n{text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Answer::parse_text("kdig", &text)
    }

    /// One UDP exchange of raw bytes; `None` when nothing came back within 2 s.
    pub(crate) fn udp_raw(&self, packet: &[u8]) -> Option<Vec<u8>> {
        udp_exchange(self.addr, packet, Duration::from_secs(2))
    }

    /// Sends `msg` over UDP and parses the reply (which must come).
    pub(crate) fn udp(&self, msg: &Message) -> Message {
        let bytes = encode(msg);
        let reply = self
            .udp_raw(&bytes)
            .unwrap_or_else(|| panic!("no UDP reply to {msg}"));
        let reply = parse(&reply);
        assert_eq!(reply.metadata.id, msg.metadata.id, "reply ID");
        reply
    }

    /// Sends `msg` over a fresh TCP connection and parses the reply.
    pub(crate) fn tcp(&self, msg: &Message) -> Message {
        let mut conn = self.connect();
        write_framed(&mut conn, &encode(msg));
        let reply = read_framed(&mut conn).unwrap_or_else(|e| panic!("TCP reply to {msg}: {e}"));
        let reply = parse(&reply);
        assert_eq!(reply.metadata.id, msg.metadata.id, "reply ID");
        reply
    }

    /// A TCP connection with 3 s timeouts.
    pub(crate) fn connect(&self) -> TcpStream {
        let conn = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("connect {}: {e}", self.addr));
        conn.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("set_read_timeout");
        conn.set_write_timeout(Some(Duration::from_secs(3)))
            .expect("set_write_timeout");
        conn
    }

    /// The server answers a plain query over UDP and TCP, quickly: used
    /// after abuse to prove it neither crashed nor stalled.
    pub(crate) fn assert_healthy(&mut self) {
        assert!(self.is_alive(), "svcnet died:\n{}", self.log_text());
        let q = query("web-0.nginx.default.svc.cluster.local", RecordType::A);
        for (how, reply) in [("udp", self.udp(&q)), ("tcp", self.tcp(&q))] {
            let a = Answer::from_message(how, &reply);
            assert_eq!(a.status, "NOERROR", "{how}: {a}");
            assert_eq!(a.rdata("A").len(), 1, "{how}: {a}");
        }
        assert!(self.is_alive(), "svcnet died:\n{}", self.log_text());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- svcnet serve stderr ({}) ---\n{}",
                self.addr,
                self.log_text()
            );
        }
    }
}

/// Runs a client tool; a missing tool fails the test (CI installs them).
pub(crate) fn run_tool(tool: &str, args: &[&str]) -> Output {
    let package = match tool {
        "dig" => "bind9-dnsutils",
        "kdig" => "knot-dnsutils",
        _ => tool,
    };
    match Command::new(tool).args(args).stdin(Stdio::null()).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{tool}` is not installed: the end-to-end tests need it as a black-box client \
             (Debian: apt-get install {package}); CI installs it"
        ),
        Err(e) => panic!("running {tool}: {e}"),
    }
}

/// Runs `svcnet ARGS...` (not `serve`) from the workspace root.
pub(crate) fn svcnet<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(workspace())
        .env_remove("SVCNET_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {BIN}: {e}"))
}

/// A recursion-desired query without EDNS.
pub(crate) fn query(name: &str, rtype: RecordType) -> Message {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    let name = Name::from_ascii(name).unwrap_or_else(|e| panic!("bad test name {name}: {e}"));
    m.add_query(Query::query(name, rtype));
    m
}

/// The same query with an OPT record advertising `payload`.
pub(crate) fn with_edns(mut m: Message, payload: u16) -> Message {
    let mut edns = Edns::new();
    edns.set_max_payload(payload);
    m.set_edns(edns);
    m
}

/// Encodes a message (test input, so a failure is a test bug).
pub(crate) fn encode(msg: &Message) -> Vec<u8> {
    msg.to_vec()
        .unwrap_or_else(|e| panic!("encoding {msg}: {e}"))
}

/// Parses a response with hickory-proto: every byte we emit must parse.
pub(crate) fn parse(bytes: &[u8]) -> Message {
    Message::from_vec(bytes)
        .unwrap_or_else(|e| panic!("hickory-proto cannot parse the response ({e}): {bytes:02x?}"))
}

/// One UDP exchange from a fresh socket.
pub(crate) fn udp_exchange(addr: SocketAddr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP client socket");
    sock.set_read_timeout(Some(wait)).expect("set_read_timeout");
    sock.send_to(packet, addr).expect("send a UDP query");
    let mut buf = vec![0u8; 65535];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            None
        }
        Err(e) => panic!("UDP receive: {e}"),
    }
}

/// Writes one RFC 1035 §4.2.2 length-prefixed message.
pub(crate) fn write_framed(conn: &mut TcpStream, msg: &[u8]) {
    let len = u16::try_from(msg.len()).expect("a test message fits a TCP frame");
    let mut frame = len.to_be_bytes().to_vec();
    frame.extend_from_slice(msg);
    conn.write_all(&frame).expect("TCP write");
}

/// Reads one length-prefixed message.
pub(crate) fn read_framed(conn: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    conn.read_exact(&mut len)?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    conn.read_exact(&mut msg)?;
    Ok(msg)
}

/// One resource record as the clients print it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rr {
    /// Owner, with the trailing dot.
    pub(crate) name: String,
    /// TTL.
    pub(crate) ttl: u32,
    /// Type mnemonic.
    pub(crate) rtype: String,
    /// Presentation-format data, fields joined by one space.
    pub(crate) rdata: String,
}

/// A response, whoever asked: the common shape of dig, kdig and hickory
/// output, so one assertion checks every client.
#[derive(Clone, Debug, Default)]
pub(crate) struct Answer {
    /// Which client produced it.
    pub(crate) client: String,
    /// RCODE mnemonic (`NOERROR`, `NXDOMAIN`, …).
    pub(crate) status: String,
    /// Header flags, lower case (`qr`, `aa`, `tc`, `rd`, `ra`).
    pub(crate) flags: Vec<String>,
    /// Answer section.
    pub(crate) answer: Vec<Rr>,
    /// Authority section.
    pub(crate) authority: Vec<Rr>,
    /// Additional section (without OPT).
    pub(crate) additional: Vec<Rr>,
    /// The EDNS payload size of the response's OPT, when it had one.
    pub(crate) edns_payload: Option<u16>,
    /// The raw text (dig/kdig) or message dump (hickory).
    pub(crate) text: String,
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}", self.client, self.text)
    }
}

impl Answer {
    /// Parses dig's or kdig's default output (they differ in punctuation only).
    pub(crate) fn parse_text(client: &str, text: &str) -> Self {
        let mut a = Self {
            client: client.into(),
            text: text.into(),
            ..Self::default()
        };
        let mut section: Option<&mut Vec<Rr>> = None;
        for line in text.lines() {
            let lower = line.to_ascii_lowercase();
            if let Some((_, rest)) = line.split_once("status: ") {
                a.status = rest
                    .chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .collect();
            }
            if let Some(rest) = lower.strip_prefix(";; flags:") {
                a.flags = rest
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect();
            }
            // dig: "; EDNS: version: 0, flags:; udp: 1232"; kdig: "UDP size: 1232 B".
            for key in ["udp: ", "udp size: "] {
                if let Some((_, rest)) = lower.split_once(key) {
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    a.edns_payload = digits.parse().ok();
                }
            }
            if line.starts_with(";; ANSWER SECTION:") {
                section = Some(&mut a.answer);
            } else if line.starts_with(";; AUTHORITY SECTION:") {
                section = Some(&mut a.authority);
            } else if line.starts_with(";; ADDITIONAL SECTION:") {
                section = Some(&mut a.additional);
            } else if line.trim().is_empty() || line.starts_with(";;") && line.contains("SECTION") {
                section = None;
            } else if !line.starts_with(';')
                && let Some(rrs) = section.as_deref_mut()
            {
                rrs.push(parse_rr(line));
            }
        }
        a
    }

    /// The same shape from a hickory-proto message.
    pub(crate) fn from_message(client: &str, m: &Message) -> Self {
        let md = &m.metadata;
        let flags = [
            (
                "qr",
                md.message_type == hickory_proto::op::MessageType::Response,
            ),
            ("aa", md.authoritative),
            ("tc", md.truncation),
            ("rd", md.recursion_desired),
            ("ra", md.recursion_available),
        ];
        let rr = |r: &hickory_proto::rr::Record| Rr {
            name: r.name.to_string(),
            ttl: r.ttl,
            rtype: r.record_type().to_string(),
            rdata: r.data.to_string(),
        };
        Self {
            client: client.into(),
            status: svcnet_wire::rcode_name(u16::from(md.response_code)),
            flags: flags
                .iter()
                .filter(|(_, on)| *on)
                .map(|(f, _)| (*f).to_owned())
                .collect(),
            answer: m.answers.iter().map(rr).collect(),
            authority: m.authorities.iter().map(rr).collect(),
            additional: m.additionals.iter().map(rr).collect(),
            edns_payload: m.edns.as_ref().map(Edns::max_payload),
            text: m.to_string(),
        }
    }

    /// Whether a header flag is set.
    pub(crate) fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// The answer-section data of one type, sorted.
    pub(crate) fn rdata(&self, rtype: &str) -> Vec<String> {
        sorted_rdata(&self.answer, rtype)
    }

    /// The additional-section data of one type, sorted.
    pub(crate) fn additional_rdata(&self, rtype: &str) -> Vec<String> {
        sorted_rdata(&self.additional, rtype)
    }
}

fn sorted_rdata(rrs: &[Rr], rtype: &str) -> Vec<String> {
    let mut v: Vec<String> = rrs
        .iter()
        .filter(|r| r.rtype == rtype)
        .map(|r| r.rdata.clone())
        .collect();
    v.sort();
    v
}

fn parse_rr(line: &str) -> Rr {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let bad = || panic!("not a resource record line: {line:?}");
    let [name, ttl, class, rtype, rdata @ ..] = fields.as_slice() else {
        bad()
    };
    assert_eq!(*class, "IN", "class in {line:?}");
    Rr {
        name: (*name).to_owned(),
        ttl: ttl.parse().unwrap_or_else(|_| bad()),
        rtype: (*rtype).to_owned(),
        rdata: rdata.join(" "),
    }
}

/// Asks `name`/`rtype` with every client over every transport: dig and kdig
/// over UDP and TCP, and hickory-proto over UDP and TCP (with the same EDNS
/// payload dig sends, so the answers are comparable).
pub(crate) fn ask_everyone(server: &Server, name: &str, rtype: &str) -> Vec<Answer> {
    let t: RecordType = rtype
        .parse()
        .unwrap_or_else(|e| panic!("bad test type {rtype}: {e}"));
    let q = with_edns(query(name, t), 1232);
    vec![
        server.dig(&[name, rtype]),
        server.dig(&["+tcp", name, rtype]),
        server.kdig(&[name, rtype]),
        server.kdig(&["+tcp", name, rtype]),
        Answer::from_message("hickory-udp", &server.udp(&q)),
        Answer::from_message("hickory-tcp", &server.tcp(&q)),
    ]
}

/// A minimal HTTP/1.1 GET over a fresh connection: the status code and
/// the body (the admin listener closes the connection after one response).
pub(crate) fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_get_with(addr, path, &[])
}

/// [`http_get`] with extra request headers (`("Accept", "text/html")`).
pub(crate) fn http_get_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    conn.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("set_read_timeout");
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).expect("HTTP write");
    let mut response = String::new();
    conn.read_to_string(&mut response)
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: not an HTTP response: {response:?}"));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: no status in {head:?}"));
    (code, body.to_owned())
}

/// Polls `check` every 20 ms for up to `timeout`; returns how long it took.
pub(crate) fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if check() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
