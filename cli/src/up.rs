//! `backtrack up`: every service in one process, on one gRPC and one HTTP port, against
//! `--nats` or a `nats-server` it starts under the data directory. `backtrack serve` runs
//! one service through the same [`serve`].
//!
//! - [`parts`]: which services a process runs.
//! - [`startup`]: opens retried while a deployment's processes start together, and the
//!   projections' catch-up before a process reports ready.
//! - [`seed`]: the demo tenant.
//! - [`local_nats`]: the nats-server `up` starts for itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use backtrack_directory::api::DirectoryApi;
use backtrack_directory::DirectoryConfig;
use backtrack_eventlog::AuditLog;
use backtrack_platform::audit::{AuditLayer, Auditor};
use backtrack_platform::auth::token_api::{issued_records, revoked_records, IssuerOf, TokenApi};
use backtrack_platform::auth::{
    AuthInterceptor, JwksHandle, OidcProvider, Revocation, Revocations, Role, SigningKey,
    TokenRecord, TokenRegistry, TokenValidator, ALL_TENANTS,
};
use backtrack_platform::health::{serve_http, Health};
use backtrack_platform::metrics::RpcMetricsLayer;
use backtrack_platform::nats::{connect, NatsOptions};
use backtrack_platform::shutdown::{terminate_signal, Shutdown};
use backtrack_snapshotter::api::backup::BackupApi;
use backtrack_snapshotter::api::timetravel::TimeTravelApi;
use backtrack_snapshotter::SnapshotterConfig;
use tonic::service::interceptor::InterceptedService;

use crate::args::UpArgs;

mod banner;
mod data_lock;
mod local_nats;
mod parts;
mod seed;
mod settings;
mod startup;

use local_nats::{start_nats_server, stop_nats_server};
pub use parts::Parts;
pub use seed::demo_options;
use seed::seed_demo;
use settings::alert_settings;
pub(crate) use settings::{default_policy, oidc_settings, OidcSettings};
use startup::{catch_up, catch_up_snapshotter, starting};

/// Lifetime of the admin token written on every start.
const ADMIN_TOKEN_TTL: Duration = Duration::from_secs(365 * 86_400);
/// The actor of the admin token's `token.issued` record.
const UP_SUBJECT: &str = "backtrack-up";
const DEMO_TENANT: &str = "contoso";

/// Runs until SIGTERM / Ctrl-C, then drains and stops nats-server if it started one.
pub async fn run(mut args: UpArgs) -> anyhow::Result<()> {
    let Prepared {
        data,
        tracing: _tracing,
        key_path,
        provider,
        lock: _lock,
    } = prepare(&mut args, Parts::all().name).await?;
    let (key, created) = SigningKey::load_or_create(&key_path)?;
    if created {
        tracing::info!(path = %key_path.display(), "created a new signing key");
    }

    let (mut nats_child, nats_url) = match &args.nats {
        Some(url) => (None, url.clone()),
        None => {
            let (child, url) = start_nats_server(&data).await?;
            (Some(child), url)
        }
    };
    let result = serve(&args, &data, &key, provider, &nats_url, Parts::all()).await;
    if let Some(child) = nats_child.as_mut() {
        stop_nats_server(child).await;
    }
    result
}

/// What `up` and `serve` settle before anything starts.
pub(crate) struct Prepared {
    pub data: PathBuf,
    /// Keeps the span exporter (with `--otlp-endpoint`) running; dropping it flushes.
    pub tracing: backtrack_platform::telemetry::TracingGuard,
    /// The signing key file: `--signing-key`, else `<data dir>/signing.key`.
    pub key_path: PathBuf,
    pub provider: Option<(OidcSettings, JwksHandle)>,
    /// This process's hold on the data directory: kept until it exits.
    pub lock: data_lock::DataDirLock,
}

