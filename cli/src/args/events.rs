//! The `events` command group's definitions: the change feed.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Follow the change feed of a tenant.
    Tail {
        /// The tenant's id (e.g. contoso).
        #[arg(long)]
        tenant: String,
        /// Start at the first event instead of only new ones.
        #[arg(long, conflicts_with = "since")]
        from_start: bool,
        /// Start after this point instead of with new events: a relative time (-2h: what
        /// changed in the last two hours), an RFC 3339 or local time (09:00), a backup
        /// id, or seq:N (the events after sequence N, to resume where a consumer stopped).
        #[arg(long, value_name = "POINT", allow_hyphen_values = true)]
        since: Option<String>,
        /// Stop after this many events.
        #[arg(long)]
        limit: Option<usize>,
        /// Stop after the last event stored now instead of following new ones (with
        /// --from-start: the tenant's whole history; with --since: what changed since).
        #[arg(long)]
        no_follow: bool,
        /// Only events of this kind (repeatable), e.g. conditionalAccessPolicy.
        #[arg(long = "kind", value_name = "KIND")]
        kinds: Vec<String>,
        /// Only events of this object (repeatable).
        #[arg(long = "id", value_name = "ID", allow_hyphen_values = true)]
        ids: Vec<String>,
        /// Only changes this actor made (a token's subject, as the ACTOR of each line;
        /// repeatable), e.g. everything one account changed since 01:00.
        #[arg(long = "actor", value_name = "SUBJECT")]
        actors: Vec<String>,
    },
}
