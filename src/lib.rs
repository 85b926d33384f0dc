//! Courier: an embeddable library for end-to-end encrypted chat servers.

#[cfg(feature = "chaos")]
pub mod chaos;
pub mod client;
pub mod crypto;
pub mod protocol;
pub mod server;
pub mod store;
pub mod tls;
