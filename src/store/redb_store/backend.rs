//! A file backend that can be told to fail writes as a full disk would.

use std::fs::File;
use std::ops::Bound;

use redb::StorageBackend;
use redb::backends::FileBackend;

use super::super::FaultInjector;

/// redb's file backend behind a [`FaultInjector`]: while the switch is on,
/// every write, resize and sync fails with an `ENOSPC`-like error.
#[derive(Debug)]
pub(super) struct FaultyBackend {
    file: FileBackend,
    faults: FaultInjector,
}

impl FaultyBackend {
    pub(super) fn new(file: File, faults: FaultInjector) -> Self {
        Self {
            file: FileBackend::new(file),
            faults,
        }
    }
}

type BackendResult<T> = Result<T, redb::BackendError>;

impl StorageBackend for FaultyBackend {
    fn len(&self) -> BackendResult<u64> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> BackendResult<()> {
        self.file.read(offset, out)
    }

    fn set_len(&self, len: u64) -> BackendResult<()> {
        self.faults.check_write()?;
        self.file.set_len(len)
    }

    fn sync_data(&self) -> BackendResult<()> {
        self.faults.check_write()?;
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> BackendResult<()> {
        self.faults.check_write()?;
        self.file.write(offset, data)
    }

    fn close(&self) -> BackendResult<()> {
        self.file.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> BackendResult<bool> {
        self.file.try_lock_range(start, end)
    }

    fn try_lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> BackendResult<bool> {
        self.file.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> BackendResult<()> {
        self.file.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> BackendResult<()> {
        self.file.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> BackendResult<()> {
        self.file.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> BackendResult<bool> {
        self.file.query_lock_range(start, end)
    }
}
