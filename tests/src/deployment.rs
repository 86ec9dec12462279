//! A deployment of separate processes: each Backtrack service started with
//! `backtrack serve SERVICE` against one NATS (cluster), sharing a signing key — the shape a
//! Kubernetes deployment runs — and a CLI that sends each call to its service's process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use backtrack_test_support::{backtrack_binary, eventually, free_port};
use serde_json::Value;

use crate::ready;

/// The services, in start order.
pub const SERVICES: [&str; 5] = ["directory", "snapshotter", "differ", "recovery", "audit"];

/// One `backtrack serve` process.
pub struct ServiceProcess {
    child: Option<Child>,
    pub grpc_port: u16,
    pub http_port: u16,
    pub data_dir: PathBuf,
}

/// Five processes, one per service, and the admin token the test uses.
pub struct Deployment {
    pub processes: BTreeMap<&'static str, ServiceProcess>,
    pub nats_url: String,
    pub token: String,
    /// Flags every `serve` gets besides the fixture's own.
    pub serve_args: Vec<String>,
    log_filter: String,
    key: PathBuf,
    dir: tempfile::TempDir,
}

impl Deployment {
    /// Writes a signing key, mints an admin token from it and starts every service.
    pub async fn start(nats_url: &str, serve_args: &[&str]) -> anyhow::Result<Self> {
        Self::start_logging(nats_url, serve_args, "warn").await
    }

    /// [`Deployment::start`] with the processes' log filter (`BACKTRACK_LOG`).
    pub async fn start_logging(
        nats_url: &str,
        serve_args: &[&str],
        log_filter: &str,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let key = dir.path().join("signing.key");
        // Unique per run; nothing secret is at stake in a test deployment.
        let secret = *uuid::Uuid::new_v4().as_bytes();
        let secret: Vec<u8> = secret
            .iter()
            .chain(uuid::Uuid::new_v4().as_bytes())
            .copied()
            .collect();
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = std::fs::OpenOptions::new()
                .create_new(true)
                .write(true)
                .mode(0o600)
                .open(&key)?;
            file.write_all(hex_encode(&secret).as_bytes())?;
        }
        let minted = Command::new(backtrack_binary())
            .arg("--data-dir")
            .arg(dir.path())
            .args([
                "token",
                "create",
                "--offline",
                "--tenant",
                "*",
                "--role",
                "GlobalAdministrator",
                "--subject",
                "admin",
            ])
            .output()?;
        if !minted.status.success() {
            bail!(
                "token create --offline failed: {}",
                String::from_utf8_lossy(&minted.stderr)
            );
        }
        let token = String::from_utf8(minted.stdout)?.trim().to_string();
        let mut processes = BTreeMap::new();
        for service in SERVICES {
            let data_dir = dir.path().join(service);
            std::fs::create_dir_all(&data_dir)?;
            processes.insert(
                service,
                ServiceProcess {
                    child: None,
                    grpc_port: free_port(),
                    http_port: free_port(),
                    data_dir,
                },
            );
        }
        let mut deployment = Deployment {
            processes,
            nats_url: nats_url.to_string(),
            token,
            serve_args: serve_args.iter().map(|a| a.to_string()).collect(),
            log_filter: log_filter.to_string(),
            key,
            dir,
        };
        for service in SERVICES {
            deployment.spawn(service)?;
        }
        for service in SERVICES {
            deployment.wait_ready(service).await?;
        }
        Ok(deployment)
    }

    fn spawn(&mut self, service: &'static str) -> anyhow::Result<()> {
        // The recovery service applies its batches through the directory service.
        let mut own_args = Vec::new();
        if service == "recovery" {
            own_args.push("--directory-server".to_string());
            own_args.push(format!(
                "http://127.0.0.1:{}",
                self.processes["directory"].grpc_port
            ));
        }
        let process = self.processes.get_mut(service).context("no such service")?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(process.data_dir.join("serve.log"))?;
        let child = Command::new(backtrack_binary())
            .arg("--data-dir")
            .arg(&process.data_dir)
            .args(["serve", service, "--nats", &self.nats_url])
            .arg("--signing-key")
            .arg(&self.key)
            .arg("--grpc-addr")
            .arg(format!("127.0.0.1:{}", process.grpc_port))
            .arg("--http-addr")
            .arg(format!("127.0.0.1:{}", process.http_port))
            .args(&self.serve_args)
            .args(&own_args)
            .env("BACKTRACK_LOG", &self.log_filter)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("cannot start backtrack serve {service}"))?;
        process.child = Some(child);
        Ok(())
    }

    async fn wait_ready(&self, service: &'static str) -> anyhow::Result<()> {
        let process = &self.processes[service];
        let port = process.http_port;
        eventually(
            &format!("backtrack serve {service} to be ready"),
            Duration::from_secs(120),
            || async move { ready(port).await.then_some(()) },
        )
        .await
        .with_context(|| self.log(service))
    }

    /// The service's log so far.
    pub fn log(&self, service: &str) -> String {
        std::fs::read_to_string(self.processes[service].data_dir.join("serve.log"))
            .unwrap_or_default()
    }

    /// SIGKILL one service's process.
    pub fn kill(&mut self, service: &str) {
        if let Some(process) = self.processes.get_mut(service) {
            if let Some(mut child) = process.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Starts a killed service again (same data dir and ports) and waits until it is ready.
    pub async fn restart(&mut self, service: &'static str) -> anyhow::Result<()> {
        self.kill(service);
        self.spawn(service)?;
        self.wait_ready(service).await
    }

    /// SIGTERM one service and wait for it to exit; returns whether it exited cleanly.
    pub fn terminate(&mut self, service: &str) -> anyhow::Result<bool> {
        let Some(mut child) = self.processes.get_mut(service).and_then(|p| p.child.take()) else {
            return Ok(false);
        };
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        Ok(child.wait()?.success())
    }

    /// Runs a CLI command with `-o json`, each service's calls sent to its own process.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_env(args, &[])
    }

    /// [`Deployment::cli`] with extra environment variables.
    pub fn cli_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let address =
            |service: &str| format!("http://127.0.0.1:{}", self.processes[service].grpc_port);
        Command::new(backtrack_binary())
            .args(["--server", &address("directory")])
            .args(["--directory-server", &address("directory")])
            .args(["--snapshotter-server", &address("snapshotter")])
            .args(["--differ-server", &address("differ")])
            .args(["--recovery-server", &address("recovery")])
            .args(["--audit-server", &address("audit")])
            .args(["-o", "json", "--token", &self.token])
            .args(args)
            .env_remove("BACKTRACK_TOKEN")
            .envs(env.iter().copied())
            .output()
            .expect("the backtrack binary runs")
    }

    /// Runs a CLI command that must succeed and print JSON.
    pub fn json(&self, args: &[&str]) -> anyhow::Result<Value> {
        crate::json_of(args, self.cli(args))
    }

    /// A scratch folder for the test's files.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for service in SERVICES {
            self.kill(service);
        }
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
