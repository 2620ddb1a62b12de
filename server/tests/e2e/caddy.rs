//! Real Caddy in front of Portcullis, with the Caddyfile from
//! docs/gateways/caddy.md (addresses substituted), its state in a temp dir.

use std::process::{Command, Stdio};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_forward_auth() {
    let Some(caddy) = gateway_binary("caddy") else {
        return;
    };
    let fx = Fixture::new();
    let p = Portcullis::start(&fx);
    let upstream = Upstream::start().await;
    let port = free_port();
    let dir = fx.path("caddy");
    std::fs::create_dir_all(&dir).unwrap();

    let file = docs_block("caddy.md", "<!-- e2e: Caddyfile -->", "caddyfile");
    assert!(file.contains("forward_auth 127.0.0.1:8181 {") && file.contains(":8000 {"));
    let file = file
        .replace(
            "forward_auth 127.0.0.1:8181 {",
            &format!("forward_auth {} {{", p.addr),
        )
        .replace(
            "reverse_proxy 127.0.0.1:8080",
            &format!("reverse_proxy {}", upstream.addr),
        )
        .replace(":8000 {", &format!(":{port} {{\n\tbind 127.0.0.1"));
    std::fs::write(dir.join("Caddyfile"), file).unwrap();

    let log = dir.join("caddy.log");
    let child = Command::new(caddy)
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(dir.join("Caddyfile"))
        .env("HOME", &dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdin(Stdio::null())
        .stdout(Stdio::from(
            std::fs::File::create(dir.join("stdout.log")).unwrap(),
        ))
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    let gw = Gateway {
        child,
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        log,
    };
    wait_listening(gw.addr, "caddy", || gw.logs()).await;

    gateway_scenarios(&gw, &fx).await;

    let logs = p.wait_log("\"endpoint\":\"forward_auth\"");
    for key in fx.all_keys() {
        assert!(!logs.contains(key));
    }
}
