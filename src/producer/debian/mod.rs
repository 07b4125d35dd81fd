//! Debian archive chains, as pure parsing: no signature checks, no file access.
//!
//! A Debian (or Ubuntu) repository signs one file per suite, `dists/<suite>/InRelease`
//! (or `Release` + `Release.gpg`). Everything else hangs off it by hash:
//!
//! ```text
//! InRelease (OpenPGP clearsigned)          -> producer::openpgp::verify_clearsigned
//!   SHA256: <hex> <size> main/binary-amd64/Packages.xz       -> Release::parse, Release::expect
//!     Packages: Filename: pool/main/h/hello/hello_2.10-3_amd64.deb
//!               Size: 53364  SHA256: <hex>                    -> IndexReader
//!       pool/main/h/hello/hello_2.10-3_amd64.deb  (checked by size and SHA-256)
//! ```
//!
//! [`Release::parse`] reads the signed text; [`Release::expect`] gives the size and SHA-256 a
//! file of the suite's directory must have (including `by-hash/SHA256/<hex>` names);
//! [`index_kind`] says which of those files are `Packages`/`Sources` indexes this module
//! reads, and [`IndexReader`] streams one, keeping only the pool files a caller asks for,
//! so memory stays bounded by what the caller wants, not by the size of the suite
//! (bookworm's `main` lists about 190,000 pool files).
//!
//! Only SHA-256 is read: `MD5Sum` and `SHA1` fields are ignored, so a Release or index
//! without SHA-256 lists nothing. Supported index compressions: none, gzip and xz (pure-Rust
//! decoders); bzip2, lzma, zstd and lz4 indexes are not read (see [`unreadable_index`]), and
//! pool files then stay unlisted, which a caller refuses.

mod control;
mod error;
mod index;
mod release;

pub use error::{DebianError, FieldProblem, PathProblem};
pub use index::{IndexReader, Listed, DEFAULT_MAX_DECOMPRESSED, MAX_STANZA_LEN};
pub use release::Release;

/// Longest path accepted in a Release or an index (Debian's are under 200 bytes).
pub const MAX_PATH_LEN: usize = 4096;

/// Which kind of index a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IndexKind {
    /// A binary-package index (`Packages`): `Filename`, `Size`, `SHA256` per stanza.
    Packages,
    /// A source-package index (`Sources`): `Directory` and `Checksums-Sha256` per stanza.
    Sources,
}

/// How an index file is compressed (by its name, as apt decides).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Plain text (`Packages`).
    None,
    /// gzip (`Packages.gz`).
    Gzip,
    /// xz (`Packages.xz`).
    Xz,
}

impl Compression {
    /// The name a message uses.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
        }
    }
}

/// Whether a path relative to `dists/<suite>/` is an index this module reads, and how it is
/// compressed: `…/Packages`, `…/Packages.gz`, `…/Packages.xz`, and the same for `Sources`.
/// `by-hash/` names are never indexes here (they are checked by hash only), nor are
/// `Packages.diff/Index` and other files.
pub fn index_kind(rel: &str) -> Option<(IndexKind, Compression)> {
    let (kind, extension) = split_index_name(rel)?;
    let compression = match extension {
        "" => Compression::None,
        ".gz" => Compression::Gzip,
        ".xz" => Compression::Xz,
        _ => return None,
    };
    Some((kind, compression))
}

/// A `Packages`/`Sources` file this module cannot read because of its compression, with the
/// compression's name, so a caller can say why the pool files it lists stay unverified:
/// `main/binary-amd64/Packages.bz2` -> `(Packages, "bzip2")`. `None` for readable indexes and
/// for files that are not indexes.
pub fn unreadable_index(rel: &str) -> Option<(IndexKind, &'static str)> {
    let (kind, extension) = split_index_name(rel)?;
    let name = match extension {
        ".bz2" => "bzip2",
        ".lzma" => "lzma",
        ".zst" => "zstd",
        ".lz4" => "lz4",
        _ => return None,
    };
    Some((kind, name))
}

/// `main/binary-amd64/Packages.xz` -> `(Packages, ".xz")`; `None` for by-hash names and for
/// files not named `Packages*`/`Sources*`.
fn split_index_name(rel: &str) -> Option<(IndexKind, &str)> {
    if rel.split('/').any(|component| component == "by-hash") {
        return None;
    }
    let name = rel.rsplit('/').next()?;
    if let Some(extension) = name.strip_prefix("Packages") {
        return Some((IndexKind::Packages, extension));
    }
    name.strip_prefix("Sources").map(|extension| (IndexKind::Sources, extension))
}

/// Checks a path that will be joined under the repository root (or a suite's directory):
/// relative, no empty, `.` or `..` components, no control characters or backslashes.
pub(crate) fn check_relative_path(path: &str) -> Result<(), PathProblem> {
    if path.is_empty() {
        return Err(PathProblem::Empty);
    }
    if path.len() > MAX_PATH_LEN {
        return Err(PathProblem::TooLong);
    }
    if path.starts_with('/') {
        return Err(PathProblem::Absolute);
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return Err(PathProblem::ForbiddenChar);
    }
    for component in path.split('/') {
        match component {
            "" => return Err(PathProblem::EmptyComponent),
            "." | ".." => return Err(PathProblem::DotComponent),
            _ => {}
        }
    }
    Ok(())
}

/// The real bookworm-updates slice under fixtures/producer/debian/repo (README.txt there).
#[cfg(test)]
pub(crate) mod fixtures {
    macro_rules! repo_file {
        ($rel:literal) => {
            include_bytes!(concat!("../../../fixtures/producer/debian/repo/", $rel))
        };
    }

