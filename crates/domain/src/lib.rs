//! The pure model of Backtrack's directory: no I/O, no clock, no randomness.
//!
//! A tour of the modules:
//! - [`alerts`]: the changes an administrator must look at first (deleted or weakened
//!   conditional access policies, mass deletions, new credentials), from a run of events.
//! - [`audit_chain`]: the hash chain that makes a tenant's audit records tamper-evident.
//! - [`kind`]: the object kinds (Microsoft Graph names) and which of them are singletons.
//! - [`schema`]: per kind, the read-only, secret, link and typed attributes.
//! - [`canonical`]: the one canonical JSON form used for digests and comparisons.
//! - [`validate`]: checks for tenant ids, object ids, attribute names, sizes and nesting.
//! - [`object`]: a directory object as the projections hold it.
//! - [`event`]: the events that make up the log.
//! - [`command`]: `decide(view, command) -> events` — the rules of the directory.
//! - [`state`]: `apply(state, event)` — folding events into state, nothing else.
//! - [`digest`]: content digests of a tenant's state.
//! - [`diff`]: the differences between two states of an object, and what would undo them.
//! - [`recovery`]: ordered recovery plans, and what each operation does to the state it meets.
//! - [`batch`]: deciding a batch of a recovery plan against the state it meets.
//! - [`authorship`]: what some actors (or one recovery job) changed in an object, and the
//!   object with only their changes set back.
//! - [`graph`]: rendering to and parsing from Microsoft Graph JSON, including delta pages.
//!
//! Everything that decides lives in `command`; `state` only folds. Time and ids come in
//! as arguments so every rule is testable without a runtime.

pub mod alerts;
pub mod audit_chain;
pub mod authorship;
pub mod batch;
pub mod canonical;
pub mod command;
pub mod diff;
pub mod digest;
pub mod error;
pub mod event;
pub mod graph;
pub mod kind;
pub mod locations;
pub mod object;
pub mod recovery;
pub mod roles;
pub mod schema;
pub mod state;
pub mod time;
pub mod validate;

pub use command::{decide, Command, DecideContext, DirectoryView, PendingEvent};
pub use error::DomainError;
pub use event::{AttributeChange, Change, Event, EventMeta, EVENT_SCHEMA_VERSION};
pub use kind::ObjectKind;
pub use object::{DirectoryObject, Link};
pub use state::{DirectoryState, TenantState};
