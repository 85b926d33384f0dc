//! The forwarder of one direction of a proxied connection.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;

use super::{ConnectionShared, Direction, ProxyShared};

/// The most bytes one direction reads, and so holds, at a time.
const CHUNK: usize = 16 * 1024;

/// The faults in force on one direction, as set by the connection's handles.
#[derive(Debug, Default)]
pub(super) struct DirectionControl {
    /// Hold bytes until cleared.
    pub(super) stalled: bool,
    /// Latency added to each chunk.
    pub(super) delay: Duration,
    /// A cut not yet taken by the forwarder: bytes still allowed.
    pub(super) pending_cut: Option<u64>,
    /// Flips not yet taken by the forwarder: (offset ahead, bit mask).
    pub(super) pending_flips: Vec<(u64, u8)>,
}

/// How a wait for the direction to be released ended.
enum Released {
    /// Forwarding may go on.
    Go,
    /// The connection was closed meanwhile.
    Closed,
}

/// Moves bytes from `reader` to `writer`, applying the direction's faults.
pub(super) struct Pump {
    direction: Direction,
    connection: Arc<ConnectionShared>,
    proxy: Arc<ProxyShared>,
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    control: watch::Receiver<DirectionControl>,
    close: watch::Receiver<bool>,
    /// Bytes delivered so far in this direction.
    delivered: u64,
    /// Absolute position at which the connection is cut.
    cut_at: Option<u64>,
    /// Absolute positions and bit masks still to flip.
    flips: Vec<(u64, u8)>,
}

impl Pump {
    pub(super) fn new(
        direction: Direction,
        connection: &Arc<ConnectionShared>,
        proxy: &Arc<ProxyShared>,
        reader: OwnedReadHalf,
        writer: OwnedWriteHalf,
    ) -> Self {
        Self {
            direction,
            control: connection.controls[direction.index()].subscribe(),
            close: connection.close.subscribe(),
            connection: Arc::clone(connection),
            proxy: Arc::clone(proxy),
            reader,
            writer,
            delivered: 0,
            cut_at: None,
            flips: Vec::new(),
        }
    }

    /// Forwards until end of file, a cut, a drop or a socket error. Returning
    /// drops both halves; the write half sends FIN as it goes.
    pub(super) async fn run(mut self) {
        let mut buf = vec![0u8; CHUNK];
        loop {
            self.take_pending();
            if self.cut_at.is_some_and(|at| self.delivered >= at) {
                return self.cut().await;
            }

            let read = tokio::select! {
                biased;
                _ = self.close.wait_for(|closed| *closed) => return,
                _ = self.control.changed() => continue,
                read = self.reader.read(&mut buf) => read,
            };
            let len = match read {
                Ok(0) => return self.end_of_stream().await,
                Ok(len) => len,
                Err(err) => {
                    tracing::debug!(direction = ?self.direction, error = %err, "fault proxy read failed");
                    return self.connection.close();
                }
            };
            self.record(|s| s.received += len as u64);

            if let Released::Closed = self.wait_released().await {
                return;
            }
            self.take_pending();
            let chunk = &mut buf[..len];
            self.flip_bits(chunk);
            let allowed = match self.cut_at {
                Some(at) => chunk
                    .len()
                    .min(usize::try_from(at.saturating_sub(self.delivered)).unwrap_or(usize::MAX)),
                None => chunk.len(),
            };

            if let Err(err) = self.writer.write_all(&chunk[..allowed]).await {
                tracing::debug!(direction = ?self.direction, error = %err, "fault proxy write failed");
                return self.connection.close();
            }
            self.delivered += allowed as u64;
            self.record(|s| s.delivered += allowed as u64);
            self.count_delivered(allowed as u64);
        }
    }

    /// Converts commands taken from the handles into absolute positions.
    fn take_pending(&mut self) {
        let delivered = self.delivered;
        let mut cut = None;
        let mut flips = Vec::new();
        self.connection.controls[self.direction.index()].send_if_modified(|control| {
            cut = control.pending_cut.take();
            flips = std::mem::take(&mut control.pending_flips);
            // Taking commands is not news for anyone watching.
            false
        });
        if let Some(bytes) = cut {
            let at = delivered.saturating_add(bytes);
            self.cut_at = Some(self.cut_at.map_or(at, |old| old.min(at)));
        }
        self.flips.extend(
            flips
                .into_iter()
                .map(|(offset, mask)| (delivered.saturating_add(offset), mask)),
        );
    }

    /// Waits while the direction is stalled, then for its delay.
    async fn wait_released(&mut self) -> Released {
        loop {
            let stalled = self.control.borrow_and_update().stalled;
            if !stalled {
                break;
            }
            tokio::select! {
                biased;
                _ = self.close.wait_for(|closed| *closed) => return Released::Closed,
                _ = self.control.changed() => {}
            }
        }

        let delay = self.control.borrow().delay;
        if !delay.is_zero() {
            tokio::select! {
                biased;
                _ = self.close.wait_for(|closed| *closed) => return Released::Closed,
                () = tokio::time::sleep(delay) => {}
            }
        }
        Released::Go
    }

    /// Flips the bits whose positions fall in `chunk`, which starts at
    /// `self.delivered`.
    fn flip_bits(&mut self, chunk: &mut [u8]) {
        let start = self.delivered;
        let end = start + chunk.len() as u64;
        self.flips.retain(|&(at, mask)| {
            if at < start || at >= end {
                return true;
            }
            let index = usize::try_from(at - start).unwrap_or(usize::MAX);
            if let Some(byte) = chunk.get_mut(index) {
                *byte ^= mask;
            }
            false
        });
    }

    /// Ends the connection after a cut: the receiver gets end of file after
    /// the allowed bytes, and the other direction closes too.
    async fn cut(mut self) {
        tracing::debug!(
            connection = %self.connection.id,
            direction = ?self.direction,
            delivered = self.delivered,
            "fault proxy cut connection"
        );
        let _ = self.writer.shutdown().await;
        self.connection.close();
    }

    /// Passes the sender's end of file on, once the direction is released.
    async fn end_of_stream(mut self) {
        if let Released::Closed = self.wait_released().await {
            return;
        }
        let _ = self.writer.shutdown().await;
    }

    fn record(&self, change: impl FnOnce(&mut super::DirectionStats)) {
        let direction = self.direction;
        self.connection
            .stats
            .send_modify(|stats| change(stats.direction_mut(direction)));
    }

    fn count_delivered(&self, bytes: u64) {
        let direction = self.direction;
        self.proxy.stats.send_modify(|stats| match direction {
            Direction::ToServer => stats.bytes_to_server += bytes,
            Direction::ToClient => stats.bytes_to_client += bytes,
        });
    }
}
