//! HTTP handlers. `v1` matches the URL prefix `/api/v1`; `pages` serves the
//! embedded web pages.

pub mod pages;
pub mod v1;
