//! `airlock diff`: what changed between two states (docs/JSON.md for the JSON).

use super::*;
use airlock::diff::{self, ChannelDiff, ChannelSide, Resolver, Side, SideKind, Total};
use airlock::format::manifest::Entry;

#[derive(Args, Debug)]
pub(super) struct DiffArgs {
    /// The old state: a bundle, or a receipt (`airlock mirror receipt`). With --mirror, the
    /// new state (the mirror is then the old one).
    pub(super) old: PathBuf,
    /// The new state: a bundle, or a receipt (not with --mirror).
    pub(super) new: Option<PathBuf>,
    /// Compare this mirror directory's current state (the old side) with one bundle or
    /// receipt (the new side): what importing it would change.
    #[arg(long, value_name = "DIR")]
    pub(super) mirror: Option<PathBuf>,
    /// Print JSON to stdout (docs/JSON.md) instead of text.
    #[arg(long)]
    pub(super) json: bool,
    /// Exit with 1 if the states differ, 0 if they are the same (as `git diff --exit-code`).
    #[arg(long)]
    pub(super) exit_code: bool,
    /// The inside's public key, to check a receipt side (repeatable).
    #[arg(long, value_name = "K.pub")]
    pub(super) trust: Vec<PathBuf>,
    /// A bundle that may hold a manifest a receipt names, when the pack state does not keep
    /// it (repeatable).
    #[arg(long, value_name = "OLD.airlock")]
    pub(super) base: Vec<PathBuf>,
    /// Where the pack state (its kept manifests) lives [default: as for `pack`].
    #[arg(long, value_name = "DIR")]
    pub(super) state_dir: Option<PathBuf>,
}

pub(super) fn diff(a: DiffArgs) -> Result<u8> {
    let keys = load_public_keys(&a.trust)?;
    let state = a.state_dir.clone().or_else(default_state_dir).map(ChannelState::new);
    let resolver = Resolver { trusted: &keys, state: state.as_ref(), bases: &a.base };
    let (old, new) = match (&a.mirror, &a.new) {
        (Some(dir), None) => (Side::open_mirror(dir)?, Side::load(&a.old, &resolver)?),
        (None, Some(new)) => (Side::load(&a.old, &resolver)?, Side::load(new, &resolver)?),
        (Some(_), Some(_)) => return Err(Failure::Usage("with --mirror, give one bundle or receipt, not two".into())),
        (None, None) => {
            return Err(Failure::Usage("diff needs two bundles or receipts, or one and --mirror DIR".into()))
        }
    };
    let channels = diff::compare_sides(&old, &new);
    let different = channels.iter().any(|c| !c.diff.is_empty());
    if a.json {
        let ok = !(a.exit_code && different);
        out::document(schema::DIFF, ok, diff_json(&old, &new, &channels, different))?;
    } else {
        print_text(&old, &new, &channels, different)?;
    }
    Ok(if a.exit_code && different { EXIT_REJECTED } else { EXIT_OK })
}

fn side_name(side: &Side) -> String {
    match &side.kind {
        SideKind::Bundle => format!("bundle {}", side.path.display()),
        SideKind::Receipt { mirror } => format!("receipt {} (mirror {mirror})", side.path.display()),
        SideKind::Mirror => format!("mirror {}", side.path.display()),
    }
}

fn channel_state(c: Option<&ChannelSide>) -> String {
    match c {
        None => "absent".to_owned(),
        Some(c) => format!(
            "sequence {} (manifest {}){}",
            c.sequence,
            c.manifest,
            if c.intact { "" } else { ", DAMAGED in the mirror" }
        ),
    }
}

fn total(t: Total) -> String {
    format!("{} files, {} bytes", t.files, t.bytes)
}

