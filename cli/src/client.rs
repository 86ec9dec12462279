//! Finding the server and the token, and building an authenticated gRPC client.

use std::path::Path;

use anyhow::{anyhow, Context};
use backtrack_platform::auth::BearerToken;
use backtrack_proto::v1::directory_service_client::DirectoryServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::args::GlobalArgs;

pub type Client = DirectoryServiceClient<InterceptedService<Channel, BearerToken>>;

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

/// Connects to the server named by `--server`.
pub async fn connect(global: &GlobalArgs) -> anyhow::Result<Client> {
    let token = token(global)?;
    let endpoint = Endpoint::from_shared(global.server.clone())
        .with_context(|| format!("invalid --server address '{}'", global.server))?;
    let channel = endpoint.connect().await.map_err(|e| {
        anyhow!(
            "cannot reach Backtrack at {}: {e}. Is `backtrack up` running (or --server right)?",
            global.server
        )
    })?;
    Ok(DirectoryServiceClient::with_interceptor(
        channel,
        BearerToken::new(&token).map_err(|e| anyhow!("unusable token: {e}"))?,
    )
    .max_decoding_message_size(64 * 1024 * 1024)
    .max_encoding_message_size(64 * 1024 * 1024))
}
