//! The event log: Backtrack's source of truth, a NATS JetStream stream (`BT_EVENTS`) with
//! one message per directory event on `bt.ev.<tenant>.<kind>.<objectId>`.
//!
//! A tour of the modules:
//! - [`log`]: [`EventLog::open`] creates the stream (file storage, deny delete, deny purge,
//!   a duplicate window) or checks that an existing one is safe to use; [`StreamSettings`];
//!   [`EventLog::state`].
//! - [`append`]: [`EventLog::append`] publishes a batch pipelined, in order, each message with
//!   a `Nats-Msg-Id` (dedupe) and optionally an expected last subject sequence (optimistic
//!   concurrency per object), and awaits every ack.
//! - [`read`]: [`EventLog::read`] follows the log live from a sequence through an ordered
//!   consumer; [`EventLog::read_range`] reads a closed range and stops.
//! - [`codec`]: events ⇄ messages as pure functions — CloudEvents headers of the NATS binding
//!   and the protobuf payload, so any NATS client with the `.proto` files can read the log.
//! - [`audit`]: [`AuditLog`], the audit stream `BT_AUDIT` services publish privileged
//!   actions to, acknowledged before an action counts as done.
//! - [`error`]: [`EventLogError`], one enum for all of the above.
//! - [`metrics`]: the process-wide Prometheus registry every service reports to.
//! - [`trace`]: W3C trace context carried in message headers.
//!
//! A message that fails to decode is an error naming its sequence, never skipped: a gap in
//! a replay would be a silently wrong projection.

pub mod append;
pub mod audit;
pub mod buckets;
pub mod codec;
pub mod error;
pub mod log;
pub mod metrics;
pub mod read;
pub mod runs;
pub mod trace;

pub use append::{Append, Appended};
pub use audit::AuditLog;
pub use error::EventLogError;
pub use log::{EventLog, StreamSettings, StreamState};
pub use read::{EventStream, StoredEvent};
pub use runs::{Run, Runs};
