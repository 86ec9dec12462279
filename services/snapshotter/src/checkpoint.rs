//! Verified checkpoints of the time-travel store in the NATS object store, so a
//! snapshotter with an empty folder replays only the tail of the log.
//!
//! Every `checkpoint_every` applied events the builder's position is checkpointed: a
//! RocksDB checkpoint is taken, every tenant's running digest is recomputed from the
//! checkpoint's stored state, and only if all agree is it packed into one archive and put
//! in bucket `bt-checkpoints` as `timetravel-<position>` with the position, the digests and
//! the store's layout version as metadata. The two newest are kept. On start with an empty
//! folder the newest one is fetched (the object store checks its SHA-256), unpacked, and
//! its summaries compared with the metadata before it is used; anything wrong (another
//! layout included) means a full replay instead.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use async_nats::jetstream;
use async_nats::jetstream::object_store::{ObjectMetadata, ObjectStore};
use backtrack_eventlog::buckets::object_bucket;
use backtrack_store::TimeTravelStore;
use futures::StreamExt;

use crate::error::SnapshotterError;

pub const CHECKPOINT_BUCKET: &str = "bt-checkpoints";
const PREFIX: &str = "timetravel-";
const MAGIC: &[u8] = b"BTCKPT1\n";
const KEEP: usize = 2;

/// The checkpoint bucket.
#[derive(Clone)]
pub struct Checkpoints {
    bucket: ObjectStore,
}

impl std::fmt::Debug for Checkpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoints").finish_non_exhaustive()
    }
}

/// A stored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    pub name: String,
    pub position: u64,
    pub size: usize,
}

impl Checkpoints {
    pub async fn open(
        jetstream: &jetstream::Context,
        replicas: usize,
    ) -> Result<Self, SnapshotterError> {
        let bucket = object_bucket(
            jetstream,
            CHECKPOINT_BUCKET,
            "Backtrack time-travel store checkpoints",
            replicas,
        )
        .await?;
        Ok(Self { bucket })
    }

    /// Stored checkpoints, newest first.
    pub async fn list(&self) -> Result<Vec<CheckpointInfo>, SnapshotterError> {
        let mut list = self
            .bucket
            .list()
            .await
            .map_err(|e| unavailable("list", e))?;
        let mut out = Vec::new();
        while let Some(info) = list.next().await {
            let info = info.map_err(|e| unavailable("list", e))?;
            if info.deleted {
                continue;
            }
            if let Some(position) = info.name.strip_prefix(PREFIX).and_then(|p| p.parse().ok()) {
                out.push(CheckpointInfo {
                    name: info.name.clone(),
                    position,
                    size: info.size,
                });
            }
        }
        out.sort_by_key(|c| std::cmp::Reverse(c.position));
        Ok(out)
    }

    /// Checkpoints `store`, verifies the copy and uploads it; returns its position, or
    /// `None` when the copy did not verify (nothing is uploaded then).
    pub async fn save(
        &self,
        store: &TimeTravelStore,
        scratch: &Path,
    ) -> Result<Option<u64>, SnapshotterError> {
        let _ = std::fs::remove_dir_all(scratch);
        std::fs::create_dir_all(scratch).map_err(|e| io("create", scratch, e))?;
        let copy = scratch.join("db");
        let archive = scratch.join("archive");
        let position = store.checkpoint(&copy)?;
        let (copy_for_check, archive_for_pack) = (copy.clone(), archive.clone());
        let verified = tokio::task::spawn_blocking(move || -> Result<Option<Vec<(String, String)>>, SnapshotterError> {
            let checked = TimeTravelStore::open(&copy_for_check)?;
            let checks = checked.check_summaries()?;
            if let Some(bad) = checks.iter().find(|c| !c.ok()) {
                tracing::error!(tenant = %bad.tenant, summary = %bad.summary, recomputed = %bad.recomputed,
                    "checkpoint does not verify; not uploading it");
                return Ok(None);
            }
            drop(checked);
            pack(&copy_for_check, &archive_for_pack)?;
            Ok(Some(checks.into_iter().map(|c| (c.tenant, c.summary)).collect()))
        })
        .await
        .map_err(|e| SnapshotterError::Internal(e.to_string()))??;
        let Some(digests) = verified else {
            let _ = std::fs::remove_dir_all(scratch);
            return Ok(None);
        };
        let mut metadata: HashMap<String, String> = digests
            .into_iter()
            .map(|(tenant, digest)| (format!("tenant.{tenant}"), digest))
            .collect();
        metadata.insert("position".into(), position.to_string());
        metadata.insert("layout".into(), backtrack_store::timetravel::LAYOUT.into());
        let name = format!("{PREFIX}{position:020}");
        let mut file = tokio::fs::File::open(&archive)
            .await
            .map_err(|e| io("open", &archive, e))?;
        self.bucket
            .put(
                ObjectMetadata {
                    name: name.clone(),
                    description: Some(format!("time-travel store at sequence {position}")),
                    metadata,
                    ..Default::default()
                },
                &mut file,
            )
            .await
            .map_err(|e| unavailable("put", e))?;
        let _ = std::fs::remove_dir_all(scratch);
        for old in self.list().await?.into_iter().skip(KEEP) {
            if let Err(e) = self.bucket.delete(&old.name).await {
                tracing::warn!(checkpoint = %old.name, error = %e, "could not delete an old checkpoint");
            }
        }
        Ok(Some(position))
    }

