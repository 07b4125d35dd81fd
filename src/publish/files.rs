//! The checksum list of a publish, signed with an inside signify key: one `signify -C` line
//! per published object, so a consumer checks any download with stock signify:
//! `signify -C -p inside.pub -x .airlock/SHA256SUMS.sig path/to/file` (run at the root).

use crate::io::digest::Digest;
use crate::keys::{sign_embedded, SecretKey};

/// Where the signed checksum list is published.
pub const SUMS_KEY: &str = ".airlock/SHA256SUMS.sig";

/// The signed checksum list (signify's embedded form: the signature, then the list) over
/// `objects` (key and SHA-256).
pub fn signed_sums<'a>(key: &SecretKey, objects: impl Iterator<Item = (&'a str, Digest)>) -> Vec<u8> {
    let mut sorted: Vec<(&str, Digest)> = objects.collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut text = String::new();
    for (path, digest) in sorted {
        text.push_str(&format!("SHA256 ({path}) = {digest}\n"));
    }
    sign_embedded(key, text.as_bytes(), "verify with signify -C -p <inside key>.pub -x .airlock/SHA256SUMS.sig")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::parse_embedded;

    #[test]
    fn the_list_is_signed_sorted_and_in_signify_syntax() {
        let key = SecretKey::generate("inside");
        let signed = signed_sums(&key, [("b", Digest::of(b"b")), ("a/x", Digest::of(b"a"))].into_iter());
        let (sig, message) = parse_embedded(&signed).unwrap();
        key.public_key().verify(message, &sig).unwrap();
        let text = std::str::from_utf8(message).unwrap();
        assert_eq!(text, format!("SHA256 (a/x) = {}\nSHA256 (b) = {}\n", Digest::of(b"a"), Digest::of(b"b")));
    }
}
