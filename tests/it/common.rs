//! The harness's former name: everything lives in [`crate::kit`]. Kept so modules that
//! import `crate::common::…` still compile; new code uses `crate::kit`.

#![allow(unused_imports)]

pub use crate::kit::{
    airlock, assemble, assert_rejected_unchanged, hex, pack_at, payload_members, resign, run, snapshot, split, write,
    Parts, Run, Workspace,
};
