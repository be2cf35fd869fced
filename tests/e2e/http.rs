//! A small HTTP/1.1 client for the tests and the load bench: keep-alive connections,
//! bodies by Content-Length or chunked, nothing more. Shared with
//! `cli/benches/load.rs` through `#[path]`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// An answer: status, the head as text (status line and headers), the body.
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Answer {
    /// A header's value, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// One connection to a server.
pub struct Conn {
    addr: String,
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(addr: &str) -> std::io::Result<Conn> {
        let s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            addr: addr.to_string(),
            reader: BufReader::new(s),
        })
    }

    /// Sends one request and reads its whole answer; the connection stays open unless
    /// the server closes it.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Answer> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let mut msg = req.into_bytes();
        msg.extend_from_slice(body);
        self.reader.get_mut().write_all(&msg)?;
        self.read_answer()
    }

    fn read_answer(&mut self) -> std::io::Result<Answer> {
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(bad("connection closed before the answer's head ended"));
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            head.push_str(&line);
        }
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| bad("no status"))?;
        let mut a = Answer {
            status,
            head,
            body: Vec::new(),
        };
        if a.header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            loop {
                let mut size = String::new();
                self.reader.read_line(&mut size)?;
                let n = usize::from_str_radix(size.trim(), 16).map_err(|_| bad("chunk size"))?;
                let mut chunk = vec![0; n + 2];
                self.reader.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                a.body.extend_from_slice(&chunk[..n]);
            }
        } else if let Some(n) = a.header("content-length") {
            let n: usize = n.parse().map_err(|_| bad("content-length"))?;
            a.body = vec![0; n];
            self.reader.read_exact(&mut a.body)?;
        } else if status != 204 && status != 304 {
            self.reader.read_to_end(&mut a.body)?;
        }
        Ok(a)
    }
}

/// One request on a new connection (`Connection: close`); panics on I/O errors, as a
/// test should.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut h = headers.to_vec();
    h.push(("Connection", "close"));
    Conn::open(addr)
        .and_then(|mut c| c.send(method, path, &h, body))
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}
