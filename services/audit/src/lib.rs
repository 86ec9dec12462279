//! The audit service: follows `BT_AUDIT`, hash-chains each tenant's records, indexes them
//! for queries, verifies chains, and exports records to SIEM sinks.

pub mod format;
pub mod sinks;
