//! Finding the server and the token, and building authenticated gRPC clients (directory,
//! backup, time travel, difference reports) over one shared channel.

use std::path::Path;

use anyhow::{anyhow, Context};
use backtrack_platform::auth::BearerToken;
use backtrack_proto::v1::audit_service_client::AuditServiceClient;
use backtrack_proto::v1::backup_service_client::BackupServiceClient;
use backtrack_proto::v1::diff_service_client::DiffServiceClient;
use backtrack_proto::v1::directory_service_client::DirectoryServiceClient;
use backtrack_proto::v1::process_service_client::ProcessServiceClient;
use backtrack_proto::v1::recovery_service_client::RecoveryServiceClient;
use backtrack_proto::v1::time_travel_service_client::TimeTravelServiceClient;
use backtrack_proto::v1::token_service_client::TokenServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::args::GlobalArgs;

/// A channel whose every request carries the bearer token.
pub type AuthedChannel = InterceptedService<Channel, BearerToken>;
/// The directory service client.
pub type Client = DirectoryServiceClient<AuthedChannel>;
/// The backup service client.
pub type BackupClient = BackupServiceClient<AuthedChannel>;
/// The time-travel service client.
pub type TimeTravelClient = TimeTravelServiceClient<AuthedChannel>;
/// The difference-report service client.
pub type DiffClient = DiffServiceClient<AuthedChannel>;

/// The audit service client.
pub type AuditClient = AuditServiceClient<AuthedChannel>;
/// The recovery service client.
pub type RecoveryClient = RecoveryServiceClient<AuthedChannel>;
/// The client of the service every process answers (what it serves and keeps).
pub type ProcessClient = ProcessServiceClient<AuthedChannel>;
/// The token service client.
pub type TokenClient = TokenServiceClient<AuthedChannel>;

/// Largest message either way: big enough for a page of large objects.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// The token: `--token` / `BACKTRACK_TOKEN`, else `<data dir>/admin.token`.
pub fn token(global: &GlobalArgs) -> anyhow::Result<String> {
    if let Some(t) = &global.token {
        return Ok(t.trim().to_string());
    }
    let path = global.data_dir.join("admin.token");
    read_token(&path).with_context(|| {
        format!(
            "no token: pass --token, set BACKTRACK_TOKEN, or run `backtrack up` so that {} exists",
            path.display()
        )
    })
}

fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(anyhow!("{} is empty", path.display()));
    }
    Ok(token)
}

/// An authenticated connection: one HTTP/2 channel and the token every call carries.
/// Clients made from it share the channel, so a command that needs two services opens
/// one connection.
#[derive(Clone)]
pub struct Connection {
    /// The `--server` channel, for every service without an address of its own.
    channel: Channel,
    /// Channels of the services given their own address (`--directory-server`, …), for a
    /// deployment that runs each service as its own process without a router in front.
    routes: Routes,
    /// Every address the services are reached at, each once, with its channel.
    processes: Vec<(String, Channel)>,
    token: BearerToken,
}

#[derive(Clone, Default)]
struct Routes {
    directory: Option<Channel>,
    snapshotter: Option<Channel>,
    differ: Option<Channel>,
    recovery: Option<Channel>,
    audit: Option<Channel>,
}

impl Connection {
    fn route(&self, channel: &Option<Channel>) -> Channel {
        channel.clone().unwrap_or_else(|| self.channel.clone())
    }
}

impl Connection {
    /// The directory service: objects, tenants, the change feed.
    pub fn directory(&self) -> Client {
        DirectoryServiceClient::with_interceptor(
            self.route(&self.routes.directory),
            self.token.clone(),
        )
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
    }

    /// The backup service: manifests, verification, pins and the backup policy.
    pub fn backup(&self) -> BackupClient {
        BackupServiceClient::with_interceptor(
            self.route(&self.routes.snapshotter),
            self.token.clone(),
        )
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
    }

    /// The time-travel service: objects, lists, links and histories at any point.
    pub fn time_travel(&self) -> TimeTravelClient {
        TimeTravelServiceClient::with_interceptor(
            self.route(&self.routes.snapshotter),
            self.token.clone(),
        )
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
    }

