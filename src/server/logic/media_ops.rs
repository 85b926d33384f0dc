//! Media upload and download (sealed blobs; the server sees ciphertext).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::io::AsyncWriteExt;

use super::Logic;
use crate::protocol::{
    ErrorCode, MediaChunk, MediaDownload, MediaId, MediaStored, MediaUploadBegin, MediaUploadChunk,
    MediaUploadFinish, ServerFrame,
};

/// An upload in progress on a connection.
#[derive(Debug)]
pub(crate) struct Upload {
    media: MediaId,
    total: u64,
    digest: [u8; 32],
    received: u64,
    hasher: Sha256,
    file: tokio::fs::File,
}

impl Logic {
    pub(super) async fn media_begin(&mut self, f: &MediaUploadBegin) {
        let id = Some(f.media.into());
        let max = self.shared.limits.max_media_bytes;
        if f.total_bytes > max {
            return self
                .error(
                    ErrorCode::MediaTooLarge,
                    format!("a blob has at most {max} bytes"),
                    id,
                )
                .await;
        }
        if self.shared.media.meta(&f.media).await.is_some() {
            return self
                .error(ErrorCode::Forbidden, "a blob with this id exists", id)
                .await;
        }
        let previous = self.state.upload.lock().take();
        if let Some(previous) = previous {
            self.shared.media.discard(&previous.media).await;
        }
        match self.shared.media.begin(&f.media).await {
            Ok(file) => {
                *self.state.upload.lock() = Some(Box::new(Upload {
                    media: f.media,
                    total: f.total_bytes,
                    digest: f.digest,
                    received: 0,
                    hasher: Sha256::new(),
                    file,
                }));
            }
            Err(e) => {
                tracing::warn!(error = %e, "media upload not started");
                self.error(ErrorCode::StorageUnavailable, "cannot store media now", id)
                    .await;
            }
        }
    }

    pub(super) async fn media_chunk(&mut self, f: &MediaUploadChunk) {
        let id = Some(f.media.into());
        let Some(mut upload) = self.take_upload(&f.media) else {
            return self
                .error(
                    ErrorCode::UnknownMedia,
                    "no upload in progress for this media",
                    id,
                )
                .await;
        };
        let len = f.data.len() as u64;
        let too_big = f.data.len() > self.shared.limits.max_media_chunk_bytes as usize;
        if f.offset != upload.received || too_big || upload.received + len > upload.total {
            self.shared.media.discard(&upload.media).await;
            return self
                .error(
                    ErrorCode::MediaMismatch,
                    "chunk offset or size does not fit",
                    id,
                )
                .await;
        }
        if let Err(e) = upload.file.write_all(&f.data).await {
            tracing::warn!(error = %e, "media chunk not written");
            self.shared.media.discard(&upload.media).await;
            return self
                .error(ErrorCode::StorageUnavailable, "cannot store media now", id)
                .await;
        }
        upload.hasher.update(&f.data);
        upload.received += len;
        *self.state.upload.lock() = Some(upload);
    }

    pub(super) async fn media_finish(&mut self, f: &MediaUploadFinish) {
        let id = Some(f.media.into());
        let Some(mut upload) = self.take_upload(&f.media) else {
            return self
                .error(
                    ErrorCode::UnknownMedia,
                    "no upload in progress for this media",
                    id,
                )
                .await;
        };
        let digest = std::mem::take(&mut upload.hasher).finalize();
        let matches =
            upload.received == upload.total && bool::from(digest.as_slice().ct_eq(&upload.digest));
        let flushed = upload.file.sync_all().await;
        drop(upload.file);
        if !matches {
            self.shared.media.discard(&f.media).await;
            return self
                .error(
                    ErrorCode::MediaMismatch,
                    "size or digest does not match",
                    id,
                )
                .await;
        }
        let committed = match flushed {
            Ok(()) => self.shared.media.commit(&f.media, upload.total).await,
            Err(e) => Err(e),
        };
        match committed {
            Ok(expires_at_ms) => {
                self.out(ServerFrame::MediaStored(MediaStored {
                    media: f.media,
                    expires_at_ms,
                }))
                .await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "media not committed");
                self.shared.media.discard(&f.media).await;
                self.error(ErrorCode::StorageUnavailable, "cannot store media now", id)
                    .await;
            }
        }
    }

    pub(super) async fn media_download(&mut self, f: &MediaDownload) {
        let id = Some(f.media.into());
        let Some(meta) = self.shared.media.meta(&f.media).await else {
            return self
                .error(ErrorCode::UnknownMedia, "no such blob, or it expired", id)
                .await;
        };
        if f.offset > meta.total {
            return self
                .error(ErrorCode::UnknownMedia, "offset beyond the blob", id)
                .await;
        }
        let chunk = self.shared.limits.max_media_chunk_bytes.max(1) as usize;
        let mut offset = f.offset;
        loop {
            let data = match self.shared.media.read(&f.media, offset, chunk).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "media read failed");
                    return self
                        .error(ErrorCode::UnknownMedia, "blob unreadable", id)
                        .await;
                }
            };
            let len = data.len() as u64;
            self.out(ServerFrame::MediaChunk(MediaChunk {
                media: f.media,
                offset,
                total_bytes: meta.total,
                data,
            }))
            .await;
            offset += len;
            if len == 0 || offset >= meta.total {
                return;
            }
        }
    }

    fn take_upload(&self, media: &MediaId) -> Option<Box<Upload>> {
        let mut slot = self.state.upload.lock();
        match slot.as_ref() {
            Some(u) if u.media == *media => slot.take(),
            _ => None,
        }
    }
}
