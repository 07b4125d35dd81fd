//! Issue #17 defects 9 and 10: who may sign the checksum list, and declared sizes.
//!
//! - The checksum list `airlock/SHA256SUMS.sig` must be signed by a key that counts toward
//!   the channel's threshold (trusted for the channel, not revoked, with a valid manifest
//!   signature): otherwise the auditor's `signify -C -p trusted.pub` fails on a bundle
//!   airlock accepted. One test per way to get a checksum-list signer that does not count,
//!   and a property: every bundle airlock accepts passes the README's stock-tool checks
//!   with the real signify-openbsd.
//! - Declared entry sizes beyond the format's limit (FORMAT.md §11) or beyond what the
//!   bundle's own frames can decompress to are rejections (exit 1), before any free-space
//!   check; a plausible total larger than the free space stays an operational error (exit 2).

use std::fs;
use std::path::Path;
use std::process::Command;

use airlock::keys::{self, SecretKey};

use crate::kit::*;

// ---------------------------------------------------------------------------------------
// the checksum-list signer

/// The `next` bundle with its manifest signed by `manifest_signers` and its checksum list
/// (the same list) signed by `sums_signer`.
fn resigned(case: &Case, out: &str, manifest_signers: &[&str], sums_signer: &str) {
    let parts = case.parts("next.airlock");
    let manifest = &parts.head[0].1;
    let (_, list) = keys::parse_embedded(&parts.head.last().unwrap().1).unwrap();
    let signers: Vec<SecretKey> = manifest_signers.iter().map(|k| case.secret(k)).collect();
    let sigs: Vec<keys::Signature> =
        signers.iter().map(|k| airlock::format::head::sign_manifest(k, manifest)).collect();
    let sums_key = case.secret(sums_signer);
    let comment = airlock::format::head::signature_comment(sums_key.key_id());
    let sums = keys::sign_embedded(&sums_key, list, &comment);
    let head: Vec<(String, Vec<u8>)> = airlock::format::head::head_members(manifest, &sigs, &sums)
        .into_iter()
        .map(|(n, c)| (n, c.into_owned()))
        .collect();
    case.put(out, &assemble(&head, &parts.payload));
}

/// The message naming the checksum-list signer and the keys that counted.
fn refused_signer(case: &Case, signer: &str, counted: &[&str]) -> String {
    let counted: Vec<String> = counted.iter().map(|k| case.key_id(k)).collect();
    format!(
        "airlock/SHA256SUMS.sig is signed by key {}, which is not one of the trusted keys that validly signed the manifest ({})",
        case.key_id(signer),
        counted.join(", ")
    )
}

