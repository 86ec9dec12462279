//! What every binary does with configuration it cannot use.

use std::fmt::Display;

/// Exit status for unusable configuration (`EX_USAGE` from sysexits.h).
pub const EXIT_BAD_CONFIG: i32 = 64;

/// Prints `backtrack: configuration error: <msg>` to stderr and exits with [`EXIT_BAD_CONFIG`].
///
/// For binaries only: libraries return errors instead.
pub fn exit_bad_config(msg: impl Display) -> ! {
    eprintln!("backtrack: configuration error: {msg}");
    std::process::exit(EXIT_BAD_CONFIG)
}
