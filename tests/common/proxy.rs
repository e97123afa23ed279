//! A small real HTTP CONNECT proxy on loopback for the proxy tests.
//!
//! It resolves host names from a private map only (e.g. `defender.proxy.test`
//! → 127.0.0.1), so a client that reaches such a host has provably gone through
//! it; optionally it demands Basic proxy credentials (407 without them). It
//! records every CONNECT target and the credentials it was offered, and stops
//! when dropped. Plain threads: no async runtime to share with the tests.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;

/// One CONNECT request the proxy read.
#[derive(Debug, Clone)]
pub struct Connect {
    /// `host:port` as the client asked.
    pub target: String,
    /// The decoded `user:password` of `Proxy-Authorization: Basic`, if sent.
    pub credentials: Option<String>,
    /// What the proxy answered (200, 407, 502, 405).
    pub status: u16,
}

pub struct ConnectProxy {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Connect>>>,
    stop: Arc<AtomicBool>,
}

struct Rules {
    names: HashMap<String, IpAddr>,
    credentials: Option<String>,
}

impl ConnectProxy {
    /// Start on 127.0.0.1; `names` is the only DNS it has; `credentials`
    /// (`user:password`) makes it demand Basic proxy auth.
    pub fn start(names: &[(&str, IpAddr)], credentials: Option<&str>) -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy binds");
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let rules = Arc::new(Rules {
            names: names
                .iter()
                .map(|(n, ip)| (n.to_ascii_lowercase(), *ip))
                .collect(),
            credentials: credentials.map(str::to_string),
        });
        let (seen2, stop2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (rules, seen) = (rules.clone(), seen2.clone());
                std::thread::spawn(move || handle(conn, &rules, &seen));
            }
        });
        ConnectProxy { addr, seen, stop }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://user:password@127.0.0.1:PORT`.
    pub fn url_with(&self, credentials: &str) -> String {
        format!("http://{credentials}@{}", self.addr)
    }

    pub fn connects(&self) -> Vec<Connect> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn handle(mut client: TcpStream, rules: &Rules, seen: &Mutex<Vec<Connect>>) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() || request_line.is_empty() {
        return;
    }
    let mut credentials = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("proxy-authorization")
        {
            credentials = value
                .trim()
                .strip_prefix("Basic ")
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .and_then(|b| String::from_utf8(b).ok());
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let record = |status: u16| {
        seen.lock().unwrap().push(Connect {
            target: target.to_string(),
            credentials: credentials.clone(),
            status,
        });
    };
    let answer = |c: &mut TcpStream, status: &str, extra: &str| {
        let _ = write!(
            c,
            "HTTP/1.1 {status}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
    };
    if method != "CONNECT" {
        record(405);
        return answer(&mut client, "405 Method Not Allowed", "");
    }
    if let Some(want) = &rules.credentials
        && credentials.as_deref() != Some(want.as_str())
    {
        record(407);
        return answer(
            &mut client,
            "407 Proxy Authentication Required",
            "Proxy-Authenticate: Basic realm=\"test proxy\"\r\n",
        );
    }
    let upstream = target.rsplit_once(':').and_then(|(host, port)| {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip = rules.names.get(&host.to_ascii_lowercase()).copied()?;
        let port: u16 = port.parse().ok()?;
        TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_secs(5)).ok()
    });
    let Some(upstream) = upstream else {
        record(502);
        return answer(&mut client, "502 Bad Gateway", "");
    };
    record(200);
    if client
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .is_err()
    {
        return;
    }
    let _ = client.set_read_timeout(None);
    // `reader` hands out first whatever it buffered past the header (a TLS ClientHello).
    let mut up_w = upstream.try_clone().unwrap();
    let mut down_w = client.try_clone().unwrap();
    let t = std::thread::spawn(move || {
        let _ = pipe(&mut reader, &mut up_w);
        let _ = up_w.shutdown(Shutdown::Write);
    });
    let mut up_r = upstream;
    let _ = pipe(&mut up_r, &mut down_w);
    let _ = down_w.shutdown(Shutdown::Write);
    let _ = t.join();
}

fn pipe(from: &mut impl Read, to: &mut impl Write) -> std::io::Result<u64> {
    std::io::copy(from, to)
}
