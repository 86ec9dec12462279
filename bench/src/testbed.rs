//! The system under test, assembled the way `backtrack up` assembles it: one real
//! `nats-server` (file storage in a temp dir), the directory in this process, its gRPC API
//! behind the auth interceptor on `127.0.0.1:0`, and an authenticated gRPC client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
use tonic::service::Interceptor;
use tonic::{Request, Status};

const TOKEN_TTL: Duration = Duration::from_secs(86_400);

/// A running nats-server + directory + gRPC server, and a client for it. Dropping it stops
/// the gRPC server and the directory's tasks and kills nats-server.
pub struct Testbed {
    pub directory: Directory,
    pub grpc_addr: SocketAddr,
    arrivals: Arrivals,
    token: String,
    /// The key the gRPC API checks tokens with (the recovery service mints its own).
    pub key: SigningKey,
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
            tls_ca: None,
            tls_client: None,
            url: nats.url(),
            creds: None,
            name: "backtrack-bench-directory".into(),
        })
        .await?;
        let auditor = backtrack_platform::audit::Auditor::new(
            backtrack_eventlog::AuditLog::open(client.clone(), 1).await?,
        );
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
        let arrivals = Arrivals::default();
        let service = InterceptedService::new(
            DirectoryApi::new(directory.clone(), auditor).into_server(),
            ArrivalProbe {
                auth: AuthInterceptor::new(Arc::new(TokenValidator::local(&key))),
                directory: directory.clone(),
                arrivals: arrivals.clone(),
            },
        );
        // Accepted as `backtrack up` accepts them (TCP_NODELAY on), so the figures are the
        // shipped server's.
        let incoming = backtrack_platform::grpc::incoming(listener);
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async move { shutdown.wait().await }),
        );
        Ok(Self {
            directory,
            grpc_addr,
            arrivals,
            token,
            key,
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
            directory_server: None,
            snapshotter_server: None,
            differ_server: None,
            recovery_server: None,
            audit_server: None,
            otlp_endpoint: None,
        })
        .await
    }

    /// A new NATS connection of its own, for baselines and readers.
    pub async fn nats_client(&self, name: &str) -> anyhow::Result<async_nats::Client> {
        Ok(connect(&NatsOptions {
            tls_ca: None,
            tls_client: None,
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

    /// Starts noting every request's [`Arrival`] (forgetting earlier ones).
    pub fn record_arrivals(&self) {
        *self.arrivals.lock().unwrap_or_else(PoisonError::into_inner) = Some(Vec::new());
    }

    /// Stops noting arrivals and returns those noted since [`Testbed::record_arrivals`].
    pub fn take_arrivals(&self) -> Vec<Arrival> {
        self.arrivals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_default()
    }

    /// Stops the gRPC server and the directory's background tasks.
    pub async fn stop(self) {
        self.trigger.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.server).await;
    }
}

/// A request reaching the gRPC server: when (wall clock, as JetStream timestamps are) and
/// how far the projection was at that moment. The directory answers a write only after
/// projecting it, so during a one-call-at-a-time import the position at an arrival is
/// exactly where the previous call's events end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrival {
    pub wall_ms: f64,
    pub position: u64,
}

type Arrivals = Arc<Mutex<Option<Vec<Arrival>>>>;

/// The auth interceptor of `backtrack up`, with a note of each arrival while recording.
/// Noting costs a mutex and a clock read, nothing the figures would show.
#[derive(Clone)]
struct ArrivalProbe {
    auth: AuthInterceptor,
    directory: Directory,
    arrivals: Arrivals,
}

impl Interceptor for ArrivalProbe {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(arrivals) = self
            .arrivals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            arrivals.push(Arrival {
                wall_ms: wall_ms(),
                position: self.directory.position(),
            });
        }
        self.auth.call(request)
    }
}

/// Milliseconds since the Unix epoch, with fractions.
pub fn wall_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}
