//! Groups on top of the store's member sets.
//!
//! The store keeps a group as a sorted set of member strings and a version.
//! Two kinds of pseudo-member, which no user name can collide with (names
//! start with a letter or digit), record what the store has no column for:
//! `!owner:<user>` names the owner and `!created:<hex>` the request id that
//! created the group (so that repeating it is answered `Accepted` again).

use super::Directory;
use crate::protocol::{GroupId, MessageId, UserName};
use crate::store::{Store, StoreError};

/// Prefix of the pseudo-member that records a group's owner.
pub(crate) const OWNER_PREFIX: &str = "!owner:";
/// Prefix of the pseudo-member that records the creating request.
const CREATED_PREFIX: &str = "!created:";

/// A group as the logic sees it.
#[derive(Clone, Debug)]
pub(crate) struct GroupRecord {
    pub(crate) owner: Option<UserName>,
    pub(crate) members: Vec<UserName>,
    pub(crate) version: u64,
    pub(crate) created_by: Option<MessageId>,
}

impl GroupRecord {
    /// Whether `user` is a member.
    pub(crate) fn is_member(&self, user: &UserName) -> bool {
        self.members.contains(user)
    }
}

impl Directory {
    /// The group, if it exists and has members.
    pub(crate) async fn group(&self, group: &GroupId) -> Result<Option<GroupRecord>, StoreError> {
        let Some(raw) = self.store.group(&group.to_string()).await? else {
            return Ok(None);
        };
        let mut record = GroupRecord {
            owner: None,
            members: Vec::with_capacity(raw.members.len()),
            version: raw.version,
            created_by: None,
        };
        for m in raw.members {
            if let Some(owner) = m.strip_prefix(OWNER_PREFIX) {
                record.owner = UserName::new(owner).ok();
            } else if let Some(hex) = m.strip_prefix(CREATED_PREFIX) {
                record.created_by = parse_id(hex);
            } else if let Ok(name) = UserName::new(m) {
                record.members.push(name);
            }
        }
        if record.members.is_empty() {
            return Ok(None);
        }
        Ok(Some(record))
    }

    /// Creates a group owned by `owner`; returns its version.
    pub(crate) async fn create_group(
        &self,
        group: &GroupId,
        request: MessageId,
        owner: &UserName,
        members: &[UserName],
    ) -> Result<u64, StoreError> {
        let mut all: Vec<String> = members.iter().map(|m| m.to_string()).collect();
        all.push(format!("{OWNER_PREFIX}{owner}"));
        all.push(format!("{CREATED_PREFIX}{request}"));
        self.store.create_group(&group.to_string(), all).await
    }

    /// Adds members; returns the version.
    pub(crate) async fn add_members(
        &self,
        group: &GroupId,
        members: &[UserName],
    ) -> Result<u64, StoreError> {
        let names = members.iter().map(|m| m.to_string()).collect();
        self.store
            .change_group_members(&group.to_string(), Vec::new(), names)
            .await
    }

    /// Removes members (and hands ownership on when the owner goes) in one
    /// store commit; returns the version.
    pub(crate) async fn remove_members(
        &self,
        record: &GroupRecord,
        group: &GroupId,
        members: &[UserName],
    ) -> Result<u64, StoreError> {
        let mut names: Vec<String> = members.iter().map(|m| m.to_string()).collect();
        let owner_leaves = record.owner.as_ref().is_none_or(|o| members.contains(o));
        let next_owner = record.members.iter().find(|m| !members.contains(m));
        if owner_leaves {
            if let Some(old) = &record.owner {
                names.push(format!("{OWNER_PREFIX}{old}"));
            }
            if next_owner.is_none()
                && let Some(created) = record.created_by
            {
                names.push(format!("{CREATED_PREFIX}{created}"));
            }
        }
        // The new owner goes in with the same commit that takes the old one
        // out: the group is never without an owner, and the version moves
        // by one.
        let new_owner = match (owner_leaves, next_owner) {
            (true, Some(next)) => vec![format!("{OWNER_PREFIX}{next}")],
            _ => Vec::new(),
        };
        self.store
            .change_group_members(&group.to_string(), names, new_owner)
            .await
    }
}

fn parse_id(hex: &str) -> Option<MessageId> {
    crate::server::logic::parse_hex16(hex).map(MessageId)
}