fn print_text(old: &Side, new: &Side, channels: &[ChannelDiff<'_>], different: bool) -> Result<()> {
    say!("old: {}", side_name(old))?;
    say!("new: {}", side_name(new))?;
    for c in channels {
        let d = &c.diff;
        say!("channel {}: {} -> {}", c.channel, channel_state(c.old), channel_state(c.new))?;
        for e in &d.added {
            say!("  added    {} ({} bytes)", e.path.as_str(), e.size)?;
        }
        for ch in &d.changed {
            say!("  changed  {} ({})", ch.new.path.as_str(), describe_change(ch.old, ch.new))?;
        }
        for e in &d.removed {
            say!("  removed  {} ({} bytes)", e.path.as_str(), e.size)?;
        }
        say!(
            "  added {}; changed {}; removed {}; unchanged {}",
            total(d.added_total()),
            total(d.changed_total()),
            total(d.removed_total()),
            total(d.unchanged_total())
        )?;
    }
    say!("{}", if different { "the states differ" } else { "the states are the same" })?;
    Ok(())
}

/// `size 3 -> 5, sha256, mode 644 -> 755`: what changed, with the values that people can
/// compare at a glance.
fn describe_change(old: &Entry, new: &Entry) -> String {
    let mut parts = Vec::new();
    if old.size != new.size {
        parts.push(format!("size {} -> {}", old.size, new.size));
    }
    if old.sha256 != new.sha256 {
        parts.push("sha256".to_owned());
    }
    if old.mode != new.mode {
        parts.push(format!("mode {:o} -> {:o}", old.mode.bits(), new.mode.bits()));
    }
    parts.join(", ")
}

fn entry_json(e: &Entry) -> serde_json::Value {
    serde_json::json!({
        "path": e.path.as_str(),
        "size": e.size,
        "sha256": e.sha256.to_hex(),
        "mode": format!("{:o}", e.mode.bits()),
    })
}

fn total_json(t: Total) -> serde_json::Value {
    serde_json::json!({ "files": t.files, "bytes": t.bytes })
}

fn side_json(side: &Side) -> serde_json::Value {
    match &side.kind {
        SideKind::Bundle => serde_json::json!({ "kind": "bundle", "path": out::path(&side.path) }),
        SideKind::Receipt { mirror } => {
            serde_json::json!({ "kind": "receipt", "path": out::path(&side.path), "mirror": mirror.to_hex() })
        }
        SideKind::Mirror => serde_json::json!({ "kind": "mirror", "path": out::path(&side.path) }),
    }
}

fn channel_side_json(c: Option<&ChannelSide>) -> serde_json::Value {
    c.map_or(
        serde_json::Value::Null,
        |c| serde_json::json!({ "sequence": c.sequence, "manifest": c.manifest.to_hex(), "intact": c.intact }),
    )
}

/// The JSON form: stable keys, no prose (schema `airlock.diff.v1`, docs/JSON.md).
fn diff_json(old: &Side, new: &Side, channels: &[ChannelDiff<'_>], different: bool) -> serde_json::Value {
    let channels: Vec<serde_json::Value> = channels
        .iter()
        .map(|c| {
            let d = &c.diff;
            let changed: Vec<serde_json::Value> = d
                .changed
                .iter()
                .map(|ch| {
                    serde_json::json!({
                        "path": ch.new.path.as_str(),
                        "old": entry_json(ch.old),
                        "new": entry_json(ch.new),
                        "what": ch.changes.names(),
                    })
                })
                .collect();
            serde_json::json!({
                "channel": c.channel,
                "old": channel_side_json(c.old),
                "new": channel_side_json(c.new),
                "added": d.added.iter().map(|e| entry_json(e)).collect::<Vec<_>>(),
                "changed": changed,
                "removed": d.removed.iter().map(|e| entry_json(e)).collect::<Vec<_>>(),
                "unchanged": d.unchanged.iter().map(|e| entry_json(e)).collect::<Vec<_>>(),
                "totals": {
                    "added": total_json(d.added_total()),
                    "changed": total_json(d.changed_total()),
                    "removed": total_json(d.removed_total()),
                    "unchanged": total_json(d.unchanged_total()),
                },
            })
        })
        .collect();
    serde_json::json!({
        "old": side_json(old),
        "new": side_json(new),
        "different": different,
        "channels": channels,
    })
}
