//! [`SortedWrites`]: the writes of one run, handed to RocksDB as one serialized batch in
//! key order.
//!
//! The memtable inserts a sorted run of keys much faster than the same keys in event
//! order (each insert starts its search where the previous one ended). Keys and values
//! sit back to back in one buffer and the batch is handed to RocksDB already serialized
//! ([`batch_data`]), so a run of thousands of writes makes no allocation per write and
//! RocksDB's batch does not grow write by write. Writes to the same key keep the order
//! they were made in (a reverse link added and removed again in one run ends removed).

use std::path::Path;

use rocksdb::{IngestExternalFileOptions, Options, SstFileWriter, WriteBatch, WriteOptions, DB};

use crate::StoreError;

/// A write's value length meaning "delete the key".
const DELETE: u32 = u32::MAX;

/// RocksDB's record tags in a serialized batch.
const TAG_DELETION: u8 = 0;
const TAG_VALUE: u8 = 1;

#[derive(Default)]
pub(crate) struct SortedWrites {
    bytes: Vec<u8>,
    /// Where each write's key starts in `bytes`, its key length, and its value length
    /// ([`DELETE`] for a deletion).
    writes: Vec<(usize, u32, u32)>,
    /// The serialized batch, when written.
    data: Vec<u8>,
}

impl SortedWrites {
    pub(crate) fn put(&mut self, key: &[u8], value: &[u8]) {
        self.writes
            .push((self.bytes.len(), key.len() as u32, value.len() as u32));
        self.bytes.extend_from_slice(key);
        self.bytes.extend_from_slice(value);
    }

    /// A put whose key is `parts` joined, without building the key first.
    pub(crate) fn put_parts(&mut self, parts: &[&str], value: &[u8]) {
        let at = self.bytes.len();
        for part in parts {
            self.bytes.extend_from_slice(part.as_bytes());
        }
        let key_len = (self.bytes.len() - at) as u32;
        self.bytes.extend_from_slice(value);
        self.writes.push((at, key_len, value.len() as u32));
    }

    pub(crate) fn delete(&mut self, key: &[u8]) {
        self.writes
            .push((self.bytes.len(), key.len() as u32, DELETE));
        self.bytes.extend_from_slice(key);
    }

    /// A delete whose key is `parts` joined.
    pub(crate) fn delete_parts(&mut self, parts: &[&str]) {
        let at = self.bytes.len();
        for part in parts {
            self.bytes.extend_from_slice(part.as_bytes());
        }
        self.writes
            .push((at, (self.bytes.len() - at) as u32, DELETE));
    }

    pub(crate) fn len(&self) -> usize {
        self.writes.len()
    }

    /// The writes as (key, value; `None` = delete), sorted by key; writes to one key in
    /// the order they were made (they sit in the buffer in that order).
    fn sorted(&mut self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        let bytes = &self.bytes;
        let key = |&(at, k, _): &(usize, u32, u32)| &bytes[at..at + k as usize];
        self.writes
            .sort_unstable_by(|a, b| key(a).cmp(key(b)).then(a.0.cmp(&b.0)));
        self.writes.iter().map(move |&(at, k, v)| {
            let end = at + k as usize;
            let value = (v != DELETE).then(|| &bytes[end..end + v as usize]);
            (&bytes[at..end], value)
        })
    }

    /// Writes everything in one batch. No write-ahead log: every store here is rebuilt
    /// from the event log, and each batch carries the position it brings the store to.
    pub(crate) fn write(&mut self, db: &DB) -> Result<(), StoreError> {
        let count = self.writes.len();
        let mut data = std::mem::take(&mut self.data);
        data.clear();
        data.reserve(12 + self.bytes.len() + 11 * count);
        batch_data(&mut data, self.sorted(), count);
        let batch = WriteBatch::from_data(&data);
        self.data = data;
        let mut options = WriteOptions::default();
        options.disable_wal(true);
        Ok(db.write_opt(batch, &options)?)
    }

