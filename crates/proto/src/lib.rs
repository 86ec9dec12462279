//! The wire contract: types generated from `proto/backtrack/v1/*.proto`, and explicit
//! conversions between them and the domain model.
//!
//! Modules: [`v1`] (generated messages, clients and servers), [`convert`] (domain ⇄ proto).

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("backtrack.v1");
}

pub mod convert;

pub use convert::ConversionError;
