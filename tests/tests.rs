//! The integration tests: one binary, one module per concern. They run the built
//! `defender-ingest` as a child process in a sealed environment (temporary HOME
//! and state dir) against the sandbox tenant over real loopback sockets.

mod common;

mod api;
mod authorize;
mod completions;
mod faults;
mod keyring;
mod proxy;
mod pull;
mod sandbox;
mod seen_upgrade;
mod state_cli;
mod test_cmd;
mod tls;
