//! Adversarial corpus, part 3: keys and signatures. Malformed signify files (as trusted
//! keys, as signature members in a bundle, as secret keys), small-order and non-canonical
//! Ed25519 keys and signatures that only strict verification refuses, key-number games,
//! and a wrong passphrase.
//!
//! A bad *trusted key* or *secret key* file is an operational error (exit 2: the operator's
//! own input is wrong, nothing about the bundle was decided); a bad *signature inside a
//! bundle* is a rejection (exit 1). Either way the mirror is unchanged.

use crate::common::assemble;
use crate::kit::*;
use base64::Engine as _;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A signify public-key file holding `raw` (any bytes) as its base64 line.
fn pub_file(raw: &[u8]) -> Vec<u8> {
    format!("untrusted comment: hostile key\n{}\n", B64.encode(raw)).into_bytes()
}

/// A well-formed public-key structure with the given 32 key bytes.
fn pub_struct(keynum: [u8; 8], key: [u8; 32]) -> Vec<u8> {
    let mut raw = b"Ed".to_vec();
    raw.extend_from_slice(&keynum);
    raw.extend_from_slice(&key);
    raw
}

/// Imports next.airlock trusting the key file `hostile.pub` with content `file`.
fn refused_trust_file(file: &[u8], message: &str) {
    let case = Case::new();
    case.put("hostile.pub", file);
    case.expect_refused("next.airlock", &["hostile"], &[], 2, message);
    let out = crate::common::run(
        crate::common::airlock()
            .arg("verify")
            .arg(case.path("next.airlock"))
            .arg("--trust")
            .arg(case.path("hostile.pub")),
    );
    out.expect_code(2).expect_stderr(message);
}

fn k_pub(case: &Case) -> Vec<u8> {
    case.bytes("k.pub")
}

fn k_raw() -> Vec<u8> {
    let case = Case::new();
    let text = String::from_utf8(k_pub(&case)).unwrap();
    B64.decode(text.lines().nth(1).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------
// malformed trusted-key files

#[test]
fn trusted_key_with_bad_base64() {
    refused_trust_file(b"untrusted comment: x\nRWQ!!!notbase64$$$\n", "invalid base64");
}

#[test]
fn trusted_key_with_whitespace_inside_base64() {
    let text = String::from_utf8(pub_file(&k_raw())).unwrap();
    let (comment, b64) = text.trim_end().split_once('\n').unwrap();
    let file = format!("{comment}\n{} {}\n", &b64[..20], &b64[20..]);
    refused_trust_file(file.as_bytes(), "invalid base64");
}

/// A signature whose base64 line lacks its `=` padding (74 bytes need one).
#[test]
fn signature_member_without_base64_padding() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    let text = String::from_utf8(parts.head[1].1.clone()).unwrap();
    assert!(text.ends_with("=\n"));
    parts.head[1].1 = text.replace("=\n", "\n").into_bytes();
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    case.expect_rejected("bad.airlock", "invalid base64");
}

#[test]
fn trusted_key_too_short() {
    refused_trust_file(
        &pub_file(&k_raw()[..41]),
        "wrong decoded length for a signify public key: expected 42 bytes, found 41",
    );
}

#[test]
fn trusted_key_too_long() {
    let mut raw = k_raw();
    raw.push(0);
    refused_trust_file(&pub_file(&raw), "expected 42 bytes, found 43");
}

#[test]
fn trusted_key_with_wrong_algorithm_tag() {
    let mut raw = k_raw();
    raw[..2].copy_from_slice(b"ED"); // minisign's prehashed tag
    refused_trust_file(&pub_file(&raw), "unsupported algorithm \"ED\" (expected \"Ed\")");
}

#[test]
fn trusted_key_without_comment_line() {
    let file = format!("{}\n", B64.encode(k_raw()));
    refused_trust_file(file.as_bytes(), "missing 'untrusted comment: ' line");
}

#[test]
fn trusted_key_with_trailing_data() {
    let mut file = pub_file(&k_raw());
    file.extend_from_slice(b"extra line\n");
    refused_trust_file(&file, "unexpected bytes after the base64 line");
}

#[test]
fn trusted_key_file_too_large() {
    let mut file = b"untrusted comment: ".to_vec();
    file.extend(std::iter::repeat_n(b'x', 10_000));
    refused_trust_file(&file, "too large for a signify public key file");
}

#[test]
fn trusted_key_is_a_signature_file() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    refused_trust_file(&parts.head[1].1, "wrong decoded length for a signify public key: expected 42 bytes, found 74");
}