    pub const INRELEASE: &[u8] = repo_file!("dists/bookworm-updates/InRelease");
    pub const PACKAGES: &[u8] = repo_file!("dists/bookworm-updates/main/binary-amd64/Packages");
    pub const PACKAGES_XZ: &[u8] = repo_file!("dists/bookworm-updates/main/binary-amd64/Packages.xz");
    pub const SOURCES_XZ: &[u8] = repo_file!("dists/bookworm-updates/main/source/Sources.xz");
    pub const SAMBA_AD_DC: &str = "pool/main/s/samba/samba-ad-dc_4.17.12+dfsg-0+deb12u2_all.deb";
    pub const SAMBA_AD_DC_DEB: &[u8] = repo_file!("pool/main/s/samba/samba-ad-dc_4.17.12+dfsg-0+deb12u2_all.deb");
    pub const LDB_DEV: &str = "pool/main/s/samba/python3-ldb-dev_2.6.2+samba4.17.12+dfsg-0+deb12u2_amd64.deb";
    pub const LDB_DEV_DEB: &[u8] =
        repo_file!("pool/main/s/samba/python3-ldb-dev_2.6.2+samba4.17.12+dfsg-0+deb12u2_amd64.deb");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole chain on the real slice, as an import walks it: the Release (signed text)
    /// lists each index by size and SHA-256, each readable index lists the pool files.
    #[test]
    fn the_fixture_chain_holds_from_release_to_pool_files() {
        let inrelease = std::str::from_utf8(fixtures::INRELEASE).unwrap();
        let signed = inrelease.split_once("\n\n").unwrap().1.split_once("-----BEGIN PGP SIGNATURE-----").unwrap().0;
        let release = Release::parse(signed.as_bytes()).unwrap();
        let pool = [(fixtures::SAMBA_AD_DC, fixtures::SAMBA_AD_DC_DEB), (fixtures::LDB_DEV, fixtures::LDB_DEV_DEB)];
        for (rel, bytes) in [
            ("main/binary-amd64/Packages", fixtures::PACKAGES),
            ("main/binary-amd64/Packages.xz", fixtures::PACKAGES_XZ),
        ] {
            assert_eq!(release.expect(rel), Some((bytes.len() as u64, crate::Digest::of(bytes))), "{rel}");
            let (kind, compression) = index_kind(rel).unwrap();
            let in_bundle = move |path: &str| pool.iter().any(|(pool_path, _)| *pool_path == path);
            let mut reader = IndexReader::new(kind, compression, Box::new(in_bundle));
            reader.update(bytes).unwrap();
            let listed = reader.finish().unwrap();
            assert_eq!(listed.len(), 2, "{rel}");
            for (path, deb) in pool {
                let entry = listed.iter().find(|l| l.path == path).unwrap();
                assert_eq!((entry.size, entry.sha256), (deb.len() as u64, crate::Digest::of(deb)), "{path} via {rel}");
            }
        }
    }

    #[test]
    fn index_kind_reads_names_as_apt_does() {
        assert_eq!(index_kind("main/binary-amd64/Packages"), Some((IndexKind::Packages, Compression::None)));
        assert_eq!(index_kind("main/binary-amd64/Packages.gz"), Some((IndexKind::Packages, Compression::Gzip)));
        assert_eq!(index_kind("main/source/Sources.xz"), Some((IndexKind::Sources, Compression::Xz)));
        assert_eq!(
            index_kind("main/debian-installer/binary-amd64/Packages.xz"),
            Some((IndexKind::Packages, Compression::Xz))
        );
        for not_an_index in [
            "main/binary-amd64/by-hash/SHA256/87e7e94047fb7fb6f4ceecc7022d4bee55b66031cc2a7666d3196f3e0aabb846",
            "main/binary-amd64/Packages.diff/Index",
            "main/binary-amd64/Release",
            "main/Contents-amd64.gz",
            "main/binary-amd64/Packages.bz2",
            "main/i18n/Translation-en.xz",
        ] {
            assert_eq!(index_kind(not_an_index), None, "{not_an_index}");
        }
    }

    #[test]
    fn unreadable_compressions_are_named() {
        assert_eq!(unreadable_index("main/binary-amd64/Packages.bz2"), Some((IndexKind::Packages, "bzip2")));
        assert_eq!(unreadable_index("main/source/Sources.zst"), Some((IndexKind::Sources, "zstd")));
        assert_eq!(unreadable_index("main/binary-amd64/Packages.xz"), None);
        assert_eq!(unreadable_index("main/binary-amd64/by-hash/SHA256/Packages.bz2"), None);
    }

    #[test]
    fn paths_must_stay_inside_the_repository() {
        assert_eq!(check_relative_path("pool/main/h/hello/hello_2.10-3_amd64.deb"), Ok(()));
        assert_eq!(check_relative_path(""), Err(PathProblem::Empty));
        assert_eq!(check_relative_path("/etc/passwd"), Err(PathProblem::Absolute));
        assert_eq!(check_relative_path("pool/../../etc/passwd"), Err(PathProblem::DotComponent));
        assert_eq!(check_relative_path("pool/./x"), Err(PathProblem::DotComponent));
        assert_eq!(check_relative_path("pool//x"), Err(PathProblem::EmptyComponent));
        assert_eq!(check_relative_path("pool/x/"), Err(PathProblem::EmptyComponent));
        assert_eq!(check_relative_path("pool\\..\\x"), Err(PathProblem::ForbiddenChar));
        assert_eq!(check_relative_path("pool/x\0y"), Err(PathProblem::ForbiddenChar));
        assert_eq!(check_relative_path(&"a/".repeat(3000)), Err(PathProblem::TooLong));
    }
}
