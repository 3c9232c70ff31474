//! A raw HTTP/1.1 connection from a chosen local address (all of 127.0.0.0/8 is loopback), for
//! tests that must control every byte a client sends and the address it comes from.

#![allow(dead_code)] // each test binary uses a different part

use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use wasm_hypervisor_protocol::api;

use crate::process;

/// The longest any single answer may take before the test calls the daemon stuck.
pub(crate) const PATIENCE: Duration = Duration::from_secs(45);

/// One HTTP/1.1 connection from a chosen local address.
pub(crate) struct Conn {
    /// For bytes a test writes or reads itself (a body in pieces, TLS).
    pub(crate) stream: TcpStream,
    /// Bytes read past the last response.
    buffered: Vec<u8>,
}

pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The §7 error code of the body, or "" if it has none.
    pub(crate) fn code(&self) -> String {
        serde_json::from_slice::<api::ErrorBody>(&self.body)
            .map(|error| error.error.code)
            .unwrap_or_default()
    }
}

impl Conn {
    pub(crate) fn open(from: IpAddr, to: SocketAddr) -> io::Result<Self> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.bind(&SocketAddr::new(from, 0).into())?;
        socket.connect_timeout(&to.into(), Duration::from_secs(5))?;
        let stream = TcpStream::from(socket);
        stream.set_read_timeout(Some(PATIENCE))?;
        stream.set_write_timeout(Some(PATIENCE))?;
        Ok(Self {
            stream,
            buffered: Vec::new(),
        })
    }

    /// Sends `bytes` in one write.
    pub(crate) fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Writes a request head declaring `length` bytes of body.
    pub(crate) fn head(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        length: usize,
    ) {
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nhost: daemon\r\ncontent-length: {length}\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        self.stream
            .write_all(head.as_bytes())
            .expect("the head is sent");
    }

    pub(crate) fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        self.head(method, path, headers, body.len());
        self.stream.write_all(body)?;
        self.response()
    }

    /// Reads one response, its body by its `content-length` or to the end of the stream.
    pub(crate) fn response(&mut self) -> io::Result<Response> {
        let end_of_head = loop {
            if let Some(at) = self
                .buffered
                .windows(4)
                .position(|four| four == b"\r\n\r\n")
            {
                break at;
            }
            self.fill()?;
        };
        let head = String::from_utf8_lossy(&self.buffered[..end_of_head]).into_owned();
        self.buffered.drain(..end_of_head + 4);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| io::Error::other(format!("not an HTTP response: {head}")))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
            .collect();
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        match response
            .header("content-length")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(length) => {
                while self.buffered.len() < length {
                    self.fill()?;
                }
                response.body = self.buffered.drain(..length).collect();
            }
            None => {
                while self.fill().is_ok() {}
                response.body = std::mem::take(&mut self.buffered);
            }
        }
        Ok(response)
    }

    /// Whether the daemon closed the connection without sending a byte.
    pub(crate) fn closed_in_silence(&mut self) -> bool {
        let mut received = Vec::new();
        match self.stream.read_to_end(&mut received) {
            Ok(_) => received.is_empty(),
            Err(error) => error.kind() == io::ErrorKind::ConnectionReset && received.is_empty(),
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0; 16 << 10];
        match self.stream.read(&mut chunk)? {
            0 => Err(io::ErrorKind::UnexpectedEof.into()),
            read => {
                self.buffered.extend_from_slice(&chunk[..read]);
                Ok(())
            }
        }
    }
}

/// The daemon's count of refusals of `what`, read from its admin listener.
pub(crate) fn refusals(daemon: &process::Daemon, what: &str) -> u64 {
    let admin = daemon.admin_addr.expect("an admin listener");
    let mut conn = Conn::open(admin.ip(), admin).expect("connects");
    let metrics = conn.request("GET", "/metrics", &[], b"").expect("answered");
    let series = format!("wasm_hypervisor_admissions_refused_total{{what=\"{what}\"}} ");
    String::from_utf8_lossy(&metrics.body)
        .lines()
        .find_map(|line| line.strip_prefix(&series)?.parse().ok())
        .unwrap_or(0)
}