/// Logging, the checks of the flags (a bad one exits with status 2 and says which), the
/// identity provider's keys, and the data directory.
pub(crate) async fn prepare(args: &mut UpArgs, service: &str) -> anyhow::Result<Prepared> {
    let tracing = backtrack_platform::telemetry::init_tracing(
        args.log_format,
        args.otlp_endpoint.as_deref(),
        service,
    );
    let min_interval = Duration::from_secs(args.backup_min_interval_secs);
    if let Err(e) = default_policy(args).validate(min_interval) {
        backtrack_platform::config::exit_bad_config(format!(
            "--backup-schedule / --backup-retention-days: {e}"
        ));
    }
    let oidc = match oidc_settings(args) {
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
    // Before anything in the directory is touched (a nats-server of an earlier run is
    // stopped, stores are opened): one process per directory and service.
    let lock = data_lock::lock_data_dir(&data, service)?;
    let key_path = args
        .signing_key
        .clone()
        .unwrap_or_else(|| data.join("signing.key"));
    Ok(Prepared {
        data,
        tracing,
        key_path,
        provider: oidc.zip(provider_keys),
        lock,
    })
}

/// Starts the `parts`, serves their APIs with health and metrics, and runs until SIGTERM /
/// Ctrl-C; then reports not ready, stops taking calls and lets calls in flight finish
/// within `--drain-secs`.
pub(crate) async fn serve(
    args: &UpArgs,
    data: &Path,
    key: &SigningKey,
    provider: Option<(OidcSettings, JwksHandle)>,
    nats_url: &str,
    parts: Parts,
) -> anyhow::Result<()> {
    let (trigger, shutdown) = Shutdown::new();
    let tls_client = match (&args.nats_tls_cert, &args.nats_tls_key) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        (None, None) => None,
        _ => backtrack_platform::config::exit_bad_config(
            "--nats-tls-cert and --nats-tls-key go together".to_string(),
        ),
    };
    let nats = connect(&NatsOptions {
        tls_ca: args.nats_tls_ca.clone(),
        tls_client,
        url: nats_url.to_string(),
        creds: args.nats_creds.clone(),
        name: parts.name.into(),
    })
    .await?;
    // Records queued while the audit stream is unreachable wait in the data directory,
    // so they outlive a crash of this process.
    let auditor = Auditor::with_spool(
        starting("the audit stream", || {
            AuditLog::open(nats.clone(), args.stream_replicas)
        })
        .await?,
        &data.join("audit-spool"),
    )
    .with_context(|| format!("cannot create {}", data.join("audit-spool").display()))?;
    // Every process follows the revocation list, so a token revoked anywhere is refused
    // everywhere.
    let js = async_nats::jetstream::new(nats.clone());
    let revocations = starting("the token revocation list", || {
        Revocations::follow(&js, args.stream_replicas, shutdown.clone())
    })
    .await?;
    let registry = starting("the token registry", || {
        TokenRegistry::open(&js, args.stream_replicas)
    })
    .await?;
    if parts.all_in_one {
        write_admin_token(data, key, &auditor, &registry, &revocations).await?;
    }
    let mut validator = TokenValidator::local(key).with_revocations(revocations.clone());
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
    let directory = if parts.runs_directory() {
        let mut config = DirectoryConfig::new(data.join("directory"));
        config.recycle_bin_retention = Duration::from_secs(args.recycle_bin_days * 86_400);
        config.stream_replicas = args.stream_replicas;
        config.sweeper = parts.directory_api;
        let nats = nats.clone();
        Some(
            starting("the directory", || {
                backtrack_directory::start(config.clone(), nats.clone(), shutdown.clone())
            })
            .await?,
        )
    } else {
        None
    };
    let snapshotter = if parts.runs_snapshotter() {
        let mut config = SnapshotterConfig::new(data.join("snapshotter"));
        config.stream_replicas = args.stream_replicas;
        config.default_policy = default_policy(args);
        config.backup_min_interval = Duration::from_secs(args.backup_min_interval_secs);
        // A replica neither schedules backups nor writes checkpoints: the snapshotter
        // service does both, once per deployment.
        config.scheduler = parts.snapshotter_api;
        // Alerts are raised once per deployment, by the snapshotter service.
        config.alerts = (parts.snapshotter_api && !args.no_alerts).then(|| alert_settings(args));
        config.checkpoint_every = if parts.snapshotter_api {
            args.checkpoint_every
        } else {
            0
        };
        let nats = nats.clone();
        Some(
            starting("the time-travel store", || {
                backtrack_snapshotter::start(config.clone(), nats.clone(), shutdown.clone())
            })
            .await?,
        )
    } else {
        None
    };
    let differ = match (&snapshotter, parts.runs_differ()) {
        (Some(snapshotter), true) => {
            let differ = starting("the report store", || {
                backtrack_differ::Differ::with_retention(
                    snapshotter.clone(),
                    nats.clone(),
                    args.stream_replicas,
                    Duration::from_secs(args.report_retention_days.max(1) * 86_400),
                )
            })
            .await?;
            if parts.differ_api {
                tokio::spawn(
                    differ
                        .clone()
                        .run_sweeper(Duration::from_secs(3600), shutdown.clone()),
                );
            }
            Some(differ)
        }
        _ => None,
    };
    let audit = if parts.audit_api {
        let sinks = match &args.audit_sinks {
            Some(path) => backtrack_audit::sinks::load_config(path)
                .map_err(|e| anyhow!("--audit-sinks {}: {e}", path.display()))?,
            None => Vec::new(),
        };
        Some(
            backtrack_audit::Audit::start(
                backtrack_audit::AuditConfig {
                    replicas: args.stream_replicas,
                    sinks,
                    alerts: !args.no_alerts,
                    denial_limits: backtrack_audit::alerting::DenialLimits {
                        calls: args.alert_denied_calls,
                        tenant_calls: args.alert_denied_tenant_calls,
                        window_ms: i64::try_from(args.alert_denied_window_mins * 60_000)
                            .unwrap_or(i64::MAX),
                    },
                    ..backtrack_audit::AuditConfig::new(data.join("audit"))
                },
                nats.clone(),
                shutdown.clone(),
            )
            .await?,
        )
    } else {
        None
    };
    let recovery = match (&directory, &differ, parts.recovery_api) {
        (Some(directory), Some(differ), true) => {
            let config = backtrack_recovery::RecoveryConfig {
                batch_size: args.recovery_batch.max(1),
                lease_stale_after: Duration::from_secs(args.recovery_lease_stale_secs.max(1)),
                require_approval: args.recovery_approval,
                directory: match (&args.directory_server, parts.all_in_one) {
                    (Some(address), false) => Some(
                        backtrack_recovery::remote::RemoteDirectory::new(address, key.clone())
                            .map_err(|e| anyhow!("--directory-server: {e}"))?,
                    ),
                    _ => None,
                },
                ..Default::default()
            };
            Some(
                starting("the recovery job store", || {
                    backtrack_recovery::Recovery::start(
                        directory.clone(),
                        differ.clone(),
                        nats.clone(),
                        args.stream_replicas,
                        config.clone(),
                    )
                })
                .await?,
            )
        }
        _ => None,
    };

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
    let scraped = crate::up_metrics::Scraped {
        directory: directory.clone(),
        snapshotter: snapshotter.clone(),
        audit: audit.clone(),
    };
    let http_task = tokio::spawn(serve_http(
        http,
        health.clone(),
        crate::up_metrics::router(scraped.clone()),
        shutdown.clone(),
    ));

    let (grpc_health, grpc_health_service) = tonic_health::server::health_reporter();
    let interceptor = AuthInterceptor::new(Arc::new(validator));
    let mut routes = tonic::service::RoutesBuilder::default();
    routes.add_service(grpc_health_service);
    let mut served: Vec<&'static str> = Vec::new();
    let served_for_status = Arc::new(std::sync::OnceLock::new());
    // What this process serves and keeps: for the directory's `Status` and for the
    // `ProcessService` every process serves.
    let process = Arc::new(crate::up_metrics::ProcessStatus {
        name: parts.name,
        scraped: scraped.clone(),
        served: served_for_status.clone(),
    });
    if let (Some(directory), true) = (&directory, parts.directory_api) {
        let api = DirectoryApi::new(directory.clone(), auditor.clone())
            .with_process(process.clone())
            .into_server();
        served.push(named(&api));
        routes.add_service(InterceptedService::new(api, interceptor.clone()));
        let tokens = TokenApi::new(
            key.clone(),
            auditor.clone(),
            revocations.clone(),
            registry.clone(),
        )
        .into_server();
        served.push(named(&tokens));
        routes.add_service(InterceptedService::new(tokens, interceptor.clone()));
    }
    if let (Some(snapshotter), true) = (&snapshotter, parts.snapshotter_api) {
        let backups = BackupApi::new(snapshotter.clone(), auditor.clone()).into_server();
        served.push(named(&backups));
        routes.add_service(InterceptedService::new(backups, interceptor.clone()));
        let time_travel = TimeTravelApi::new(snapshotter.clone()).into_server();
        served.push(named(&time_travel));
        routes.add_service(InterceptedService::new(time_travel, interceptor.clone()));
    }
    if let (Some(differ), true) = (&differ, parts.differ_api) {
        let reports =
            backtrack_differ::api::DiffApi::new(differ.clone(), auditor.clone()).into_server();
        served.push(named(&reports));
        routes.add_service(InterceptedService::new(reports, interceptor.clone()));
    }
    if let (Some(recovery), Some(differ)) = (&recovery, &differ) {
        let recoveries =
            backtrack_recovery::api::RecoveryApi::new(recovery.clone(), differ.clone())
                .into_server();
        served.push(named(&recoveries));
        routes.add_service(InterceptedService::new(recoveries, interceptor.clone()));
    }
    if let Some(audit) = &audit {
        let audit_api = backtrack_audit::api::AuditApi::new(audit.clone()).into_server();
        served.push(named(&audit_api));
        routes.add_service(InterceptedService::new(audit_api, interceptor.clone()));
    }
    let _ = served_for_status.set(served.iter().map(|s| s.to_string()).collect());
    let process = backtrack_proto::v1::process_service_server::ProcessServiceServer::new(
        crate::up_metrics::ProcessApi(process),
    );
    routes.add_service(InterceptedService::new(process, interceptor.clone()));
    let incoming = backtrack_platform::grpc::incoming(grpc);
    let grpc_shutdown = shutdown.clone();
    let mut grpc_task = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(RpcMetricsLayer)
            .layer(AuditLayer::new(auditor))
            .add_routes(routes.routes())
            .serve_with_incoming_shutdown(incoming, async move { grpc_shutdown.wait().await }),
    );

    if let Some(directory) = &directory {
        catch_up(directory).await?;
    }
    if let Some(snapshotter) = &snapshotter {
        catch_up_snapshotter(snapshotter).await?;
    }
    if let Some(recovery) = &recovery {
        tokio::spawn(recovery.clone().run_resumer(shutdown.clone()));
    }
    let readiness = crate::readiness::Readiness {
        nats: nats.clone(),
        scraped,
        health: health.clone(),
        grpc: grpc_health,
        services: served.clone(),
    };
    readiness.check().await;
    tokio::spawn(readiness.watch(shutdown.clone()));
    if let (Some(directory), true) = (&directory, parts.all_in_one && args.demo) {
        seed_demo(directory, args.demo_users).await?;
    }
    banner::announce(parts, args, &served, nats_url, data);

    tokio::select! {
        r = terminate_signal() => { r.context("cannot listen for signals")?; }
        r = &mut grpc_task => {
            return Err(anyhow!("gRPC server stopped: {:?}", r));
        }
    }
    eprintln!("backtrack: shutting down");
    health.set_ready(false, "shutting down");
    trigger.trigger();
    let drain = Duration::from_secs(args.drain_secs.max(1));
    let _ = tokio::time::timeout(drain, http_task).await;
    if tokio::time::timeout(drain, grpc_task).await.is_err() {
        eprintln!(
            "backtrack: calls still running after {}s; stopping anyway (a recovery job resumes from its checkpoint)",
            drain.as_secs()
        );
    }
    Ok(())
}

