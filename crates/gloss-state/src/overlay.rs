//! A write overlay over the state database for commands that read their own writes: every put
//! and delete is kept in memory, reads consult it before RocksDB, and `flush` moves it into the
//! command's write batch.

use std::collections::BTreeMap;

use gloss_store::rocksdb::{Direction, IteratorMode, WriteBatch, DB};
use gloss_store::{cf, keys};
use prost::Message;

use crate::read::decode;
use crate::StateError;

type Key = (&'static str, Vec<u8>);
/// Key-value pairs read by a scan.
pub(crate) type Entries = Vec<(Vec<u8>, Vec<u8>)>;

pub(crate) struct Overlay<'a> {
    pub db: &'a DB,
    writes: BTreeMap<Key, Option<Vec<u8>>>,
}

impl<'a> Overlay<'a> {
    pub fn new(db: &'a DB) -> Self {
        Overlay {
            db,
            writes: BTreeMap::new(),
        }
    }

    pub fn get(&self, cf_name: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        if let Some(v) = self.writes.get(&(cf_name, key.to_vec())) {
            return Ok(v.clone());
        }
        Ok(self.db.get_cf(cf(self.db, cf_name)?, key)?)
    }

    pub fn exists(&self, cf_name: &'static str, key: &[u8]) -> Result<bool, StateError> {
        if let Some(v) = self.writes.get(&(cf_name, key.to_vec())) {
            return Ok(v.is_some());
        }
        Ok(self.db.get_pinned_cf(cf(self.db, cf_name)?, key)?.is_some())
    }

    pub fn msg<M: Message + Default>(
        &self,
        cf_name: &'static str,
        what: &'static str,
        key: &[u8],
    ) -> Result<Option<M>, StateError> {
        self.get(cf_name, key)?
            .map(|v| decode(what, &v))
            .transpose()
    }

    pub fn put_raw(&mut self, cf_name: &'static str, key: &[u8], value: Vec<u8>) {
        self.writes.insert((cf_name, key.to_vec()), Some(value));
    }

    pub fn put<M: Message>(&mut self, cf_name: &'static str, key: &[u8], value: &M) {
        self.put_raw(cf_name, key, value.encode_to_vec());
    }

    pub fn delete(&mut self, cf_name: &'static str, key: &[u8]) {
        self.writes.insert((cf_name, key.to_vec()), None);
    }

    /// Up to `limit` entries whose key starts with `prefix`, from `from` (inclusive) on, in key
    /// order, with this command's own writes merged in.
    pub fn scan(
        &self,
        cf_name: &'static str,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Entries, StateError> {
        let end = keys::prefix_end(prefix);
        let mut mine = self
            .writes
            .range((cf_name, from.to_vec())..)
            .take_while(|((c, k), _)| {
                *c == cf_name && end.as_deref().is_none_or(|e| k.as_slice() < e)
            })
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .peekable();
        let mut stored = self
            .db
            .iterator_cf(
                cf(self.db, cf_name)?,
                IteratorMode::From(from, Direction::Forward),
            )
            .take_while(|kv| kv.as_ref().map_or(true, |(k, _)| k.starts_with(prefix)))
            .peekable();
        let mut out = Vec::new();
        while out.len() < limit {
            let next_stored = match stored.peek() {
                Some(Ok((k, _))) => Some(k.to_vec()),
                Some(Err(_)) => return Err(stored.next().expect("peeked").unwrap_err().into()),
                None => None,
            };
            let next_mine = mine.peek().map(|(k, _)| k.clone());
            let take_mine = match (&next_stored, &next_mine) {
                (None, None) => break,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some(s), Some(m)) => m <= s,
            };
            let (key, value) = if take_mine {
                if next_stored == next_mine {
                    stored.next();
                }
                mine.next().expect("peeked")
            } else {
                let (k, v) = stored.next().expect("peeked")?;
                (k.to_vec(), Some(v.to_vec()))
            };
            if let Some(v) = value {
                out.push((key, v));
            }
        }
        Ok(out)
    }

    /// Next value of an id counter in the meta column family.
    pub fn next_id(&mut self, counter: &[u8]) -> Result<u64, StateError> {
        let meta = gloss_store::state_cf::META;
        let id = match self.get(meta, counter)? {
            Some(v) => keys::decode_u64_value(&v)?,
            None => 1,
        };
        self.put_raw(meta, counter, (id + 1).to_be_bytes().to_vec());
        Ok(id)
    }

    /// Moves every write into `batch`.
    pub fn flush(self, batch: &mut WriteBatch) -> Result<(), StateError> {
        for ((cf_name, key), value) in self.writes {
            let handle = cf(self.db, cf_name)?;
            match value {
                Some(v) => batch.put_cf(handle, key, v),
                None => batch.delete_cf(handle, key),
            }
        }
        Ok(())
    }
}
