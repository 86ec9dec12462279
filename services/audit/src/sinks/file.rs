//! A rotating file of lines: JSON objects (OCSF or native JSON) or CEF text, one record per
//! line. Before a record would push the file past `max_bytes`, the file is synced and
//! rotated: `<path>` → `<path>.1` → … → `<path>.<keep>` (the oldest is removed). Each batch
//! is fsynced before it counts as delivered.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use backtrack_proto::v1::AuditRecord;

use super::batch::Batch;
use crate::format::{render, Format};

/// `<path>.<n>`.
pub fn rotated_path(path: &Path, n: usize) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Delivers batches to a rotating file; the blocking work runs on tokio's blocking pool.
pub(crate) struct FileSink {
    target: Target,
    open: Option<OpenFile>,
    format: Format,
}

#[derive(Clone)]
struct Target {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
}

struct OpenFile {
    file: File,
    size: u64,
}

impl FileSink {
    pub(crate) fn new(path: &Path, max_bytes: u64, keep: usize, format: Format) -> Self {
        Self {
            target: Target {
                path: path.to_path_buf(),
                max_bytes,
                keep,
            },
            open: None,
            format,
        }
    }

    pub(crate) fn describe(&self) -> String {
        format!("file {}", self.target.path.display())
    }

    pub(crate) fn encode(&self, record: &AuditRecord, out: &mut Vec<u8>) {
        out.extend_from_slice(render(record, self.format).as_bytes());
        out.push(b'\n');
    }

    /// Appends the records the file does not have yet, rotating as needed, and fsyncs.
    pub(crate) async fn deliver(&mut self, batch: &mut Batch) -> io::Result<()> {
        let target = self.target.clone();
        let open = self.open.take();
        let bytes = batch.bytes().clone();
        let first = batch.accepted();
        let ranges: Vec<_> = (first..batch.len()).map(|i| batch.range(i)).collect();
        let (open, result) = tokio::task::spawn_blocking(move || {
            let mut open = open;
            let result = target.append(&mut open, &bytes, &ranges);
            if result.is_err() {
                // Reopen next time: the end of the file is unknown after a failed write.
                open = None;
            }
            (open, result)
        })
        .await
        .map_err(|e| io::Error::other(format!("file writer task failed: {e}")))?;
        self.open = open;
        result?;
        batch.accept_all();
        Ok(())
    }
}

impl Target {
    fn append(
        &self,
        open: &mut Option<OpenFile>,
        bytes: &[u8],
        ranges: &[std::ops::Range<usize>],
    ) -> io::Result<()> {
        let (Some(first), Some(last)) = (ranges.first(), ranges.last()) else {
            return Ok(());
        };
        let mut segment = first.start;
        for range in ranges {
            let current = self.ensure_open(open)?;
            let len = (range.end - range.start) as u64;
            if current.size > 0 && current.size + len > self.max_bytes {
                current.file.write_all(&bytes[segment..range.start])?;
                current.file.sync_data()?;
                segment = range.start;
                *open = None;
                self.rotate()?;
                let fresh = self.ensure_open(open)?;
                fresh.size = len;
            } else {
                current.size += len;
            }
        }
        let current = self.ensure_open(open)?;
        current.file.write_all(&bytes[segment..last.end])?;
        current.file.sync_data()
    }

    fn ensure_open<'a>(&self, open: &'a mut Option<OpenFile>) -> io::Result<&'a mut OpenFile> {
        if open.is_none() {
            if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            let mut file = OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(&self.path)?;
            let mut size = file.metadata()?.len();
            if size > 0 && !ends_with_newline(&mut file)? {
                // A write cut short left half a line: end it so the next line parses.
                file.write_all(b"\n")?;
                size += 1;
            }
            *open = Some(OpenFile { file, size });
        }
        open.as_mut()
            .ok_or_else(|| io::Error::other("file not open"))
    }

    fn rotate(&self) -> io::Result<()> {
        for n in (1..self.keep).rev() {
            match std::fs::rename(rotated_path(&self.path, n), rotated_path(&self.path, n + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.path, rotated_path(&self.path, 1))?;
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Make the renames durable; not every platform can sync a directory.
            let _ = File::open(parent).and_then(|d| d.sync_all());
        }
        Ok(())
    }
}

fn ends_with_newline(file: &mut File) -> io::Result<bool> {
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}
