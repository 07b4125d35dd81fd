//! The bundle format: everything `docs/FORMAT.md` specifies, as pure code.

pub mod manifest;
pub mod path;
pub mod tar;
