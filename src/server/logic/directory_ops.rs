//! Prekey and group requests.

use super::delivery::derived_id;
use super::{Logic, storage_code};
use crate::protocol::{
    Accepted, AddMembers, Bundle, ClientFrame, Conversation, CreateGroup, DeviceBundle, DeviceId,
    ErrorCode, GroupChanged, GroupId, GroupInfo, LeaveGroup, MessageId, OneTimePrekey, PrekeysLow,
    PresenceState, QueryGroup, RemoveMembers, RequestBundle, ServerFrame, SignedPrekey, Typing,
    TypingNotice, UploadPrekeys, UserName,
};
use crate::server::auth::{device_binding_key, from_store};
use crate::server::directory::GroupRecord;
use crate::server::router::key_of;
use crate::server::session::SessionMsg;
use crate::store::{self, DeviceKey, Store, StoreError};

impl Logic {
    pub(super) async fn upload_prekeys(&mut self, me: &DeviceId, f: &UploadPrekeys) {
        let key = key_of(me);
        let store = &self.shared.store;
        let held = match store.one_time_prekey_count(&key).await {
            Ok(n) => n,
            Err(e) => return self.error(storage_code(&e), e.to_string(), None).await,
        };
        let max = u64::from(self.shared.limits.max_one_time_prekeys);
        if held + f.one_time.len() as u64 > max {
            return self
                .error(
                    ErrorCode::TooManyPrekeys,
                    format!("the server holds at most {max} one-time prekeys per device"),
                    None,
                )
                .await;
        }
        let signed = store::SignedPrekey {
            id: f.signed_prekey.id,
            public: f.signed_prekey.key,
            signature: f.signed_prekey.signature.to_vec(),
        };
        let one_time = f
            .one_time
            .iter()
            .map(|p| store::OneTimePrekey {
                id: p.id,
                public: p.key,
            })
            .collect();
        let result = async {
            store.set_signed_prekey(&key, signed).await?;
            store.add_one_time_prekeys(&key, one_time).await
        }
        .await;
        if let Err(e) = result {
            self.error(storage_code(&e), e.to_string(), None).await;
        }
    }

    pub(super) async fn request_bundle(&mut self, f: &RequestBundle) {
        match self.bundle(&f.user).await {
            Ok(Some(bundle)) => self.out(ServerFrame::Bundle(bundle)).await,
            Ok(None) => {
                self.error(
                    ErrorCode::UnknownRecipient,
                    "no such user, or no prekeys published",
                    Some(f.id),
                )
                .await;
            }
            Err(e) => {
                self.error(storage_code(&e), e.to_string(), Some(f.id))
                    .await
            }
        }
    }

    /// Builds a user's bundle, handing out one one-time prekey per device.
    async fn bundle(&self, user: &UserName) -> Result<Option<Bundle>, StoreError> {
        let store = &self.shared.store;
        let devices = self.shared.directory.devices(user.as_str()).await?;
        let mut bundles = Vec::with_capacity(devices.len());
        for device in devices.iter() {
            let id = DeviceId::new(user.clone(), *device);
            let key = key_of(&id);
            let Some(identity) = store.identity(&device_binding_key(&id)).await? else {
                continue;
            };
            let Some(signed) = store.signed_prekey(&key).await? else {
                continue;
            };
            let Ok(signature) = <[u8; 64]>::try_from(signed.signature.as_slice()) else {
                continue;
            };
            let one_time = store.take_one_time_prekey(&key).await?;
            if one_time.is_some() {
                self.maybe_prekeys_low(&key).await;
            }
            bundles.push(DeviceBundle {
                device: *device,
                identity: from_store(&identity),
                signed_prekey: SignedPrekey {
                    id: signed.id,
                    key: signed.public,
                    signature,
                },
                one_time_prekey: one_time.map(|p| OneTimePrekey {
                    id: p.id,
                    key: p.public,
                }),
            });
        }
        if bundles.is_empty() {
            return Ok(None);
        }
        Ok(Some(Bundle {
            user: user.clone(),
            devices: bundles,
        }))
    }

    /// Tells an online device that its one-time prekeys run low.
    async fn maybe_prekeys_low(&self, key: &DeviceKey) {
        let Ok(left) = self.shared.store.one_time_prekey_count(key).await else {
            return;
        };
        if left < u64::from(self.shared.limits.prekeys_low_threshold) {
            let remaining = u32::try_from(left).unwrap_or(u32::MAX);
            let frame = ServerFrame::PrekeysLow(PrekeysLow { remaining });
            let _ = self.shared.router.hand_off(key, SessionMsg::out(frame));
        }
    }

