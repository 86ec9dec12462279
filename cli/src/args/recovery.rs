//! The `recover` command and the `recovery` command group's definitions.

use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["report", "from"])))]
pub struct RecoverArgs {
    /// The tenant's id (e.g. contoso).
    #[arg(long)]
    pub tenant: String,
    /// Recover to this report's base, over its scope (recommended: review it first).
    #[arg(long, value_name = "REPORT")]
    pub report: Option<String>,
    /// Recover to this point: a backup id, a time (-2h, 2026-11-22T05:00:00Z, local 09:00)
    /// or seq:N.
    #[arg(long, value_name = "POINT", allow_hyphen_values = true)]
    pub from: Option<String>,
    /// Only objects of this kind (repeatable).
    #[arg(long = "kind", value_name = "KIND")]
    pub kinds: Vec<String>,
    /// Only this object (repeatable).
    #[arg(long = "id", value_name = "ID", allow_hyphen_values = true)]
    pub ids: Vec<String>,
    /// Only what this actor (a token subject, as in the change feed) changed after --from
    /// (repeatable): undo what one account did, e.g. --from 01:00 --changed-by mallory.
    /// Each attribute, link and deletion of theirs goes back to what it was before their
    /// change; what others changed stays, in the same objects too.
    #[arg(
        long = "changed-by",
        value_name = "SUBJECT",
        requires = "from",
        conflicts_with = "report"
    )]
    pub changed_by: Vec<String>,
    /// Print the ordered plan with counts; apply nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// What to do with an object changed since the report (or the plan).
    #[arg(long, value_enum, default_value_t = OnConflictArg::Overwrite)]
    pub on_conflict: OnConflictArg,
    /// Restored or re-created conditional access policies come back report-only.
    #[arg(long)]
    pub ca_report_only: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Wait for the job to finish, showing progress; fails when the job fails or is cancelled.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnConflictArg {
    Overwrite,
    Skip,
}

#[derive(Debug, Subcommand)]
pub enum RecoveryCommand {
    /// List the tenant's recovery jobs.
    List {
        /// The tenant's id (e.g. contoso).
        #[arg(long)]
        tenant: String,
    },
    /// Show a job: state, progress, counts, warnings, residual.
    Show(RecoveryRefArgs),
    /// List the changes a job could not make (failed or skipped), with reasons.
    Failed(RecoveryRefArgs),
    /// Stop a running job after the batch in flight; what was applied stays.
    Cancel(RecoveryRefArgs),
    /// Recover to the job's pre-recovery backup over the same scope.
    Undo {
        #[command(flatten)]
        job: RecoveryRefArgs,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Wait for the undo job to finish.
        #[arg(long)]
        wait: bool,
        /// Show what the undo would do (changes made after the recovery marked `*`) and
        /// apply nothing.
        #[arg(long, conflicts_with = "yes")]
        dry_run: bool,
    },
}

#[derive(Debug, Args)]
pub struct RecoveryRefArgs {
    /// The tenant's id (e.g. contoso).
    #[arg(long)]
    pub tenant: String,
    /// Job id.
    pub job: String,
}
