//! Images, stored once by content: `StageImages` writes an open import's image chunks under the
//! image's SHA-256 (an image already kept is not written again), `StageExamples` refuses an
//! example whose image is not completely there or whose chunks do not hash to its digest, and
//! the import's end decides what stays: a commit keeps every image it staged, an abort removes
//! those that no committed import and no other open import holds.

use std::collections::{BTreeMap, HashSet};

use gloss_proto::v1::{command_result, CommandResult, ImageRecord, ImageRef, StageImages};
use gloss_proto::ErrorCode;
use gloss_store::rocksdb::{Direction, IteratorMode};
use gloss_store::{cf, keys, state_cf};
use sha2::{Digest, Sha256};

use crate::apply::Tx;
use crate::read::decode;
use crate::{ok, rejected, StateError};

/// Largest image chunk, and so the most one chunk adds to a Raft entry.
pub const MAX_IMAGE_CHUNK_BYTES: usize = 1 << 20;
/// Most chunks an image may have (with [`MAX_IMAGE_CHUNK_BYTES`], 1 GiB).
const MAX_CHUNKS: u32 = 1024;

/// An image digest as its 32 bytes, or why it is not one.
pub fn digest_bytes(digest: &str) -> Result<[u8; 32], String> {
    let bad = || format!("image digest `{digest}` is not 64 lowercase hex digits");
    if digest.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, pair) in digest.as_bytes().chunks(2).enumerate() {
        let hex = std::str::from_utf8(pair).map_err(|_| bad())?;
        if hex.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad());
        }
        out[i] = u8::from_str_radix(hex, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// The stored record of an image, if any.
pub fn image(
    db: &gloss_store::rocksdb::DB,
    digest: &[u8; 32],
) -> Result<Option<ImageRecord>, StateError> {
    match db.get_pinned_cf(cf(db, state_cf::IMAGES)?, digest)? {
        Some(v) => Ok(Some(decode("image", &v)?)),
        None => Ok(None),
    }
}

/// The bytes of a stored, verified image, chunk by chunk concatenated.
pub fn image_bytes(
    db: &gloss_store::rocksdb::DB,
    digest: &[u8; 32],
) -> Result<Option<(ImageRef, Vec<u8>)>, StateError> {
    let Some(rec) = image(db, digest)? else {
        return Ok(None);
    };
    if !rec.verified {
        return Ok(None);
    }
    let chunks = cf(db, state_cf::IMAGE_CHUNKS)?;
    let info = rec.image.unwrap_or_default();
    let mut out = Vec::with_capacity(info.bytes as usize);
    for i in 0..rec.chunks {
        match db.get_pinned_cf(chunks, keys::image_chunk(digest, i))? {
            Some(data) => out.extend_from_slice(&data),
            None => return Ok(None),
        }
    }
    Ok(Some((info, out)))
}

fn invalid(reason: String) -> CommandResult {
    rejected(ErrorCode::InvalidArgument, reason)
}

impl Tx<'_> {
    pub(crate) fn stage_images(&mut self, c: &StageImages) -> Result<CommandResult, StateError> {
        let (import, _) = match self.open_import(c.import_id)? {
            Ok(x) => x,
            Err(rejection) => return Ok(rejection),
        };
        // Every chunk is checked before anything is written: a bad command changes nothing.
        let mut records: BTreeMap<[u8; 32], ImageRecord> = BTreeMap::new();
        let mut writes = Vec::with_capacity(c.chunks.len());
        for (i, chunk) in c.chunks.iter().enumerate() {
            let info = chunk.image.clone().unwrap_or_default();
            let digest = match digest_bytes(&info.digest) {
                Ok(d) => d,
                Err(e) => return Ok(invalid(format!("chunk {i}: {e}"))),
            };
            if chunk.count == 0
                || chunk.count > MAX_CHUNKS
                || chunk.index >= chunk.count
                || chunk.data.is_empty()
                || chunk.data.len() > MAX_IMAGE_CHUNK_BYTES
            {
                return Ok(invalid(format!(
                    "chunk {i} of image {}: index {} of {} chunks with {} bytes; chunks are 1 to {MAX_IMAGE_CHUNK_BYTES} bytes and there are at most {MAX_CHUNKS}",
                    info.digest, chunk.index, chunk.count, chunk.data.len()
                )));
            }
            let rec = match records.get_mut(&digest) {
                Some(rec) => rec,
                None => {
                    let found = image(self.db, &digest)?.unwrap_or_else(|| ImageRecord {
                        image: Some(info.clone()),
                        chunks: chunk.count,
                        ..ImageRecord::default()
                    });
                    records.entry(digest).or_insert(found)
                }
            };
            if rec.committed {
                continue; // kept already: content-addressed, nothing to write
            }
            if rec.chunks != chunk.count || rec.image.as_ref() != Some(&info) {
                return Ok(invalid(format!(
                    "chunk {i} of image {}: its description differs from the one staged before",
                    info.digest
                )));
            }
            if !rec.owners.contains(&import.import_id) {
                rec.owners.push(import.import_id);
            }
            writes.push((keys::image_chunk(&digest, chunk.index), &chunk.data));
        }
        let (chunks_cf, images_cf, owned_cf) = (
            cf(self.db, state_cf::IMAGE_CHUNKS)?,
            cf(self.db, state_cf::IMAGES)?,
            cf(self.db, state_cf::IMPORT_IMAGES)?,
        );
        for (key, data) in writes {
            self.batch.put_cf(chunks_cf, key, data);
        }
        for (digest, rec) in &records {
            if rec.committed {
                continue;
            }
            self.batch
                .put_cf(owned_cf, keys::import_image(import.import_id, digest), []);
            self.batch
                .put_cf(images_cf, digest, prost::Message::encode_to_vec(rec));
        }
        Ok(ok(command_result::Result::Import(import)))
    }

    /// Checks that an example's image is completely stored and that its chunks hash to its
    /// digest, marking it verified the first time. `checked` holds the digests verified earlier
    /// in the same command.
    pub(crate) fn check_staged_image(
        &mut self,
        example: usize,
        img: &ImageRef,
        checked: &mut HashSet<[u8; 32]>,
    ) -> Result<Result<(), CommandResult>, StateError> {
        let digest = match digest_bytes(&img.digest) {
            Ok(d) => d,
            Err(e) => return Ok(Err(invalid(format!("example {example}: {e}")))),
        };
        if checked.contains(&digest) {
            return Ok(Ok(()));
        }
        let missing = || {
            Err(rejected(
                ErrorCode::FailedPrecondition,
                format!(
                    "example {example}: image {} is not completely stored; stage its chunks first",
                    img.digest
                ),
            ))
        };
        let Some(mut rec) = image(self.db, &digest)? else {
            return Ok(missing());
        };
        let stored = rec.image.clone().unwrap_or_default();
        if (
            stored.width,
            stored.height,
            &stored.media_type,
            stored.bytes,
        ) != (img.width, img.height, &img.media_type, img.bytes)
        {
            return Ok(Err(invalid(format!(
                "example {example}: image {} is described differently from the stored one",
                img.digest
            ))));
        }
        if !rec.verified {
            let chunks = cf(self.db, state_cf::IMAGE_CHUNKS)?;
            let mut hash = Sha256::new();
            let mut bytes = 0u64;
            for i in 0..rec.chunks {
                let Some(data) = self
                    .db
                    .get_pinned_cf(chunks, keys::image_chunk(&digest, i))?
                else {
                    return Ok(missing());
                };
                bytes += data.len() as u64;
                hash.update(&data);
            }
            if hash.finalize().as_slice() != digest || bytes != stored.bytes {
                return Ok(Err(invalid(format!(
                    "example {example}: the chunks of image {} do not hash to its digest ({bytes} bytes stored)",
                    img.digest
                ))));
            }
            rec.verified = true;
            self.put(state_cf::IMAGES, &digest, &rec)?;
        }
        checked.insert(digest);
        Ok(Ok(()))
    }

    /// At an import's end, keeps (commit) or lets go of (abort) the images it staged.
    pub(crate) fn settle_images(&mut self, import_id: u64, commit: bool) -> Result<(), StateError> {
        let owned_cf = cf(self.db, state_cf::IMPORT_IMAGES)?;
        let prefix = keys::id_prefix(import_id);
        let digests: Vec<[u8; 32]> = self
            .db
            .iterator_cf(owned_cf, IteratorMode::From(&prefix, Direction::Forward))
            .map(|kv| -> Result<_, StateError> { Ok(keys::decode_import_image(&kv?.0)?) })
            .take_while(|r| r.as_ref().map_or(true, |(id, _)| *id == import_id))
            .map(|r| r.map(|(_, d)| d))
            .collect::<Result<_, _>>()?;
        for digest in digests {
            let Some(mut rec) = image(self.db, &digest)? else {
                continue;
            };
            rec.owners.retain(|id| *id != import_id);
            if commit {
                rec.committed = true;
                rec.owners.clear();
            }
            if rec.committed || !rec.owners.is_empty() {
                self.put(state_cf::IMAGES, &digest, &rec)?;
            } else {
                self.batch.delete_cf(cf(self.db, state_cf::IMAGES)?, digest);
                self.batch.delete_range_cf(
                    cf(self.db, state_cf::IMAGE_CHUNKS)?,
                    keys::image_chunk(&digest, 0),
                    keys::image_chunk(&digest, u32::MAX),
                );
            }
        }
        self.batch.delete_range_cf(
            owned_cf,
            keys::id_prefix(import_id),
            keys::id_prefix(import_id + 1),
        );
        Ok(())
    }
}
