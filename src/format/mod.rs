//! The formats the browser, the server and the reviewer share, exactly as
//! specified in docs/protocol.md. Nothing here does I/O or touches a network.

pub mod agefile;
pub mod bundle;
pub mod card;
pub mod code;
pub mod day;
pub mod derive;
pub mod envelope;
pub mod ids;
