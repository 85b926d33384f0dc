//! Courier: an embeddable library for end-to-end encrypted chat servers.

pub mod crypto;
pub mod protocol;
pub mod store;