/// A policy file in the case directory (key files are relative to it).
fn policy(case: &Case, name: &str, text: &str) -> String {
    let path = case.path(name);
    fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn sums_signed_by_an_untrusted_key() {
    let case = Case::new();
    resigned(&case, "evil.airlock", &["k"], "other");
    let msg = refused_signer(&case, "other", &["k"]);
    case.expect_rejected("evil.airlock", &msg);
    case.verify("evil.airlock", &["k"]).expect_code(1).expect_stderr(&msg);
}

/// The untrusted key also signed the manifest: its manifest signature is ignored, so it
/// does not count, and neither does its checksum list.
#[test]
fn sums_signed_by_an_untrusted_key_that_also_signed_the_manifest() {
    let case = Case::new();
    resigned(&case, "evil.airlock", &["k", "other"], "other");
    case.expect_rejected("evil.airlock", &refused_signer(&case, "other", &["k"]));
}

/// A key the policy trusts, but that did not sign this manifest, cannot vouch for its list.
#[test]
fn sums_signed_by_a_trusted_key_that_did_not_sign_the_manifest() {
    let case = Case::new();
    resigned(&case, "evil.airlock", &["k"], "k2");
    case.expect_refused("evil.airlock", &["k", "k2"], &[], 1, &refused_signer(&case, "k2", &["k"]));
}

/// A revoked key's manifest signature never counts, so neither does its checksum list.
#[test]
fn sums_signed_by_a_revoked_key() {
    let case = Case::new();
    resigned(&case, "evil.airlock", &["k", "k2"], "k2");
    let p = policy(
        &case,
        "revoking.toml",
        &format!(
            "version = 1\n[keys.k]\nfile = \"k.pub\"\n[keys.k2]\nfile = \"k2.pub\"\n\
             [[channel]]\nname = \"default\"\nsigners = [\"k\", \"k2\"]\n\
             [[revoked]]\nkey_id = \"{}\"\nreason = \"lost\"\n",
            case.key_id("k2")
        ),
    );
    case.expect_refused("evil.airlock", &[], &["--policy", &p], 1, &refused_signer(&case, "k2", &["k"]));
}

/// A key trusted for another channel only does not count for this one.
#[test]
fn sums_signed_by_a_key_trusted_only_for_another_channel() {
    let case = Case::new();
    resigned(&case, "evil.airlock", &["k", "k2"], "k2");
    let p = policy(
        &case,
        "channels.toml",
        "version = 1\n[keys.k]\nfile = \"k.pub\"\n[keys.k2]\nfile = \"k2.pub\"\n\
         [[channel]]\nname = \"default\"\nsigners = [\"k\"]\n\
         [[channel]]\nname = \"lab\"\nsigners = [\"k2\"]\n",
    );
    case.expect_refused("evil.airlock", &[], &["--policy", &p], 1, &refused_signer(&case, "k2", &["k"]));
}

/// Packed by `k`, co-signed by `k2`: under a policy trusting `k2` alone the checksum list
/// (by `k`) has no trusted signer, so the bundle is refused (the documented limitation of
/// `sign`, FORMAT.md §5).
#[test]
fn cosigned_bundle_imported_under_the_cosigners_key_alone() {
    let case = Case::new();
    let root = case.dir.path();
    let signed = run(airlock().current_dir(root).args([
        "sign",
        "next.airlock",
        "--key",
        "k2.sec",
        "--trust",
        "k.pub",
        "-o",
        "cosigned.airlock",
        "--quiet",
    ]));
    signed.expect_code(0);
    let note = format!("the checksum list stays signed by key {}", case.key_id("k"));
    assert!(signed.stdout.contains(&note), "sign must say whose checksum list it kept:\n{}", signed.stdout);
    case.expect_refused("cosigned.airlock", &["k2"], &[], 1, &refused_signer(&case, "k", &["k2"]));
    // Under a policy trusting the packer too, it imports.
    run(&mut case.import_command("cosigned.airlock", &["k", "k2"], &["--threshold", "2"])).expect_code(0);
}

// ---------------------------------------------------------------------------------------
// every accepted bundle passes the stock-tool checks

fn signify() -> Command {
    assert!(
        Command::new("sh").arg("-c").arg("command -v signify-openbsd").output().unwrap().status.success(),
        "signify-openbsd is not installed: run scripts/test.sh, which installs the test dependencies"
    );
    Command::new("signify-openbsd")
}

/// The README's auditor checks on `bundle` under the trusted keys `trusted`: `signify -V` on
/// the manifest signature of every trusted key that signed, and `signify -C` on the
/// extracted checksum list with the trusted key its signature names.
fn stock_tool_checks(root: &Path, bundle: &str, trusted: &[&str]) {
    let x = root.join(format!("x-{bundle}-{}", trusted.join("-")));
    fs::create_dir_all(&x).unwrap();
    let st = Command::new("tar").arg("--zstd").arg("-xf").arg(root.join(bundle)).arg("-C").arg(&x).status().unwrap();
    assert!(st.success(), "tar --zstd -xf {bundle} failed");
    let id_of = |k: &str| keys::PublicKey::load(&root.join(format!("{k}.pub"))).unwrap().key_id();
    let mut verified = 0;
    for k in trusted {
        let sig = x.join(format!("airlock/signatures/{}.sig", id_of(k)));
        if !sig.exists() {
            continue;
        }
        let r = run(signify()
            .arg("-V")
            .arg("-p")
            .arg(root.join(format!("{k}.pub")))
            .arg("-x")
            .arg(&sig)
            .arg("-m")
            .arg(x.join("airlock/manifest.cbor")));
        assert_eq!(r.code, 0, "signify -V with {k} on accepted {bundle}: {}", r.stderr);
        verified += 1;
    }
    assert!(verified > 0, "accepted {bundle} has no manifest signature by a trusted key");
    let (sums_sig, _) = keys::parse_embedded(&fs::read(x.join("airlock/SHA256SUMS.sig")).unwrap()).unwrap();
    let sums_key = trusted.iter().find(|k| id_of(k) == sums_sig.key_id());
    let sums_key = sums_key.unwrap_or_else(|| panic!("accepted {bundle}: checksum list not by a key of {trusted:?}"));
    let r = run(signify()
        .current_dir(&x)
        .arg("-C")
        .arg("-p")
        .arg(root.join(format!("{sums_key}.pub")))
        .arg("-x")
        .arg("airlock/SHA256SUMS.sig"));
    assert_eq!(r.code, 0, "signify -C with {sums_key} on accepted {bundle}: {}{}", r.stdout, r.stderr);
}

/// Bundles packed by one or two keys, co-signed, and with a checksum list re-signed by each
/// kind of signer, under trust sets of one and two keys and thresholds 1 and 2: each one
/// airlock verifies passes the stock-tool checks, and the others are refused with exit 1.
#[test]
fn every_accepted_bundle_passes_the_stock_tool_checks() {
    let case = Case::new();
    let root = case.dir.path();
    pack_at(root, &case.path("src"), "two-keys.airlock", &["--key", &case.path("k2.sec").to_string_lossy()])
        .expect_code(0);
    run(airlock().current_dir(root).args([
        "sign",
        "next.airlock",
        "--key",
        "other.sec",
        "--trust",
        "k.pub",
        "-o",
        "cosigned.airlock",
        "--quiet",
    ]))
    .expect_code(0);
    resigned(&case, "sums-by-k2.airlock", &["k", "k2"], "k2");
    resigned(&case, "sums-by-other.airlock", &["k", "other"], "other");
    resigned(&case, "sums-by-stranger.airlock", &["k"], "other");
    let bundles = [
        "next.airlock",
        "two-keys.airlock",
        "cosigned.airlock",
        "sums-by-k2.airlock",
        "sums-by-other.airlock",
        "sums-by-stranger.airlock",
    ];
    let trusts: [(&[&str], &str); 7] = [
        (&["k"], "1"),
        (&["k2"], "1"),
        (&["other"], "1"),
        (&["k", "k2"], "1"),
        (&["k", "k2"], "2"),
        (&["k", "other"], "2"),
        (&["k2", "other"], "1"),
    ];
    let (mut accepted, mut refused) = (0, 0);
    for bundle in bundles {
        for (trusted, threshold) in trusts {
            let mut cmd = airlock();
            cmd.arg("verify").arg(root.join(bundle)).args(["--threshold", threshold, "--quiet"]);
            for k in trusted {
                cmd.arg("--trust").arg(root.join(format!("{k}.pub")));
            }
            let r = run(&mut cmd);
            match r.code {
                0 => {
                    stock_tool_checks(root, bundle, trusted);
                    accepted += 1;
                }
                1 => refused += 1,
                code => panic!("verify {bundle} under {trusted:?}: exit {code}: {}", r.stderr),
            }
        }
    }
    assert!(accepted >= 8 && refused >= 8, "accepted {accepted}, refused {refused}: the matrix lost its point");
}

// ---------------------------------------------------------------------------------------
// declared sizes

/// The format's limit on the total payload, as the message prints it.
const FORMAT_LIMIT: &str = "more than the format's limit of 1125899906842624 bytes";

/// One entry declared larger than the format allows: a rejection, by `import` before any
/// free-space check and by `verify` before reading the payload.
#[test]
fn declared_entry_size_beyond_the_format_limit() {
    let case = Case::new();
    signed_variant(&case, "evil.airlock", |w| w.entries[2].size = (1 << 50) + 1, None);
    case.expect_rejected("evil.airlock", FORMAT_LIMIT);
    case.verify("evil.airlock", &["k"]).expect_code(1).expect_stderr(FORMAT_LIMIT);
}

/// Entry sizes each within the limit whose sum is not.
#[test]
fn declared_sizes_summing_beyond_the_format_limit() {
    let case = Case::new();
    signed_variant(
        &case,
        "evil.airlock",
        |w| {
            w.entries[0].size = 1 << 49;
            w.entries[2].size = (1 << 49) + 1;
        },
        None,
    );
    case.expect_rejected("evil.airlock", FORMAT_LIMIT)
        .expect_stderr(&format!("declares {} bytes of payload", (1u64 << 50) + 1 + 14));
}

/// Sizes whose sum does not fit in 64 bits: counted exactly, not wrapped or saturated.
#[test]
fn declared_sizes_beyond_64_bits() {
    let case = Case::new();
    signed_variant(
        &case,
        "evil.airlock",
        |w| {
            w.entries[0].size = u64::MAX;
            w.entries[2].size = u64::MAX;
        },
        None,
    );
    let declared = 2 * u128::from(u64::MAX) + 14;
    case.expect_rejected("evil.airlock", &format!("manifest declares {declared} bytes of payload in 3 entries"));
}

/// A size within the format's limit but more than the bundle's frames can decompress to
/// (1 TiB from about 70 KB): the bundle cannot hold the member as declared, a rejection as
/// truncated at that member, before any free-space check.
#[test]
fn declared_size_beyond_what_the_bundle_can_hold() {
    let case = Case::new();
    signed_variant(&case, "evil.airlock", |w| w.entries[2].size = 1 << 40, None);
    let msg = "bundle rejected: member data/z.bin: bundle is truncated";
    case.expect_rejected("evil.airlock", msg);
    case.verify("evil.airlock", &["k"]).expect_code(1).expect_stderr(msg);
}

/// A total the bundle could plausibly hold but the mirror's file system cannot: an
/// operational error (exit 2, logged as `failed`) saying how much is needed and where, with
/// the mirror unchanged.
#[test]
fn declared_size_larger_than_the_free_space() {
    let case = Case::new();
    let st = rustix::fs::statvfs(case.mirror()).unwrap();
    let free = st.f_bavail * st.f_frsize;
    let declared = 2 * free + (1 << 30);
    // Incompressible frames long enough to hold `declared` (the check reads their length;
    // the payload itself is never reached).
    let mut payload = case.parts("next.airlock").payload;
    payload.extend(big_content((declared / 32768) as usize + (1 << 20)));
    signed_variant(&case, "evil.airlock", |w| w.entries[2].size = declared, Some(payload));
    let r = case.expect_refused("evil.airlock", &["k"], &[], 2, "not enough free space: the bundle needs");
    r.expect_stderr(&format!("{}", declared + 24)).expect_stderr(".airlock");
    let log = fs::read_to_string(case.mirror().join(".airlock/log")).unwrap();
    assert!(log.lines().last().unwrap().contains("\"event\":\"failed\""), "{log}");
}