    pub(super) async fn create_group(&mut self, me: &DeviceId, f: &CreateGroup) {
        let mut members = f.members.clone();
        if !members.contains(&me.user) {
            members.push(me.user.clone());
        }
        members.sort();
        members.dedup();
        if !self.check_size(members.len(), f.id).await || !self.check_users(&members, f.id).await {
            return;
        }
        match self.shared.directory.group(&f.group).await {
            Ok(Some(existing)) => {
                if existing.created_by == Some(f.id) {
                    return self.out(ServerFrame::Accepted(Accepted { id: f.id })).await;
                }
                return self
                    .error(ErrorCode::Forbidden, "the group exists", Some(f.id))
                    .await;
            }
            Ok(None) => {}
            Err(e) => {
                return self
                    .error(storage_code(&e), e.to_string(), Some(f.id))
                    .await;
            }
        }
        let created = self
            .shared
            .directory
            .create_group(&f.group, f.id, &me.user, &members)
            .await;
        let version = match created {
            Ok(v) => v,
            Err(StoreError::GroupExists) => {
                return self
                    .error(ErrorCode::Forbidden, "the group exists", Some(f.id))
                    .await;
            }
            Err(e) => {
                return self
                    .error(storage_code(&e), e.to_string(), Some(f.id))
                    .await;
            }
        };
        self.out(ServerFrame::Accepted(Accepted { id: f.id })).await;
        let change = GroupChanged {
            group: f.group,
            version,
            by: me.clone(),
            added: members.clone(),
            removed: Vec::new(),
        };
        self.announce(me, f.id, &members, change).await;
    }

    pub(super) async fn add_members(&mut self, me: &DeviceId, f: &AddMembers) {
        let Some(group) = self.group_for_owner(me, &f.group, f.id).await else {
            return;
        };
        let added: Vec<UserName> = unique(&f.members)
            .into_iter()
            .filter(|m| !group.is_member(m))
            .collect();
        if !self
            .check_size(group.members.len() + added.len(), f.id)
            .await
            || !self.check_users(&added, f.id).await
        {
            return;
        }
        let version = if added.is_empty() {
            group.version
        } else {
            match self.shared.directory.add_members(&f.group, &added).await {
                Ok(v) => v,
                Err(e) => {
                    return self
                        .error(storage_code(&e), e.to_string(), Some(f.id))
                        .await;
                }
            }
        };
        self.out(ServerFrame::Accepted(Accepted { id: f.id })).await;
        if added.is_empty() {
            return;
        }
        let mut everyone = group.members.clone();
        everyone.extend(added.iter().cloned());
        let change = GroupChanged {
            group: f.group,
            version,
            by: me.clone(),
            added,
            removed: Vec::new(),
        };
        self.announce(me, f.id, &everyone, change).await;
    }

    pub(super) async fn remove_members(&mut self, me: &DeviceId, f: &RemoveMembers) {
        let Some(group) = self.group_for_owner(me, &f.group, f.id).await else {
            return;
        };
        let removed: Vec<UserName> = unique(&f.members)
            .into_iter()
            .filter(|m| group.is_member(m))
            .collect();
        self.remove(me, f.id, f.group, group, removed).await;
    }

    pub(super) async fn leave_group(&mut self, me: &DeviceId, f: &LeaveGroup) {
        let Some(group) = self.group_for_member(me, &f.group, f.id).await else {
            return;
        };
        self.remove(me, f.id, f.group, group, vec![me.user.clone()])
            .await;
    }

    async fn remove(
        &self,
        me: &DeviceId,
        id: MessageId,
        group_id: GroupId,
        group: GroupRecord,
        removed: Vec<UserName>,
    ) {
        if removed.is_empty() {
            return self.out(ServerFrame::Accepted(Accepted { id })).await;
        }
        let version = match self
            .shared
            .directory
            .remove_members(&group, &group_id, &removed)
            .await
        {
            Ok(v) => v,
            Err(e) => return self.error(storage_code(&e), e.to_string(), Some(id)).await,
        };
        self.out(ServerFrame::Accepted(Accepted { id })).await;
        let change = GroupChanged {
            group: group_id,
            version,
            by: me.clone(),
            added: Vec::new(),
            removed,
        };
        self.announce(me, id, &group.members, change).await;
    }

    pub(super) async fn query_group(&mut self, me: &DeviceId, f: &QueryGroup) {
        let Some(group) = self.group_for_member(me, &f.group, f.id).await else {
            return;
        };
        let owner = group
            .owner
            .clone()
            .or_else(|| group.members.first().cloned())
            .unwrap_or_else(|| me.user.clone());
        self.out(ServerFrame::GroupInfo(GroupInfo {
            group: f.group,
            version: group.version,
            owner,
            members: group.members,
        }))
        .await;
    }

