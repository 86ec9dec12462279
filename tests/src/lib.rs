//! End-to-end harness: runs the real `backtrack` binary (`backtrack up` and CLI commands)
//! against a real nats-server, the way an administrator would.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use backtrack_test_support::{backtrack_binary, eventually, free_port, nats_server_binary};
use serde_json::Value;

pub mod deployment;

/// A running `backtrack up`, with its own data dir and ports.
pub struct Backtrack {
    child: Option<Child>,
    pub data_dir: PathBuf,
    pub grpc_port: u16,
    pub http_port: u16,
    pub nats_url: Option<String>,
    /// Extra flags for `backtrack up`.
    pub up_args: Vec<String>,
    _temp: Option<tempfile::TempDir>,
}

impl Backtrack {
    /// Starts `backtrack up` in a fresh data dir; `nats_url` None = it starts nats-server itself.
    pub async fn start(nats_url: Option<String>) -> anyhow::Result<Self> {
        Self::start_with(nats_url, &[]).await
    }

    /// Like [`Backtrack::start`], with extra flags for `backtrack up`.
    pub async fn start_with(nats_url: Option<String>, up_args: &[&str]) -> anyhow::Result<Self> {
        let temp = tempfile::tempdir()?;
        let mut b = Backtrack {
            child: None,
            data_dir: temp.path().to_path_buf(),
            grpc_port: free_port(),
            http_port: free_port(),
            nats_url,
            up_args: up_args.iter().map(|a| a.to_string()).collect(),
            _temp: Some(temp),
        };
        b.launch().await?;
        Ok(b)
    }

