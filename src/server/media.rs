//! Media blobs: sealed uploads kept as files under `<data dir>/media` until
//! their time to live passes, and the janitor process that deletes expired
//! ones.
//!
//! A blob is `<id>.blob` with a 16-byte `<id>.meta` beside it (size and
//! expiry, big-endian); an upload in progress is `<id>.part`. The meta file
//! is written last (through a rename), so a blob without one is not served
//! and is cleaned up by the janitor.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use supervisors::{Ctx, ExitReason};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::logic::now_ms;
use super::metrics as m;
use super::shared::Shared;
use crate::protocol::MediaId;

/// A stored blob's size and expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) total: u64,
    pub(crate) expires_at_ms: u64,
}

/// Where blobs live.
pub(crate) struct MediaStore {
    dir: PathBuf,
    ttl: Duration,
}

impl MediaStore {
    pub(crate) fn new(dir: PathBuf, ttl: Duration) -> Self {
        Self { dir, ttl }
    }

    fn path(&self, id: &MediaId, ext: &str) -> PathBuf {
        self.dir.join(format!("{id}.{ext}"))
    }

    /// Creates (or truncates) the upload file of `id`.
    pub(crate) async fn begin(&self, id: &MediaId) -> std::io::Result<tokio::fs::File> {
        tokio::fs::create_dir_all(&self.dir).await?;
        tokio::fs::File::create(self.path(id, "part")).await
    }

    /// Turns a finished upload into a blob; returns its expiry.
    pub(crate) async fn commit(&self, id: &MediaId, total: u64) -> std::io::Result<u64> {
        let expires_at_ms =
            now_ms().saturating_add(u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX));
        tokio::fs::rename(self.path(id, "part"), self.path(id, "blob")).await?;
        let mut meta = [0u8; 16];
        meta[..8].copy_from_slice(&total.to_be_bytes());
        meta[8..].copy_from_slice(&expires_at_ms.to_be_bytes());
        let tmp = self.path(id, "meta.tmp");
        tokio::fs::write(&tmp, meta).await?;
        tokio::fs::rename(&tmp, self.path(id, "meta")).await?;
        Ok(expires_at_ms)
    }

    /// Deletes an unfinished upload.
    pub(crate) async fn discard(&self, id: &MediaId) {
        let _ = tokio::fs::remove_file(self.path(id, "part")).await;
    }

    /// The blob's meta, if it exists and has not expired.
    pub(crate) async fn meta(&self, id: &MediaId) -> Option<Meta> {
        let bytes = tokio::fs::read(self.path(id, "meta")).await.ok()?;
        let meta = parse_meta(&bytes)?;
        (meta.expires_at_ms > now_ms()).then_some(meta)
    }

    /// Reads up to `len` bytes of the blob from `offset`.
    pub(crate) async fn read(
        &self,
        id: &MediaId,
        offset: u64,
        len: usize,
    ) -> std::io::Result<Bytes> {
        let mut file = tokio::fs::File::open(self.path(id, "blob")).await?;
        file.seek(std::io::SeekFrom::Start(offset)).await?;
        let mut buf = Vec::with_capacity(len);
        (&mut file).take(len as u64).read_to_end(&mut buf).await?;
        Ok(buf.into())
    }

    /// Deletes expired blobs and stale uploads; returns how many blobs went.
    pub(crate) async fn expire(&self) -> usize {
        let Ok(mut dir) = tokio::fs::read_dir(&self.dir).await else {
            return 0;
        };
        let now = now_ms();
        let mut expired = 0;
        while let Ok(Some(entry)) = dir.next_entry().await {
            let path = entry.path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            match ext {
                "meta" => {
                    let keep = tokio::fs::read(&path)
                        .await
                        .ok()
                        .and_then(|b| parse_meta(&b))
                        .is_some_and(|m| m.expires_at_ms > now);
                    if !keep {
                        let _ = tokio::fs::remove_file(path.with_extension("blob")).await;
                        let _ = tokio::fs::remove_file(&path).await;
                        expired += 1;
                    }
                }
                "part" | "tmp" => {
                    // An upload abandoned long ago (a live one is touched
                    // with every chunk).
                    let stale = entry
                        .metadata()
                        .await
                        .ok()
                        .and_then(|md| md.modified().ok())
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > self.ttl.max(Duration::from_secs(3600)));
                    if stale {
                        let _ = tokio::fs::remove_file(&path).await;
                    }
                }
                _ => {}
            }
        }
        expired
    }
}

fn parse_meta(bytes: &[u8]) -> Option<Meta> {
    let total = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
    let expires_at_ms = u64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?);
    Some(Meta {
        total,
        expires_at_ms,
    })
}

/// The janitor process: deletes expired blobs periodically.
pub(crate) async fn janitor(_ctx: Ctx<()>, shared: Arc<Shared>) -> ExitReason {
    let period =
        (shared.limits.media_ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let n = shared.media.expire().await;
        if n > 0 {
            metrics::counter!(m::MEDIA_EXPIRED).increment(n as u64);
            tracing::debug!(count = n, "expired media deleted");
        }
    }
}
