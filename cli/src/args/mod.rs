//! Command-line definitions. Every flag also reads a `BACKTRACK_*` environment variable.
//! The `backup` and `diff` groups live in [`backup`] and [`diff`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod alerts;
mod audit;
mod backup;
mod diff;
mod events;
mod overview;
mod recovery;
mod up;

pub use alerts::{AlertPolicyCommand, AlertPolicySetArgs, AlertsCommand};
pub use audit::{AuditCommand, AuditQueryArgs, ResultArg};
pub use backup::{BackupCommand, BackupRefArgs, PolicyCommand, PolicySetArgs};
pub use diff::{
    DiffCommand, DiffCreateArgs, DiffExportArgs, DiffRefArgs, DiffShowArgs, ExportFormat,
};
pub use events::EventsCommand;
pub use overview::OverviewArgs;
pub use recovery::{OnConflictArg, RecoverArgs, RecoveryCommand, RecoveryRefArgs};
pub use up::{ServeArgs, ServiceName, UpArgs};

#[derive(Debug, Parser)]
#[command(
    name = "backtrack",
    version,
    about = "Event-sourced backup, difference reports and point-in-time recovery for identity directories",
    // The last of a repeated option wins (`alias bt='backtrack -o json'`, then `bt -o table`).
    args_override_self = true,
    after_help = "Exit codes: 0 done; 2 the request was refused (bad input, by the server or by the CLI before asking; a conflict; or an import with rejected objects); 3 not allowed (token); 4 not found; 5 unavailable (try again); 1 anything else."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// gRPC address of a running Backtrack.
    #[arg(
        long,
        global = true,
        env = "BACKTRACK_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
    /// Address of the directory service when it runs as its own process (default: --server);
    /// `serve recovery` applies its batches through it.
    #[arg(long, global = true, env = "BACKTRACK_DIRECTORY_SERVER")]
    pub directory_server: Option<String>,
    /// Address of the snapshotter (backups, time travel) when it runs on its own.
    #[arg(long, global = true, env = "BACKTRACK_SNAPSHOTTER_SERVER")]
    pub snapshotter_server: Option<String>,
    /// Address of the differ (difference reports) when it runs on its own.
    #[arg(long, global = true, env = "BACKTRACK_DIFFER_SERVER")]
    pub differ_server: Option<String>,
    /// Address of the recovery service when it runs on its own.
    #[arg(long, global = true, env = "BACKTRACK_RECOVERY_SERVER")]
    pub recovery_server: Option<String>,
    /// Address of the audit service when it runs on its own.
    #[arg(long, global = true, env = "BACKTRACK_AUDIT_SERVER")]
    pub audit_server: Option<String>,
    /// OpenTelemetry collector (OTLP/gRPC, e.g. `http://127.0.0.1:4317`) that spans are sent
    /// to, by the CLI and by `up` / `serve`; unset: no tracing.
    #[arg(long, global = true, env = "BACKTRACK_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Bearer token; default: the admin token in the data directory.
    #[arg(long, global = true, env = "BACKTRACK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Data directory (where `backtrack up` keeps its state and admin token).
    #[arg(
        long,
        global = true,
        env = "BACKTRACK_DATA_DIR",
        default_value = "./backtrack-data"
    )]
    pub data_dir: PathBuf,
    /// Output format: tables for people, JSON for scripts.
    #[arg(long, short = 'o', global = true, env = "BACKTRACK_OUTPUT", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every service in one process (starts nats-server itself unless --nats is given).
    Up(UpArgs),
    /// Run one service in its own process against a NATS (cluster) given by --nats.
    Serve(ServeArgs),
    /// Tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Directory objects.
    #[command(subcommand)]
    Dir(DirCommand),
    /// The demo tenant.
    #[command(subcommand)]
    Demo(DemoCommand),
    /// The change feed.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Backups: named, verifiable points of the event log, and the backup policy.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Difference reports: what changed between two points of the log, attribute by attribute.
    #[command(subcommand)]
    Diff(DiffCommand),
    /// Recover objects to a report's base, a backup or an instant.
    Recover(RecoverArgs),
    /// Recovery jobs: list, show, failed changes, cancel, undo.
    #[command(subcommand)]
    Recovery(RecoveryCommand),
    /// Approve a whole-tenant recovery another administrator started (with --recovery-approval).
    Approve {
        #[command(flatten)]
        job: RecoveryRefArgs,
        /// Wait for the approved job to finish.
        #[arg(long)]
        wait: bool,
    },
    /// The audit trail: query, follow and verify a tenant's hash-chained audit records.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// One screen of a tenant: its size, backups, reports, recoveries, and alerts on the
    /// changes since --since (deleted or weakened conditional access policies, mass
    /// deletions, new credentials and roles), each with the dry run that would undo it.
    Overview(OverviewArgs),
    /// The alerter's per-tenant policy (alerts themselves are audit records:
    /// `audit query --action alert.raised`).
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// Services, stream position and projection lag; with --tenant also its content digest.
    Status {
        /// Also report this tenant's object count and content digest.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Tenant id: a-z, 0-9 and '-'.
        name: String,
        /// A display name for the tenant.
        #[arg(long, default_value = "")]
        display_name: String,
    },
    /// List the tenants this token may see.
    List,
}

