//! The offline reviewer's logic: the counsellor's vault on the air-gapped
//! laptop, importing inboxes, reading cases, writing replies and signed
//! outboxes. No network code: this module and its dependencies never open a
//! socket (tests/run-all.sh checks the dependency tree).

pub mod attachment;
pub mod authenticity;
pub mod commands;
pub mod deadlines;
pub mod error;
pub mod export;
pub mod i18n;
pub mod import;
pub mod introduce;
pub mod records;
pub mod stats;
pub mod terminal;
pub mod text_file;
pub mod untrusted;
pub mod vault;
pub mod views;

pub use error::ReviewError;
pub use vault::Vault;
