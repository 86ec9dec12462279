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
///
/// A port found free may be taken by another process before the server binds it (two
/// `up`s starting at once): the server is given a name of its own, and a port whose
/// answering server has another name is left for the next one.
pub(super) async fn start_nats_server(data: &Path) -> anyhow::Result<(Child, String)> {
    let dir = data.join("nats");
    std::fs::create_dir_all(&dir)?;
    let pid_file = dir.join("nats-server.pid");
    stop_orphan(&pid_file).await;
    let name = format!("backtrack-up-{}", uuid::Uuid::new_v4().simple());
    let mut from = 4222;
    for _ in 0..10 {
        let port = (from..4300)
            .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
            .ok_or_else(|| anyhow!("no free port for nats-server in 4222..4300"))?;
        if let Some(started) = start_on(&dir, &pid_file, &name, port).await? {
            return Ok(started);
        }
        from = port + 1;
    }
    bail!(
        "nats-server found no port of its own in 4222..4300 (others took each free one first); \
         pass --nats URL or try again"
    )
}

/// Starts the server on `port`; `None` when another server answers there.
async fn start_on(
    dir: &Path,
    pid_file: &Path,
    name: &str,
    port: u16,
) -> anyhow::Result<Option<(Child, String)>> {
    let log = std::fs::File::create(dir.join("nats-server.log"))?;
    let mut child = Command::new(nats_server_binary()?)
        .args([
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-n",
            name,
        ])
        .arg("-sd")
        .arg(dir.join("jetstream"))
        .arg("-P")
        .arg(pid_file)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start nats-server")?;
    let url = format!("nats://127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(client) = async_nats::connect(&url).await {
            if client.server_info().server_name != name {
                // Someone else's server: ours could not bind the port (or will not).
                let _ = child.kill().await;
                return Ok(None);
            }
            if async_nats::jetstream::new(client)
                .query_account()
                .await
                .is_ok()
            {
                return Ok(Some((child, url)));
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "nats-server exited ({status}) before it was ready; see {}",
                dir.join("nats-server.log").display()
            );
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "nats-server did not become ready; see {}",
                dir.join("nats-server.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
