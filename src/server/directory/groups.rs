//! Groups: members, owner and version.

use crate::protocol::UserName;

/// Prefix of the pseudo-member that records a group's owner.
pub(crate) const OWNER_PREFIX: &str = "!owner:";

/// A group as the logic sees it.
#[derive(Clone, Debug)]
pub(crate) struct GroupRecord {
    pub(crate) owner: UserName,
    pub(crate) members: Vec<UserName>,
    pub(crate) version: u64,
}