#[derive(Debug, Subcommand)]
pub enum DirCommand {
    /// Create an object: --set attr=value (JSON values allowed: --set accountEnabled=true).
    Create {
        /// The tenant's id (e.g. contoso).
        #[arg(long)]
        tenant: String,
        /// The object kind: user, group, application, servicePrincipal, ... (default: the
        /// document's "@kind" or Graph "@odata.type").
        #[arg(long)]
        kind: Option<String>,
        /// An attribute to set (repeatable); a value that parses as JSON is JSON.
        #[arg(long = "set", value_name = "ATTR=VALUE")]
        set: Vec<String>,
        /// A whole Graph-style JSON document (merged under --set), or @FILE to read it from
        /// a file, or - from standard input; links go under "@links", e.g.
        /// '{"@links": {"members": ["<id>"]}}', or as Graph gives them ("members@odata.bind").
        #[arg(long)]
        json: Option<String>,
        /// Set --set names as given even when one looks like a mistyped name the kind
        /// knows (e.g. displayname for displayName).
        #[arg(long)]
        force: bool,
    },
    /// Show one object, now or (with --at) as it was at a point of the log.
    Get {
        /// The tenant's id (e.g. contoso).
        #[arg(long)]
        tenant: String,
        /// Object id (Graph ids may start with '-').
        #[arg(allow_hyphen_values = true)]
        id: String,
        #[arg(long, value_name = "POINT", allow_hyphen_values = true, help = AT_HELP)]
        at: Option<String>,
    },
    /// List live objects, now or (with --at) as they were at a point of the log.
    List {
        /// The tenant's id (e.g. contoso).
        #[arg(long)]
        tenant: String,
        /// Only objects of this kind (user, group, application, ...).
        #[arg(long)]
        kind: Option<String>,
        /// Stop after this many objects (0 = all).
        #[arg(long, default_value_t = 0)]
        limit: usize,
        #[arg(long, value_name = "POINT", allow_hyphen_values = true, help = AT_HELP)]
        at: Option<String>,
        /// Also list objects that were in the recycle bin at that point (needs --at; --at now for the present).
        #[arg(long, requires = "at")]
        include_deleted: bool,
    },
    /// Every change of one object, oldest first: who, when, from where, and what.
    History {
        /// The tenant's id (e.g. contoso).
        #[arg(long)]
        tenant: String,
        /// Object id (Graph ids may start with '-').
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// Also the changes of links pointing at the object, made by the objects holding
        /// them: added to or removed from a group, made an owner or a manager (reads all
        /// the tenant's links).
        #[arg(long)]
        incoming: bool,
    },
    /// The targets of one relation of an object (a group's members), now or at a point.
    Members {
        /// The tenant's id (e.g. contoso).
        #[arg(long)]
        tenant: String,
        /// Object id (Graph ids may start with '-').
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// The relation whose targets to list (members, owners, manager, ...).
        #[arg(long, default_value = "members")]
        relation: String,
        #[arg(long, value_name = "POINT", allow_hyphen_values = true, help = AT_HELP)]
        at: Option<String>,
    },
    /// Change attributes.
    Update {
        /// The tenant's id (e.g. contoso).
        #[arg(long)]
        tenant: String,
        /// Object id (Graph ids may start with '-').
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// An attribute to set (repeatable); a value that parses as JSON is JSON.
        #[arg(long = "set", value_name = "ATTR=VALUE")]
        set: Vec<String>,
        /// An attribute to remove (repeatable).
        #[arg(long = "unset", value_name = "ATTR")]
        unset: Vec<String>,
        /// The attributes to change as one JSON object, as in a Graph PATCH body (null
        /// removes an attribute; --set applies over it), or @FILE, or - for standard input.
        #[arg(long)]
        json: Option<String>,
        /// Change --set and --unset names as given even when one is not on the object and
        /// looks like a mistyped name it has (departmnt for department).
        #[arg(long)]
        force: bool,
    },
    /// Add or remove links.
    #[command(subcommand)]
    Link(LinkCommand),
    /// Soft delete: move to the recycle bin.
    Delete {
        /// The tenant's id (e.g. contoso).
        #[arg(long)]
        tenant: String,
        /// Object id (Graph ids may start with '-').
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// List the recycle bin.
    Deleted {
        /// The tenant's id (e.g. contoso).
        #[arg(long)]
        tenant: String,
        /// Only objects of this kind (user, group, application, ...).
        #[arg(long)]
        kind: Option<String>,
    },
    /// Restore from the recycle bin.
    Restore {
        /// The tenant's id (e.g. contoso).
        #[arg(long)]
        tenant: String,
        /// Object id (Graph ids may start with '-').
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Hard delete an object that is in the recycle bin. Cannot be undone in the directory.
    Purge {
        /// The tenant's id (e.g. contoso).
        #[arg(long)]
        tenant: String,
        /// Object id (Graph ids may start with '-').
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// Confirm the hard delete.
        #[arg(long)]
        yes: bool,
    },
    /// Import Graph-style objects: JSON lines (one object per line), or Graph response
    /// bodies as Microsoft Graph returns them (a page `{"value": [...]}`, pages one after
    /// another, or an array of objects).
    Import {
        /// The tenant's id (e.g. contoso).
        #[arg(long)]
        tenant: String,
        /// The file to import.
        file: PathBuf,
        /// Objects per request.
        #[arg(long, default_value_t = 2000)]
        batch: usize,
        /// The kind of objects without "@kind", as in a page of `GET /users` (default:
        /// the kind of each object's Graph "@odata.type").
        #[arg(long)]
        kind: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum LinkCommand {
    /// Link an object to targets (add members, owners, a manager); targets already linked
    /// are left as they are.
    Add(LinkArgs),
    /// Remove links to targets; targets not linked are left as they are.
    Remove(LinkArgs),
}

#[derive(Debug, Args)]
pub struct LinkArgs {
    /// The tenant's id (e.g. contoso).
    #[arg(long)]
    pub tenant: String,
    /// The id of the object that holds the links.
    #[arg(allow_hyphen_values = true)]
    pub id: String,
    /// The relation: members, owners, manager, ...
    #[arg(long)]
    pub relation: String,
    /// The ids of the objects to link to or unlink from.
    #[arg(required = true, allow_hyphen_values = true)]
    pub targets: Vec<String>,
}

/// Help text of every `--at POINT` flag.
const AT_HELP: &str = "Point of the log: an RFC 3339 time (2026-11-22T05:00:00Z), a local time (2026-11-22 06:00, 09:00), a relative time (-2h, -30m, -7d), a backup id, seq:N, or now";

#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Create (if needed) and fill a realistic, deterministic tenant.
    Seed {
        /// The tenant to seed (created when missing).
        #[arg(long, default_value = "contoso")]
        tenant: String,
        /// Users to create.
        #[arg(long, default_value_t = 500)]
        users: usize,
        /// Groups to create (default: scaled to the users).
        #[arg(long)]
        groups: Option<usize>,
        /// Applications (each with its service principal; default: scaled to the users).
        #[arg(long)]
        apps: Option<usize>,
        /// Seed of the generator: the same seed makes the same tenant.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Objects per import call.
        #[arg(long, default_value_t = 2000)]
        batch: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token signed with the deployment's local key. The server issues it (caller:
    /// a GlobalAdministrator) and records `token.issued` on the audit stream; with
    /// --offline it is minted from <data dir>/signing.key without a server and without an
    /// audit record.
    Create {
        /// A tenant the token grants ("*": every tenant); repeat for more.
        #[arg(long = "tenant", required = true)]
        tenants: Vec<String>,
        /// GlobalAdministrator, BackupAdministrator, BackupReader or DirectoryWriter; repeat for more.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Limit the token to these object kinds; repeat for more.
        #[arg(long = "kind")]
        kinds: Vec<String>,
        /// Who the token is for (its `sub`).
        #[arg(long, default_value = "admin")]
        subject: String,
        /// Lifetime, e.g. 3600s, 60m, 12h, 30d.
        #[arg(long, default_value = "12h")]
        ttl: String,
        /// Mint from the local signing key file, without the server and without an audit
        /// record (single-process mode, e.g. before `backtrack up` runs).
        #[arg(long)]
        offline: bool,
    },
    /// Revoke a token: every process of the deployment refuses it from then on, whatever
    /// its expiry. Caller: a GlobalAdministrator; records `token.revoked`.
    Revoke {
        /// The token's id (its `jti`: `token create` prints it on stderr, `token.issued`
        /// audit records name it), or the token itself (only its id is sent).
        #[arg(value_name = "TOKEN_ID")]
        id: String,
        /// Why, for the audit trail (never shown to the token's holder).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// The tokens the deployment issued for a tenant, newest first: id, subject, roles,
    /// expiry, revoked or not (never the tokens). Caller: a GlobalAdministrator. Tokens
    /// minted with --offline or by an identity provider are not listed.
    List {
        /// The tenant ("*": every token, for a token of every tenant).
        #[arg(long)]
        tenant: String,
        /// Also the expired ones.
        #[arg(long)]
        all: bool,
    },
}

impl Command {
    /// The command's name, e.g. `recover` — the name of the CLI's span in a trace.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Up(_) => "up",
            Command::Serve(_) => "serve",
            Command::Tenant(_) => "tenant",
            Command::Dir(_) => "dir",
            Command::Demo(_) => "demo",
            Command::Events(_) => "events",
            Command::Backup(_) => "backup",
            Command::Diff(_) => "diff",
            Command::Recover(_) => "recover",
            Command::Recovery(_) => "recovery",
            Command::Approve { .. } => "approve",
            Command::Audit(_) => "audit",
            Command::Overview(_) => "overview",
            Command::Alerts(_) => "alerts",
            Command::Status { .. } => "status",
            Command::Token(_) => "token",
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn relative_points_are_values_not_flags() {
        let cli = Cli::try_parse_from([
            "backtrack",
            "dir",
            "get",
            "--tenant",
            "t",
            "u1",
            "--at",
            "-2h",
        ]);
        match cli.map(|c| c.command) {
            Ok(Command::Dir(DirCommand::Get { at, .. })) => assert_eq!(at.as_deref(), Some("-2h")),
            other => panic!("unexpected parse: {other:?}"),
        }
    }

    #[test]
    fn changed_by_needs_a_point_not_a_report() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["backtrack", "recover", "--tenant", "t", "--changed-by", "m"];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args).map(|_| ()).map_err(|e| e.kind())
        };
        assert_eq!(parse(&["--from", "-2h"]), Ok(()));
        assert_eq!(
            parse(&["--report", "r1"]),
            Err(clap::error::ErrorKind::ArgumentConflict)
        );
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn diff_create_takes_relative_points_and_repeated_scopes() {
        let cli = Cli::try_parse_from([
            "backtrack",
            "diff",
            "create",
            "--tenant",
            "t",
            "--from",
            "-2h",
            "--kind",
            "user",
            "--kind",
            "group",
            "--id",
            "-x1",
            "--wait",
        ]);
        match cli.map(|c| c.command) {
            Ok(Command::Diff(DiffCommand::Create(a))) => {
                assert_eq!(a.from, "-2h");
                assert_eq!(a.to, None);
                assert_eq!(a.kinds, ["user", "group"]);
                assert_eq!(a.ids, ["-x1"]);
                assert!(a.wait);
            }
            other => panic!("unexpected parse: {other:?}"),
        }
    }

    #[test]
    fn diff_pages_count_from_one() {
        let parse = |page: &str| {
            Cli::try_parse_from([
                "backtrack",
                "diff",
                "show",
                "r1",
                "--tenant",
                "t",
                "--page",
                page,
            ])
        };
        assert!(parse("0").is_err());
        match parse("2").map(|c| c.command) {
            Ok(Command::Diff(DiffCommand::Show(a))) => {
                assert_eq!((a.page, a.page_size), (2, 50));
            }
            other => panic!("unexpected parse: {other:?}"),
        }
    }

    #[test]
    fn include_deleted_needs_a_point() {
        let cli = Cli::try_parse_from([
            "backtrack",
            "dir",
            "list",
            "--tenant",
            "t",
            "--include-deleted",
        ]);
        assert!(cli.is_err());
    }
}
