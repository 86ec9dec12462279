//! One process per data directory and service: `up` (or `serve <service>`) holds an
//! exclusive lock on `<data dir>/<process name>.lock` for as long as it runs.
//!
//! Without it a second `backtrack up` on the same directory took the running one's
//! nats-server for one a crashed run left behind, stopped it (breaking the running
//! process), and then failed a minute later on the directory's RocksDB lock. The lock is
//! released by the kernel when its holder exits, however it exits, so a crash never
//! leaves a directory locked.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{bail, Context};

/// Held until dropped (at process exit).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Locks `<data>/<name>.lock` and writes this process's id into it; fails at once, naming
/// the holder, when another process holds it.
pub fn lock_data_dir(data: &Path, name: &str) -> anyhow::Result<DataDirLock> {
    let path = data.join(format!("{name}.lock"));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => String::new(),
                pid => format!(" (pid {pid})"),
            };
            bail!(
                "another {name}{holder} is running with data dir {}: stop it first, or give this one another --data-dir",
                data.display()
            );
        }
        // A file system without locks: go on, as before the lock existed.
        Err(TryLockError::Error(e)) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot lock the data directory; make sure no other process uses it");
            return Ok(DataDirLock { _file: file });
        }
    }
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    writeln!(file, "{}", std::process::id())?;
    Ok(DataDirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = lock_data_dir(dir.path(), "backtrack-up").expect("first lock");
        let err = lock_data_dir(dir.path(), "backtrack-up").expect_err("second lock");
        let message = err.to_string();
        let pid = std::process::id().to_string();
        assert!(message.contains(&format!("(pid {pid})")), "{message}");
        assert!(message.contains("--data-dir"), "{message}");
        // Another process name in the same directory is another lock.
        lock_data_dir(dir.path(), "backtrack-differ").expect("another name");
        drop(first);
        lock_data_dir(dir.path(), "backtrack-up").expect("free again");
    }
}