    /// Fetches the newest checkpoint into `store_dir` (which must be empty or missing) and
    /// checks it against its metadata; returns its position. On any problem the folder is
    /// left empty and `None` returned: the caller replays the whole log.
    pub async fn restore(&self, store_dir: &Path, scratch: &Path) -> Option<u64> {
        let newest = match self.list().await {
            Ok(list) => list.into_iter().next()?,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list checkpoints; replaying the whole log");
                return None;
            }
        };
        match self.fetch(&newest, store_dir, scratch).await {
            Ok(position) => Some(position),
            Err(e) => {
                tracing::warn!(checkpoint = %newest.name, error = %e, "checkpoint unusable; replaying the whole log");
                let _ = std::fs::remove_dir_all(store_dir);
                None
            }
        }
    }

    async fn fetch(
        &self,
        checkpoint: &CheckpointInfo,
        store_dir: &Path,
        scratch: &Path,
    ) -> Result<u64, SnapshotterError> {
        let _ = std::fs::remove_dir_all(scratch);
        std::fs::create_dir_all(scratch).map_err(|e| io("create", scratch, e))?;
        let archive = scratch.join("archive");
        let mut object = self
            .bucket
            .get(&checkpoint.name)
            .await
            .map_err(|e| unavailable("get", e))?;
        let info = object.info().clone();
        let layout = info
            .metadata
            .get("layout")
            .map_or("2 or older", String::as_str);
        if layout != backtrack_store::timetravel::LAYOUT {
            return Err(SnapshotterError::Internal(format!(
                "the checkpoint holds store layout {layout}, this release reads layout {}",
                backtrack_store::timetravel::LAYOUT
            )));
        }
        let mut file = tokio::fs::File::create(&archive)
            .await
            .map_err(|e| io("create", &archive, e))?;
        // The object store checks the SHA-256 of what it hands out at the end of the read.
        tokio::io::copy(&mut object, &mut file)
            .await
            .map_err(|e| io("download", &archive, e))?;
        drop(file);
        let (archive_c, dir_c) = (archive.clone(), store_dir.to_path_buf());
        let (position, digests) =
            tokio::task::spawn_blocking(move || -> Result<_, SnapshotterError> {
                unpack(&archive_c, &dir_c)?;
                let store = TimeTravelStore::open(&dir_c)?;
                Ok(store.summary_digests())
            })
            .await
            .map_err(|e| SnapshotterError::Internal(e.to_string()))??;
        let _ = std::fs::remove_dir_all(scratch);
        let expected: Option<u64> = info.metadata.get("position").and_then(|p| p.parse().ok());
        if expected != Some(position) {
            return Err(SnapshotterError::Internal(format!(
                "checkpoint says position {expected:?} but holds {position}"
            )));
        }
        for (tenant, digest) in digests {
            if info.metadata.get(&format!("tenant.{tenant}")) != Some(&digest) {
                return Err(SnapshotterError::Internal(format!(
                    "checkpoint's digest of tenant {tenant} differs from its metadata"
                )));
            }
        }
        Ok(position)
    }
}