    /// Writes everything as one table file that RocksDB ingests whole, bypassing the
    /// memtable. The file's records get a sequence number above every earlier write, so
    /// it overrides them as a batch would, and it is taken whole or not at all. `options`
    /// are the ones the database was opened with (table format and filters); `file` is
    /// created and moved into the database.
    pub(crate) fn ingest(
        &mut self,
        db: &DB,
        options: &Options,
        file: &Path,
    ) -> Result<(), StoreError> {
        let mut table = SstFileWriter::create(options);
        table.open(file)?;
        let mut sorted = self.sorted().peekable();
        while let Some((key, value)) = sorted.next() {
            // Of several writes to one key, the last one made is the one that stays.
            if sorted.peek().is_some_and(|(next, _)| *next == key) {
                continue;
            }
            match value {
                Some(value) => table.put(key, value)?,
                None => table.delete(key)?,
            }
        }
        table.finish()?;
        let mut ingest = IngestExternalFileOptions::default();
        ingest.set_move_files(true);
        let ingested = db.ingest_external_file_opts(&ingest, vec![file]);
        if ingested.is_err() {
            let _ = std::fs::remove_file(file);
        }
        Ok(ingested?)
    }

    /// Empties the buffers, keeping their memory.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.writes.clear();
        self.data.clear();
    }

    pub(crate) fn capacity_bytes(&self) -> usize {
        self.bytes.capacity()
            + self.data.capacity()
            + self.writes.capacity() * std::mem::size_of::<(usize, u32, u32)>()
    }
}

/// RocksDB's serialized write batch of `writes` (as `WriteBatch::data` has it): a 12-byte
/// header (sequence 0 as fixed64, then the count as fixed32, little-endian), then per
/// write its tag (`1` put, `0` delete) and the key, and for a put the value, each preceded
/// by its length as a varint32.
fn batch_data<'a>(
    data: &mut Vec<u8>,
    writes: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    count: usize,
) {
    fn varint32(out: &mut Vec<u8>, mut n: u32) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    data.extend_from_slice(&0u64.to_le_bytes());
    data.extend_from_slice(&(count as u32).to_le_bytes());
    for (key, value) in writes {
        data.push(if value.is_some() {
            TAG_VALUE
        } else {
            TAG_DELETION
        });
        varint32(data, key.len() as u32);
        data.extend_from_slice(key);
        if let Some(value) = value {
            varint32(data, value.len() as u32);
            data.extend_from_slice(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serialized_batch_is_the_one_rocksdb_builds_from_the_same_sorted_writes() {
        let long_value = vec![7u8; 300];
        let long_key = vec![b'k'; 200];
        let mut writes = SortedWrites::default();
        writes.put(b"b", b"2");
        writes.put(&long_key, &long_value);
        writes.delete(b"c");
        writes.put_parts(&["a", "b"], &long_value);
        writes.put(b"a", b"");
        writes.delete_parts(&["a", "b"]);
        let mut reference = WriteBatch::default();
        reference.put(b"a", b"");
        reference.put(b"ab", &long_value);
        reference.delete(b"ab");
        reference.put(b"b", b"2");
        reference.delete(b"c");
        reference.put(&long_key, &long_value);
        let count = writes.len();
        let mut data = Vec::new();
        batch_data(&mut data, writes.sorted(), count);
        assert_eq!(data, reference.data());
        assert_eq!(WriteBatch::from_data(&data).len(), 6);
    }

    #[test]
    fn writes_to_one_key_land_in_the_order_they_were_made() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = DB::open_default(dir.path()).expect("open");
        let mut writes = SortedWrites::default();
        writes.put(b"x", b"1");
        writes.delete(b"x");
        writes.delete(b"y");
        writes.put(b"y", b"2");
        writes.put(b"z", b"3");
        writes.put(b"z", b"4");
        writes.write(&db).expect("write");
        assert_eq!(db.get(b"x").expect("get"), None);
        assert_eq!(db.get(b"y").expect("get").as_deref(), Some(&b"2"[..]));
        assert_eq!(db.get(b"z").expect("get").as_deref(), Some(&b"4"[..]));
    }
}
