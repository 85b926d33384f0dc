//! Media upload and download.

use super::Logic;
use crate::protocol::{
    ErrorCode, MediaDownload, MediaUploadBegin, MediaUploadChunk, MediaUploadFinish,
};

/// An upload in progress on a connection.
#[derive(Debug)]
pub(crate) struct Upload {}

impl Logic {
    pub(super) async fn media_begin(&mut self, f: &MediaUploadBegin) {
        self.error(ErrorCode::InternalError, "not yet", Some(f.media.into()))
            .await;
    }
    pub(super) async fn media_chunk(&mut self, f: &MediaUploadChunk) {
        self.error(ErrorCode::InternalError, "not yet", Some(f.media.into()))
            .await;
    }
    pub(super) async fn media_finish(&mut self, f: &MediaUploadFinish) {
        self.error(ErrorCode::InternalError, "not yet", Some(f.media.into()))
            .await;
    }
    pub(super) async fn media_download(&mut self, f: &MediaDownload) {
        self.error(ErrorCode::InternalError, "not yet", Some(f.media.into()))
            .await;
    }
}
