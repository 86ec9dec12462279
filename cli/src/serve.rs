//! `backtrack serve SERVICE`: one service in its own process, against the NATS (cluster)
//! given by `--nats`, with its own gRPC and HTTP ports — the shape a Kubernetes deployment
//! runs (see `deploy/`).
//!
//! Each process keeps the projections it reads in its own data directory: a differ and a
//! recovery process keep a time-travel store of their own (a read replica that takes no
//! scheduled backups and writes no checkpoints) and a recovery process a directory view.
//! A recovery process applies its batches through the directory service over gRPC
//! (`--directory-server`), so the directory stays the only writer of the event log.

use backtrack_platform::auth::SigningKey;
use backtrack_platform::config::exit_bad_config;

use crate::args::{ServeArgs, ServiceName};
use crate::up::{self, Parts, Prepared};

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let ServeArgs {
        service,
        up: mut args,
    } = args;
    if args.nats.is_none() {
        exit_bad_config(
            "backtrack serve needs --nats URL (BACKTRACK_NATS_URL): the NATS JetStream server or cluster every service shares; several URLs are separated by commas"
                .to_string(),
        );
    }
    if args.demo {
        exit_bad_config(
            "--demo belongs to `backtrack up`; seed a tenant with `backtrack demo seed` against the directory service"
                .to_string(),
        );
    }
    if service == ServiceName::Recovery && args.directory_server.is_none() {
        exit_bad_config(
            "backtrack serve recovery needs --directory-server ADDRESS (BACKTRACK_DIRECTORY_SERVER): the directory service's gRPC address, e.g. http://backtrack-directory:50051; recovery jobs apply their changes through it"
                .to_string(),
        );
    }
    let nats_url = args.nats.clone().unwrap_or_default();
    let parts = match service {
        ServiceName::Directory => Parts::directory(),
        ServiceName::Snapshotter => Parts::snapshotter(),
        ServiceName::Differ => Parts::differ(),
        ServiceName::Recovery => Parts::recovery(),
        ServiceName::Audit => Parts::audit(),
    };
    let Prepared {
        data,
        tracing: _tracing,
        key_path,
        provider,
        lock: _lock,
    } = up::prepare(&mut args, parts.name).await?;
    // Every process of a deployment checks tokens with the same key, so `serve` never makes
    // one up: a key only this process knew would refuse every other process's tokens.
    let key = match SigningKey::load(&key_path) {
        Ok(key) => key,
        Err(e) => exit_bad_config(format!(
            "{e}\nbacktrack serve needs the deployment's token signing key, the same file for every service: \
             --signing-key FILE (BACKTRACK_SIGNING_KEY) holding 64 hex digits (e.g. `openssl rand -hex 32`)"
        )),
    };
    up::serve(&args, &data, &key, provider, &nats_url, parts).await
}
