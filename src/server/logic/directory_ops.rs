//! Prekey and group requests.

use super::Logic;
use crate::protocol::{
    AddMembers, CreateGroup, DeviceId, ErrorCode, GroupId, LeaveGroup, MessageId, QueryGroup,
    RemoveMembers, RequestBundle, UploadPrekeys,
};
use crate::server::directory::GroupRecord;

impl Logic {
    pub(super) async fn upload_prekeys(&mut self, _me: &DeviceId, _f: &UploadPrekeys) {
        self.error(ErrorCode::InternalError, "not yet", None).await;
    }

    pub(super) async fn request_bundle(&mut self, f: &RequestBundle) {
        self.error(ErrorCode::InternalError, "not yet", Some(f.id))
            .await;
    }

    pub(super) async fn create_group(&mut self, _me: &DeviceId, f: &CreateGroup) {
        self.error(ErrorCode::InternalError, "not yet", Some(f.id))
            .await;
    }

    pub(super) async fn add_members(&mut self, _me: &DeviceId, f: &AddMembers) {
        self.error(ErrorCode::InternalError, "not yet", Some(f.id))
            .await;
    }

    pub(super) async fn remove_members(&mut self, _me: &DeviceId, f: &RemoveMembers) {
        self.error(ErrorCode::InternalError, "not yet", Some(f.id))
            .await;
    }

    pub(super) async fn leave_group(&mut self, _me: &DeviceId, f: &LeaveGroup) {
        self.error(ErrorCode::InternalError, "not yet", Some(f.id))
            .await;
    }

    pub(super) async fn query_group(&mut self, _me: &DeviceId, f: &QueryGroup) {
        self.error(ErrorCode::InternalError, "not yet", Some(f.id))
            .await;
    }

    /// The group `group` if `me` is a member; answers the error otherwise.
    pub(super) async fn group_for_member(
        &self,
        _me: &DeviceId,
        _group: &GroupId,
        id: MessageId,
    ) -> Option<GroupRecord> {
        self.error(ErrorCode::InternalError, "not yet", Some(id))
            .await;
        None
    }

    pub(super) fn ephemeral(&self, _me: &DeviceId, _frame: &crate::protocol::ClientFrame) {}
}