// ---------------------------------------------------------------------------------------
// small-order and non-canonical public keys

/// The eight points of small order on edwards25519, canonically encoded (identity, the
/// point of order 2, two of order 4, four of order 8), and non-canonical spellings.
const SMALL_ORDER: [&str; 8] = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
];

fn unhex32(s: &str) -> [u8; 32] {
    let v: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect();
    v.try_into().unwrap()
}

#[test]
fn small_order_public_keys_are_refused() {
    for (i, hex) in SMALL_ORDER.iter().enumerate() {
        let key = unhex32(hex);
        assert!(ed25519_dalek::VerifyingKey::from_bytes(&key).unwrap().is_weak(), "vector {i} is not small order");
        let err = airlock::keys::PublicKey::parse(&pub_file(&pub_struct([i as u8; 8], key))).unwrap_err().to_string();
        assert!(err.contains("weak (small-order) public key"), "vector {i}: {err}");
    }
    refused_trust_file(
        &pub_file(&pub_struct([1; 8], unhex32(SMALL_ORDER[0]))),
        "weak (small-order) public key 0101010101010101 refused",
    );
}

/// Why weak keys must be refused at load: with the identity as public key, the signature
/// (R = identity, S = 0) passes ordinary (non-strict) Ed25519 verification for *every*
/// message. airlock never gets as far as verifying with such a key.
#[test]
fn weak_key_would_accept_a_universal_forgery() {
    let identity = unhex32(SMALL_ORDER[0]);
    let weak = ed25519_dalek::VerifyingKey::from_bytes(&identity).unwrap();
    let mut forged = [0u8; 64];
    forged[..32].copy_from_slice(&identity);
    let forged = ed25519_dalek::Signature::from_bytes(&forged);
    use ed25519_dalek::Verifier as _;
    assert!(weak.verify(b"any manifest at all", &forged).is_ok(), "premise: non-strict verify accepts");
    assert!(weak.verify_strict(b"any manifest at all", &forged).is_err());
    // And the bundle signed this way is refused, because the key is refused.
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let keynum = [7u8; 8];
    let mut sig_raw = b"Ed".to_vec();
    sig_raw.extend_from_slice(&keynum);
    sig_raw.extend_from_slice(&forged.to_bytes());
    let sig_file = format!("untrusted comment: forged\n{}\n", B64.encode(&sig_raw)).into_bytes();
    let mut head = vec![parts.head[0].clone(), ("airlock/signatures/0707070707070707.sig".into(), sig_file)];
    head.push(parts.head[2].clone());
    case.put("forged.airlock", &assemble(&head, &parts.payload));
    case.put("weak.pub", &pub_file(&pub_struct(keynum, identity)));
    case.expect_refused("forged.airlock", &["weak"], &[], 2, "weak (small-order) public key 0707070707070707 refused");
}