/// The gRPC service name of a generated server, e.g. `backtrack.v1.DirectoryService`.
fn named<S: tonic::server::NamedService>(_: &S) -> &'static str {
    S::NAME
}

/// Mints this start's admin token (Global Administrator, every tenant) and writes it to
/// `<data dir>/admin.token` once its `token.issued` record is stored.
async fn write_admin_token(
    data: &Path,
    key: &SigningKey,
    auditor: &Auditor,
    registry: &TokenRegistry,
    revocations: &Revocations,
) -> anyhow::Result<()> {
    let path = data.join("admin.token");
    // The token this start replaces, while still valid: revoked once the new one is written,
    // so one admin token of `backtrack up` is live at a time.
    let replaced = std::fs::read_to_string(&path)
        .ok()
        .and_then(|old| TokenValidator::local(key).local_token_id(old.trim()));
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
    registry
        .record(&TokenRecord::of(&issued.claims, UP_SUBJECT))
        .await?;
    write_private(&path, &issued.token)?;
    if let Some(token_id) = replaced {
        let revocation = Revocation {
            token_id,
            revoked_at_ms: backtrack_platform::clock::now_ms(),
            revoked_by: UP_SUBJECT.to_string(),
            reason: "replaced by the admin token of a later start".to_string(),
        };
        match revocations.revoke(revocation).await {
            Ok((revocation, true)) => {
                let every = [ALL_TENANTS.to_string()];
                let by = IssuerOf::System(UP_SUBJECT);
                for entry in revoked_records(by, &every, "admin", &revocation) {
                    if let Err(e) = auditor.succeeded(entry).await {
                        tracing::warn!(error = %e.message(), "the revocation of the previous admin token is not recorded yet");
                    }
                }
            }
            Ok((_, false)) => {}
            // The new token works either way; the old one stays valid until it expires.
            Err(e) => tracing::warn!(error = %e, "cannot revoke the previous admin token"),
        }
    }
    Ok(())
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
