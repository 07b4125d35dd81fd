//! `Mirror::receipt`: what the mirror holds, per channel and in all, for a signed receipt
//! (docs/FORMAT.md §15; encoding and signature in `format::receipt`). Files are taken as
//! found: a file whose stat stamp is unchanged counts as stamped, any other is re-hashed,
//! and one that does not hold its channel's entry is left out (and the channel is not
//! `intact`). Files no channel owns are counted nowhere and never named: the receipt
//! leaves the air gap.

use std::collections::BTreeMap;

use super::stamps::{self, Found};
use super::Mirror;
use crate::error::{Error, Result};
use crate::format::manifest::Entry;
use crate::format::receipt::{state_root, Receipt, ReceiptChannel};
use crate::io::digest::Digest;

impl Mirror {
    /// The mirror's receipt as of `now` (Unix seconds). Files re-hashed on the way get fresh
    /// stat stamps.
    pub fn receipt(&self, now: u64) -> Result<Receipt> {
        let state = self.state()?;
        let views = self.channel_views(&state)?;
        let mut stamps = stamps::load(&self.meta)?;
        let mut restamped = false;
        let mut all: BTreeMap<&str, &Entry> = BTreeMap::new();
        let mut channels = Vec::new();
        for (name, view) in &views {
            let mut found = Vec::new();
            for e in &view.entries {
                let file = self.root.join(e.path.as_str());
                match stamps::check(&file, e, &stamps, true)? {
                    Found::Stamped => found.push(e),
                    Found::Hashed => {
                        stamps::record(&mut stamps, &file, e);
                        restamped = true;
                        found.push(e);
                    }
                    Found::Differs(_) => {}
                }
            }
            let bytes = found.iter().fold(0u64, |sum, e| sum.saturating_add(e.size));
            channels.push(ReceiptChannel {
                name: name.clone(),
                sequence: view.sequence,
                manifest: view.manifest,
                files: found.len() as u64,
                bytes,
                root: state_root(found.iter().copied()),
                intact: found.len() == view.entries.len(),
            });
            for e in found {
                all.insert(e.path.as_str(), e);
            }
        }
        if restamped {
            stamps::save(&self.meta, &stamps)?;
        }
        let log_head = Digest::from_hex(&state.head)
            .ok_or_else(|| Error::Internal(format!("the log head {:?} is not a SHA-256", state.head)))?;
        Ok(Receipt {
            mirror: self.id,
            created: now,
            log_records: state.records.len() as u64,
            log_head,
            files: all.len() as u64,
            bytes: all.values().fold(0u64, |sum, e| sum.saturating_add(e.size)),
            root: state_root(all.values().copied()),
            channels,
        })
    }
}
