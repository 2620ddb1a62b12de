//! The baseline for `scripts/http_bench.sh`: the same hyper-util server
//! stack as `portcullis serve` (auto HTTP/1.1 + h2c, multi-threaded tokio,
//! TCP_NODELAY), answering 200 with an empty body to every request and
//! doing nothing else.
//!
//! `cargo run --release -p portcullis-server --example bare_hyper -- 127.0.0.1:0`
//! prints `listening on http://ADDR`.
#![forbid(unsafe_code)]

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_string());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(|_req: Request<Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            });
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}
