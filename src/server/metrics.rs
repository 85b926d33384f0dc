//! Metric names, in one place. Recorded through the `metrics` facade; the
//! embedding application installs an exporter (the example server installs
//! a Prometheus one).

/// Gauge: open connections.
pub(crate) const CONNECTIONS: &str = "courier_connections";
/// Gauge: authenticated devices online.
pub(crate) const ONLINE: &str = "courier_online_devices";
/// Counter: sessions that authenticated.
pub(crate) const AUTHENTICATED: &str = "courier_authenticated_total";
/// Counter: authentications refused.
pub(crate) const AUTH_FAILED: &str = "courier_auth_failed_total";
/// Counter: frames received from clients.
pub(crate) const FRAMES_IN: &str = "courier_frames_in_total";
/// Counter: messages routed (accepted sends, per recipient device).
pub(crate) const ROUTED: &str = "courier_frames_routed_total";
/// Counter: frames parked durably.
pub(crate) const PARKED: &str = "courier_frames_parked_total";
/// Counter: frames delivered to a session (live or drained).
pub(crate) const DELIVERED: &str = "courier_frames_delivered_total";
/// Counter: delivery acks that removed a frame.
pub(crate) const ACKED: &str = "courier_frames_acked_total";
/// Counter: duplicate sends dropped.
pub(crate) const DUPLICATES: &str = "courier_duplicates_total";
/// Counter: error frames sent, labelled by `code`.
pub(crate) const ERRORS: &str = "courier_error_frames_total";
/// Counter: session logic restarts after a panic.
pub(crate) const RESTARTS: &str = "courier_logic_restarts_total";
/// Histogram: frames per store park call (group commit batch input).
pub(crate) const PARK_BATCH: &str = "courier_park_batch_frames";
/// Histogram: parked frames of a device when its mailbox is touched.
pub(crate) const MAILBOX_DEPTH: &str = "courier_mailbox_depth";
/// Gauge: offline mailbox processes running.
pub(crate) const MAILBOXES: &str = "courier_mailboxes";
/// Counter: media blobs expired by the janitor.
pub(crate) const MEDIA_EXPIRED: &str = "courier_media_expired_total";
/// Counter: push notifications handed to the gateway.
pub(crate) const PUSHES: &str = "courier_pushes_total";
/// Histogram: frames written per socket flush.
pub(crate) const WRITE_BATCH: &str = "courier_write_batch_frames";

/// Counts an error frame by code.
pub(crate) fn error_frame(code: crate::protocol::ErrorCode) {
    metrics::counter!(ERRORS, "code" => code.as_u16().to_string()).increment(1);
}