#[test]
fn non_canonical_public_key_encodings_are_refused() {
    // y = p + 3 (2^255 - 16): decodes to the same point as y = 3, which is on the curve
    // and of large order; only the canonical spelling is accepted.
    let mut y_plus_p = [0xffu8; 32];
    y_plus_p[0] = 0xf0;
    y_plus_p[31] = 0x7f;
    let canonical = {
        let mut b = [0u8; 32];
        b[0] = 3;
        b
    };
    assert!(ed25519_dalek::VerifyingKey::from_bytes(&canonical).is_ok(), "premise: y = 3 is on the curve");
    airlock::keys::PublicKey::parse(&pub_file(&pub_struct([3; 8], canonical))).unwrap();
    refused_trust_file(&pub_file(&pub_struct([3; 8], y_plus_p)), "0303030303030303 is not canonically encoded");
    // x = 0 with the sign bit set ("negative zero"): a second spelling of the identity.
    let mut neg_zero = unhex32(SMALL_ORDER[0]);
    neg_zero[31] |= 0x80;
    let err = airlock::keys::PublicKey::parse(&pub_file(&pub_struct([4; 8], neg_zero))).unwrap_err().to_string();
    assert!(err.contains("not canonically encoded") || err.contains("not a valid Ed25519 point"), "{err}");
}

#[test]
fn public_key_not_on_the_curve() {
    // y = 2 is not on edwards25519.
    let mut b = [0u8; 32];
    b[0] = 2;
    refused_trust_file(&pub_file(&pub_struct([2; 8], b)), "is not a valid Ed25519 point");
}

// ---------------------------------------------------------------------------------------
// signatures in the bundle: strictness and encoding

/// Replaces the manifest signature's 64 bytes (keeping k's key number).
fn with_signature_bytes(case: &Case, sig: [u8; 64]) {
    let mut parts = case.parts("next.airlock");
    let text = String::from_utf8(parts.head[1].1.clone()).unwrap();
    let comment = text.lines().next().unwrap();
    let mut raw = B64.decode(text.lines().nth(1).unwrap()).unwrap();
    raw[10..].copy_from_slice(&sig);
    parts.head[1].1 = format!("{comment}\n{}\n", B64.encode(raw)).into_bytes();
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
}

/// A malleated signature (S + L): signify's own verifier accepts it; strict verification
/// (and the bundle) do not.
#[test]
fn non_canonical_signature_scalar_is_rejected() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let sig = airlock::keys::Signature::parse(&parts.head[1].1).unwrap();
    let mut bytes = *sig.bytes();
    // S += L (little endian), L = 2^252 + 27742317777372353535851937790883648493.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = bytes[32 + i] as u16 + L[i] as u16 + carry;
        bytes[32 + i] = v as u8;
        carry = v >> 8;
    }
    assert_eq!(carry, 0);
    with_signature_bytes(&case, bytes);
    let msg = format!("signature by trusted key {} on airlock/manifest.cbor does not verify", case.key_id("k"));
    case.expect_rejected("bad.airlock", &msg);
}

/// R of small order (the identity) with S = 0, claiming the trusted key.
#[test]
fn small_order_signature_point_is_rejected() {
    let case = Case::new();
    let mut bytes = [0u8; 64];
    bytes[..32].copy_from_slice(&unhex32(SMALL_ORDER[0]));
    with_signature_bytes(&case, bytes);
    case.expect_rejected("bad.airlock", "on airlock/manifest.cbor does not verify");
}

#[test]
fn all_zero_signature_is_rejected() {
    let case = Case::new();
    with_signature_bytes(&case, [0u8; 64]);
    case.expect_rejected("bad.airlock", "on airlock/manifest.cbor does not verify");
}

#[test]
fn signature_member_with_wrong_algorithm_tag() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    let text = String::from_utf8(parts.head[1].1.clone()).unwrap();
    let mut raw = B64.decode(text.lines().nth(1).unwrap()).unwrap();
    raw[..2].copy_from_slice(b"ED");
    parts.head[1].1 = format!("{}\n{}\n", text.lines().next().unwrap(), B64.encode(raw)).into_bytes();
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    case.expect_rejected("bad.airlock", "unsupported algorithm \"ED\"");
}

#[test]
fn signature_member_with_wrong_length() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    let text = String::from_utf8(parts.head[1].1.clone()).unwrap();
    let raw = B64.decode(text.lines().nth(1).unwrap()).unwrap();
    parts.head[1].1 = format!("{}\n{}\n", text.lines().next().unwrap(), B64.encode(&raw[..73])).into_bytes();
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    case.expect_rejected("bad.airlock", "wrong decoded length for a signify signature: expected 74 bytes, found 73");
}

