//! Store errors and the disk-fault switch.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Why a store operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The disk is full: nothing of the failed write was stored.
    #[error("disk full")]
    DiskFull,
    /// The storage failed (I/O error, or reopening after one); retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The database file is damaged.
    #[error("store corrupted: {0}")]
    Corrupted(String),
    /// The store was shut down (its writer is gone).
    #[error("store closed")]
    Closed,
    /// The user is already bound to a different identity.
    #[error("identity conflict")]
    IdentityConflict,
    /// A group with this id exists already.
    #[error("group exists")]
    GroupExists,
    /// There is no group with this id.
    #[error("unknown group")]
    UnknownGroup,
}

impl StoreError {
    /// Whether the failure is transient storage trouble worth retrying.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::DiskFull | Self::Unavailable(_))
    }

    /// Whether a write that failed with this error left nothing in the store.
    pub(crate) fn is_storage(&self) -> bool {
        matches!(
            self,
            Self::DiskFull | Self::Unavailable(_) | Self::Corrupted(_)
        )
    }

    pub(crate) fn from_io(error: &io::Error) -> Self {
        match error.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Self::DiskFull,
            _ => Self::Unavailable(error.to_string()),
        }
    }
}

impl From<redb::Error> for StoreError {
    fn from(error: redb::Error) -> Self {
        match error {
            redb::Error::Io(io) => Self::from_io(&io),
            redb::Error::Corrupted(what) => Self::Corrupted(what),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

macro_rules! from_redb {
    ($($ty:ty),*) => {$(
        impl From<$ty> for StoreError {
            fn from(error: $ty) -> Self {
                redb::Error::from(error).into()
            }
        }
    )*};
}

from_redb!(
    redb::StorageError,
    redb::TransactionError,
    redb::TableError,
    redb::CommitError,
    redb::DatabaseError,
    redb::SetDurabilityError
);

/// A switch that makes store writes fail as a full disk would.
///
/// Clones share the switch. While it is on, the redb store's file backend
/// refuses every write and sync with an `ENOSPC`-like error, so redb's own
/// error path runs; the memory store refuses every change. Reads keep
/// working where the engine allows.
#[derive(Clone, Debug, Default)]
pub struct FaultInjector {
    disk_full: Arc<AtomicBool>,
}

impl FaultInjector {
    /// A switch that is off.
    pub fn new() -> Self {
        Self::default()
    }

    /// Turns the simulated full disk on or off.
    pub fn set_disk_full(&self, full: bool) {
        self.disk_full.store(full, Ordering::SeqCst);
    }

    /// Whether the simulated full disk is on.
    pub fn is_disk_full(&self) -> bool {
        self.disk_full.load(Ordering::SeqCst)
    }

    pub(crate) fn check_write(&self) -> io::Result<()> {
        if self.is_disk_full() {
            Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device (injected)",
            ))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_space_left_maps_to_disk_full() {
        let enospc = io::Error::from_raw_os_error(28);
        assert_eq!(StoreError::from_io(&enospc), StoreError::DiskFull);
        let quota = io::Error::from(io::ErrorKind::QuotaExceeded);
        assert_eq!(StoreError::from_io(&quota), StoreError::DiskFull);
        let redb = redb::Error::Io(io::Error::from_raw_os_error(28));
        assert_eq!(StoreError::from(redb), StoreError::DiskFull);
    }

    #[test]
    fn other_io_errors_map_to_unavailable() {
        let eio = io::Error::from_raw_os_error(5);
        assert!(matches!(
            StoreError::from_io(&eio),
            StoreError::Unavailable(_)
        ));
        assert!(StoreError::from_io(&eio).is_retryable());
        let previous = StoreError::from(redb::Error::PreviousIo);
        assert!(matches!(previous, StoreError::Unavailable(_)));
    }

    #[test]
    fn injected_fault_looks_like_a_full_disk() {
        let faults = FaultInjector::new();
        assert!(faults.check_write().is_ok());
        faults.clone().set_disk_full(true);
        let error = faults.check_write().unwrap_err();
        assert_eq!(StoreError::from_io(&error), StoreError::DiskFull);
    }
}
