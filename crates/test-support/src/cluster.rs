//! A real three-node `nats-server` JetStream cluster on loopback ports, each node with its
//! own store in a temporary directory, so tests can run replicated (R3) streams and kill a
//! node in the middle of the work. Dropping the cluster kills every node.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use tempfile::TempDir;

use crate::{eventually, free_port, nats_server_binary};

/// How long a cluster gets to elect its JetStream meta leader.
const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// One node: its ports, config and process.
struct Node {
    client_port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// Three `nats-server -js` nodes routed to each other (cluster `backtrack-test`).
pub struct NatsCluster {
    nodes: Vec<Node>,
    dir: TempDir,
}

impl std::fmt::Debug for NatsCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsCluster")
            .field("url", &self.url())
            .finish()
    }
}

impl NatsCluster {
    /// Starts three nodes and waits until JetStream answers on every one of them (a meta
    /// leader is elected).
    pub async fn start() -> anyhow::Result<NatsCluster> {
        let dir = tempfile::Builder::new()
            .prefix("backtrack-nats-cluster-")
            .tempdir()
            .context("create a temporary directory for the NATS cluster")?;
        let route_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes: Vec<String> = route_ports
            .iter()
            .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
            .collect();
        let mut nodes = Vec::new();
        for (i, route_port) in route_ports.iter().enumerate() {
            let client_port = free_port();
            let store = dir.path().join(format!("n{i}"));
            let config = dir.path().join(format!("n{i}.conf"));
            let text = format!(
                "server_name: n{i}\nlisten: \"127.0.0.1:{client_port}\"\n\
                 jetstream {{ store_dir: \"{}\" }}\n\
                 cluster {{\n  name: backtrack-test\n  listen: \"127.0.0.1:{route_port}\"\n  routes: [{}]\n}}\n",
                store.display(),
                routes.join(", ")
            );
            std::fs::write(&config, text).context("write a node's config")?;
            nodes.push(Node {
                client_port,
                config,
                log: dir.path().join(format!("n{i}.log")),
                child: None,
            });
        }
        let mut cluster = NatsCluster { nodes, dir };
        for i in 0..cluster.nodes.len() {
            cluster.spawn(i)?;
        }
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    /// Every node's client URL, comma-separated: what a client given the whole cluster
    /// connects with (it fails over between them).
    pub fn url(&self) -> String {
        (0..self.nodes.len())
            .map(|i| self.node_url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// One node's client URL.
    pub fn node_url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].client_port)
    }

    /// A new client connection to the cluster.
    pub async fn client(&self) -> anyhow::Result<async_nats::Client> {
        let urls = (0..self.nodes.len())
            .map(|i| self.node_url(i).parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()?;
        async_nats::connect(urls)
            .await
            .with_context(|| format!("connect to the NATS cluster at {}", self.url()))
    }

    /// Kills node `i` with SIGKILL, like a crash; its store stays for [`Self::restart`].
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` again with its store and waits until the cluster answers on it.
    /// While the node was down another process may have been given its client port (tests
    /// run in parallel and ask the OS for free ports); then the node comes back on a new
    /// one, which [`Self::node_url`] names and the other nodes announce to clients.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.kill(i);
        if std::net::TcpListener::bind(("127.0.0.1", self.nodes[i].client_port)).is_err() {
            let node = &mut self.nodes[i];
            let old = format!("listen: \"127.0.0.1:{}\"", node.client_port);
            node.client_port = free_port();
            let config = std::fs::read_to_string(&node.config).context("read a node's config")?;
            let new = format!("listen: \"127.0.0.1:{}\"", node.client_port);
            std::fs::write(&node.config, config.replacen(&old, &new, 1))
                .context("write a node's config")?;
        }
        self.spawn(i)?;
        self.wait_ready().await
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .context("open a node's log file")?;
        let log_err: File = log.try_clone().context("clone the log file handle")?;
        let binary = nats_server_binary();
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&node.config)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .with_context(|| format!("spawn {}", binary.display()))?;
        node.child = Some(child);
        Ok(())
    }

    /// Waits until every running node accepts clients and answers a JetStream request.
    async fn wait_ready(&self) -> anyhow::Result<()> {
        for i in 0..self.nodes.len() {
            if self.nodes[i].child.is_none() {
                continue;
            }
            let url = self.node_url(i);
            eventually(
                &format!("NATS cluster node {url} to answer JetStream requests"),
                CLUSTER_READY_TIMEOUT,
                || {
                    let url = url.clone();
                    async move {
                        let client = async_nats::connect(&url).await.ok()?;
                        async_nats::jetstream::new(client)
                            .query_account()
                            .await
                            .ok()
                            .map(|_| ())
                    }
                },
            )
            .await
            .map_err(|e| anyhow!("{e}\n{}", self.log_tail(i)))?;
        }
        Ok(())
    }

    fn log_tail(&self, i: usize) -> String {
        let text = std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!(
            "last lines of {} (cluster in {}):\n{tail}",
            self.nodes[i].log.display(),
            self.dir.path().display()
        )
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn a_replicated_stream_keeps_its_messages_through_a_node_crash() -> anyhow::Result<()> {
        let mut cluster = NatsCluster::start().await?;
        let js = async_nats::jetstream::new(cluster.client().await?);
        let stream = js
            .create_stream(async_nats::jetstream::stream::Config {
                name: "R3".into(),
                subjects: vec!["r3.>".into()],
                num_replicas: 3,
                ..Default::default()
            })
            .await?;
        assert_eq!(stream.cached_info().config.num_replicas, 3);
        js.publish("r3.a", "one".into()).await?.await?;
        cluster.kill(0);
        // Two of three nodes still form a quorum: writes go on.
        let js = async_nats::jetstream::new(
            async_nats::connect(vec![
                cluster.node_url(1).parse::<async_nats::ServerAddr>()?,
                cluster.node_url(2).parse()?,
            ])
            .await?,
        );
        let ack = eventually(
            "a publish with one node down",
            Duration::from_secs(30),
            || {
                let js = js.clone();
                async move { js.publish("r3.b", "two".into()).await.ok()?.await.ok() }
            },
        )
        .await?;
        assert_eq!(ack.sequence, 2);
        // Another process takes the dead node's client port meanwhile: the node comes back
        // on another one, with its store.
        let old_url = cluster.node_url(0);
        let squatter = std::net::TcpListener::bind(("127.0.0.1", cluster.nodes[0].client_port))?;
        cluster.restart(0).await?;
        assert_ne!(cluster.node_url(0), old_url);
        let mut info = js.get_stream("R3").await?;
        assert_eq!(info.info().await?.state.messages, 2);
        let on_node0 = async_nats::jetstream::new(async_nats::connect(cluster.node_url(0)).await?);
        let mut stream = on_node0.get_stream("R3").await?;
        assert_eq!(stream.info().await?.state.messages, 2);
        drop(squatter);
        Ok(())
    }
}
