//! A bare HTTP/1.1 client for the tests, in the clear or over TLS (rustls, the
//! same CA files the processes use): one request per connection, the status code
//! and the body back. Enough for `/healthz`, the `/v1` API and the web page; no
//! redirects, no keep-alive.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use kairos_tls::TlsFiles;

/// How long a request may take on either side of the socket.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// One request.
#[derive(Debug, Default, Clone)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// Extra headers, e.g. `("authorization", "Bearer …")`.
    pub headers: Vec<(&'a str, String)>,
    /// A body, sent with `content-type: application/json` unless `form`.
    pub body: Option<&'a str>,
    /// The body is an HTML form (`application/x-www-form-urlencoded`).
    pub form: bool,
    /// The body's content type, when neither JSON nor a form (e.g. a multipart
    /// form's, with its boundary); it wins over `form`.
    pub content_type: Option<&'a str>,
    /// TLS towards the server: the CA and, for a client certificate, its cert and key.
    pub tls: Option<&'a TlsFiles>,
}

impl<'a> Request<'a> {
    pub fn get(path: &'a str) -> Request<'a> {
        Request {
            method: "GET",
            path,
            ..Default::default()
        }
    }

    pub fn post(path: &'a str, body: &'a str) -> Request<'a> {
        Request {
            method: "POST",
            path,
            body: Some(body),
            ..Default::default()
        }
    }

    /// A form post, as a browser sends one (`body` already URL-encoded).
    pub fn form(path: &'a str, body: &'a str) -> Request<'a> {
        Request {
            method: "POST",
            path,
            body: Some(body),
            form: true,
            ..Default::default()
        }
    }

    /// A JSON body PUT (Dkron's `PUT /v1/jobs/{job}`).
    pub fn put(path: &'a str, body: &'a str) -> Request<'a> {
        Request {
            method: "PUT",
            path,
            body: Some(body),
            ..Default::default()
        }
    }

    /// A JSON body PATCHed.
    pub fn patch(path: &'a str, body: &'a str) -> Request<'a> {
        Request {
            method: "PATCH",
            path,
            body: Some(body),
            ..Default::default()
        }
    }

    /// A DELETE, without a body.
    pub fn delete(path: &'a str) -> Request<'a> {
        Request {
            method: "DELETE",
            path,
            ..Default::default()
        }
    }

    /// A POST of a `multipart/form-data` body made by [`multipart_file`]: pass its
    /// content type and its body.
    pub fn multipart(path: &'a str, form: &'a (String, String)) -> Request<'a> {
        Request {
            method: "POST",
            path,
            body: Some(&form.1),
            content_type: Some(&form.0),
            ..Default::default()
        }
    }

    /// Sends the body with this content type (curl's `-H 'Content-Type: …'`).
    pub fn with_content_type(mut self, content_type: &'a str) -> Request<'a> {
        self.content_type = Some(content_type);
        self
    }

    /// Sends `name=value` as a cookie.
    pub fn cookie(mut self, cookie: &str) -> Request<'a> {
        self.headers.push(("cookie", cookie.to_string()));
        self
    }

    pub fn bearer(mut self, token: &str) -> Request<'a> {
        self.headers
            .push(("authorization", format!("Bearer {token}")));
        self
    }

    pub fn tls(mut self, files: &'a TlsFiles) -> Request<'a> {
        self.tls = Some(files);
        self
    }

    /// Sends it to `addr` (`HOST:PORT`; over TLS the host must be a name or address
    /// the server's certificate carries): the status code and the body.
    pub fn send(&self, addr: &str) -> Result<(u16, String)> {
        let (code, _, body) = self.exchange(addr)?;
        Ok((code, body))
    }

    /// Like [`Request::send`], with the answer's header lines too.
    pub fn exchange(&self, addr: &str) -> Result<(u16, Vec<String>, String)> {
        let tcp = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        tcp.set_read_timeout(Some(IO_TIMEOUT))?;
        tcp.set_write_timeout(Some(IO_TIMEOUT))?;
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n",
            self.method, self.path
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = self.body {
            let kind = match self.content_type {
                Some(kind) => kind,
                None if self.form => "application/x-www-form-urlencoded",
                None => "application/json",
            };
            head.push_str(&format!(
                "Content-Type: {kind}\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        head.push_str(self.body.unwrap_or(""));
        let raw = match self.tls {
            None => exchange(tcp, head.as_bytes())?,
            Some(files) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
                let name = rustls_pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| anyhow!("{host:?} is not a server name: {e}"))?;
                let config = kairos_tls::client_config(files, &[b"http/1.1"])?;
                let conn = rustls::ClientConnection::new(Arc::new(config), name)?;
                exchange(rustls::StreamOwned::new(conn, tcp), head.as_bytes())?
            }
        };
        parse(&raw)
    }
}

/// A `multipart/form-data` body with one file field, as `curl -F field=@filename`
/// sends it: its content type (with the boundary) and the body.
pub fn multipart_file(field: &str, filename: &str, content: &str) -> (String, String) {
    // A boundary the content cannot hold: lengthened until it is absent.
    let mut boundary = String::from("------------------------kairos");
    for _ in 0..64 {
        if !content.contains(&boundary) {
            break;
        }
        boundary.push('x');
    }
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n{content}\r\n--{boundary}--\r\n"
    );
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn exchange(mut stream: impl Read + Write, request: &[u8]) -> Result<Vec<u8>> {
    stream.write_all(request)?;
    stream.flush()?;
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => Ok(raw),
        // A server that closes without TLS's close_notify: what arrived is the answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => Ok(raw),
        Err(e) => Err(e.into()),
    }
}

fn parse(raw: &[u8]) -> Result<(u16, Vec<String>, String)> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("no HTTP header end in {:?}", String::from_utf8_lossy(raw)))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("no HTTP status line in {head:?}"))?;
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    let lines = head.lines().skip(1).map(str::to_string).collect();
    Ok((code, lines, String::from_utf8_lossy(&body).into_owned()))
}

/// The body of a `Transfer-Encoding: chunked` answer.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&body[..eol]);
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        let rest = &body[eol + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        body = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}
