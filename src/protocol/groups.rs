//! Group management: create, add, remove, leave, query, and the change
//! notification (`docs/protocol.md`, section 4.5).

use serde::{Deserialize, Serialize};

use super::ids::{DeviceId, GroupId, MessageId, UserName};

/// Client: create a group with a client-made id; the creator is a member
/// and the group's owner. Answered with `Accepted`, then `GroupChanged`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateGroup {
    /// Client-made request id.
    pub id: MessageId,
    /// Client-made group id.
    pub group: GroupId,
    /// The other members.
    pub members: Vec<UserName>,
}

/// Client: add users to a group (owner only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddMembers {
    /// Client-made request id.
    pub id: MessageId,
    /// The group.
    pub group: GroupId,
    /// The users to add.
    pub members: Vec<UserName>,
}

/// Client: remove users from a group (owner only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveMembers {
    /// Client-made request id.
    pub id: MessageId,
    /// The group.
    pub group: GroupId,
    /// The users to remove.
    pub members: Vec<UserName>,
}

/// Client: the sender's user leaves the group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveGroup {
    /// Client-made request id.
    pub id: MessageId,
    /// The group.
    pub group: GroupId,
}

/// Client: ask for a group's members. Answered with `GroupInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryGroup {
    /// Client-made request id.
    pub id: MessageId,
    /// The group.
    pub group: GroupId,
}

/// Server: a group's members at a version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// The group.
    pub group: GroupId,
    /// Incremented by every change; 1 after creation.
    pub version: u64,
    /// The owner, who may add and remove members.
    pub owner: UserName,
    /// All members, the owner included.
    pub members: Vec<UserName>,
}

/// Server: a group changed. Sent to every online device of every member,
/// old and new, and parked for offline ones, so that clients rotate their
/// sender keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupChanged {
    /// The group.
    pub group: GroupId,
    /// The version after the change.
    pub version: u64,
    /// The device that made the change.
    pub by: DeviceId,
    /// Users that joined (all members on creation).
    pub added: Vec<UserName>,
    /// Users that were removed or left.
    pub removed: Vec<UserName>,
}
