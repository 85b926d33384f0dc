//! Erlang/OTP-style supervision on tokio.
