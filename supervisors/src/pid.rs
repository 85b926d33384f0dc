//! Process identifiers and monitor references.

use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

/// Bits of a [`Pid`] that hold the serial number; the node id sits above them.
const SERIAL_BITS: u32 = 48;
const SERIAL_MASK: u64 = (1 << SERIAL_BITS) - 1;

/// The identifier of one process incarnation, unique within its node.
///
/// Displays like Erlang's `<0.42>`: node id, then serial. Serial `0` of each
/// node stands for code outside any process (for example the sender of an
/// exit signal sent with [`Node::exit`](crate::Node::exit)).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pid(u64);

impl Pid {
    pub(crate) fn new(node: u16, serial: u64) -> Self {
        Self((u64::from(node) << SERIAL_BITS) | (serial & SERIAL_MASK))
    }

    pub(crate) fn raw(self) -> u64 {
        self.0
    }

    /// The id of the node that spawned this process.
    pub fn node(self) -> u16 {
        (self.0 >> SERIAL_BITS) as u16
    }

    /// The serial number of this process within its node.
    pub fn serial(self) -> u64 {
        self.0 & SERIAL_MASK
    }

    /// Whether this pid stands for code outside any process.
    pub fn is_external(self) -> bool {
        self.serial() == 0
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}.{}>", self.node(), self.serial())
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A reference naming one monitor, returned by `monitor` and carried by the
/// matching `Down` notification.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct MonitorRef(pub(crate) u64);

impl fmt::Display for MonitorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#Ref<{}>", self.0)
    }
}

/// A hasher for keys that are already unique integers (pids, references).
///
/// Multiplies by a large odd constant so that sequential ids spread over the
/// whole hash, which the swiss-table control bytes need.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 ^= self.0 >> 29;
    }
}

/// Build hasher for [`IdHasher`].
pub(crate) type IdBuild = BuildHasherDefault<IdHasher>;

/// A hash set of pids.
pub(crate) type PidSet = std::collections::HashSet<Pid, IdBuild>;

/// A hash map keyed by pid.
pub(crate) type PidMap<V> = std::collections::HashMap<Pid, V, IdBuild>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_erlang() {
        assert_eq!(Pid::new(0, 42).to_string(), "<0.42>");
        assert_eq!(Pid::new(3, 7).to_string(), "<3.7>");
        assert_eq!(Pid::new(3, 7).node(), 3);
        assert!(Pid::new(1, 0).is_external());
    }
}
