//! Real nginx in front of Portcullis, configured with the block from
//! docs/gateways/nginx.md (addresses substituted), run as the current user
//! with every path inside a temp dir.

use std::process::{Command, Stdio};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request() {
    let Some(nginx) = gateway_binary("nginx") else {
        return;
    };
    let fx = Fixture::new();
    let p = Portcullis::start(&fx);
    let upstream = Upstream::start().await;
    let port = free_port();
    let dir = fx.path("nginx");
    std::fs::create_dir_all(&dir).unwrap();

    let site = docs_block("nginx.md", "<!-- e2e: nginx site -->", "nginx");
    assert!(site.contains("server 127.0.0.1:8181;") && site.contains("listen 8000;"));
    let site = site
        .replace("server 127.0.0.1:8181;", &format!("server {};", p.addr))
        .replace(
            "server 127.0.0.1:8080;",
            &format!("server {};", upstream.addr),
        )
        .replace("listen 8000;", &format!("listen 127.0.0.1:{port};"));
    std::fs::write(dir.join("site.conf"), site).unwrap();

    let d = dir.display();
    // One process (no master/worker split), so killing it stops nginx whatever user runs the test.
    let main = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{ worker_connections 128; }}\n\
         http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/client_body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  include {d}/site.conf;\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), main).unwrap();
    let log = dir.join("error.log");
    let child = Command::new(nginx)
        .arg("-p")
        .arg(&dir)
        .arg("-e")
        .arg(&log)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("stderr.log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let gw = Gateway {
        child,
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        log,
    };
    wait_listening(gw.addr, "nginx", || {
        format!(
            "{}\n{}",
            gw.logs(),
            std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
        )
    })
    .await;

    gateway_scenarios(&gw, &fx).await;

    // nginx passes 401 with the challenge and restores 429 from X-Auth-Reason;
    // Portcullis saw the nginx-mode subrequests.
    let logs = p.wait_log("\"endpoint\":\"forward_auth\"");
    for key in fx.all_keys() {
        assert!(!logs.contains(key));
    }
}
