//! Exit reasons.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a process exited, or the reason carried by an exit signal.
///
/// The variants follow OTP: `Normal`, `Shutdown` and `ShutdownWith` are
/// clean exits (a transient child that ends with one of them is not
/// restarted); `Normal` exit signals do not kill a linked process.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum ExitReason {
    /// The process finished its work.
    Normal,
    /// The process was asked to shut down (by its supervisor, usually).
    Shutdown,
    /// The process shut down with an explanation, OTP's `{shutdown, Term}`.
    ShutdownWith(String),
    /// The process was killed with an untrappable kill, or a linked process
    /// was killed.
    Killed,
    /// The process panicked; the panic message.
    Panic(String),
    /// The process failed with an error.
    Error(String),
    /// The target process did not exist (linking to or monitoring a process
    /// that has already exited).
    NoProc,
}

impl ExitReason {
    /// Builds an [`ExitReason::Error`] from anything displayable.
    pub fn error(message: impl fmt::Display) -> Self {
        Self::Error(message.to_string())
    }

    /// Whether this is `Normal`, `Shutdown` or `ShutdownWith`: the reasons
    /// after which a transient child is not restarted and no error is logged.
    pub fn is_clean(&self) -> bool {
        matches!(self, Self::Normal | Self::Shutdown | Self::ShutdownWith(_))
    }

    /// Whether this is `Normal`.
    pub fn is_normal(&self) -> bool {
        matches!(self, Self::Normal)
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Normal => f.write_str("normal"),
            Self::Shutdown => f.write_str("shutdown"),
            Self::ShutdownWith(why) => write!(f, "shutdown: {why}"),
            Self::Killed => f.write_str("killed"),
            Self::Panic(msg) => write!(f, "panic: {msg}"),
            Self::Error(msg) => write!(f, "error: {msg}"),
            Self::NoProc => f.write_str("noproc"),
        }
    }
}

/// Extracts a readable message from a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
