//! The audit index: every tenant's audit records, hash-chained in stream order
//! ([`backtrack_domain::audit_chain`]), with secondary indexes for queries. Derived from
//! `BT_AUDIT`: the position is written in the same batch as the entries it covers, so a
//! deleted folder is rebuilt by replay to the same chain.
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `P` | `P` | last stream sequence applied (u64 BE) |
//! | `H` | `H/<tenant>` | chain head: index (u64 BE) + hash (32 bytes) |
//! | `R` | `R/<tenant>/<index u64 BE>` | the entry (`backtrack.v1.ChainLink`, the record's bytes verbatim) |
//! | `D` | `D/<tenant>/<record id>` | index of the record (a re-published record is chained once) |
//! | `X` | `X/<tenant>/<field>/<value>\0<index u64 BE>` | field `a` actor, `c` action, `g` target id, `r` result, `j` correlation id |
//! | `W` | `W/<tenant>/<time u64 BE><index u64 BE>` | record time index |

use std::collections::HashMap;
use std::path::Path;

use backtrack_domain::audit_chain::{link_hash, Link, Verifier, GENESIS};
use backtrack_proto::v1;
use prost::Message;
use rocksdb::{Direction, IteratorMode, Options, ReadOptions, WriteBatch, DB};

use crate::StoreError;

const POSITION: &[u8] = b"P";

/// A key and its value as RocksDB returns them.
type RawPair = (Box<[u8]>, Box<[u8]>);

/// A message of `BT_AUDIT` to index.
#[derive(Debug, Clone)]
pub struct AuditMessage {
    pub sequence: u64,
    pub published_ms: i64,
    /// The tenant token of the subject it was published on.
    pub tenant: String,
    pub payload: Vec<u8>,
}

/// An indexed entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainedEntry {
    pub tenant: String,
    pub link: v1::ChainLink,
}

/// What to look for; empty fields match anything.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub since_ms: i64,
    pub until_ms: i64,
    pub actor: String,
    pub action: String,
    pub target_id: String,
    /// `success` or `failure`.
    pub result: String,
    pub correlation_id: String,
    pub page_size: usize,
    /// Opaque: from the previous page.
    pub page_token: String,
}

/// The outcome of a chain verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainCheck {
    pub checked: u64,
    pub head_index: u64,
    pub head_hash: [u8; 32],
    /// First entry found wrong, and why.
    pub broken: Option<(u64, String)>,
}

pub struct AuditIndex {
    db: DB,
}

impl std::fmt::Debug for AuditIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditIndex").finish_non_exhaustive()
    }
}

fn be(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

fn read_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

fn entry_key(tenant: &str, index: u64) -> Vec<u8> {
    let mut k = format!("R/{tenant}/").into_bytes();
    k.extend_from_slice(&be(index));
    k
}

fn field_prefix(tenant: &str, field: char, value: &str) -> Vec<u8> {
    let value: String = value.chars().filter(|c| *c != '\0').collect();
    let mut k = format!("X/{tenant}/{field}/{value}").into_bytes();
    k.push(0);
    k
}

fn time_key(tenant: &str, time_ms: i64, index: u64) -> Vec<u8> {
    let mut k = format!("W/{tenant}/").into_bytes();
    k.extend_from_slice(&be(time_ms.max(0) as u64));
    k.extend_from_slice(&be(index));
    k
}

fn corrupt(key: &[u8], reason: &str) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: reason.to_string(),
    }
}