    /// The group `group` if `me` is a member; answers the error otherwise.
    pub(super) async fn group_for_member(
        &self,
        me: &DeviceId,
        group: &GroupId,
        id: MessageId,
    ) -> Option<GroupRecord> {
        match self.shared.directory.group(group).await {
            Ok(Some(g)) if g.is_member(&me.user) => Some(g),
            Ok(Some(_)) => {
                self.error(ErrorCode::Forbidden, "not a member of the group", Some(id))
                    .await;
                None
            }
            Ok(None) => {
                self.error(ErrorCode::UnknownGroup, "no such group", Some(id))
                    .await;
                None
            }
            Err(e) => {
                self.error(storage_code(&e), e.to_string(), Some(id)).await;
                None
            }
        }
    }

    /// The group `group` if `me` owns it; answers the error otherwise.
    async fn group_for_owner(
        &self,
        me: &DeviceId,
        group: &GroupId,
        id: MessageId,
    ) -> Option<GroupRecord> {
        let g = self.group_for_member(me, group, id).await?;
        if g.owner.as_ref() != Some(&me.user) {
            self.error(
                ErrorCode::Forbidden,
                "only the owner may change the group",
                Some(id),
            )
            .await;
            return None;
        }
        Some(g)
    }

    async fn check_size(&self, size: usize, id: MessageId) -> bool {
        let max = self.shared.limits.max_group_size as usize;
        if size > max {
            self.error(
                ErrorCode::GroupTooLarge,
                format!("a group has at most {max} members"),
                Some(id),
            )
            .await;
            return false;
        }
        true
    }

    /// Every user must exist.
    async fn check_users(&self, users: &[UserName], id: MessageId) -> bool {
        for user in users {
            match self.shared.directory.devices(user.as_str()).await {
                Ok(d) if !d.is_empty() => {}
                Ok(_) => {
                    self.error(
                        ErrorCode::UnknownRecipient,
                        format!("no such user {user}"),
                        Some(id),
                    )
                    .await;
                    return false;
                }
                Err(e) => {
                    self.error(storage_code(&e), e.to_string(), Some(id)).await;
                    return false;
                }
            }
        }
        true
    }

    /// Sends `change` to every device of `users` (parked for offline ones).
    async fn announce(
        &self,
        me: &DeviceId,
        id: MessageId,
        users: &[UserName],
        change: GroupChanged,
    ) {
        let mut devices = Vec::new();
        for user in users {
            if let Ok(list) = self.shared.directory.devices(user.as_str()).await {
                devices.extend(list.iter().map(|d| DeviceKey::new(user.as_str(), *d)));
            }
        }
        let mut seed = Vec::with_capacity(24);
        seed.extend_from_slice(&id.0);
        seed.extend_from_slice(&change.version.to_be_bytes());
        let notice_id = derived_id(b"courier-group-change", &seed);
        self.notice_many(
            &devices,
            &key_of(me),
            notice_id,
            ServerFrame::GroupChanged(change),
        )
        .await;
    }

    /// Presence and typing: never stored, dropped for offline devices.
    pub(super) async fn ephemeral(&self, me: &DeviceId, frame: &ClientFrame) {
        match frame {
            ClientFrame::SubscribePresence(f) => {
                self.shared.presence.subscribe(&self.shared, me, &f.users);
            }
            ClientFrame::UpdatePresence(f) => {
                let state = if f.state == PresenceState::Offline {
                    PresenceState::Away
                } else {
                    f.state
                };
                self.shared.presence.set(&self.shared, me, state);
            }
            ClientFrame::Typing(f) => self.typing(me, f).await,
            _ => {}
        }
    }

    async fn typing(&self, me: &DeviceId, f: &Typing) {
        let (users, group) = match &f.to {
            Conversation::Direct(user) => (vec![user.clone()], None),
            Conversation::Group(g) => match self.shared.directory.group(g).await {
                Ok(Some(record)) if record.is_member(&me.user) => (record.members, Some(*g)),
                _ => return,
            },
        };
        let frame = ServerFrame::TypingNotice(TypingNotice {
            from: me.clone(),
            group,
            active: f.active,
        });
        for user in users {
            let Ok(devices) = self.shared.directory.devices(user.as_str()).await else {
                continue;
            };
            for d in devices.iter() {
                if user == me.user && *d == me.device {
                    continue;
                }
                let key = DeviceKey::new(user.as_str(), *d);
                let _ = self
                    .shared
                    .router
                    .hand_off(&key, SessionMsg::out(frame.clone()));
            }
        }
    }
}

fn unique(users: &[UserName]) -> Vec<UserName> {
    let mut out = users.to_vec();
    out.sort();
    out.dedup();
    out
}
