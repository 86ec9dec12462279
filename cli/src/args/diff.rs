//! The `diff` command group's definitions.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Subcommand)]
pub enum DiffCommand {
    /// Start a report of what changed between --from and --to (or return the finished one over the same points).
    Create(DiffCreateArgs),
    /// List the tenant's reports.
    List {
        /// The tenant's id (e.g. contoso).
        #[arg(long)]
        tenant: String,
    },
    /// Show a report and one page of its changed objects, filtered.
    Show(DiffShowArgs),
    /// Write a whole finished report as JSON (an array of items) or CSV.
    Export(DiffExportArgs),
    /// Cancel a report that is still being calculated.
    Cancel(DiffRefArgs),
}

#[derive(Debug, Args)]
pub struct DiffCreateArgs {
    /// The tenant's id (e.g. contoso).
    #[arg(long)]
    pub tenant: String,
    /// The base point (what the directory looked like before).
    #[arg(long, value_name = "POINT", allow_hyphen_values = true, help = FROM_HELP)]
    pub from: String,
    /// The target point; default: now (the log's last sequence when the job starts).
    #[arg(long, value_name = "POINT", allow_hyphen_values = true)]
    pub to: Option<String>,
    /// Only objects of this kind (repeatable; default: every kind).
    #[arg(long = "kind", value_name = "KIND")]
    pub kinds: Vec<String>,
    /// Only this object (repeatable; default: every object of the kinds).
    #[arg(long = "id", value_name = "ID", allow_hyphen_values = true)]
    pub ids: Vec<String>,
    /// Only what this actor (a token subject, as in the change feed) changed after --from
    /// (repeatable): each object's changes by them alone, as they stand at --to; a
    /// recovery from the report sets back only those.
    #[arg(long = "changed-by", value_name = "SUBJECT")]
    pub changed_by: Vec<String>,
    /// Wait for the report to finish, showing progress; fails when the report fails or is cancelled.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct DiffRefArgs {
    /// The tenant's id (e.g. contoso).
    #[arg(long)]
    pub tenant: String,
    /// Report id.
    pub report: String,
}

#[derive(Debug, Args)]
pub struct DiffShowArgs {
    /// The tenant's id (e.g. contoso).
    #[arg(long)]
    pub tenant: String,
    /// Report id.
    pub report: String,
    /// Only objects of this kind (repeatable).
    #[arg(long = "kind", value_name = "KIND")]
    pub kinds: Vec<String>,
    /// Only this change type (repeatable): added, modified, softDeleted, restored, hardDeleted.
    #[arg(long = "change", value_name = "TYPE")]
    pub changes: Vec<String>,
    /// Only objects with a changed attribute whose path starts with this name.
    #[arg(long, value_name = "NAME")]
    pub attribute: Option<String>,
    /// Case-insensitive text in the display name or the object id.
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
    /// Only this object (repeatable).
    #[arg(long = "id", value_name = "ID", allow_hyphen_values = true)]
    pub ids: Vec<String>,
    /// Page to show, from 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub page: u32,
    /// Objects per page.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: u32,
}

#[derive(Debug, Args)]
pub struct DiffExportArgs {
    /// The tenant's id (e.g. contoso).
    #[arg(long)]
    pub tenant: String,
    /// Report id.
    pub report: String,
    /// json or csv.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Write here instead of stdout (replaced only once the export is complete).
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

/// The file format of `diff export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Json,
    Csv,
}

impl ExportFormat {
    /// The name the server expects.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Json => "json",
            ExportFormat::Csv => "csv",
        }
    }
}

/// Help text of `diff create --from`.
const FROM_HELP: &str = "Base point: an RFC 3339 time (2026-11-22T05:00:00Z), a local time (2026-11-22 06:00, 09:00), a relative time (-2h, -30m, -7d), a backup id, or seq:N";