/// Packs the flat files of `dir` into `archive`: magic, then per file its name length
/// (u32 BE), name, size (u64 BE) and bytes.
fn pack(dir: &Path, archive: &Path) -> Result<(), SnapshotterError> {
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(archive).map_err(|e| io("create", archive, e))?,
    );
    out.write_all(MAGIC).map_err(|e| io("write", archive, e))?;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io("read", dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let size = std::fs::metadata(&path)
            .map_err(|e| io("stat", &path, e))?
            .len();
        out.write_all(&(name.len() as u32).to_be_bytes())
            .map_err(|e| io("write", archive, e))?;
        out.write_all(name.as_bytes())
            .map_err(|e| io("write", archive, e))?;
        out.write_all(&size.to_be_bytes())
            .map_err(|e| io("write", archive, e))?;
        let mut file = std::fs::File::open(&path).map_err(|e| io("open", &path, e))?;
        let copied = std::io::copy(&mut file, &mut out).map_err(|e| io("copy", &path, e))?;
        if copied != size {
            return Err(SnapshotterError::Internal(format!(
                "{} changed while packing",
                path.display()
            )));
        }
    }
    out.flush().map_err(|e| io("write", archive, e))
}

fn unpack(archive: &Path, dir: &Path) -> Result<(), SnapshotterError> {
    let bad =
        |what: &str| SnapshotterError::Internal(format!("checkpoint archive is damaged: {what}"));
    let mut input =
        std::io::BufReader::new(std::fs::File::open(archive).map_err(|e| io("open", archive, e))?);
    let mut magic = [0u8; 8];
    input.read_exact(&mut magic).map_err(|_| bad("no header"))?;
    if magic != MAGIC {
        return Err(bad("wrong header"));
    }
    std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    loop {
        let mut len = [0u8; 4];
        match input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(io("read", archive, e)),
        }
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > 255 {
            return Err(bad("file name length"));
        }
        let mut name = vec![0u8; len];
        input
            .read_exact(&mut name)
            .map_err(|_| bad("truncated name"))?;
        let name = String::from_utf8(name).map_err(|_| bad("file name"))?;
        if name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(bad("file name"));
        }
        let mut size = [0u8; 8];
        input
            .read_exact(&mut size)
            .map_err(|_| bad("truncated size"))?;
        let size = u64::from_be_bytes(size);
        let path = dir.join(&name);
        let mut file = std::fs::File::create(&path).map_err(|e| io("create", &path, e))?;
        let copied = std::io::copy(&mut (&mut input).take(size), &mut file)
            .map_err(|e| io("write", &path, e))?;
        if copied != size {
            return Err(bad("truncated file"));
        }
    }
}

fn io(what: &str, path: &Path, e: std::io::Error) -> SnapshotterError {
    SnapshotterError::Unavailable(format!("{what} {}: {e}", path.display()))
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> SnapshotterError {
    SnapshotterError::Unavailable(format!("{what} in {CHECKPOINT_BUCKET}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::{pack, unpack};

    #[test]
    fn archives_round_trip_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("CURRENT"), b"MANIFEST-1\n").unwrap();
        std::fs::write(src.join("000001.sst"), vec![7u8; 100_000]).unwrap();
        let archive = dir.path().join("a");
        pack(&src, &archive).unwrap();
        let out = dir.path().join("out");
        unpack(&archive, &out).unwrap();
        assert_eq!(
            std::fs::read(out.join("000001.sst")).unwrap(),
            vec![7u8; 100_000]
        );
        assert_eq!(std::fs::read(out.join("CURRENT")).unwrap(), b"MANIFEST-1\n");
        let mut bytes = std::fs::read(&archive).unwrap();
        bytes.truncate(bytes.len() - 10);
        std::fs::write(&archive, bytes).unwrap();
        assert!(unpack(&archive, &dir.path().join("again")).is_err());
    }
}
