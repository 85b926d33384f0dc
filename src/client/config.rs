//! How a client reaches its server and where it keeps its state.

use std::path::PathBuf;
use std::time::Duration;

use crate::protocol::{DeviceId, UserName};
use crate::tls::{CertFingerprint, ClientTls};

use super::{ClientError, StorageKey};

/// Which server certificate the client accepts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Trust {
    /// Exactly the certificate with this SHA-256 fingerprint (self-signed
    /// servers; the name is not checked).
    Pinned(CertFingerprint),
    /// Any certificate for the server name that chains to one of these PEM
    /// encoded roots.
    CaPem(Vec<u8>),
    /// A ready TLS client configuration (it must offer ALPN `courier/1`).
    Tls(ClientTls),
}

impl Trust {
    pub(crate) fn client_tls(&self) -> Result<ClientTls, ClientError> {
        match self {
            Self::Pinned(pin) => Ok(ClientTls::pinned(*pin)),
            Self::CaPem(pem) => Ok(ClientTls::with_ca_pem(pem)?),
            Self::Tls(tls) => Ok(tls.clone()),
        }
    }
}

/// Everything [`Client::connect`](super::Client::connect) needs.
///
/// Build it with [`ClientConfig::new`] and adjust with the `with_` methods.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The server's address, `host:port`.
    pub server: String,
    /// The name the TLS handshake asks for (SNI and, with a CA, the
    /// certificate check).
    pub server_name: String,
    /// Which certificate to accept.
    pub trust: Trust,
    /// The device this client is: user name and device number.
    pub device: DeviceId,
    /// The directory of the local store (created when missing).
    pub state_dir: PathBuf,
    /// Limit for TCP connect, TLS handshake and authentication together.
    pub connect_timeout: Duration,
    /// First delay before reconnecting; doubles per failure.
    pub reconnect_initial: Duration,
    /// Longest delay between reconnection attempts.
    pub reconnect_max: Duration,
    /// How many one-time prekeys the client keeps on the server (capped by
    /// the server's `max_one_time_prekeys`).
    pub one_time_prekeys: u32,
    /// Upload more one-time prekeys when the server holds fewer than this.
    pub prekey_low_water: u32,
    /// How many sends may wait for `Accepted` at once.
    pub send_window: usize,
    /// Capacity of the event channel; a full channel holds the client back
    /// (it stops reading from the server), it never drops events.
    pub event_capacity: usize,
    /// Also seal every message to this user's other devices.
    pub sync_own_devices: bool,
    /// Encrypts the local store's records; `None` leaves them protected by
    /// file permissions only. A store keeps the choice it was made with.
    pub storage_key: Option<StorageKey>,
}

impl ClientConfig {
    /// A configuration with defaults: the server name is the host part of
    /// `server`, 10 s connect timeout, reconnect from 200 ms up to 30 s,
    /// 100 one-time prekeys topped up below 25, a send window of 64.
    pub fn new(
        server: impl Into<String>,
        trust: Trust,
        user: UserName,
        device: u32,
        state_dir: impl Into<PathBuf>,
    ) -> Self {
        let server = server.into();
        let server_name = host_part(&server);
        Self {
            server,
            server_name,
            trust,
            device: DeviceId::new(user, device),
            state_dir: state_dir.into(),
            connect_timeout: Duration::from_secs(10),
            reconnect_initial: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(30),
            one_time_prekeys: 100,
            prekey_low_water: 25,
            send_window: 64,
            event_capacity: 1024,
            sync_own_devices: true,
            storage_key: None,
        }
    }

    /// Sets the TLS server name.
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = name.into();
        self
    }

    /// Sets the reconnection delays (first and longest).
    pub fn with_reconnect(mut self, initial: Duration, max: Duration) -> Self {
        self.reconnect_initial = initial;
        self.reconnect_max = max;
        self
    }

    /// Sets the connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets how many one-time prekeys to keep uploaded and the low-water
    /// mark that triggers a top-up.
    pub fn with_prekeys(mut self, target: u32, low_water: u32) -> Self {
        self.one_time_prekeys = target;
        self.prekey_low_water = low_water;
        self
    }

    /// Sets the send window.
    pub fn with_send_window(mut self, window: usize) -> Self {
        self.send_window = window.max(1);
        self
    }

    /// Encrypts the local store with `key`.
    pub fn with_storage_key(mut self, key: StorageKey) -> Self {
        self.storage_key = Some(key);
        self
    }

    /// Chooses whether messages are also sealed to this user's other devices.
    pub fn with_sync_own_devices(mut self, sync: bool) -> Self {
        self.sync_own_devices = sync;
        self
    }
}

/// The host of `host:port` (brackets of an IPv6 literal removed).
fn host_part(server: &str) -> String {
    let host = match server.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => server,
    };
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::host_part;

    #[test]
    fn server_name_defaults_to_the_host() {
        assert_eq!(host_part("127.0.0.1:4433"), "127.0.0.1");
        assert_eq!(host_part("chat.example:443"), "chat.example");
        assert_eq!(host_part("[::1]:443"), "::1");
        assert_eq!(host_part("localhost"), "localhost");
    }
}