/// The index fields of a record: (field, value) pairs.
fn fields(record: &v1::AuditRecord) -> Vec<(char, String)> {
    let mut out = Vec::new();
    if let Some(actor) = &record.actor {
        out.push(('a', actor.subject.clone()));
    }
    out.push(('c', record.action.clone()));
    if let Some(target) = &record.target {
        if !target.id.is_empty() {
            out.push(('g', target.id.clone()));
        }
    }
    let ok = record.result.as_ref().is_none_or(|r| r.success);
    out.push(('r', if ok { "success" } else { "failure" }.to_string()));
    if let Some(c) = &record.correlation {
        for id in [&c.job_id, &c.report_id, &c.backup_id] {
            if !id.is_empty() {
                out.push(('j', id.clone()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

impl AuditIndex {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_env(&crate::background_env()?);
        opts.increase_parallelism(2);
        Ok(Self {
            db: DB::open(&opts, path)?,
        })
    }

    /// The last stream sequence indexed (0: none).
    pub fn position(&self) -> Result<u64, StoreError> {
        match self.db.get(POSITION)? {
            Some(v) => read_u64(&v).ok_or_else(|| corrupt(POSITION, "bad position")),
            None => Ok(0),
        }
    }

    /// A tenant's chain head: (index, hash); (0, GENESIS) for an empty chain.
    pub fn head(&self, tenant: &str) -> Result<(u64, [u8; 32]), StoreError> {
        let key = format!("H/{tenant}");
        match self.db.get(key.as_bytes())? {
            Some(v) if v.len() == 40 => {
                let mut hash = [0u8; 32];
                hash.copy_from_slice(&v[8..]);
                Ok((read_u64(&v).unwrap_or(0), hash))
            }
            Some(_) => Err(corrupt(key.as_bytes(), "bad chain head")),
            None => Ok((0, GENESIS)),
        }
    }

    /// Chains and indexes `messages` (in stream order). Messages at or below the position
    /// are skipped, and so is a record id the tenant's chain already holds. Returns the new
    /// entries.
    pub fn apply(&self, messages: &[AuditMessage]) -> Result<Vec<ChainedEntry>, StoreError> {
        let position = self.position()?;
        let mut heads: HashMap<String, (u64, [u8; 32])> = HashMap::new();
        let mut seen_ids: HashMap<(String, String), ()> = HashMap::new();
        let mut batch = WriteBatch::default();
        let mut out = Vec::new();
        let mut last = position;
        for m in messages {
            if m.sequence <= last {
                continue;
            }
            last = m.sequence;
            let record = v1::AuditRecord::decode(m.payload.as_slice()).ok();
            if let Some(r) = &record {
                let dedupe = format!("D/{}/{}", m.tenant, r.id).into_bytes();
                let key = (m.tenant.clone(), r.id.clone());
                if seen_ids.contains_key(&key) || self.db.get_pinned(&dedupe)?.is_some() {
                    continue;
                }
                seen_ids.insert(key, ());
            }
            let head = match heads.get(&m.tenant) {
                Some(h) => *h,
                None => self.head(&m.tenant)?,
            };
            let index = head.0 + 1;
            let hash = link_hash(&head.1, index, m.sequence, &m.payload);
            let link = v1::ChainLink {
                payload: m.payload.clone(),
                index,
                prev_hash: head.1.to_vec(),
                hash: hash.to_vec(),
                stream_sequence: m.sequence,
                stored_at_ms: m.published_ms,
            };
            batch.put(entry_key(&m.tenant, index), link.encode_to_vec());
            if let Some(r) = &record {
                batch.put(format!("D/{}/{}", m.tenant, r.id), be(index));
                for (field, value) in fields(r) {
                    let mut k = field_prefix(&m.tenant, field, &value);
                    k.extend_from_slice(&be(index));
                    batch.put(k, b"");
                }
                batch.put(time_key(&m.tenant, r.time_ms, index), b"");
            }
            heads.insert(m.tenant.clone(), (index, hash));
            out.push(ChainedEntry {
                tenant: m.tenant.clone(),
                link,
            });
        }
        for (tenant, (index, hash)) in heads {
            let mut v = be(index).to_vec();
            v.extend_from_slice(&hash);
            batch.put(format!("H/{tenant}"), v);
        }
        if last > position {
            batch.put(POSITION, be(last));
        }
        self.db.write(batch)?;
        Ok(out)
    }

    /// Entry `index` of a tenant's chain.
    pub fn entry(&self, tenant: &str, index: u64) -> Result<Option<v1::ChainLink>, StoreError> {
        let key = entry_key(tenant, index);
        match self.db.get(&key)? {
            Some(v) => v1::ChainLink::decode(v.as_slice())
                .map(Some)
                .map_err(|e| corrupt(&key, &e.to_string())),
            None => Ok(None),
        }
    }

    /// Entries `from..` of a tenant's chain, at most `limit`.
    pub fn entries_from(
        &self,
        tenant: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<v1::ChainLink>, StoreError> {
        let prefix = format!("R/{tenant}/").into_bytes();
        let mut out = Vec::new();
        for item in self.iter_from(&prefix, &entry_key(tenant, from.max(1))) {
            let (_, v) = item?;
            out.push(v1::ChainLink::decode(&*v).map_err(|e| corrupt(&prefix, &e.to_string()))?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn iter_from<'a>(
        &'a self,
        prefix: &'a [u8],
        start: &[u8],
    ) -> impl Iterator<Item = Result<RawPair, StoreError>> + 'a {
        let mut upper = prefix.to_vec();
        // Every key of the prefix sorts below prefix + 0xff...: bound the iterator there.
        upper.extend_from_slice(&[0xff; 9]);
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(upper);
        self.db
            .iterator_opt(IteratorMode::From(start, Direction::Forward), opts)
            .take_while(move |item| match item {
                Ok((k, _)) => k.starts_with(prefix),
                Err(_) => true,
            })
            .map(|item| item.map_err(StoreError::from))
    }

    /// One page of a tenant's records matching `query`, and the next page's token.
    pub fn query(
        &self,
        tenant: &str,
        query: &AuditQuery,
    ) -> Result<(Vec<v1::ChainLink>, String), StoreError> {
        let page = query.page_size.clamp(1, 1000);
        let selector = [
            ('j', &query.correlation_id),
            ('g', &query.target_id),
            ('a', &query.actor),
            ('c', &query.action),
            ('r', &query.result),
        ]
        .into_iter()
        .find(|(_, v)| !v.is_empty());
        let cursor = hex::decode(&query.page_token).unwrap_or_default();
        let mut out = Vec::new();
        let mut next = String::new();
        // Candidates in order, each with the key that resumes right at it.
        let (prefix, start) = match selector {
            Some((field, value)) => {
                let prefix = field_prefix(tenant, field, value);
                let mut start = prefix.clone();
                start.extend_from_slice(&cursor);
                (prefix, start)
            }
            None if query.since_ms > 0 || query.until_ms > 0 => {
                let prefix = format!("W/{tenant}/").into_bytes();
                let mut start = prefix.clone();
                if cursor.is_empty() {
                    start.extend_from_slice(&be(query.since_ms.max(0) as u64));
                } else {
                    start.extend_from_slice(&cursor);
                }
                (prefix, start)
            }
            None => {
                let prefix = format!("R/{tenant}/").into_bytes();
                let mut start = prefix.clone();
                start.extend_from_slice(&cursor);
                (prefix, start)
            }
        };
        for item in self.iter_from(&prefix, &start) {
            let (key, value) = item?;
            let suffix = &key[prefix.len()..];
            let link = if prefix.starts_with(b"R/") {
                v1::ChainLink::decode(&*value).map_err(|e| corrupt(&key, &e.to_string()))?
            } else {
                let index = read_u64(&suffix[suffix.len().saturating_sub(8)..])
                    .ok_or_else(|| corrupt(&key, "bad index key"))?;
                if prefix.starts_with(b"W/") {
                    let time = read_u64(suffix).unwrap_or(0) as i64;
                    if query.until_ms > 0 && time > query.until_ms {
                        break;
                    }
                }
                match self.entry(tenant, index)? {
                    Some(link) => link,
                    None => continue,
                }
            };
            let Ok(record) = v1::AuditRecord::decode(link.payload.as_slice()) else {
                continue;
            };
            if !matches(&record, query) {
                continue;
            }
            if out.len() == page {
                next = hex::encode(suffix);
                break;
            }
            out.push(link);
        }
        Ok((out, next))
    }

    /// Recomputes a tenant's chain from its first entry.
    pub fn verify(&self, tenant: &str) -> Result<ChainCheck, StoreError> {
        let prefix = format!("R/{tenant}/").into_bytes();
        let mut verifier = Verifier::default();
        let mut broken = None;
        for item in self.iter_from(&prefix, &prefix) {
            let (key, value) = item?;
            let link = match v1::ChainLink::decode(&*value) {
                Ok(l) => l,
                Err(_) => {
                    broken = Some((verifier.checked() + 1, "an entry is unreadable".to_string()));
                    break;
                }
            };
            let index_in_key = read_u64(&key[prefix.len()..]).unwrap_or(0);
            if index_in_key != link.index {
                broken = Some((
                    verifier.checked() + 1,
                    format!(
                        "entry {} is stored under position {index_in_key}",
                        link.index
                    ),
                ));
                break;
            }
            if let Err(b) = verifier.check(&Link {
                index: link.index,
                prev_hash: &link.prev_hash,
                hash: &link.hash,
                stream_sequence: link.stream_sequence,
                payload: &link.payload,
            }) {
                broken = Some((b.index, b.problem));
                break;
            }
        }
        let (head_index, head_hash) = self.head(tenant)?;
        if broken.is_none() && (head_index != verifier.checked() || head_hash != verifier.head()) {
            broken = Some((
                verifier.checked() + 1,
                format!(
                    "the chain ends at entry {} but its head says {head_index}: entries were removed from the end",
                    verifier.checked()
                ),
            ));
        }
        Ok(ChainCheck {
            checked: verifier.checked(),
            head_index,
            head_hash,
            broken,
        })
    }

    /// Writes a raw key (tests use it to tamper behind the service's back).
    pub fn put_raw(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        Ok(self.db.put(key, value)?)
    }

    /// Deletes a raw key (tests use it to tamper behind the service's back).
    pub fn delete_raw(&self, key: &[u8]) -> Result<(), StoreError> {
        Ok(self.db.delete(key)?)
    }

    /// The key of entry `index` of `tenant`'s chain.
    pub fn entry_key(tenant: &str, index: u64) -> Vec<u8> {
        entry_key(tenant, index)
    }
}

fn matches(record: &v1::AuditRecord, q: &AuditQuery) -> bool {
    let eq = |want: &str, have: &str| want.is_empty() || want == have;
    let actor = record.actor.as_ref().map_or("", |a| a.subject.as_str());
    let target = record.target.as_ref().map_or("", |t| t.id.as_str());
    let ok = record.result.as_ref().is_none_or(|r| r.success);
    let result = if ok { "success" } else { "failure" };
    let correlated = q.correlation_id.is_empty()
        || record.correlation.as_ref().is_some_and(|c| {
            [&c.job_id, &c.report_id, &c.backup_id]
                .iter()
                .any(|id| **id == q.correlation_id)
        });
    eq(&q.actor, actor)
        && eq(&q.action, &record.action)
        && eq(&q.target_id, target)
        && eq(&q.result, result)
        && correlated
        && (q.since_ms == 0 || record.time_ms >= q.since_ms)
        && (q.until_ms == 0 || record.time_ms <= q.until_ms)
}
