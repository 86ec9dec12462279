//! The system under test, assembled the way `backtrack up` assembles it: one real
//! `nats-server` (file storage in a temp dir), the directory in this process, its gRPC API
//! behind the auth interceptor on `127.0.0.1:0`, and an authenticated gRPC client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use backtrack_cli::args::{GlobalArgs, OutputFormat};
use backtrack_cli::client::Client;
use backtrack_directory::api::DirectoryApi;
use backtrack_directory::{Directory, DirectoryConfig};
use backtrack_platform::auth::{AuthInterceptor, Role, SigningKey, TokenValidator, ALL_TENANTS};
use backtrack_platform::nats::{connect, NatsOptions};
use backtrack_platform::shutdown::{Shutdown, ShutdownTrigger};
use backtrack_test_support::NatsServer;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;

const TOKEN_TTL: Duration = Duration::from_secs(86_400);

/// A running nats-server + directory + gRPC server, and a client for it. Dropping it stops
/// the gRPC server and the directory's tasks and kills nats-server.
pub struct Testbed {
    pub directory: Directory,
    pub grpc_addr: SocketAddr,
    token: String,
    trigger: ShutdownTrigger,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    // Dropped last: the server's store and the projection live in these folders.
    pub nats: NatsServer,
    scratch: TempDir,
}

impl Testbed {
    pub async fn start() -> anyhow::Result<Self> {
        let nats = NatsServer::start().await?;
        let scratch = tempfile::Builder::new()
            .prefix("backtrack-bench-")
            .tempdir()
            .context("create a scratch directory")?;
        let (trigger, shutdown) = Shutdown::new();
        let client = connect(&NatsOptions {
            url: nats.url(),
            creds: None,
            name: "backtrack-bench-directory".into(),
        })
        .await?;
        let directory = backtrack_directory::start(
            DirectoryConfig::new(scratch.path().join("directory")),
            client,
            shutdown.clone(),
        )
        .await?;

        let key = SigningKey::generate()?;
        let token = key.mint(
            "bench",
            &[ALL_TENANTS.to_string()],
            &[Role::GlobalAdministrator],
            &[],
            TOKEN_TTL,
        )?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let grpc_addr = listener.local_addr()?;
        let service = InterceptedService::new(
            DirectoryApi::new(directory.clone()).into_server(),
            AuthInterceptor::new(Arc::new(TokenValidator::local(&key))),
        );
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async move { shutdown.wait().await }),
        );
        Ok(Self {
            directory,
            grpc_addr,
            token,
            trigger,
            server,
            nats,
            scratch,
        })
    }

    /// A new authenticated gRPC client (its own HTTP/2 connection).
    pub async fn grpc_client(&self) -> anyhow::Result<Client> {
        backtrack_cli::client::connect(&GlobalArgs {
            server: format!("http://{}", self.grpc_addr),
            token: Some(self.token.clone()),
            data_dir: self.scratch.path().to_path_buf(),
            output: OutputFormat::Json,
        })
        .await
    }

    /// A new NATS connection of its own, for baselines and readers.
    pub async fn nats_client(&self, name: &str) -> anyhow::Result<async_nats::Client> {
        Ok(connect(&NatsOptions {
            url: self.nats.url(),
            creds: None,
            name: name.into(),
        })
        .await?)
    }

    /// A fresh folder under the scratch directory (removed with the testbed).
    pub fn scratch_dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = self.scratch.path().join(name);
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(path)
    }

    /// Stops the gRPC server and the directory's background tasks.
    pub async fn stop(self) {
        self.trigger.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.server).await;
    }
}
