//! The name registry: names to processes, cleaned up on exit.
//!
//! # Limitations
//!
//! Names are local to a node. A lookup returns the address of the
//! incarnation registered at that moment; if it exits right after, sends to
//! that address fail and the caller looks the name up again.

use std::sync::Arc;

use dashmap::mapref::entry::Entry;

use crate::addr::Addr;
use crate::node::Node;
use crate::pid::Pid;
use crate::process::Cell;

/// Why a registration failed.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The name belongs to another live process.
    #[error("name {0} is already registered")]
    NameTaken(String),
    /// The process is not alive.
    #[error("process is not alive")]
    NoProc,
}

impl Node {
    /// Registers `name` for `pid`. The name is removed when the process
    /// exits, before its links and monitors are notified.
    ///
    /// # Errors
    ///
    /// [`RegistryError::NameTaken`] or [`RegistryError::NoProc`].
    pub fn register(&self, name: &str, pid: Pid) -> Result<(), RegistryError> {
        let cell = self.cell(pid).ok_or(RegistryError::NoProc)?;
        self.register_cell(&Arc::from(name), &cell)
    }

    /// Removes `name`; returns the pid it named.
    pub fn unregister(&self, name: &str) -> Option<Pid> {
        let (_, pid) = self.inner.names.remove(name)?;
        if let Some(cell) = self.cell(pid) {
            cell.with_core(&mut |c| c.detach_name(name));
        }
        Some(pid)
    }

    /// The pid registered under `name`.
    pub fn whereis_pid(&self, name: &str) -> Option<Pid> {
        self.inner.names.get(name).map(|e| *e.value())
    }

    /// The address registered under `name`, if its messages have type `M`.
    pub fn whereis<M: Send + 'static>(&self, name: &str) -> Option<Addr<M>> {
        self.addr(self.whereis_pid(name)?)
    }

    /// Names currently registered, in no particular order.
    pub fn registered(&self) -> Vec<String> {
        self.inner
            .names
            .iter()
            .map(|e| e.key().to_string())
            .collect()
    }

    /// Inserts under the process lock so that an exit cannot slip between
    /// the check and the insert.
    pub(crate) fn register_cell(
        &self,
        name: &Arc<str>,
        cell: &Arc<dyn Cell>,
    ) -> Result<(), RegistryError> {
        let pid = cell.pid();
        let mut result = Err(RegistryError::NoProc);
        cell.with_core(&mut |c| {
            if c.is_exited() {
                return;
            }
            match self.inner.names.entry(name.clone()) {
                Entry::Occupied(_) => {
                    result = Err(RegistryError::NameTaken(name.to_string()));
                }
                Entry::Vacant(slot) => {
                    slot.insert(pid);
                    c.attach_name(name.clone());
                    result = Ok(());
                }
            }
        });
        result
    }
}