#[test]
fn signature_member_with_comment_injection() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    let text = String::from_utf8(parts.head[1].1.clone()).unwrap();
    parts.head[1].1 = format!("untrusted comment: a\rb\n{}\n", text.lines().nth(1).unwrap()).into_bytes();
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    case.expect_rejected("bad.airlock", "comment");
}

#[test]
fn checksum_list_with_malformed_signature_lines() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    parts.head[2].1 = b"untrusted comment: x\nnot base64 at all\nSHA256 (data/a.txt) = 00\n".to_vec();
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    case.expect_rejected("bad.airlock", "airlock/SHA256SUMS.sig: embedded signature: invalid base64");
}

/// A checksum list signed by an untrusted key: its message must still equal the list
/// derived from the (trusted) manifest, which is what protects the payload.
#[test]
fn checksum_list_signed_by_an_untrusted_key_with_other_content() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    let (_, msg) = airlock::keys::parse_embedded(&parts.head[2].1).unwrap();
    let mut msg = msg.to_vec();
    msg.extend_from_slice(b"SHA256 (data/evil) = 0000000000000000000000000000000000000000000000000000000000000000\n");
    parts.head[2].1 = airlock::keys::sign_embedded(&case.secret("other"), &msg, "other");
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    case.expect_rejected("bad.airlock", "checksum list does not match the manifest");
}

// ---------------------------------------------------------------------------------------
// key numbers

/// An attacker makes a new key with the trusted key's key number and trusts... nothing:
/// an operator given both files refuses the ambiguous trust set.
#[test]
fn two_trusted_keys_sharing_a_key_number() {
    let case = Case::new();
    let k = k_raw();
    let other_text = String::from_utf8(case.bytes("other.pub")).unwrap();
    let mut other = B64.decode(other_text.lines().nth(1).unwrap()).unwrap();
    other[2..10].copy_from_slice(&k[2..10]);
    case.put("impostor.pub", &pub_file(&other));
    let msg = format!("two different trusted keys share the key id {}", case.key_id("k"));
    case.expect_refused("next.airlock", &["k", "impostor"], &[], 2, &msg);
}

/// The same public key trusted under two key numbers, and the bundle signed "by both"
/// (one signature, relabelled): it counts once towards a threshold of 2.
#[test]
fn same_key_under_two_key_numbers_counts_once() {
    let case = Case::new();
    let mut k2 = k_raw();
    k2[2..10].copy_from_slice(&[0xfe; 8]);
    case.put("kalias.pub", &pub_file(&k2));
    let parts = case.parts("next.airlock");
    let sig = airlock::format::head::sign_manifest(&case.secret("k"), &parts.head[0].1);
    let text = sig.to_file_string();
    let raw = B64.decode(text.lines().nth(1).unwrap()).unwrap();
    let mut alias = raw.clone();
    alias[2..10].copy_from_slice(&[0xfe; 8]);
    let alias_text = format!("{}\n{}\n", text.lines().next().unwrap(), B64.encode(alias));
    let mut head = vec![parts.head[0].clone(), (airlock::format::signature_member(sig.key_id()), text.into_bytes())];
    head.push(("airlock/signatures/fefefefefefefefe.sig".into(), alias_text.into_bytes()));
    head.push(parts.head[2].clone());
    case.put("twice.airlock", &assemble(&head, &parts.payload));
    // Trusting only these two files cannot meet a threshold of 2 at all: refused up front.
    case.expect_refused(
        "twice.airlock",
        &["k", "kalias"],
        &["--threshold", "2"],
        2,
        "threshold 2 cannot be met by 1 distinct trusted key(s)",
    );
    // With a genuine second key trusted too, the doubled signature still counts once.
    case.expect_refused("twice.airlock", &["k", "kalias", "k2"], &["--threshold", "2"], 1, "found 1");
}

