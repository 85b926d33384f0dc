//! Courier: an embeddable library for end-to-end encrypted chat servers.

pub mod tls;