    /// Starts (again) with the same data dir and ports.
    pub async fn launch(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new(backtrack_binary());
        cmd.arg("up")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--grpc-addr")
            .arg(format!("127.0.0.1:{}", self.grpc_port))
            .arg("--http-addr")
            .arg(format!("127.0.0.1:{}", self.http_port))
            .env("NATS_SERVER_BIN", nats_server_binary())
            .env("BACKTRACK_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(
                self.data_dir.join("up.log"),
            )?));
        if let Some(url) = &self.nats_url {
            cmd.arg("--nats").arg(url);
        }
        cmd.args(&self.up_args);
        self.child = Some(cmd.spawn().context("cannot start backtrack up")?);
        let port = self.http_port;
        let log = self.data_dir.join("up.log");
        eventually(
            "backtrack up to be ready",
            Duration::from_secs(90),
            || async move { ready(port).await.then_some(()) },
        )
        .await
        .with_context(|| std::fs::read_to_string(&log).unwrap_or_default())
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()?;
            let status = child.wait()?;
            if !status.success() {
                bail!("backtrack up exited with {status}");
            }
        }
        Ok(())
    }

    /// Runs a CLI command with `-o json`; returns the output whatever the exit code.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_env(args, &[])
    }

    pub fn cli_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args, env)
            .output()
            .expect("the backtrack binary runs")
    }

    /// Runs a CLI command (`-o json`) that must end by itself within `limit`; fails (after
    /// killing it) when it does not.
    pub fn cli_within(&self, args: &[&str], limit: Duration) -> anyhow::Result<Output> {
        let mut child = self
            .command(args, &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        // Read the pipes while waiting, so a long output cannot block the command.
        let mut stdout = child.stdout.take().context("stdout is piped")?;
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut stdout, &mut out).map(|_| out)
        });
        let deadline = std::time::Instant::now() + limit;
        while child.try_wait()?.is_none() {
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("backtrack {} did not end within {limit:?}", args.join(" "));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let stdout = reader
            .join()
            .map_err(|_| anyhow::anyhow!("the stdout reader panicked"))??;
        let mut output = child.wait_with_output()?;
        output.stdout = stdout;
        Ok(output)
    }

    /// Runs a CLI command (`-o json`) whose reader stops after the first `bytes` bytes of its
    /// output and closes the pipe, as `backtrack … | head -c N` does. Returns what was read
    /// and the command's exit status and stderr.
    pub fn cli_read_then_close(
        &self,
        args: &[&str],
        bytes: usize,
    ) -> anyhow::Result<(Vec<u8>, Output)> {
        let mut child = self
            .command(args, &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut head = vec![0; bytes];
        let mut stdout = child.stdout.take().context("stdout is piped")?;
        std::io::Read::read_exact(&mut stdout, &mut head)?;
        drop(stdout);
        Ok((head, child.wait_with_output()?))
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(backtrack_binary());
        cmd.args([
            "--server",
            &format!("http://127.0.0.1:{}", self.grpc_port),
            "-o",
            "json",
        ])
        .arg("--data-dir")
        .arg(&self.data_dir)
        .args(args)
        .env_remove("BACKTRACK_TOKEN");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs a CLI command that must succeed and prints JSON; returns the JSON.
    pub fn json(&self, args: &[&str]) -> anyhow::Result<Value> {
        json_of(args, self.cli(args))
    }

    /// `dir create --tenant T --kind K --set S...` (each `S` is `attribute=value`), which
    /// must succeed; returns the created object as JSON.
    pub fn create(&self, tenant: &str, kind: &str, sets: &[&str]) -> anyhow::Result<Value> {
        let mut args = vec!["dir", "create", "--tenant", tenant, "--kind", kind];
        for set in sets {
            args.extend(["--set", set]);
        }
        self.json(&args)
    }

    pub fn token(&self) -> anyhow::Result<String> {
        Ok(std::fs::read_to_string(self.data_dir.join("admin.token"))?
            .trim()
            .to_string())
    }

    /// A token `backtrack token create <args>` issues (with the admin token); fails the
    /// test if the command fails.
    pub fn issue_token(&self, args: &[&str]) -> String {
        let mut all = vec!["token", "create"];
        all.extend_from_slice(args);
        let out = self.cli(&all);
        assert!(out.status.success(), "token create {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `backtrack recover --tenant <tenant> --yes --wait <args>`: the finished job.
    pub fn recover(&self, tenant: &str, args: &[&str]) -> Value {
        let mut full = vec!["recover", "--tenant", tenant, "--yes", "--wait"];
        full.extend_from_slice(args);
        self.json(&full).expect("the recovery ran")
    }

    /// `backtrack dir get --tenant <tenant> <id>`.
    pub fn object(&self, tenant: &str, id: &str) -> Value {
        self.json(&["dir", "get", "--tenant", tenant, id])
            .expect("the object is there")
    }

    /// A token of `tenant` with one `role`, for `subject`.
    pub fn token_for(&self, tenant: &str, role: &str, subject: &str) -> String {
        self.issue_token(&["--tenant", tenant, "--role", role, "--subject", subject])
    }

    /// Runs `backtrack <args>` with `token`; fails the test if the command fails.
    pub fn ok_with_token(&self, token: &str, args: &[&str]) {
        let out = self.cli_with_env(args, &[("BACKTRACK_TOKEN", token)]);
        assert!(out.status.success(), "backtrack {args:?}: {out:?}");
    }

    pub fn data(&self) -> &Path {
        &self.data_dir
    }
}

impl Drop for Backtrack {
    fn drop(&mut self) {
        self.kill();
        // A self-started nats-server is stopped by `up` on SIGTERM; after SIGKILL stop it here.
        if let Ok(pid) = std::fs::read_to_string(self.data_dir.join("nats/nats-server.pid")) {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
    }
}

/// The JSON a CLI command printed, or an error naming the command and what it said.
pub fn json_of(args: &[&str], out: Output) -> anyhow::Result<Value> {
    if !out.status.success() {
        bail!(
            "`backtrack {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "`backtrack {}` printed no JSON: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// How often each mutation id of job `job` occurs among tenant `tenant`'s events (the
/// job's correlation id marks them): every count is 1 when nothing was doubled.
pub async fn job_mutations(
    nats: &async_nats::Client,
    tenant: &str,
    job: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, usize>> {
    use backtrack_eventlog::{EventLog, StreamSettings};
    let log = EventLog::open(nats.clone(), StreamSettings::default()).await?;
    let mut out = std::collections::BTreeMap::new();
    for e in log
        .read_range(1, u64::MAX, &format!("bt.ev.{tenant}.>"))
        .await?
    {
        if e.event.meta.correlation_id.as_deref() == Some(job) {
            *out.entry(e.event.meta.mutation_id).or_default() += 1;
        }
    }
    Ok(out)
}

/// Whether `GET /readyz` answers 200.
pub async fn ready(port: u16) -> bool {
    matches!(http_get(port, "/readyz").await, Some((200, _)))
}

/// `GET path` on 127.0.0.1:`port`: the status code and body, or `None` when the port does
/// not answer HTTP.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    // A chunked body (axum's streaming answers) is rejoined without its size lines.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Some((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The value of one Prometheus series (`name{labels}` exactly as exposed) in a scrape.
pub fn metric(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

/// The `id` of an object printed as JSON.
pub fn id(v: &Value) -> String {
    v["id"].as_str().map(str::to_string).unwrap_or_default()
}

/// The stream's last sequence, from `backtrack status`.
pub fn last_sequence(b: &Backtrack) -> anyhow::Result<u64> {
    b.json(&["status"])?["lastSequence"]
        .as_u64()
        .context("status has no lastSequence")
}

/// Every object of a tenant, live and in the recycle bin, as `dir list` prints them.
pub fn all_objects(b: &Backtrack, tenant: &str) -> anyhow::Result<Vec<Value>> {
    let mut objects = b
        .json(&["dir", "list", "--tenant", tenant])?
        .as_array()
        .cloned()
        .unwrap_or_default();
    objects.extend(
        b.json(&["dir", "deleted", "--tenant", tenant])?
            .as_array()
            .cloned()
            .unwrap_or_default(),
    );
    Ok(objects)
}

/// Every audit record stored on `BT_AUDIT` under `filter` (e.g. `bt.audit.acme.>`), in
/// stream order; empty when the stream does not exist yet. The reader's server may be a
/// replica still catching up, so where it runs dry the stream leader is asked whether
/// more records exist.
pub async fn audit_records(
    nats: &async_nats::Client,
    filter: &str,
) -> anyhow::Result<Vec<backtrack_proto::v1::AuditRecord>> {
    use async_nats::jetstream::consumer::pull::OrderedConfig;
    use futures::StreamExt;
    use prost::Message;
    let js = async_nats::jetstream::new(nats.clone());
    let Ok(stream) = js.get_stream("BT_AUDIT").await else {
        return Ok(Vec::new());
    };
    // The first record over `filter` at or after `from`, by the leader's account.
    let next_at_leader = |from: u64| {
        let js = js.clone();
        async move {
            backtrack_eventlog::read::next_at_leader(&js, "BT_AUDIT", filter, from)
                .await
                .map_err(anyhow::Error::from)
        }
    };
    if next_at_leader(1).await?.is_none() {
        return Ok(Vec::new());
    }
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: filter.to_string(),
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut out = Vec::new();
    let deadline = std::time::Duration::from_secs(30);
    loop {
        let message = tokio::time::timeout(deadline, messages.next())
            .await
            .map_err(|_| anyhow::anyhow!("no audit record over {filter} for {deadline:?}"))?
            .ok_or_else(|| anyhow::anyhow!("the reader over {filter} ended"))??;
        let info = message.info().map_err(|e| anyhow::anyhow!("{e}"))?;
        let (sequence, pending) = (info.stream_sequence, info.pending);
        out.push(backtrack_proto::v1::AuditRecord::decode(
            message.payload.as_ref(),
        )?);
        if pending == 0 && next_at_leader(sequence + 1).await?.is_none() {
            return Ok(out);
        }
    }
}
