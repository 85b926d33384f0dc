//! Builds and starts the supervision tree of a server.

use std::sync::Arc;
use std::time::Duration;

use supervisors::{
    ChildCtx, ChildSpec, Ctx, DynamicSpec, ExitReason, Node, Restart, Shutdown, SpawnOptions,
    Start, Strategy, Supervisor, SupervisorSpec,
};
use tokio::net::TcpListener;

use super::config::TlsSource;
use super::mailbox::{self, MailboxArgs};
use super::media::{self, MediaStore};
use super::shared::{MAILBOXES, NOTIFIER, SESSIONS, Shared, SharedParts};
use super::{STORE_FILE, ServerBuilder, ServerError, ServerHandle, listener, notifier, session};
use crate::store::{AnyStore, StoreConfig, StoreError, StoreWriter};
use crate::tls::ServerTls;

/// Opens everything and starts the tree.
pub(crate) async fn start(builder: ServerBuilder) -> Result<ServerHandle, ServerError> {
    let data_dir = builder.data_dir.clone();
    let (tls, store, writer) = {
        let tls_source = builder.tls.clone();
        let config = StoreConfig::new(data_dir.join(STORE_FILE))
            .durability(builder.durability)
            .faults(builder.faults.clone());
        let dir = data_dir.clone();
        tokio::task::spawn_blocking(move || open_blocking(&dir, &tls_source, &config))
            .await
            .map_err(|e| ServerError::Tree(e.to_string()))??
    };
    let listener = listener::bind(builder.addr)
        .await
        .map_err(|e| ServerError::Bind {
            addr: builder.addr,
            message: e.to_string(),
        })?;
    let local_addr = listener.local_addr().map_err(|e| ServerError::Bind {
        addr: builder.addr,
        message: e.to_string(),
    })?;
    let listener = Arc::new(listener);
    let node = Node::new();
    let media_store = MediaStore::new(data_dir.join("media"), builder.limits.media_ttl);
    let shared = Arc::new(Shared::new(SharedParts {
        node: node.clone(),
        store,
        tls,
        limits: builder.limits,
        authenticator: builder.authenticator,
        rate_limiter: builder.rate_limiter,
        push: builder.push,
        media: media_store,
    }));
    let spec = root_spec(&shared, writer, listener);
    let root = Supervisor::start(&node, spec)
        .await
        .map_err(|e| ServerError::Tree(e.to_string()))?;
    tracing::info!(
        addr = %local_addr,
        data_dir = %data_dir.display(),
        durability = ?builder.durability,
        "server started"
    );
    Ok(ServerHandle {
        fingerprint: shared.tls.fingerprint(),
        timeouts: (shared.limits.handshake_timeout, shared.limits.idle_timeout),
        shared: Arc::downgrade(&shared),
        root,
        local_addr,
    })
}

type Opened = (ServerTls, AnyStore, Option<StoreWriter>);

