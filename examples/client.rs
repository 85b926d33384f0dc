//! A terminal client for a Courier server.
//!
//! Interactive:
//!
//! ```text
//! cargo run --example client -- --user alice --server 127.0.0.1:7443 --fingerprint HEX
//! ```
//!
//! then type `/msg bob hello`, `/list`, `/safety bob`, `/quit` (a line
//! without a command goes to the last user you wrote to). For scripts:
//! `... send --to bob "text"` exits once the server accepted the message,
//! `... recv --count 1 --timeout 10` prints what arrives and exits.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use courier::client::{
    Client, ClientConfig, Content, Direction, Event, Events, MediaRef, Status, StorageKey, Trust,
};
use courier::protocol::{Conversation, DeviceId, GroupId, MessageId, UserName};
use courier::server::DEFAULT_ADDR;
use courier::tls::CertFingerprint;
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Parser, Debug)]
#[command(about = "Courier command-line client")]
struct Args {
    /// Your user name.
    #[arg(long, env = "COURIER_USER")]
    user: String,
    /// This device's number (each device of a user has its own).
    #[arg(long, default_value_t = 1, env = "COURIER_DEVICE")]
    device: u32,
    /// Server address, host:port.
    #[arg(long, default_value = DEFAULT_ADDR, env = "COURIER_SERVER")]
    server: String,
    /// SHA-256 fingerprint of the server certificate (64 hex digits), as the
    /// example server prints it.
    #[arg(long, env = "COURIER_FINGERPRINT", conflicts_with = "ca")]
    fingerprint: Option<String>,
    /// PEM file of certificate authorities to trust instead of a pin.
    #[arg(long, env = "COURIER_CA")]
    ca: Option<PathBuf>,
    /// TLS server name (defaults to the host of --server).
    #[arg(long)]
    server_name: Option<String>,
    /// Directory of this device's keys and messages.
    #[arg(long, env = "COURIER_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// 64 hex digits that encrypt the state directory's records (keep them
    /// elsewhere, e.g. in a password manager); a store made with a key
    /// needs it every time.
    #[arg(long, env = "COURIER_STORAGE_KEY", hide_env_values = true)]
    storage_key: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Send one text message and exit once the server accepted it.
    Send {
        /// The recipient.
        #[arg(long)]
        to: String,
        /// Wait also until a device of the recipient stored it.
        #[arg(long)]
        wait_delivered: bool,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// The text.
        text: String,
    },
    /// Print incoming messages, one per line as `user/device: text`.
    Recv {
        /// Exit after this many messages.
        #[arg(long)]
        count: Option<usize>,
        /// Exit after this many seconds (default: 10 with --count, else never).
        #[arg(long)]
        timeout: Option<u64>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let user = UserName::new(args.user.as_str()).context("--user")?;
    let trust = match (&args.fingerprint, &args.ca) {
        (Some(pin), _) => Trust::Pinned(pin.parse::<CertFingerprint>().context("--fingerprint")?),
        (None, Some(ca)) => {
            Trust::CaPem(std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?)
        }
        (None, None) => bail!("give the server's --fingerprint (or --ca)"),
    };
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("courier-client-{user}")));
    let downloads = state_dir.join("downloads");
    let mut config = ClientConfig::new(&args.server, trust, user, args.device, state_dir);
    if let Some(name) = &args.server_name {
        config = config.with_server_name(name);
    }
    if let Some(hex_key) = &args.storage_key {
        let mut key = [0u8; 32];
        hex::decode_to_slice(hex_key.trim(), &mut key)
            .context("--storage-key must be 64 hex digits")?;
        config = config.with_storage_key(StorageKey::new(key));
    }
    let (client, events) = Client::connect(config)
        .await
        .with_context(|| format!("connecting to {}", args.server))?;

    let code = match args.command {
        None => interactive(&client, events, &downloads)
            .await
            .map(|()| ExitCode::SUCCESS),
        Some(Command::Send {
            to,
            wait_delivered,
            timeout,
            text,
        }) => send(&client, events, &to, text, wait_delivered, timeout).await,
        Some(Command::Recv { count, timeout }) => recv(&client, events, count, timeout).await,
    };
    client.close().await;
    code
}

