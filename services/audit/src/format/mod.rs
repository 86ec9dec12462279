//! Renderings of audit records for SIEMs: OCSF, CEF and the native JSON.
