//! Courier: an embeddable library for end-to-end encrypted chat servers.

pub mod store;

pub use store::{Durability, Store, StoreConfig, StoreError};
