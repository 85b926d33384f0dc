//! A store whose durability mode is chosen at run time.

use super::{
    DeviceKey, Durability, Group, Identity, MemoryStore, MessageId, OneTimePrekey, ParkOutcome,
    ParkedFrame, RedbStore, Removed, SignedPrekey, Store, StoreConfig, StoreError, StoreWriter,
    StoredFrame,
};

/// Either store, picked by [`StoreConfig::durability`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AnyStore {
    /// [`Durability::Fsync`].
    Redb(RedbStore),
    /// [`Durability::Memory`].
    Memory(MemoryStore),
}

impl AnyStore {
    /// Opens the store `config` asks for; the writer is `Some` for the redb
    /// store and must be run (see [`StoreWriter::run`]).
    ///
    /// # Errors
    ///
    /// As [`RedbStore::open`].
    pub fn open(config: &StoreConfig) -> Result<(Self, Option<StoreWriter>), StoreError> {
        match config.durability {
            Durability::Fsync => {
                let (store, writer) = RedbStore::open(config)?;
                Ok((Self::Redb(store), Some(writer)))
            }
            Durability::Memory => Ok((Self::Memory(MemoryStore::new(config)), None)),
        }
    }

    /// The durability this store gives.
    pub fn durability(&self) -> Durability {
        match self {
            Self::Redb(_) => Durability::Fsync,
            Self::Memory(_) => Durability::Memory,
        }
    }
}

macro_rules! delegate {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            AnyStore::Redb(store) => store.$method($($arg),*).await,
            AnyStore::Memory(store) => store.$method($($arg),*).await,
        }
    };
}

impl Store for AnyStore {
    async fn park(&self, frames: Vec<ParkedFrame>) -> Result<Vec<ParkOutcome>, StoreError> {
        delegate!(self.park(frames))
    }

    async fn pending(
        &self,
        recipient: &DeviceKey,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredFrame>, StoreError> {
        delegate!(self.pending(recipient, after_seq, limit))
    }

    async fn remove(
        &self,
        recipient: &DeviceKey,
        sender: &DeviceKey,
        id: MessageId,
    ) -> Result<Option<Removed>, StoreError> {
        delegate!(self.remove(recipient, sender, id))
    }

    async fn pending_count(&self, recipient: &DeviceKey) -> Result<u64, StoreError> {
        delegate!(self.pending_count(recipient))
    }

    async fn recipients(&self) -> Result<Vec<DeviceKey>, StoreError> {
        delegate!(self.recipients())
    }

    async fn bind_identity(&self, user: &str, identity: Identity) -> Result<(), StoreError> {
        delegate!(self.bind_identity(user, identity))
    }

    async fn identity(&self, user: &str) -> Result<Option<Identity>, StoreError> {
        delegate!(self.identity(user))
    }

    async fn add_device(&self, device: &DeviceKey) -> Result<bool, StoreError> {
        delegate!(self.add_device(device))
    }

    async fn remove_device(&self, device: &DeviceKey) -> Result<bool, StoreError> {
        delegate!(self.remove_device(device))
    }

    async fn devices(&self, user: &str) -> Result<Vec<u32>, StoreError> {
        delegate!(self.devices(user))
    }

    async fn set_signed_prekey(
        &self,
        device: &DeviceKey,
        prekey: SignedPrekey,
    ) -> Result<(), StoreError> {
        delegate!(self.set_signed_prekey(device, prekey))
    }

    async fn signed_prekey(&self, device: &DeviceKey) -> Result<Option<SignedPrekey>, StoreError> {
        delegate!(self.signed_prekey(device))
    }

    async fn add_one_time_prekeys(
        &self,
        device: &DeviceKey,
        prekeys: Vec<OneTimePrekey>,
    ) -> Result<u64, StoreError> {
        delegate!(self.add_one_time_prekeys(device, prekeys))
    }

    async fn take_one_time_prekey(
        &self,
        device: &DeviceKey,
    ) -> Result<Option<OneTimePrekey>, StoreError> {
        delegate!(self.take_one_time_prekey(device))
    }

    async fn one_time_prekey_count(&self, device: &DeviceKey) -> Result<u64, StoreError> {
        delegate!(self.one_time_prekey_count(device))
    }

    async fn create_group(&self, group: &str, members: Vec<String>) -> Result<u64, StoreError> {
        delegate!(self.create_group(group, members))
    }

    async fn change_group_members(
        &self,
        group: &str,
        remove: Vec<String>,
        add: Vec<String>,
    ) -> Result<u64, StoreError> {
        delegate!(self.change_group_members(group, remove, add))
    }

    async fn group(&self, group: &str) -> Result<Option<Group>, StoreError> {
        delegate!(self.group(group))
    }
}
