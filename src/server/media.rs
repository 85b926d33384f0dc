//! Media blobs: sealed uploads kept under the data directory until their
//! time to live passes, and the janitor process that deletes expired ones.

use std::path::PathBuf;
use std::sync::Arc;

use supervisors::{Ctx, ExitReason};

use super::shared::Shared;

/// Where blobs live.
pub(crate) struct MediaStore {
    #[allow(dead_code)]
    dir: PathBuf,
}

impl MediaStore {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }
}

/// The janitor process.
pub(crate) async fn janitor(mut ctx: Ctx<()>, _shared: Arc<Shared>) -> ExitReason {
    loop {
        let _ = ctx.recv().await;
    }
}
