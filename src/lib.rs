//! Meldkluis: an anonymous reporting channel. Reports are encrypted in the
//! melder's browser, stored as opaque age files by the server, and read on the
//! counsellor's air-gapped laptop.
//!
//! `format` is what both sides share (no I/O, no network); `server` is the
//! online part (feature `server`); `review` is the offline reviewer (feature
//! `review`). See docs/protocol.md.
#![forbid(unsafe_code)]

#[cfg(feature = "desk")]
pub mod desk;
pub mod format;
#[cfg(feature = "review")]
pub mod review;
#[cfg(feature = "server")]
pub mod server;
