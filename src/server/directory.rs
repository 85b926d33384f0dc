//! The directory: devices per user (cached in memory), prekeys and groups,
//! on top of the store.

mod groups;
mod prekeys;

use std::sync::Arc;

use dashmap::DashMap;

pub(crate) use self::groups::GroupRecord;
use crate::protocol::DeviceId;
use crate::store::{AnyStore, DeviceKey, Store, StoreError};

/// Devices, prekeys and groups.
pub(crate) struct Directory {
    store: AnyStore,
    devices: DashMap<String, Arc<Vec<u32>>>,
}

impl Directory {
    pub(crate) fn new(store: AnyStore) -> Self {
        Self {
            store,
            devices: DashMap::new(),
        }
    }

    /// The device numbers of `user`, ascending (empty for an unknown user).
    pub(crate) async fn devices(&self, user: &str) -> Result<Arc<Vec<u32>>, StoreError> {
        if let Some(list) = self.devices.get(user) {
            return Ok(Arc::clone(list.value()));
        }
        let list = Arc::new(self.store.devices(user).await?);
        if !list.is_empty() {
            self.devices.insert(user.to_owned(), Arc::clone(&list));
        }
        Ok(list)
    }

    /// Whether `device` is registered.
    pub(crate) async fn has_device(&self, device: &DeviceId) -> Result<bool, StoreError> {
        Ok(self
            .devices(device.user.as_str())
            .await?
            .contains(&device.device))
    }

    /// Registers `device`.
    pub(crate) async fn add_device(&self, device: &DeviceId) -> Result<(), StoreError> {
        let key = DeviceKey::new(device.user.as_str(), device.device);
        if self.store.add_device(&key).await? {
            self.devices.remove(device.user.as_str());
        }
        Ok(())
    }
}
