//! airlock: carry software across an air gap without losing its provenance.
//!
//! The pipeline, as the module tree shows it:
//!
//! ```text
//! export side                                  import side
//! pack::pack(sources, keys) ─► bundle ─media─► verify::Bundle::open        FORMAT.md §8 step 1
//!   walk, hash, sign the manifest                .verify(&VerifyOptions)   steps 2-5: signers,
//!   (format: head, tar, manifest)                 -> VerifiedBundle        manifest, sums, freshness
//! sign::cosign: verify, then add a signature    .stream_into(sink)         step 6: every entry
//!                                               mirror::Mirror::import     §10: verify + stage + commit
//! keys (signify, minisign)   policy (who may sign what)   io (digests, durable writes)
//! ```
//!
//! [`format`](mod@format) is everything `docs/FORMAT.md` specifies, as pure code; [`verify`] is the one
//! verification procedure every reader goes through, and [`verify::VerifiedBundle`] exists
//! only as its result; [`mirror`] runs that procedure and the crash-safe import protocol.
//! The library reads no environment variables and prompts no one: time, paths, keys and
//! passphrases come in as arguments. The `airlock` command line (feature `cli`) is a thin
//! layer over these calls.
//!
//! # Pack, verify, import
//!
//! ```
//! use airlock::io::durable::Overwrite;
//! use airlock::keys::SecretKey;
//! use airlock::mirror::{ImportOptions, ImportOutcome, Mirror};
//! use airlock::pack::{pack, PackOptions};
//! use airlock::policy::{Policy, Trust};
//! use airlock::progress::NoProgress;
//! use airlock::verify::{Bundle, NullSink, VerifyOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let outbox = dir.path().join("outbox");
//! std::fs::create_dir(&outbox)?;
//! std::fs::write(outbox.join("hello.txt"), b"hello, inside\n")?;
//! let now = airlock::clock::system_now();
//!
//! // Export side: pack the outbox into one signed bundle.
//! let key = SecretKey::generate("transfer key");
//! let bundle = dir.path().join("weekly.airlock");
//! let options = PackOptions::new(vec![outbox], "weekly", 1, now);
//! let packed = pack(&options, std::slice::from_ref(&key), &bundle, Overwrite::NoClobber, &NoProgress)?;
//! assert_eq!(packed.manifest.entries.len(), 1);
//!
//! // Import side: trust only the transfer key's public half, carried over out of band.
//! let policy = Policy::from_trust(Trust::new(vec![key.public_key()], 1)?);
//!
//! // Verify everything, writing nothing.
//! let verified = Bundle::open(&bundle)?.verify(&VerifyOptions::new(&policy, now))?;
//! assert_eq!(verified.manifest().channel, "weekly");
//! verified.stream_into(&mut NullSink, &NoProgress)?;
//!
//! // Import: the same verification, then the files appear in the mirror all at once.
//! Mirror::init(&dir.path().join("mirror"))?;
//! let mirror = Mirror::open(&dir.path().join("mirror"))?;
//! let outcome = mirror.import(&bundle, &policy, &ImportOptions { now, ..Default::default() }, &NoProgress)?;
//! assert!(matches!(outcome, ImportOutcome::Imported { .. }));
//! assert_eq!(std::fs::read(dir.path().join("mirror/hello.txt"))?, b"hello, inside\n");
//! # Ok(())
//! # }
//! ```
//!
//! # A rejected bundle
//!
//! Every rejection is an [`Error::Rejected`] with a [`Reject`] a caller can match; its
//! [`Reject::kind`] is a stable name.
//!
//! ```
//! # use airlock::{io::durable::Overwrite, keys::SecretKey, pack::{pack, PackOptions}};
//! # use airlock::{policy::{Policy, Trust}, progress::NoProgress, verify::{Bundle, VerifyOptions}};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # std::fs::write(dir.path().join("a.txt"), b"a")?;
//! # let now = airlock::clock::system_now();
//! # let bundle = dir.path().join("b.airlock");
//! let packer = SecretKey::generate("someone else");
//! let options = PackOptions::new(vec![dir.path().join("a.txt")], "weekly", 1, now);
//! pack(&options, &[packer], &bundle, Overwrite::NoClobber, &NoProgress)?;
//!
//! let ours = SecretKey::generate("the only key we trust");
//! let policy = Policy::from_trust(Trust::new(vec![ours.public_key()], 1)?);
//! match Bundle::open(&bundle)?.verify(&VerifyOptions::new(&policy, now)) {
//!     Err(airlock::Error::Rejected(reason)) => assert_eq!(reason.kind(), "untrusted"),
//!     other => panic!("expected a rejection, got {:?}", other.map(|_| ())),
//! }
//! # Ok(())
//! # }
//! ```

pub mod clock;
pub mod diff;
pub mod error;
pub mod format;
pub mod io;
pub mod keys;
pub mod mirror;
pub mod pack;
pub mod policy;
pub mod producer;
pub mod progress;
pub mod publish;
pub mod render;
pub mod sign;
pub mod verify;

pub use error::{Error, Reject, Result};
pub use format::manifest::{Entry, Manifest};
pub use format::path::RelPath;
pub use io::digest::Digest;
pub use keys::{KeyId, PublicKey, SecretKey, Signature};
pub use mirror::{ImportOptions, ImportOutcome, Mirror};
pub use pack::{pack, PackOptions, PackReport};
pub use policy::{Policy, Trust};
pub use progress::{NoProgress, Progress};
pub use verify::{Bundle, VerifiedBundle, VerifyOptions};
