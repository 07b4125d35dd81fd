//! airlock: carry software across an air gap without losing its provenance.
//!
//! The bundle format and the mirror layout are specified in `docs/FORMAT.md`.

pub mod clock;
pub mod error;
pub mod format;
pub mod io;
pub mod keys;
pub mod mirror;
pub mod pack;
pub mod policy;
pub mod progress;
pub mod sign;
pub mod verify;

pub use error::Error;
