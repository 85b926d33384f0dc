//! The open database, reopened after an I/O error.
//!
//! After an I/O error redb refuses further work on that handle until the
//! database is reopened (which repairs it from the last good commit). The
//! cell retires a handle that failed and opens a fresh one on next use, once
//! nobody uses the old one any more.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use redb::{Database, ReadableDatabase, WriteTransaction};

use super::backend::FaultyBackend;
use super::dedup::{DedupDelta, DedupIndex};
use super::frames::FrameIndex;
use super::schema::{self, Reads};
use crate::store::{FaultInjector, StoreError};

#[derive(Debug)]
pub(super) struct DbCell {
    path: PathBuf,
    faults: FaultInjector,
    state: Mutex<CellState>,
    /// The de-duplication index of the open database; only the writer uses it.
    dedup: Mutex<Option<DedupIndex>>,
    /// Each recipient's parked frames; the writer changes it, readers list it.
    parked: Mutex<FrameIndex>,
    commits: AtomicU64,
}

#[derive(Debug, Default)]
struct CellState {
    open: Option<Arc<Database>>,
    retired: Option<Arc<Database>>,
}

impl DbCell {
    pub(super) fn open(path: &Path, faults: FaultInjector) -> Result<Self, StoreError> {
        let (db, index, parked) = open_database(path, &faults)?;
        Ok(Self {
            path: path.to_path_buf(),
            faults,
            state: Mutex::new(CellState {
                open: Some(Arc::new(db)),
                retired: None,
            }),
            dedup: Mutex::new(Some(index)),
            parked: Mutex::new(parked),
            commits: AtomicU64::new(0),
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The frame index, for tests that need to bend it.
    #[cfg(test)]
    pub(super) fn frame_index(&self) -> parking_lot::MutexGuard<'_, FrameIndex> {
        self.parked.lock()
    }

    pub(super) fn commit_count(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Runs `change` in a durable write transaction, commits it, and then
    /// applies the change it made to the de-duplication index. If it fails,
    /// the frame index, which `change` updates as it goes, is rebuilt from
    /// the last commit before its next use.
    pub(super) fn write<T>(
        &self,
        change: impl FnOnce(
            &WriteTransaction,
            &DedupIndex,
            &Mutex<FrameIndex>,
        ) -> Result<(T, DedupDelta), StoreError>,
    ) -> Result<T, StoreError> {
        let db = self.database()?;
        self.refresh_frame_index(&db)?;
        let mut dedup = self.dedup.lock();
        let Some(index) = dedup.as_mut() else {
            return Err(StoreError::Unavailable("store index not loaded".to_owned()));
        };
        let result = (|| {
            let mut txn = db.begin_write()?;
            txn.set_durability(redb::Durability::Immediate)?;
            let (value, delta) = change(&txn, index, &self.parked)?;
            txn.commit()?;
            Ok((value, delta))
        })();
        match result {
            Ok((value, delta)) => {
                index.apply(delta);
                self.commits.fetch_add(1, Ordering::Relaxed);
                Ok(value)
            }
            Err(error) => {
                drop(dedup);
                self.parked.lock().mark_stale();
                self.retire_after(&error, &db);
                Err(error)
            }
        }
    }

    /// Runs `look` in a read transaction.
    pub(super) fn read<T>(
        &self,
        look: impl FnOnce(&Reads<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let db = self.database()?;
        let result = self.refresh_frame_index(&db).and_then(|()| {
            let txn = db.begin_read()?;
            look(&Reads {
                txn: &txn,
                parked: &self.parked,
            })
        });
        if let Err(error) = &result {
            self.retire_after(error, &db);
        }
        result
    }

    /// Rebuilds the frame index if a failed batch left it ahead of the disk.
    ///
    /// Only the writer commits, and it refreshes the index under this lock
    /// before it changes it, so a read transaction begun here sees exactly
    /// the state the index must describe.
    fn refresh_frame_index(&self, db: &Database) -> Result<(), StoreError> {
        let mut parked = self.parked.lock();
        if parked.is_stale() {
            parked.reload(&db.begin_read()?)?;
            tracing::info!("frame index rebuilt after a failed commit");
        }
        Ok(())
    }

    fn database(&self) -> Result<Arc<Database>, StoreError> {
        let mut state = self.state.lock();
        if let Some(db) = &state.open {
            return Ok(Arc::clone(db));
        }
        if let Some(old) = state.retired.take() {
            // Two handles must never write the same file: close the old one first.
            match Arc::try_unwrap(old) {
                Ok(old) => drop(old),
                Err(old) => {
                    state.retired = Some(old);
                    return Err(StoreError::Unavailable(
                        "database busy after an i/o error".to_owned(),
                    ));
                }
            }
        }
        let (db, index, parked) = open_database(&self.path, &self.faults)?;
        let db = Arc::new(db);
        *self.dedup.lock() = Some(index);
        *self.parked.lock() = parked;
        tracing::info!(path = %self.path.display(), "store database reopened");
        state.open = Some(Arc::clone(&db));
        Ok(db)
    }

    /// Retires the handle `db` after a storage error, so the next use reopens.
    fn retire_after(&self, error: &StoreError, db: &Arc<Database>) {
        if !error.is_storage() {
            return;
        }
        let mut state = self.state.lock();
        if state
            .open
            .as_ref()
            .is_some_and(|open| Arc::ptr_eq(open, db))
        {
            tracing::warn!(%error, "store database retired after a storage error");
            state.retired = state.open.take();
        }
    }
}

fn open_database(
    path: &Path,
    faults: &FaultInjector,
) -> Result<(Database, DedupIndex, FrameIndex), StoreError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|error| StoreError::from_io(&error))?;
    let db = redb::Builder::new().create_with_backend(FaultyBackend::new(file, faults.clone()))?;

    let txn = db.begin_write()?;
    schema::create_tables(&txn)?;
    txn.commit()?;
    let txn = db.begin_read()?;
    let index = DedupIndex::load(&txn)?;
    let parked = FrameIndex::load(&txn)?;
    drop(txn);
    Ok((db, index, parked))
}