/// A secret and a public key with different key numbers are not a pair.
#[test]
fn key_pair_with_mismatched_key_numbers() {
    let case = Case::new();
    let sec = case.secret("k");
    let mut raw = k_raw();
    raw[2..10].copy_from_slice(&[9; 8]);
    let public = airlock::keys::PublicKey::parse(&pub_file(&raw)).unwrap();
    let err = sec.check_public(&public).unwrap_err().to_string();
    assert!(err.contains("key-number mismatch"), "{err}");
    let other = airlock::keys::PublicKey::parse(&pub_file(&{
        let text = String::from_utf8(case.bytes("other.pub")).unwrap();
        let mut o = B64.decode(text.lines().nth(1).unwrap()).unwrap();
        o[2..10].copy_from_slice(&sec.key_id().0);
        o
    }))
    .unwrap();
    let err = sec.check_public(&other).unwrap_err().to_string();
    assert!(err.contains("same key number, different key"), "{err}");
}

// ---------------------------------------------------------------------------------------
// secret keys and passphrases

fn pack_with(case: &Case, key: &str, passphrase_file: Option<&str>) -> crate::common::Run {
    let mut cmd = crate::common::airlock();
    cmd.arg("pack")
        .arg(case.path("src"))
        .arg("-o")
        .arg(case.path("new.airlock"))
        .arg("--key")
        .arg(case.path(key))
        .arg("--quiet");
    if let Some(p) = passphrase_file {
        cmd.arg("--passphrase-file").arg(case.path(p));
    }
    crate::common::run(cmd.env("AIRLOCK_STATE_DIR", case.path("state")).stdin(std::process::Stdio::null()))
}

#[test]
fn wrong_passphrase() {
    let case = Case::new();
    case.put("pass", b"correct horse\n");
    case.put("wrong", b"battery staple\n");
    crate::common::run(
        crate::common::airlock()
            .arg("keygen")
            .arg("--public")
            .arg(case.path("p.pub"))
            .arg("--secret")
            .arg(case.path("p.sec"))
            .arg("--passphrase-file")
            .arg(case.path("pass")),
    )
    .expect_code(0);
    pack_with(&case, "p.sec", Some("wrong")).expect_code(2).expect_stderr("incorrect passphrase for secret key");
    assert!(!case.path("new.airlock").exists());
    pack_with(&case, "p.sec", Some("pass")).expect_code(0);
}

#[test]
fn corrupt_unencrypted_secret_key() {
    let case = Case::new();
    let text = String::from_utf8(case.bytes("k.sec")).unwrap();
    let mut raw = B64.decode(text.lines().nth(1).unwrap()).unwrap();
    raw[60] ^= 1; // inside the seckey
    case.put("bad.sec", format!("{}\n{}\n", text.lines().next().unwrap(), B64.encode(raw)).as_bytes());
    chmod(&case.path("bad.sec"), 0o600);
    pack_with(&case, "bad.sec", None).expect_code(2).expect_stderr("checksum mismatch in unencrypted secret key");
}

#[test]
fn secret_key_with_unknown_kdf() {
    let case = Case::new();
    let text = String::from_utf8(case.bytes("k.sec")).unwrap();
    let mut raw = B64.decode(text.lines().nth(1).unwrap()).unwrap();
    raw[2..4].copy_from_slice(b"XX");
    case.put("bad.sec", format!("{}\n{}\n", text.lines().next().unwrap(), B64.encode(raw)).as_bytes());
    chmod(&case.path("bad.sec"), 0o600);
    pack_with(&case, "bad.sec", None).expect_code(2).expect_stderr("unsupported KDF \"XX\"");
}

#[test]
fn secret_key_readable_by_others() {
    let case = Case::new();
    chmod(&case.path("k.sec"), 0o644);
    pack_with(&case, "k.sec", None).expect_code(2).expect_stderr("accessible by group/others");
}

#[test]
fn secret_key_given_as_public_key() {
    let case = Case::new();
    refused_trust_file(
        &case.bytes("k.sec"),
        // Named as what it is, not by its length (issue 14).
        "hostile.pub is a signify secret key; --trust needs the public key",
    );
}
