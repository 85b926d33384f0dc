//! Media: seal a blob, upload it in chunks, download and open it
//! (`docs/protocol.md` sections 4.6 and 7.7).

use tokio::sync::oneshot;

use crate::crypto::{MediaKey, open_media, seal_media};
use crate::protocol::{
    ClientFrame, MediaChunk, MediaDownload, MediaId, MediaStored, MediaUploadBegin,
    MediaUploadChunk, MediaUploadFinish,
};

use super::conn::Connection;
use super::engine::Engine;
use super::{ClientError, MediaRef};

/// Per-chunk room left for the frame around the data.
const CHUNK_OVERHEAD: u32 = 64;

/// An upload waiting for `MediaStored`.
pub(crate) struct Upload {
    reference: MediaRef,
    reply: oneshot::Sender<Result<MediaRef, ClientError>>,
}

/// A download collecting chunks.
pub(crate) struct Download {
    key: MediaKey,
    sealed: Vec<u8>,
    reply: oneshot::Sender<Result<Vec<u8>, ClientError>>,
}

impl Engine {
    /// Seals `data` under a fresh media key and uploads the ciphertext; the
    /// reply comes with `MediaStored`.
    pub(crate) async fn start_upload(
        &mut self,
        conn: &mut Connection,
        data: Vec<u8>,
        name: String,
        reply: oneshot::Sender<Result<MediaRef, ClientError>>,
    ) -> Result<(), ClientError> {
        let media = MediaId(rand::random());
        let size = data.len() as u64;
        let (sealed, key) = seal_media(&mut rand::rng(), &data);
        drop(data);
        let reference = MediaRef::new(media, key.key, key.digest, size, name);
        conn.queue(&ClientFrame::MediaUploadBegin(MediaUploadBegin {
            media,
            total_bytes: sealed.len() as u64,
            digest: key.digest,
        }))?;
        let limit = conn
            .limits
            .max_media_chunk_bytes
            .min(conn.limits.max_frame_bytes.saturating_sub(CHUNK_OVERHEAD))
            .max(1);
        let chunk_len = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut offset = 0u64;
        for chunk in sealed.chunks(chunk_len) {
            conn.queue(&ClientFrame::MediaUploadChunk(MediaUploadChunk {
                media,
                offset,
                data: chunk.to_vec().into(),
            }))?;
            self.flush(conn).await?;
            offset += chunk.len() as u64;
        }
        conn.queue(&ClientFrame::MediaUploadFinish(MediaUploadFinish { media }))?;
        tracing::debug!(%media, bytes = offset, "uploaded media");
        self.uploads.insert(media, Upload { reference, reply });
        Ok(())
    }

    /// Asks for a blob from its start.
    pub(crate) fn start_download(
        &mut self,
        conn: &mut Connection,
        reference: &MediaRef,
        reply: oneshot::Sender<Result<Vec<u8>, ClientError>>,
    ) -> Result<(), ClientError> {
        conn.queue(&ClientFrame::MediaDownload(MediaDownload {
            media: reference.media,
            offset: 0,
        }))?;
        let key = MediaKey {
            key: *reference.key,
            digest: reference.digest,
        };
        self.downloads.insert(
            reference.media,
            Download {
                key,
                sealed: Vec::new(),
                reply,
            },
        );
        Ok(())
    }

    pub(crate) fn on_media_stored(&mut self, stored: &MediaStored) {
        if let Some(upload) = self.uploads.remove(&stored.media) {
            let _ = upload.reply.send(Ok(upload.reference));
        }
    }

    /// Appends a chunk; the last one opens the blob.
    pub(crate) fn on_media_chunk(&mut self, chunk: MediaChunk) {
        let Some(download) = self.downloads.get_mut(&chunk.media) else {
            return;
        };
        if chunk.offset != download.sealed.len() as u64
            || chunk.offset + chunk.data.len() as u64 > chunk.total_bytes
        {
            if let Some(download) = self.downloads.remove(&chunk.media) {
                let error = ClientError::protocol("media chunk out of order");
                let _ = download.reply.send(Err(error));
            }
            return;
        }
        download.sealed.extend_from_slice(&chunk.data);
        if (download.sealed.len() as u64) < chunk.total_bytes {
            return;
        }
        if let Some(download) = self.downloads.remove(&chunk.media) {
            let opened = open_media(&download.sealed, &download.key).map_err(ClientError::from);
            let _ = download.reply.send(opened);
        }
    }

    /// Answers a transfer the server refused. False when `media` names none.
    pub(crate) fn on_media_error(&mut self, media: MediaId, error: &ClientError) -> bool {
        if let Some(upload) = self.uploads.remove(&media) {
            let _ = upload.reply.send(Err(error.clone()));
            return true;
        }
        if let Some(download) = self.downloads.remove(&media) {
            let _ = download.reply.send(Err(error.clone()));
            return true;
        }
        false
    }

    /// Fails every transfer of a connection that ended.
    pub(crate) fn fail_transfers(&mut self) {
        for (_, upload) in self.uploads.drain() {
            let _ = upload.reply.send(Err(ClientError::ConnectionClosed));
        }
        for (_, download) in self.downloads.drain() {
            let _ = download.reply.send(Err(ClientError::ConnectionClosed));
        }
    }
}
