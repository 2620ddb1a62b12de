//! A minimal HTTP/1.1 keep-alive client over one TCP connection.
//!
//! Written here rather than taken from hyper because the load generator
//! shares two cores with the server it measures: a request is a prebuilt
//! byte string written as is, and a response is parsed (by `httparse`) only
//! as far as its status and body, so the client's own cost stays small and
//! constant.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest response head or body accepted (decisions are a few hundred bytes).
const MAX_RESPONSE: usize = 1 << 20;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// Connecting, writing or reading failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The server closed the connection before a whole response.
    #[error("connection closed mid-response")]
    Closed,
    /// The response is not HTTP/1.1 as we know it.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
}

/// One response: status and body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A kept-alive connection that reconnects after an error.
pub struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Self {
        Conn {
            addr,
            stream: None,
            buf: Vec::with_capacity(4096),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Opens the connection now, so the first timed request does not pay the handshake.
    pub async fn connect(&mut self) -> Result<(), HttpError> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr).await?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
            self.buf.clear();
        }
        Ok(())
    }

    /// Sends one prebuilt request and reads its response. Any error drops
    /// the connection; the next call reconnects.
    pub async fn send(&mut self, request: &[u8]) -> Result<Response, HttpError> {
        let r = self.exchange(request).await;
        if r.is_err() {
            self.stream = None;
        }
        r
    }

    /// [`Conn::send`] with a deadline.
    pub async fn send_within(
        &mut self,
        request: &[u8],
        limit: Duration,
    ) -> Result<Response, HttpError> {
        match tokio::time::timeout(limit, self.send(request)).await {
            Ok(r) => r,
            Err(_) => {
                self.stream = None;
                Err(HttpError::Timeout)
            }
        }
    }

    async fn exchange(&mut self, request: &[u8]) -> Result<Response, HttpError> {
        self.connect().await?;
        let Some(stream) = self.stream.as_mut() else {
            return Err(HttpError::Closed);
        };
        stream.write_all(request).await?;
        self.buf.clear();
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(head_len)) => {
                    let status = resp.code.unwrap_or(0);
                    let mut len = 0usize;
                    let mut close = false;
                    for h in resp.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            len = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.trim().parse().ok())
                                .ok_or_else(|| HttpError::Malformed("content-length".into()))?;
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            return Err(HttpError::Malformed(
                                "chunked responses are not expected".into(),
                            ));
                        } else if h.name.eq_ignore_ascii_case("connection")
                            && h.value.eq_ignore_ascii_case(b"close")
                        {
                            close = true;
                        }
                    }
                    if len > MAX_RESPONSE {
                        return Err(HttpError::Malformed("body too large".into()));
                    }
                    while self.buf.len() < head_len + len {
                        read_more(stream, &mut self.buf).await?;
                    }
                    let body = self
                        .buf
                        .get(head_len..head_len + len)
                        .map(<[u8]>::to_vec)
                        .unwrap_or_default();
                    if close {
                        self.stream = None;
                    }
                    return Ok(Response { status, body });
                }
                Ok(httparse::Status::Partial) => {
                    if self.buf.len() > MAX_RESPONSE {
                        return Err(HttpError::Malformed("head too large".into()));
                    }
                    read_more(stream, &mut self.buf).await?;
                }
                Err(e) => return Err(HttpError::Malformed(e.to_string())),
            }
        }
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), HttpError> {
    let mut chunk = [0u8; 4096];
    let n = stream.read(&mut chunk).await?;
    if n == 0 {
        return Err(HttpError::Closed);
    }
    buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    Ok(())
}

/// A complete request: `METHOD PATH HTTP/1.1`, host, the headers given, and
/// a body with its length.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nhost: bench\r\n");
    for (k, v) in headers {
        out.push_str(k);
        out.push_str(": ");
        out.push_str(v);
        out.push_str("\r\n");
    }
    if !body.is_empty() || method == "POST" {
        out.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A JSON call with an optional bearer token (admin API, readiness).
pub fn json_request(
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> Vec<u8> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = auth.as_deref() {
        headers.push(("authorization", a));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    if !body.is_empty() {
        headers.push(("content-type", "application/json"));
    }
    request(method, path, &headers, body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that answers every request on a connection with `answers` in turn.
    async fn serve(answers: Vec<&'static str>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            for a in answers {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap();
                    got.extend_from_slice(&buf[..n]);
                }
                // Split the answer in two writes to exercise partial reads.
                let (a1, a2) = a.split_at(a.len() / 2);
                s.write_all(a1.as_bytes()).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                s.write_all(a2.as_bytes()).await.unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn keeps_alive_and_parses() {
        let addr = serve(vec![
            "HTTP/1.1 200 OK\r\ncontent-length: 14\r\n\r\n{\"allow\":true}",
            "HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\n{}",
        ])
        .await;
        let mut c = Conn::new(addr);
        let r = c.send(&request("GET", "/", &[], b"")).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["allow"], serde_json::Value::Bool(true));
        let r = c.send(&request("GET", "/", &[], b"")).await.unwrap();
        assert_eq!(r.status, 401);
        // The server is gone now: the next call fails, cleanly.
        assert!(c
            .send_within(&request("GET", "/", &[], b""), Duration::from_secs(2))
            .await
            .is_err());
    }

    #[test]
    fn requests_are_well_formed() {
        let r = json_request(
            "POST",
            "/admin/v1/keys",
            Some("t0k"),
            Some(&serde_json::json!({"a": 1})),
        );
        let s = String::from_utf8(r).unwrap();
        assert!(s.starts_with("POST /admin/v1/keys HTTP/1.1\r\n"));
        assert!(s.contains("authorization: Bearer t0k\r\n"));
        assert!(s.contains("content-length: 7\r\n"));
        assert!(s.ends_with("\r\n\r\n{\"a\":1}"));
    }
}