async fn send(
    client: &Client,
    mut events: Events,
    to: &str,
    text: String,
    wait_delivered: bool,
    timeout: u64,
) -> anyhow::Result<ExitCode> {
    let to = UserName::new(to).context("--to")?;
    let id = client.send_text(&to, text).await?;
    let waited = tokio::time::timeout(Duration::from_secs(timeout), async {
        let mut accepted = false;
        while let Some(event) = events.next().await {
            match event {
                Event::Accepted { id: done } if done == id => {
                    println!("accepted {id}");
                    accepted = true;
                    if !wait_delivered {
                        return Ok(());
                    }
                }
                Event::Delivered { id: done, to } if done == id && accepted => {
                    println!("delivered {id} to {to}");
                    return Ok(());
                }
                Event::SendFailed { id: failed, error } if failed == id => {
                    bail!("message refused: {error}");
                }
                Event::Stopped { error } => bail!("client stopped: {error}"),
                _ => {}
            }
        }
        bail!("client stopped")
    })
    .await;
    match waited {
        Ok(Ok(())) => Ok(ExitCode::SUCCESS),
        Ok(Err(err)) => Err(err),
        Err(_) => {
            eprintln!("timed out; the message stays queued for the next run");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn recv(
    client: &Client,
    mut events: Events,
    count: Option<usize>,
    timeout: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let timeout = timeout.or(count.map(|_| 10));
    let deadline = timeout.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut received = 0usize;
    while count.is_none_or(|n| received < n) {
        let next = match deadline {
            Some(at) => match tokio::time::timeout_at(at, events.next()).await {
                Ok(event) => event,
                Err(_) => break,
            },
            None => events.next().await,
        };
        let Some(event) = next else { break };
        match event {
            Event::Message {
                from,
                content,
                group,
                ..
            } => {
                if let Some(line) = describe(&from, group.as_ref(), &content) {
                    println!("{line}");
                    received += 1;
                }
            }
            Event::Stopped { error } => bail!("client stopped: {error}"),
            _ => {}
        }
    }
    let _ = client;
    Ok(if count.is_some_and(|n| received < n) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One line for an incoming message, or `None` for receipts.
fn describe(from: &DeviceId, group: Option<&GroupId>, content: &Content) -> Option<String> {
    let place = group
        .map(|g| format!(" in group {}", short_group(g)))
        .unwrap_or_default();
    match content {
        Content::ReadReceipt { .. } => None,
        Content::Sent { to, content, .. } => {
            Some(format!("{from} (to {to}): {}", content.preview()))
        }
        other => Some(format!("{from}{place}: {}", other.preview())),
    }
}

/// Downloads a blob into `dir` under the last component of its name.
async fn save_media(client: &Client, media: &MediaRef, dir: &Path) -> anyhow::Result<PathBuf> {
    let data = client.download_media(media).await?;
    let name = Path::new(&media.name)
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.starts_with('.'))
        .map_or_else(|| format!("media-{}", media.media), str::to_owned);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(name);
    std::fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn short_group(group: &GroupId) -> String {
    group.to_string()[..8].to_owned()
}

/// The group whose id starts with `prefix`.
fn find_group(client: &Client, prefix: &str) -> anyhow::Result<GroupId> {
    let mut found = client
        .groups()?
        .into_iter()
        .filter(|(g, _)| g.to_string().starts_with(prefix));
    match (found.next(), found.next()) {
        (Some((group, _)), None) => Ok(group),
        (None, _) => bail!("no group starts with {prefix}; see /groups"),
        (Some(_), Some(_)) => bail!("several groups start with {prefix}"),
    }
}

/// The first 8 hex digits of an id, enough to tell messages apart.
fn short(id: &MessageId) -> String {
    id.to_string()[..8].to_owned()
}

async fn interactive(client: &Client, mut events: Events, downloads: &Path) -> anyhow::Result<()> {
    println!("connected as {} (type /help for commands)", client.device());
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut current: Option<UserName> = None;
    // Messages sent in this run, for the ticks.
    let mut sent: HashMap<MessageId, UserName> = HashMap::new();
    // The first connection was announced above.
    let mut first_connect = true;
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line.context("reading stdin")? else { return Ok(()) };
                match command(client, &line, &mut current, &mut sent).await {
                    Ok(true) => {}
                    Ok(false) => return Ok(()),
                    Err(err) => println!("! {err:#}"),
                }
            }
            event = events.next() => {
                let Some(event) = event else { return Ok(()) };
                if matches!(event, Event::Connected) && std::mem::take(&mut first_connect) {
                    continue;
                }
                on_event(client, event, &sent, downloads).await;
            }
        }
    }
}

/// Runs one typed line; false to quit.
async fn command(
    client: &Client,
    line: &str,
    current: &mut Option<UserName>,
    sent: &mut HashMap<MessageId, UserName>,
) -> anyhow::Result<bool> {
    let line = line.trim();
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    match word {
        "" => {}
        "/quit" | "/exit" => return Ok(false),
        "/help" => {
            println!("/msg USER TEXT   send TEXT to USER (later lines without / go there too)");
            println!("/list            conversations");
            println!("/history USER    messages with USER");
            println!("/safety USER     safety numbers with USER's devices");
            println!("/file USER PATH  send a file (sealed; saved by the recipient)");
            println!("/group USER...   create a group with these users");
            println!("/groups          your groups");
            println!("/g GROUP TEXT    send TEXT to a group (GROUP: first digits of its id)");
            println!("/quit            leave");
        }
        "/msg" => {
            let (to, text) = rest
                .trim()
                .split_once(' ')
                .context("usage: /msg USER TEXT")?;
            let to = UserName::new(to)?;
            send_line(client, &to, text, sent).await?;
            *current = Some(to);
        }
        "/file" => {
            let (to, path) = rest
                .trim()
                .split_once(' ')
                .context("usage: /file USER PATH")?;
            let to = UserName::new(to)?;
            let path = Path::new(path.trim());
            let data =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let name = path
                .file_name()
                .map_or_else(|| "file".to_owned(), |n| n.to_string_lossy().into_owned());
            let id = client.send_media(&to, data, name.clone()).await?;
            sent.insert(id, to.clone());
            println!("you -> {to}: [file {name}]  [{}]", short(&id));
        }
        "/group" => {
            let members = rest
                .split_whitespace()
                .map(UserName::new)
                .collect::<Result<Vec<_>, _>>()?;
            let group = client.create_group(&members).await?;
            println!("created group {}", short_group(&group));
        }
        "/groups" => {
            for (group, members) in client.groups()? {
                let names: Vec<&str> = members.iter().map(UserName::as_str).collect();
                println!("{}  {}", short_group(&group), names.join(", "));
            }
        }
        "/g" => {
            let (prefix, text) = rest
                .trim()
                .split_once(' ')
                .context("usage: /g GROUP TEXT")?;
            let group = find_group(client, prefix)?;
            let id = client.send_group(group, Content::text(text)).await?;
            sent.insert(id, client.device().user.clone());
            println!(
                "you -> group {}: {text}  [{}]",
                short_group(&group),
                short(&id)
            );
        }
        "/list" => {
            let conversations = client.conversations()?;
            if conversations.is_empty() {
                println!("no conversations yet");
            }
            for c in conversations {
                let with = match &c.conversation {
                    Conversation::Direct(user) => user.to_string(),
                    Conversation::Group(group) => format!("group {}", short_group(group)),
                    _ => "?".to_owned(),
                };
                println!(
                    "{with:<14} {:>3} message(s)  last: {}",
                    c.messages,
                    c.last.content.preview()
                );
            }
        }
        "/history" => {
            let user = UserName::new(rest.trim())?;
            for m in client.history(&Conversation::Direct(user))? {
                let who = match &m.direction {
                    Direction::Incoming(from) => from.to_string(),
                    _ => "you".to_owned(),
                };
                println!("{who}: {} {}", m.content.preview(), ticks(m.status));
            }
        }
        "/safety" => {
            let user = UserName::new(rest.trim())?;
            let numbers = client.safety_numbers(&user)?;
            if numbers.is_empty() {
                println!("no session with {user} yet: exchange a message first");
            }
            for (device, number) in numbers {
                println!("{user}/{device}: {number}");
            }
        }
        _ if word.starts_with('/') => println!("! unknown command {word}; try /help"),
        _ => match current.clone() {
            Some(to) => send_line(client, &to, line, sent).await?,
            None => println!("! start with /msg USER TEXT"),
        },
    }
    Ok(true)
}

async fn send_line(
    client: &Client,
    to: &UserName,
    text: &str,
    sent: &mut HashMap<MessageId, UserName>,
) -> anyhow::Result<()> {
    let id = client.send_text(to, text).await?;
    sent.insert(id, to.clone());
    println!("you -> {to}: {text}  [{}]", short(&id));
    Ok(())
}

async fn on_event(
    client: &Client,
    event: Event,
    sent: &HashMap<MessageId, UserName>,
    downloads: &Path,
) {
    match event {
        Event::Message {
            from,
            id,
            content,
            group,
            ..
        } => match &content {
            Content::ReadReceipt { ids } => {
                for read in ids.iter().filter(|id| sent.contains_key(id)) {
                    println!("  [{}] read by {from}", short(read));
                }
            }
            _ => {
                if let Some(line) = describe(&from, group.as_ref(), &content) {
                    println!("{line}");
                }
                if let Content::Media(media) = &content {
                    match save_media(client, media, downloads).await {
                        Ok(path) => println!("  saved to {}", path.display()),
                        Err(err) => println!("! could not fetch the file: {err:#}"),
                    }
                }
                if from.user != client.device().user && group.is_none() {
                    let _ = client.mark_read(&from.user, vec![id]).await;
                }
            }
        },
        Event::Accepted { id } if sent.contains_key(&id) => {
            println!("  [{}] \u{2713} sent", short(&id));
        }
        Event::Delivered { id, to } if sent.contains_key(&id) => {
            println!("  [{}] \u{2713}\u{2713} delivered to {to}", short(&id));
        }
        Event::SendFailed { id, error } => println!("! [{}] not sent: {error}", short(&id)),
        Event::Disconnected { reason } => println!("! disconnected ({reason}); reconnecting"),
        Event::Connected => println!("(connected)"),
        Event::Undecryptable { from, error, .. } => {
            println!("! a message from {from} could not be opened: {error}");
        }
        Event::IdentityChanged { device } => {
            println!(
                "! the identity of {device} changed: compare /safety {}",
                device.user
            );
        }
        Event::Stopped { error } => println!("! stopped: {error}"),
        Event::GroupChanged { group, members } => {
            let names: Vec<&str> = members.iter().map(UserName::as_str).collect();
            println!(
                "group {} members: {}",
                short_group(&group),
                names.join(", ")
            );
        }
        _ => {}
    }
}

fn ticks(status: Status) -> &'static str {
    match status {
        Status::Pending => "(pending)",
        Status::Sent => "\u{2713}",
        Status::Delivered => "\u{2713}\u{2713}",
        Status::Read => "\u{2713}\u{2713} read",
        _ => "",
    }
}
