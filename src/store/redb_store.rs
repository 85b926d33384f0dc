//! The durable store on redb, with a group-committing writer task.

mod backend;
mod cell;
mod dedup;
mod frames;
mod schema;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Mutex, mpsc, oneshot};

use self::cell::DbCell;
use self::schema::{Reads, Request, Response};
use super::{
    DeviceKey, Group, Identity, MessageId, OneTimePrekey, ParkOutcome, ParkedFrame, Removed,
    SignedPrekey, Store, StoreConfig, StoreError, StoredFrame,
};

/// The durable store: a redb file, written by one group-committing writer.
///
/// Reads run on tokio's blocking pool against the last commit. Every change
/// is queued to the writer ([`StoreWriter::run`]), which commits all queued
/// changes in one transaction with an fsync and then answers their callers.
/// Clones share the store.
#[derive(Clone, Debug)]
pub struct RedbStore {
    queue: mpsc::Sender<Queued>,
    cell: Arc<DbCell>,
}

/// The writer of a [`RedbStore`]: run it as a (supervised) task.
///
/// Clones share one queue; only one of them runs at a time, the others wait.
/// If the running one is stopped or crashes, a new `run` picks up the queue
/// where it was: a change is acknowledged only after its commit, so a restart
/// loses nothing that was acknowledged. Callers whose batch was in flight get
/// an error (or, if the commit had finished, their answer) and may resend.
#[derive(Clone, Debug)]
pub struct StoreWriter {
    queue: Arc<Mutex<mpsc::Receiver<Queued>>>,
    cell: Arc<DbCell>,
    max_batch: usize,
    dedup_window: usize,
}

#[derive(Debug)]
struct Queued {
    request: Request,
    reply: oneshot::Sender<Result<Response, StoreError>>,
}

impl RedbStore {
    /// Opens (or creates) the database at `config.path`.
    ///
    /// Blocks on file I/O (and on repair after a crash); call it at startup or
    /// from a blocking task. Nothing is written until the returned writer runs.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`], [`StoreError::DiskFull`] or
    /// [`StoreError::Corrupted`] when the file cannot be opened.
    pub fn open(config: &StoreConfig) -> Result<(Self, StoreWriter), StoreError> {
        let cell = Arc::new(DbCell::open(&config.path, config.faults.clone())?);
        let (queue, receiver) = mpsc::channel(config.queue_capacity);
        let writer = StoreWriter {
            queue: Arc::new(Mutex::new(receiver)),
            cell: Arc::clone(&cell),
            max_batch: config.max_batch,
            dedup_window: config.dedup_window,
        };
        Ok((Self { queue, cell }, writer))
    }

    /// Opens the database and spawns its writer on the current tokio runtime.
    ///
    /// The writer ends when the last clone of the store is dropped.
    ///
    /// # Errors
    ///
    /// As [`RedbStore::open`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn open_spawned(config: &StoreConfig) -> Result<Self, StoreError> {
        let (store, writer) = Self::open(config)?;
        tokio::spawn(writer.run());
        Ok(store)
    }

    /// How many write transactions the writer has committed since opening.
    pub fn commit_count(&self) -> u64 {
        self.cell.commit_count()
    }

    /// How many requests wait for the writer right now.
    pub fn queue_len(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.cell.path()
    }

    async fn submit(&self, request: Request) -> Result<Response, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Queued { request, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| {
            StoreError::Unavailable("store writer stopped before answering".to_owned())
        })?
    }

    async fn read<T, F>(&self, look: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Reads<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let cell = Arc::clone(&self.cell);
        tokio::task::spawn_blocking(move || cell.read(look))
            .await
            .map_err(|_| StoreError::Unavailable("store read task failed".to_owned()))?
    }
}

impl StoreWriter {
    /// Runs the writer until every [`RedbStore`] clone is dropped.
    ///
    /// Each turn takes everything queued (up to the configured batch size),
    /// applies it in one write transaction, commits with an fsync and answers
    /// each caller. A failed commit answers every request of the batch with
    /// the error and the writer carries on (reopening the database first when
    /// the failure was an I/O error).
    ///
    /// # Errors
    ///
    /// None at present; the `Result` lets a supervisor tell a clean end.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops the writer; a batch in flight still commits
    /// and is answered, and queued requests wait for the next `run`.
    #[tracing::instrument(name = "store_writer", skip_all)]
    pub async fn run(self) -> Result<(), StoreError> {
        let mut queue = self.queue.lock().await;
        let mut batch = Vec::with_capacity(self.max_batch);
        tracing::debug!(path = %self.cell.path().display(), "store writer started");

        loop {
            if queue.recv_many(&mut batch, self.max_batch).await == 0 {
                tracing::debug!("store writer stopped: no store handles left");
                return Ok(());
            }
            let requests = std::mem::take(&mut batch);
            let cell = Arc::clone(&self.cell);
            let window = self.dedup_window;
            let task = tokio::task::spawn_blocking(move || commit_batch(&cell, requests, window));
            if let Err(error) = task.await {
                tracing::error!(%error, "store batch task failed");
            }
        }
    }
}

