//! SIEM sinks: each configured sink follows `BT_AUDIT` with its own durable consumer and
//! delivers every record, retrying while the receiver is down.