    /// The difference-report service: report jobs, their pages of items and exports.
    pub fn diff(&self) -> DiffClient {
        DiffServiceClient::with_interceptor(self.route(&self.routes.differ), self.token.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }
}

impl Connection {
    /// The audit service: query, tail and verify audit chains.
    pub fn audit(&self) -> AuditClient {
        AuditServiceClient::with_interceptor(self.route(&self.routes.audit), self.token.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// The recovery service: recovery jobs, their plans, failures, cancel and undo.
    pub fn recovery(&self) -> RecoveryClient {
        RecoveryServiceClient::with_interceptor(
            self.route(&self.routes.recovery),
            self.token.clone(),
        )
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
    }

    /// Each process the services are reached at (its address and a client of the
    /// `ProcessService` every process serves), each once.
    pub fn processes(&self) -> Vec<(String, ProcessClient)> {
        self.processes
            .iter()
            .map(|(address, channel)| {
                let client =
                    ProcessServiceClient::with_interceptor(channel.clone(), self.token.clone());
                (address.clone(), client)
            })
            .collect()
    }

    /// The token service: local tokens issued, and audited, by the server.
    pub fn tokens(&self) -> TokenClient {
        TokenServiceClient::with_interceptor(self.route(&self.routes.directory), self.token.clone())
    }
}

impl Connection {
    /// The channel that reaches the gRPC service `service` (e.g.
    /// `backtrack.v1.BackupService`): its own address if given one, else `--server`.
    pub fn channel_of(&self, service: &str) -> Channel {
        let route = match service.rsplit('.').next().unwrap_or(service) {
            "DirectoryService" | "TokenService" => &self.routes.directory,
            "BackupService" | "TimeTravelService" => &self.routes.snapshotter,
            "DiffService" => &self.routes.differ,
            "RecoveryService" => &self.routes.recovery,
            "AuditService" => &self.routes.audit,
            _ => &None,
        };
        self.route(route)
    }
}

/// Connects to the server named by `--server` with the token from [`token`].
pub async fn connect_channel(global: &GlobalArgs) -> anyhow::Result<Connection> {
    let token = token(global)?;
    let token = BearerToken::new(&token).map_err(|e| anyhow!("unusable token: {e}"))?;
    let endpoint = Endpoint::from_shared(global.server.clone())
        .with_context(|| format!("invalid --server address '{}'", global.server))?;
    let lazy =
        |flag: &str, address: &Option<String>| -> anyhow::Result<Option<(String, Channel)>> {
            address
                .as_ref()
                .map(|address| {
                    Endpoint::from_shared(address.clone())
                        .map(|e| (address.clone(), e.connect_lazy()))
                        .with_context(|| format!("invalid {flag} address '{address}'"))
                })
                .transpose()
        };
    let own = [
        lazy("--directory-server", &global.directory_server)?,
        lazy("--snapshotter-server", &global.snapshotter_server)?,
        lazy("--differ-server", &global.differ_server)?,
        lazy("--recovery-server", &global.recovery_server)?,
        lazy("--audit-server", &global.audit_server)?,
    ];
    let channel = endpoint.connect().await.map_err(|e| {
        anyhow!(
            "cannot reach Backtrack at {}: {e}. Is `backtrack up` running (or --server right)?",
            global.server
        )
    })?;
    // Each address once: `--server` if a service has no address of its own, then those.
    let mut processes = Vec::new();
    if own.iter().any(Option::is_none) {
        processes.push((global.server.clone(), channel.clone()));
    }
    for (address, channel) in own.iter().flatten() {
        if !processes.iter().any(|(known, _)| known == address) {
            processes.push((address.clone(), channel.clone()));
        }
    }
    let [directory, snapshotter, differ, recovery, audit] =
        own.map(|route| route.map(|(_, channel)| channel));
    Ok(Connection {
        channel,
        routes: Routes {
            directory,
            snapshotter,
            differ,
            recovery,
            audit,
        },
        processes,
        token,
    })
}

/// Connects and returns a directory service client.
pub async fn connect(global: &GlobalArgs) -> anyhow::Result<Client> {
    Ok(connect_channel(global).await?.directory())
}

/// Connects and returns a backup service client.
pub async fn backup_client(global: &GlobalArgs) -> anyhow::Result<BackupClient> {
    Ok(connect_channel(global).await?.backup())
}

/// Connects and returns a time-travel service client.
pub async fn time_travel_client(global: &GlobalArgs) -> anyhow::Result<TimeTravelClient> {
    Ok(connect_channel(global).await?.time_travel())
}

/// Connects and returns a difference-report service client.
pub async fn diff_client(global: &GlobalArgs) -> anyhow::Result<DiffClient> {
    Ok(connect_channel(global).await?.diff())
}

/// Connects and returns a recovery service client.
pub async fn recovery_client(global: &GlobalArgs) -> anyhow::Result<RecoveryClient> {
    Ok(connect_channel(global).await?.recovery())
}

/// Connects and returns an audit service client.
pub async fn audit_client(global: &GlobalArgs) -> anyhow::Result<AuditClient> {
    Ok(connect_channel(global).await?.audit())
}