/// Applies one batch in one transaction and answers each caller.
fn commit_batch(cell: &DbCell, batch: Vec<Queued>, dedup_window: usize) {
    let started = Instant::now();
    let frames: usize = batch.iter().map(|q| q.request.frames()).sum();
    let requests_len = batch.len();
    let (requests, replies): (Vec<Request>, Vec<_>) =
        batch.into_iter().map(|q| (q.request, q.reply)).unzip();

    let applied = cell
        .write(|txn, index, parked| schema::apply_all(txn, index, parked, requests, dedup_window));
    match applied {
        Ok(answers) => {
            let elapsed = started.elapsed();
            metrics::histogram!("courier_store_batch_frames").record(frames as f64);
            metrics::histogram!("courier_store_batch_requests").record(requests_len as f64);
            metrics::histogram!("courier_store_commit_seconds").record(elapsed.as_secs_f64());
            metrics::counter!("courier_store_commits_total").increment(1);
            tracing::debug!(
                requests = requests_len,
                frames,
                micros = elapsed.as_micros() as u64,
                "store batch committed"
            );
            for (reply, answer) in replies.into_iter().zip(answers) {
                // A caller that went away no longer needs the answer.
                let _ = reply.send(answer);
            }
        }
        Err(error) => {
            metrics::counter!("courier_store_commit_failures_total").increment(1);
            tracing::warn!(%error, requests = requests_len, frames, "store batch failed");
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

/// Turns a writer response into the type a method returns.
macro_rules! expect_response {
    ($response:expr, $variant:ident) => {
        match $response {
            Response::$variant(value) => Ok(value),
            other => Err(mismatch(&other)),
        }
    };
}

fn mismatch(response: &Response) -> StoreError {
    tracing::error!(?response, "store writer answered with the wrong kind");
    StoreError::Unavailable("store writer answered with the wrong kind".to_owned())
}

impl Store for RedbStore {
    async fn park(&self, frames: Vec<ParkedFrame>) -> Result<Vec<ParkOutcome>, StoreError> {
        if frames.is_empty() {
            return Ok(Vec::new());
        }
        expect_response!(self.submit(Request::Park(frames)).await?, Parked)
    }

    async fn pending(
        &self,
        recipient: &DeviceKey,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredFrame>, StoreError> {
        let recipient = recipient.clone();
        self.read(move |r| r.pending(&recipient, after_seq, limit))
            .await
    }

    async fn remove(
        &self,
        recipient: &DeviceKey,
        sender: &DeviceKey,
        id: MessageId,
    ) -> Result<Option<Removed>, StoreError> {
        let request = Request::Remove(recipient.clone(), sender.clone(), id);
        expect_response!(self.submit(request).await?, Removed)
    }

    async fn pending_count(&self, recipient: &DeviceKey) -> Result<u64, StoreError> {
        let recipient = recipient.clone();
        self.read(move |r| Ok(r.pending_count(&recipient))).await
    }

    async fn recipients(&self) -> Result<Vec<DeviceKey>, StoreError> {
        self.read(|r| Ok(r.recipients())).await
    }

    async fn bind_identity(&self, user: &str, identity: Identity) -> Result<(), StoreError> {
        let request = Request::BindIdentity(user.to_owned(), identity);
        match self.submit(request).await? {
            Response::Done => Ok(()),
            other => Err(mismatch(&other)),
        }
    }

    async fn identity(&self, user: &str) -> Result<Option<Identity>, StoreError> {
        let user = user.to_owned();
        self.read(move |r| r.identity(&user)).await
    }

    async fn add_device(&self, device: &DeviceKey) -> Result<bool, StoreError> {
        let request = Request::AddDevice(device.clone());
        expect_response!(self.submit(request).await?, Flag)
    }

    async fn remove_device(&self, device: &DeviceKey) -> Result<bool, StoreError> {
        let request = Request::RemoveDevice(device.clone());
        expect_response!(self.submit(request).await?, Flag)
    }

    async fn devices(&self, user: &str) -> Result<Vec<u32>, StoreError> {
        let user = user.to_owned();
        self.read(move |r| r.devices(&user)).await
    }

    async fn set_signed_prekey(
        &self,
        device: &DeviceKey,
        prekey: SignedPrekey,
    ) -> Result<(), StoreError> {
        let request = Request::SetSignedPrekey(device.clone(), prekey);
        match self.submit(request).await? {
            Response::Done => Ok(()),
            other => Err(mismatch(&other)),
        }
    }

    async fn signed_prekey(&self, device: &DeviceKey) -> Result<Option<SignedPrekey>, StoreError> {
        let device = device.clone();
        self.read(move |r| r.signed_prekey(&device)).await
    }

    async fn add_one_time_prekeys(
        &self,
        device: &DeviceKey,
        prekeys: Vec<OneTimePrekey>,
    ) -> Result<u64, StoreError> {
        let request = Request::AddOneTimePrekeys(device.clone(), prekeys);
        expect_response!(self.submit(request).await?, Count)
    }

    async fn take_one_time_prekey(
        &self,
        device: &DeviceKey,
    ) -> Result<Option<OneTimePrekey>, StoreError> {
        let request = Request::TakeOneTimePrekey(device.clone());
        expect_response!(self.submit(request).await?, Prekey)
    }

    async fn one_time_prekey_count(&self, device: &DeviceKey) -> Result<u64, StoreError> {
        let device = device.clone();
        self.read(move |r| r.one_time_prekey_count(&device)).await
    }

    async fn create_group(&self, group: &str, members: Vec<String>) -> Result<u64, StoreError> {
        let request = Request::CreateGroup(group.to_owned(), members);
        expect_response!(self.submit(request).await?, Count)
    }

    async fn change_group_members(
        &self,
        group: &str,
        remove: Vec<String>,
        add: Vec<String>,
    ) -> Result<u64, StoreError> {
        let request = Request::ChangeGroup {
            group: group.to_owned(),
            remove,
            add,
        };
        expect_response!(self.submit(request).await?, Count)
    }

    async fn group(&self, group: &str) -> Result<Option<Group>, StoreError> {
        let group = group.to_owned();
        self.read(move |r| r.group(&group)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(sender: &str, id: u8, body: &'static [u8]) -> ParkedFrame {
        ParkedFrame {
            recipient: DeviceKey::new("bob", 1),
            sender: DeviceKey::new(sender, 1),
            id: MessageId([id; 16]),
            group: None,
            body: bytes::Bytes::from_static(body),
            sent_at_ms: u64::from(id),
        }
    }

    /// Two frames of one mailbox whose (sender, id) pairs share a hash: an
    /// ack for the second takes the first out of the log, sees that it is
    /// not the one, puts it back unchanged and removes the right one.
    #[tokio::test]
    async fn an_ack_whose_hash_another_frame_shares_removes_only_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let bob = DeviceKey::new("bob", 1);
        let (carol_frame, alice_frame) = (
            frame("carol", 2, b"for bob from carol"),
            frame("alice", 1, b"for bob from alice"),
        );
        {
            let (store, writer) = RedbStore::open(&StoreConfig::new(&path)).unwrap();
            let writer = tokio::spawn(writer.run());
            store.park(vec![carol_frame.clone()]).await.unwrap();
            store.park(vec![alice_frame.clone()]).await.unwrap();
            let pending = store.pending(&bob, 0, 10).await.unwrap();
            let carol_seq = pending[0].seq;
            {
                // Carol's frame, parked first, now answers to Alice's hash.
                let mut index = store.cell.frame_index();
                let alice_print = index.print("alice", 1, &alice_frame.id.0);
                index.refile(&bob, carol_seq, alice_print);
            }

            let removed = store
                .remove(&bob, &alice_frame.sender, alice_frame.id)
                .await
                .unwrap();
            assert_eq!(removed.map(|r| r.sender), Some(alice_frame.sender.clone()));
            let left = store.pending(&bob, 0, 10).await.unwrap();
            assert_eq!(left.len(), 1);
            assert_eq!(left[0].seq, carol_seq);
            assert_eq!(left[0].frame, carol_frame);
            drop(store);
            writer.await.unwrap().unwrap();
        }

        // Reopened, the index is rebuilt from the log: Carol's frame is
        // filed under its own hash again and her ack removes it.
        let store = RedbStore::open_spawned(&StoreConfig::new(&path)).unwrap();
        let removed = store
            .remove(&bob, &carol_frame.sender, carol_frame.id)
            .await
            .unwrap();
        assert_eq!(removed.map(|r| r.sender), Some(carol_frame.sender));
        assert!(store.pending(&bob, 0, 10).await.unwrap().is_empty());
    }
}