fn open_blocking(
    dir: &std::path::Path,
    tls: &TlsSource,
    config: &StoreConfig,
) -> Result<Opened, ServerError> {
    std::fs::create_dir_all(dir).map_err(|e| ServerError::DataDir {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let tls = match tls {
        TlsSource::SelfSigned => ServerTls::load_or_create_self_signed(dir)?,
        TlsSource::PemFiles { cert, key } => ServerTls::from_pem_files(cert, key)?,
        TlsSource::Config(config) => ServerTls::from_config(Arc::clone(config)),
    };
    let (store, writer) = open_store(config)?;
    Ok((tls, store, writer))
}

/// Opens the store, waiting up to two seconds for a previous server in this
/// process to let go of the file (its last commit may still be finishing).
fn open_store(config: &StoreConfig) -> Result<(AnyStore, Option<StoreWriter>), ServerError> {
    let mut tries = 0;
    loop {
        match AnyStore::open(config) {
            Ok(opened) => return Ok(opened),
            Err(StoreError::Unavailable(why)) if why.contains("already open") && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The root: rest_for_one over store, mailboxes, media, notifier, listener
/// and sessions.
fn root_spec(
    shared: &Arc<Shared>,
    writer: Option<StoreWriter>,
    listener: Arc<TcpListener>,
) -> SupervisorSpec {
    let sh = Arc::clone(shared);
    let mailboxes = ChildSpec::dynamic("mailboxes", move || {
        let sh = Arc::clone(&sh);
        DynamicSpec::new(move |args: MailboxArgs, cctx: ChildCtx| {
            mailbox::start_child(Arc::clone(&sh), args, cctx)
        })
        .name(MAILBOXES)
        .restart(Restart::Temporary)
        .intensity(100, Duration::from_secs(10))
    });
    let sh = Arc::clone(shared);
    let media = ChildSpec::new("media", move |cctx: ChildCtx| {
        let sh = Arc::clone(&sh);
        async move { Ok(Start::from(cctx.spawn(move |ctx| media::janitor(ctx, sh)))) }
    });
    let sh = Arc::clone(shared);
    let notifier = ChildSpec::new("notifier", move |cctx: ChildCtx| {
        let sh = Arc::clone(&sh);
        async move {
            let opts = SpawnOptions::new().name(NOTIFIER).capacity(4096);
            cctx.spawn_with(opts, move |ctx| notifier::run(ctx, sh))
                .map(Start::from)
                .map_err(ExitReason::error)
        }
    });
    let sh = Arc::clone(shared);
    let listen = ChildSpec::new("listener", move |cctx: ChildCtx| {
        let sh = Arc::clone(&sh);
        let listener = Arc::clone(&listener);
        async move {
            Ok(Start::from(
                cctx.spawn(move |ctx| listener::run(ctx, sh, listener)),
            ))
        }
    })
    .restart(Restart::Transient)
    .shutdown(Shutdown::Timeout(Duration::from_secs(1)));
    let sh = Arc::clone(shared);
    let max = shared.limits.max_connections;
    let sessions = ChildSpec::dynamic("sessions", move || {
        let sh = Arc::clone(&sh);
        DynamicSpec::new(move |args: session::SessionArgs, cctx: ChildCtx| {
            start_session(Arc::clone(&sh), args, cctx)
        })
        .name(SESSIONS)
        .max_children(max)
        .restart(Restart::Temporary)
        .shutdown(Shutdown::Timeout(Duration::from_secs(5)))
    });
    SupervisorSpec::new(Strategy::RestForOne)
        .intensity(10, Duration::from_secs(60))
        .child(store_child(writer))
        .child(mailboxes)
        .child(media)
        .child(notifier)
        .child(listen)
        .child(sessions)
}

/// The store writer as a child; the memory store has none.
fn store_child(writer: Option<StoreWriter>) -> ChildSpec {
    ChildSpec::new("store", move |cctx: ChildCtx| {
        let writer = writer.clone();
        async move {
            let Some(writer) = writer else {
                return Ok(Start::Ignore);
            };
            let addr = cctx.spawn(move |_ctx: Ctx<()>| async move {
                match writer.run().await {
                    Ok(()) => ExitReason::Normal,
                    Err(e) => ExitReason::error(e),
                }
            });
            Ok(Start::from(addr))
        }
    })
    .shutdown(Shutdown::Timeout(Duration::from_secs(10)))
}

async fn start_session(
    shared: Arc<Shared>,
    args: session::SessionArgs,
    cctx: ChildCtx,
) -> Result<Start, ExitReason> {
    let Some((tcp, peer, guard)) = args.slot.lock().take() else {
        return Ok(Start::Ignore);
    };
    let opts = SpawnOptions::new().trap_exits(true);
    cctx.spawn_with(opts, move |ctx| session::run(ctx, shared, tcp, peer, guard))
        .map(Start::from)
        .map_err(ExitReason::error)
}
